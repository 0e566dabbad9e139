package main

import (
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/fieldsync/fieldsync/agent/schema"
)

// allDossiers makes what a run of the demo makes with seed, in the same
// order: step 3's dossiers with their featured people, then later batches.
func allDossiers(seed uint64) []map[string]string {
	g := newGenerator(seed)
	var out []map[string]string
	for _, tm := range teams {
		for i := 0; i < 25; i++ {
			var p person
			if f := featured[tm.Laptop]; i < len(f) {
				p = f[i]
			}
			out = append(out, g.dossier(tm, p))
		}
	}
	return out
}

func TestDossiersAreDeterministic(t *testing.T) {
	a, b := allDossiers(7), allDossiers(7)
	for i := range a {
		if !maps.Equal(a[i], b[i]) {
			t.Fatalf("dossier %d differs between two runs with one seed:\n%v\n%v", i, a[i], b[i])
		}
	}
	c := allDossiers(8)
	same := 0
	for i := range a {
		if a[i]["personal_id"] == c[i]["personal_id"] {
			same++
		}
	}
	if same == len(a) {
		t.Fatal("seeds 7 and 8 made the same ID numbers")
	}
}

// Every dossier the demo sends is one the agent accepts, and its ID number
// agrees with its birth year, sex and province.
func TestDossiersAreValidAndConsistent(t *testing.T) {
	s := schema.Dossier()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	provinces := map[string]bool{"002": true, "011": true, "038": true, "040": true, "056": true}
	seen := map[string]bool{}
	for i, d := range allDossiers(20220106) {
		if _, err := s.ValidateNew(d, now); err != nil {
			t.Fatalf("dossier %d refused: %v\n%v", i, err, d)
		}
		for k, v := range d {
			if !norm.NFC.IsNormalString(v) {
				t.Fatalf("dossier %d: %s not NFC: %q", i, k, v)
			}
		}
		id := d["personal_id"]
		if len(id) != 12 || !provinces[id[:3]] {
			t.Fatalf("dossier %d: personal_id %q", i, id)
		}
		if seen[id] {
			t.Fatalf("dossier %d: personal_id %q repeated", i, id)
		}
		seen[id] = true
		year, err := strconv.Atoi(d["date_of_birth"][:4])
		if err != nil {
			t.Fatal(err)
		}
		c := 0
		if year >= 2000 {
			c = 2
		}
		if d["sex"] == "nữ" {
			c++
		}
		if want := strconv.Itoa(c) + d["date_of_birth"][2:4]; id[3:6] != want {
			t.Fatalf("dossier %d: ID %s, born %s, %s: digits 4-6 want %s", i, id, d["date_of_birth"], d["sex"], want)
		}
		if !strings.Contains(d["permanent_address"], "Mèo Vạc") {
			t.Fatalf("dossier %d: address %q", i, d["permanent_address"])
		}
	}
}

// The featured people open each laptop's capture with their names as given.
func TestFeaturedPeopleComeFirst(t *testing.T) {
	tr := &trip{gen: newGenerator(1), teams: map[string]team{}, by: map[string]int{}}
	for _, tm := range teams {
		tr.teams[tm.Laptop] = tm
	}
	ds := tr.dossiers("laptop-a", 5)
	if ds[0]["full_name"] != "Vừ Mi Chứ" || ds[1]["full_name"] != "Giàng Thị Mỷ" {
		t.Fatalf("first dossiers of laptop-a: %q, %q", ds[0]["full_name"], ds[1]["full_name"])
	}
	tr.by["laptop-a"] = 5
	if again := tr.dossiers("laptop-a", 1); again[0]["full_name"] == "Vừ Mi Chứ" {
		t.Fatal("a later batch repeated the featured person")
	}
}

