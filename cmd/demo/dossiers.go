package main

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Synthetic dossiers. Every person here is invented: names are assembled
// from common surnames, middle names and given names of each people, dates
// and ID numbers are drawn from a seeded generator, so every run of the demo
// captures the same dossiers. Village names are illustrative.

// team is one laptop's capture team: where it works, and who it meets.
type team struct {
	Laptop  string // device name, e.g. "laptop-a"
	TeamVI  string // who carries the laptop, in Vietnamese
	TeamEN  string // and in English
	Commune string // commune the team captures in, e.g. "Pả Vi"
	// Officer is who the laptop is issued to (`device init --officer`),
	// shown beside every change it makes.
	Officer string
	// HomeVisits: the team visits elderly and disabled people at home, so
	// its people are older and some know only their year of birth.
	HomeVisits bool
}

// nameBook holds the parts of names of one people.
type nameBook struct {
	Surnames    []string
	MaleMid     []string
	FemaleMid   []string
	MaleGiven   []string
	FemaleGiven []string
}

// Name books by ethnicity ("dân tộc").
var nameBooks = map[string]nameBook{
	"Mông": {
		Surnames:    []string{"Giàng", "Vừ", "Thò", "Sùng", "Lầu", "Mua", "Hầu", "Ly", "Vàng", "Sình", "Hạng"},
		MaleMid:     []string{"Mí", "Seo", "Văn", "A", "Chìa"},
		FemaleMid:   []string{"Thị"},
		MaleGiven:   []string{"Chứ", "Dính", "Páo", "Chơ", "Sính", "Tủa", "Pó", "Súa", "Chá", "Sử", "Lử", "Nhè"},
		FemaleGiven: []string{"Mỷ", "Súng", "Dợ", "Chúa", "Sua", "Dế", "Máy", "Pà", "Mang", "Xo", "Mai", "Chi"},
	},
	"Dao": {
		Surnames:    []string{"Bàn", "Triệu", "Đặng", "Lý", "Chảo", "Phùn", "Tẩn"},
		MaleMid:     []string{"Văn", "Tiến", "Phúc"},
		FemaleMid:   []string{"Thị", "Mùi"},
		MaleGiven:   []string{"Sành", "Chài", "Phin", "Quẩy", "Tả", "Dùn", "Kiêm", "Lở"},
		FemaleGiven: []string{"Mẩy", "Nhất", "Lai", "Xuân", "Chạn", "Dảo"},
	},
	"Tày": {
		Surnames:    []string{"Hoàng", "Nông", "Ma", "Lục", "Vi", "Hà"},
		MaleMid:     []string{"Văn", "Đức"},
		FemaleMid:   []string{"Thị"},
		MaleGiven:   []string{"Thào", "Lợi", "Khánh", "Hòa", "Mạnh", "Tuân"},
		FemaleGiven: []string{"Hương", "Mến", "Tuyết", "Lan", "Nhàn", "Thơm"},
	},
	"Giáy": {
		Surnames:    []string{"Lù", "Hoàng", "Vương", "Sầm"},
		MaleMid:     []string{"Văn"},
		FemaleMid:   []string{"Thị"},
		MaleGiven:   []string{"Sính", "Hảo", "Chính", "Pao"},
		FemaleGiven: []string{"Mỷ", "Dung", "Lìn"},
	},
	"Kinh": {
		Surnames:    []string{"Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Đỗ", "Bùi", "Vũ", "Đặng", "Ngô"},
		MaleMid:     []string{"Văn", "Đức", "Minh", "Quang", "Hữu"},
		FemaleMid:   []string{"Thị", "Thị Hồng", "Thị Thu", "Thị Thanh", "Ngọc"},
		MaleGiven:   []string{"Hùng", "Dũng", "Tuấn", "Hải", "An", "Thắng", "Long"},
		FemaleGiven: []string{"Nhung", "Hà", "Lan", "Hương", "Mai", "Trang", "Yến"},
	},
	"Thái": {
		Surnames:    []string{"Lò", "Lường", "Quàng", "Cầm", "Tòng", "Vi", "Hà"},
		MaleMid:     []string{"Văn"},
		FemaleMid:   []string{"Thị"},
		MaleGiven:   []string{"Páo", "Ún", "Xiêng", "Phóng", "Inh", "Biên", "Khăm"},
		FemaleGiven: []string{"Ẻn", "Xuân", "Ơn", "Phương", "Hoa"},
	},
	"Mường": {
		Surnames:    []string{"Bùi", "Đinh", "Quách", "Hà", "Phạm"},
		MaleMid:     []string{"Văn"},
		FemaleMid:   []string{"Thị"},
		MaleGiven:   []string{"Kiên", "Khoa", "Thịnh", "Khiêm"},
		FemaleGiven: []string{"Nga", "Thủy", "Lụa", "Xoan"},
	},
}