// The island's dossiers are ones the agent accepts: Khánh Hòa people (code
// 056) living on Vạn Thạnh's islands, the same for a seed.
func TestIslandDossiersAreValid(t *testing.T) {
	s := schema.Dossier()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g, again := newGenerator(5), newGenerator(5)
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		d := g.islandDossier("island-a")
		if !maps.Equal(d, again.islandDossier("island-a")) {
			t.Fatalf("island dossier %d differs between two generators with one seed", i)
		}
		if _, err := s.ValidateNew(d, now); err != nil {
			t.Fatalf("island dossier %d refused: %v\n%v", i, err, d)
		}
		for k, v := range d {
			if !norm.NFC.IsNormalString(v) {
				t.Fatalf("island dossier %d: %s not NFC: %q", i, k, v)
			}
		}
		id := d["personal_id"]
		if len(id) != 12 || id[:3] != "056" || id[4:6] != d["date_of_birth"][2:4] || seen[id] {
			t.Fatalf("island dossier %d: personal_id %q, born %s", i, id, d["date_of_birth"])
		}
		seen[id] = true
		if d["commune"] != "Vạn Thạnh" || !strings.Contains(d["permanent_address"], "xã Vạn Thạnh, huyện Vạn Ninh, tỉnh Khánh Hòa") {
			t.Fatalf("island dossier %d: commune %q, address %q", i, d["commune"], d["permanent_address"])
		}
	}
}

// Step 9's dossiers: the second capture is the same person (name, birth,
// personal ID) living elsewhere; the two elders are two people whose names
// differ only by y and i, born the same year. All are ones the agent
// accepts.
func TestDuplicateDossiers(t *testing.T) {
	s := schema.Dossier()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tr := &trip{gen: newGenerator(20220106), teams: map[string]team{}, by: map[string]int{}}
	for _, tm := range teams {
		tr.teams[tm.Laptop] = tm
	}
	first := tr.dossiers("laptop-a", 2)[1]
	again := tr.gen.recapture(tr.teams["laptop-b"], first, marketVillage, marketNotes)
	my := tr.gen.elder(tr.teams["laptop-c"], person{Name: elderMy, Ethnicity: "Mông", Sex: "nữ"}, elderMyHome, eldersBorn)
	mi := tr.gen.elder(tr.teams["laptop-a"], person{Name: elderMi, Ethnicity: "Mông", Sex: "nữ"}, elderMiHome, eldersBorn)
	for i, d := range []map[string]string{first, again, my, mi} {
		if _, err := s.ValidateNew(d, now); err != nil {
			t.Fatalf("dossier %d refused: %v\n%v", i, err, d)
		}
	}
	for _, k := range []string{"full_name", "date_of_birth", "personal_id"} {
		if first[k] != again[k] {
			t.Errorf("second capture: %s %q, first %q", k, again[k], first[k])
		}
	}
	if first["full_name"] != "Giàng Thị Mỷ" || again["commune"] != "Khâu Vai" || first["photo_ref"] == again["photo_ref"] {
		t.Errorf("second capture of %q: commune %q, photo %q (first %q)", first["full_name"], again["commune"], again["photo_ref"], first["photo_ref"])
	}
	fold := func(n string) string { return strings.ReplaceAll(schema.FoldNameNoDiacritics(n), "y", "i") }
	switch {
	case my["full_name"] == mi["full_name"] || fold(my["full_name"]) != fold(mi["full_name"]):
		t.Errorf("elders %q and %q: want names equal only up to diacritics and y/i", my["full_name"], mi["full_name"])
	case my["date_of_birth"] != "1952" || mi["date_of_birth"] != "1952":
		t.Errorf("elders born %q and %q, want 1952", my["date_of_birth"], mi["date_of_birth"])
	case my["personal_id"] == mi["personal_id"] || my["personal_id"][:6] != "002152" || mi["personal_id"][:6] != "002152":
		t.Errorf("elders' IDs %q and %q", my["personal_id"], mi["personal_id"])
	case my["commune"] != elderMyHome || mi["commune"] != elderMiHome:
		t.Errorf("elders live in %q and %q", my["commune"], mi["commune"])
	}
}

// Officer names pass the credential's rule (1 to 64 printable characters)
// and are NFC, as typed on a Vietnamese keyboard.
func TestOfficerNames(t *testing.T) {
	names := []string{adminOfficer}
	for _, tm := range teams {
		names = append(names, tm.Officer)
	}
	for _, n := range names {
		if c := utf8.RuneCountInString(n); c < 1 || c > 64 || !norm.NFC.IsNormalString(n) {
			t.Errorf("officer %q: %d characters, NFC %v", n, c, norm.NFC.IsNormalString(n))
		}
		for _, r := range n {
			if !unicode.IsPrint(r) {
				t.Errorf("officer %q: %U not printable", n, r)
			}
		}
	}
}