// origin is where a person comes from: the province code that starts their
// personal ID number, their hometown ("quê quán"), and the peoples living
// there, most common first (drawn with weights).
type origin struct {
	Code     string
	Hometown string
	Peoples  []string
	Weights  []int
}

// Mèo Vạc's people are mostly born there; some (teachers, health workers,
// spouses) come from the other provinces where Project 06 teams work.
var (
	hometownLocal = "huyện Mèo Vạc, tỉnh Hà Giang"
	localPeoples  = origin{Code: "002", Peoples: []string{"Mông", "Dao", "Tày", "Giáy", "Kinh"}, Weights: []int{70, 10, 8, 5, 7}}
	elsewhere     = []origin{
		{Code: "011", Hometown: "huyện Tủa Chùa, tỉnh Điện Biên", Peoples: []string{"Mông", "Thái"}, Weights: []int{1, 1}},
		{Code: "038", Hometown: "huyện Thường Xuân, tỉnh Thanh Hóa", Peoples: []string{"Thái", "Mường", "Kinh"}, Weights: []int{2, 1, 1}},
		{Code: "040", Hometown: "xã Ngọc Lâm, tỉnh Nghệ An", Peoples: []string{"Kinh", "Thái"}, Weights: []int{2, 1}},
		{Code: "056", Hometown: "xã Vạn Thạnh, huyện Vạn Ninh, tỉnh Khánh Hòa", Peoples: []string{"Kinh"}, Weights: []int{1}},
	}
)

// villages of the Mèo Vạc communes the teams work in (illustrative).
var villages = map[string][]string{
	"Pả Vi":     {"Pả Vi Thượng", "Pả Vi Hạ", "Kho Tấu", "Tìa Chí Dùa"},
	"Khâu Vai":  {"Khâu Vai", "Pắc Cạm", "Há Súng", "Lũng Lầu"},
	"Sơn Vĩ":    {"Lũng Làn", "Bản Chang", "Sơn Vĩ"},
	"Xín Cái":   {"Xín Cái", "Lũng Hóa", "Cờ Tẳng"},
	townCommune: {"Tổ 1", "Tổ 2", "Tổ 3"},
}

// homeVisitCommunes: the district's home-visit team goes where it is called.
var homeVisitCommunes = []string{"Pả Vi", "Khâu Vai", "Sơn Vĩ", "Xín Cái"}

// mobilePrefixes are Vietnamese mobile prefixes.
var mobilePrefixes = []string{"086", "096", "097", "098", "032", "033", "034", "035", "036", "037", "038", "039", "091", "094", "088", "081", "082", "083", "070", "076", "077", "078", "079", "090", "093", "089"}

// person pins who a dossier is about; empty parts are drawn at random.
type person struct {
	Name      string
	Ethnicity string
	Sex       string // "nam" or "nữ"
	Origin    *origin
}

// generator makes dossiers from a seed: the same seed, the same dossiers.
type generator struct {
	r *rand.Rand
	n int // dossiers made so far, numbers photo and fingerprint references
}

func newGenerator(seed uint64) *generator {
	return &generator{r: rand.New(rand.NewPCG(seed, 0x06_2022))}
}

func (g *generator) pick(s []string) string { return s[g.r.IntN(len(s))] }

func (g *generator) weighted(s []string, w []int) string {
	total := 0
	for _, x := range w {
		total += x
	}
	n := g.r.IntN(total)
	for i, x := range w {
		if n < x {
			return s[i]
		}
		n -= x
	}
	return s[len(s)-1]
}

// dossier returns a new dossier captured by t, about p where p says.
func (g *generator) dossier(t team, p person) map[string]string {
	g.n++
	o := p.Origin
	if o == nil {
		o = &localPeoples
		if g.r.IntN(100) < 12 {
			o = &elsewhere[g.r.IntN(len(elsewhere))]
		}
	}
	eth := p.Ethnicity
	if eth == "" {
		eth = g.weighted(o.Peoples, o.Weights)
	}
	sex := p.Sex
	if sex == "" {
		sex = g.pick([]string{"nam", "nữ"})
	}
	name := p.Name
	if name == "" {
		name = g.name(eth, sex)
	}
	commune := t.Commune
	if t.HomeVisits {
		commune = g.pick(homeVisitCommunes)
	}
	hometown := o.Hometown
	if hometown == "" {
		hometown = communeLabel(commune) + ", " + hometownLocal
	}

	var year int
	if t.HomeVisits {
		year = 1932 + g.r.IntN(30)
	} else {
		year = 1950 + g.r.IntN(60)
	}
	month := 1 + g.r.IntN(12)
	day := 1 + g.r.IntN(daysIn(year, month))
	dob := fmt.Sprintf("%04d-%02d-%02d", year, month, day)
	yearOnly := t.HomeVisits && g.r.IntN(100) < 30
	if yearOnly {
		// Some elderly people remember only their year of birth.
		dob = fmt.Sprintf("%04d", year)
	}

	d := map[string]string{
		"full_name":         name,
		"date_of_birth":     dob,
		"sex":               sex,
		"ethnicity":         eth,
		"personal_id":       personalID(o.Code, sex, year, g.r),
		"commune":           commune,
		"hometown":          hometown,
		"permanent_address": g.address(commune),
		"photo_ref":         fmt.Sprintf("anh/%s/%04d.jpg", t.Laptop, g.n),
		"fingerprint_ref":   fmt.Sprintf("vantay/%s/%04d.wsq", t.Laptop, g.n),
	}
	// Many residents have no phone of their own.
	if g.r.IntN(100) < 60 {
		d["phone"] = g.phone()
	}
	switch {
	case yearOnly:
		d["notes"] = "Thăm tại nhà; chỉ nhớ năm sinh / home visit; remembers only the year of birth"
	case t.HomeVisits:
		d["notes"] = "Thăm tại nhà / home visit"
	}
	return d
}

func (g *generator) name(eth, sex string) string {
	b := nameBooks[eth]
	if sex == "nữ" {
		return g.pick(b.Surnames) + " " + g.pick(b.FemaleMid) + " " + g.pick(b.FemaleGiven)
	}
	return g.pick(b.Surnames) + " " + g.pick(b.MaleMid) + " " + g.pick(b.MaleGiven)
}

func (g *generator) address(commune string) string {
	v := g.pick(villages[commune])
	if commune != townCommune {
		v = "Thôn " + v
	}
	return v + ", " + communeLabel(commune) + ", huyện Mèo Vạc, tỉnh Hà Giang"
}

// townCommune is the district town, which has quarters ("tổ") not villages.
const townCommune = "Thị trấn Mèo Vạc"

// communeLabel is how an address names the commune: "xã Pả Vi", or the town.
func communeLabel(commune string) string {
	if commune == townCommune {
		return "thị trấn Mèo Vạc"
	}
	return "xã " + commune
}

// recapture returns a second dossier of the person in first, captured
// again by another team that did not know of the first: the same identity
// (name, birth, personal ID), where she lives now, a new phone number and
// the capturing laptop's own photo and fingerprints.
func (g *generator) recapture(t team, first map[string]string, village, notes string) map[string]string {
	g.n++
	d := map[string]string{
		"commune":           t.Commune,
		"permanent_address": "Thôn " + village + ", " + communeLabel(t.Commune) + ", huyện Mèo Vạc, tỉnh Hà Giang",
		"phone":             g.phone(),
		"photo_ref":         fmt.Sprintf("anh/%s/%04d.jpg", t.Laptop, g.n),
		"fingerprint_ref":   fmt.Sprintf("vantay/%s/%04d.wsq", t.Laptop, g.n),
		"notes":             notes,
	}
	for _, k := range []string{"full_name", "date_of_birth", "sex", "ethnicity", "personal_id", "hometown"} {
		d[k] = first[k]
	}
	return d
}

// elder returns a dossier of p, born and living in commune of Mèo Vạc,
// captured by t, who remembers only the year of birth: the ID number is
// drawn for that year.
func (g *generator) elder(t team, p person, commune string, year int) map[string]string {
	at := t
	at.Commune, at.HomeVisits = commune, false
	if p.Origin == nil {
		p.Origin = &localPeoples
	}
	d := g.dossier(at, p)
	d["date_of_birth"] = fmt.Sprintf("%04d", year)
	d["personal_id"] = personalID(p.Origin.Code, d["sex"], year, g.r)
	note := "Chỉ nhớ năm sinh / remembers only the year of birth"
	if t.HomeVisits {
		note = "Thăm tại nhà; chỉ nhớ năm sinh / home visit; remembers only the year of birth"
	}
	d["notes"] = note
	return d
}

// phone is written the way officers type it; the agent stores the digits.
func (g *generator) phone() string {
	return fmt.Sprintf("%s%d %03d %03d", g.pick(mobilePrefixes), g.r.IntN(10), g.r.IntN(1000), g.r.IntN(1000))
}

// personalID builds a 12-digit personal ID number: the 3-digit province
// code, one digit for sex and century (0/1 for a man/woman born in the
// 1900s, 2/3 in the 2000s), the last two digits of the year of birth, then
// six random digits.
func personalID(province, sex string, year int, r *rand.Rand) string {
	c := 0
	if year >= 2000 {
		c = 2
	}
	if sex == "nữ" {
		c++
	}
	return fmt.Sprintf("%s%d%02d%06d", province, c, year%100, r.IntN(1_000_000))
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
