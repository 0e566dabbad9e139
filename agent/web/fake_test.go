package web_test

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"

	"github.com/fieldsync/fieldsync/agent/web"
)

// The fake agent: web.Handler() beside a small in-memory implementation of
// the JSON endpoints the page uses, with the shapes of the API contract,
// canned Vietnamese dossiers, and a log of every POST. It keeps the real
// API's request rules that concern a browser (JSON content type, loopback
// Origin) so the page is held to them.

type value struct {
	Value    string    `json:"value"`
	Device   string    `json:"device"`
	DeviceID string    `json:"device_id"`
	Officer  string    `json:"officer"`
	At       time.Time `json:"at"`
	Op       string    `json:"op"`
}

type record struct {
	ID          string             `json:"id"`
	Fields      map[string]string  `json:"fields"`
	Conflicts   map[string][]value `json:"conflicts"`
	CreatedBy   string             `json:"created_by"`
	CreatedAt   time.Time          `json:"created_at"`
	UpdatedAt   time.Time          `json:"updated_at"`
	RetiredInto string             `json:"retired_into,omitempty"`
}

type histOp struct {
	Op       string            `json:"op"`
	Kind     string            `json:"kind"`
	Device   string            `json:"device"`
	DeviceID string            `json:"device_id"`
	Officer  string            `json:"officer"`
	At       time.Time         `json:"at"`
	Fields   map[string]string `json:"fields"`
}

type dupGroup struct {
	Records []string `json:"records"`
	Reason  string   `json:"reason"`
	Key     string   `json:"key"`
}

type conflictItem struct {
	Record   string  `json:"record"`
	Field    string  `json:"field"`
	FullName string  `json:"full_name"`
	Values   []value `json:"values"`
}

// post is one POST the page sent.
type post struct {
	Path string
	Body map[string]any
}

type device struct{ name, id, officer string }

var (
	devA     = device{"laptop-meovac-1", "dev-a1b2c3", "Thượng úy Lò Văn Sính"}
	devB     = device{"laptop-meovac-2", "dev-d4e5f6", "Đại úy Nguyễn Thị Hoa"}
	devC     = device{"laptop-pavi-3", "dev-0718a9", "Trung úy Vàng Mí Lử"}
	devAdmin = device{"admin-huyen", "dev-admin01", "Thiếu tá Trần Văn Minh"}
	baseTime = time.Date(2026, 11, 18, 1, 30, 0, 0, time.UTC)
)

// Record ids, in the agent's UUIDv7 form.
const (
	idMai    = "019a9c10-0001-7000-8000-000000000001" // date of birth in conflict
	idCha    = "019a9c10-0002-7000-8000-000000000002" // name and address in conflict
	idDo     = "019a9c10-0003-7000-8000-000000000003"
	idPao1   = "019a9c10-0004-7000-8000-000000000004" // duplicate of idPao2 (name, date)
	idPao2   = "019a9c10-0005-7000-8000-000000000005"
	idLan1   = "019a9c10-0006-7000-8000-000000000006" // duplicate of idLan2 (personal ID)
	idLan2   = "019a9c10-0007-7000-8000-000000000007"
	idHung1  = "019a9c10-0008-7000-8000-000000000008" // merged into idHung2
	idHung2  = "019a9c10-0009-7000-8000-000000000009"
	idSu     = "019a9c10-0010-7000-8000-000000000010"
	idDinh   = "019a9c10-0011-7000-8000-000000000011"
	idHang   = "019a9c10-0012-7000-8000-000000000012"
	idSu2    = "019a9c10-0013-7000-8000-000000000013" // same name and date as idSu, another person
	idMissig = "019a9c10-9999-7000-8000-000000009999" // never exists
)

type fakeAgent struct {
	t   testing.TB
	srv *httptest.Server

	mu         sync.Mutex
	canSettle  bool
	records    map[string]*record
	history    map[string][]histOp
	dups       []dupGroup
	posts      []post
	seq        int
	refuseNext *apiError // answered to the next POST instead of acting
	maxLimit   int       // caps ?limit, as the real API caps it at MaxListLimit
}

type apiError struct {
	Status  int    `json:"-"`
	Error   string `json:"error"`
	ErrorVI string `json:"error_vi"`
}

// newFakeAgent starts the fake on 127.0.0.1; admin says whether it may
// settle (an admin device) or only show the queues (a field laptop).
func newFakeAgent(t testing.TB, admin bool) *fakeAgent {
	t.Helper()
	f := &fakeAgent{t: t, canSettle: admin, records: map[string]*record{}, history: map[string][]histOp{}}
	f.seed()
	mux := http.NewServeMux()
	page := web.Handler()
	mux.Handle("GET /{$}", page)
	mux.Handle("GET /ui/", page)
	mux.HandleFunc("GET /v1/status", f.status)
	mux.HandleFunc("GET /v1/records", f.list)
	mux.HandleFunc("GET /v1/records/{id}", f.get)
	mux.HandleFunc("GET /v1/records/{id}/history", f.hist)
	mux.HandleFunc("GET /v1/conflicts", f.conflicts)
	mux.HandleFunc("POST /v1/records/{id}/resolve", f.resolve)
	mux.HandleFunc("GET /v1/duplicates", f.duplicates)
	mux.HandleFunc("POST /v1/merge", f.merge)
	mux.HandleFunc("POST /v1/distinct", f.distinct)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusNotFound, apiError{Error: "no such endpoint", ErrorVI: "không có địa chỉ API này"})
	})
	f.srv = httptest.NewServer(f.guard(mux))
	t.Cleanup(f.srv.Close)
	return f
}

// URL is the page's address.
func (f *fakeAgent) URL() string { return f.srv.URL + "/" }

func (f *fakeAgent) Posts() []post {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.posts)
}

func (f *fakeAgent) Record(id string) record {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := *f.records[id]
	return r
}

func (f *fakeAgent) CapPageSize(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.maxLimit = n
}

func (f *fakeAgent) RefuseNextPost(e apiError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuseNext = &e
}

func (f *fakeAgent) at(min int) time.Time { return baseTime.Add(time.Duration(min) * time.Minute) }

func (f *fakeAgent) op(d device) string {
	f.seq++
	return d.id + ":" + strconv.Itoa(f.seq)
}

// add creates a record captured by d at minute min, with its create op.
func (f *fakeAgent) add(id string, d device, min int, fields map[string]string) *record {
	r := &record{ID: id, Fields: fields, Conflicts: map[string][]value{}, CreatedBy: d.name,
		CreatedAt: f.at(min), UpdatedAt: f.at(min)}
	f.records[id] = r
	f.history[id] = append(f.history[id], histOp{Op: f.op(d), Kind: "create", Device: d.name, DeviceID: d.id,
		Officer: d.officer, At: f.at(min), Fields: clone(fields)})
	return r
}

// edit records an update op by d; with conflict, the value joins the
// field's siblings instead of replacing it (two officers apart).
func (f *fakeAgent) edit(id string, d device, min int, field, v string, conflict bool) {
	r := f.records[id]
	op := f.op(d)
	f.history[id] = append(f.history[id], histOp{Op: op, Kind: "update", Device: d.name, DeviceID: d.id,
		Officer: d.officer, At: f.at(min), Fields: map[string]string{field: v}})
	r.UpdatedAt = f.at(min)
	if !conflict {
		r.Fields[field] = v
		return
	}
	if len(r.Conflicts[field]) == 0 {
		// The value it competes with: the create op's.
		first := f.history[id][0]
		r.Conflicts[field] = []value{{Value: r.Fields[field], Device: first.Device, DeviceID: first.DeviceID,
			Officer: first.Officer, At: first.At, Op: first.Op}}
	}
	r.Conflicts[field] = append(r.Conflicts[field], value{Value: v, Device: d.name, DeviceID: d.id,
		Officer: d.officer, At: f.at(min), Op: op})
}

func (f *fakeAgent) seed() {
	f.add(idMai, devA, 0, map[string]string{"full_name": "Giàng Thị Mai", "date_of_birth": "1994-03-12", "sex": "nữ",
		"ethnicity": "Mông", "commune": "Pả Vi", "personal_id": "002194001234",
		"permanent_address": "Thôn Pả Vi Hạ, xã Pả Vi, huyện Mèo Vạc, Hà Giang", "phone": "0912345678"})
	f.edit(idMai, devB, 95, "date_of_birth", "1994-03-21", true)
	f.add(idCha, devA, 12, map[string]string{"full_name": "Sùng Mí Chá", "date_of_birth": "1978", "sex": "nam",
		"ethnicity": "Mông", "commune": "Pả Vi", "permanent_address": "Thôn Sủng Pả A, xã Pả Vi"})
	f.edit(idCha, devC, 140, "full_name", "Sùng Mý Chá", true)
	f.edit(idCha, devB, 150, "permanent_address", "Thôn Sủng Pả B, xã Pả Vi", true)
	f.add(idDo, devB, 20, map[string]string{"full_name": "Vàng Thị Dợ", "date_of_birth": "2001-09-30", "sex": "nữ",
		"ethnicity": "Mông", "commune": "Sơn Vĩ", "personal_id": "002301009876", "phone": "0387654321"})
	f.edit(idDo, devB, 61, "phone", "0387654322", false)
	f.add(idPao1, devA, 30, map[string]string{"full_name": "Lò Văn Páo", "date_of_birth": "1987-07-05", "sex": "nam",
		"ethnicity": "Lô Lô", "commune": "Xín Cái", "phone": "0977111222"})
	f.add(idPao2, devC, 210, map[string]string{"full_name": "Lò Văn Páo", "date_of_birth": "1987-07-05", "sex": "nam",
		"ethnicity": "Lô Lô", "commune": "Xín Cái", "personal_id": "002087004455",
		"permanent_address": "Thôn Xín Cái, xã Xín Cái"})
	f.add(idLan1, devB, 40, map[string]string{"full_name": "Hoàng Thị Lan", "date_of_birth": "1990-11-02", "sex": "nữ",
		"ethnicity": "Tày", "commune": "Lũng Pù", "personal_id": "002190005678"})
	f.add(idLan2, devC, 260, map[string]string{"full_name": "Hoàng Thi Lan", "date_of_birth": "1990-11-20", "sex": "nữ",
		"ethnicity": "Tày", "commune": "Lũng Pù", "personal_id": "002190005678", "phone": "0366000111"})
	f.add(idHung1, devA, 50, map[string]string{"full_name": "Nguyễn Văn Hùng", "date_of_birth": "1969-02-14",
		"sex": "nam", "ethnicity": "Kinh", "commune": "Thượng Phùng"})
	f.add(idHung2, devB, 55, map[string]string{"full_name": "Nguyễn Văn Hùng", "date_of_birth": "1969-02-14",
		"sex": "nam", "ethnicity": "Kinh", "commune": "Thượng Phùng", "personal_id": "002069001111"})
	f.records[idHung1].RetiredInto = idHung2
	f.history[idHung1] = append(f.history[idHung1], histOp{Op: f.op(devAdmin), Kind: "retire", Device: devAdmin.name,
		DeviceID: devAdmin.id, Officer: devAdmin.officer, At: f.at(300), Fields: map[string]string{"_retired_into": idHung2}})
	f.history[idHung2] = append(f.history[idHung2], histOp{Op: f.op(devAdmin), Kind: "merge", Device: devAdmin.name,
		DeviceID: devAdmin.id, Officer: devAdmin.officer, At: f.at(300), Fields: map[string]string{"_merged_from." + idHung1: "1"}})
	f.add(idSu, devC, 70, map[string]string{"full_name": "Mua Thị Sú", "date_of_birth": "2005-01-01", "sex": "nữ",
		"ethnicity": "Mông", "commune": "Sơn Vĩ"})
	f.add(idSu2, devA, 320, map[string]string{"full_name": "Mua Thị Sú", "date_of_birth": "2005-01-01", "sex": "nữ",
		"ethnicity": "Mông", "commune": "Sủng Trà", "permanent_address": "Thôn Sủng Trà, xã Sủng Trà"})
	f.add(idDinh, devA, 80, map[string]string{"full_name": "Thào Mí Dính", "date_of_birth": "1999-12-12", "sex": "nam",
		"ethnicity": "Mông", "commune": "Lũng Pù", "personal_id": "002099007777"})
	f.add(idHang, devB, 90, map[string]string{"full_name": "Đỗ Thị Hằng", "date_of_birth": "1996-06-06", "sex": "nữ",
		"ethnicity": "Kinh", "commune": "Giàng Chu Phìn", "personal_id": "002196003333"})
	f.dups = []dupGroup{
		{Records: []string{idPao1, idPao2}, Reason: "name_dob", Key: "lò văn páo|1987-07-05"},
		{Records: []string{idLan1, idLan2}, Reason: "personal_id", Key: "002190005678"},
		{Records: []string{idSu, idSu2}, Reason: "name_dob", Key: "mua thị sú|2005-01-01"},
	}
}

func clone(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// guard holds the page to the real API's rules for browsers.
func (f *fakeAgent) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" {
			u, err := url.Parse(o)
			if err != nil || u.Hostname() != "127.0.0.1" {
				reply(w, http.StatusForbidden, apiError{Error: "requests from web pages of other sites are refused",
					ErrorVI: "yêu cầu từ trang web của trang khác bị từ chối"})
				return
			}
		}
		if r.Method == http.MethodPost {
			mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || mt != "application/json" || (params["charset"] != "" && !strings.EqualFold(params["charset"], "utf-8")) {
				reply(w, http.StatusUnsupportedMediaType, apiError{Error: "Content-Type must be application/json (UTF-8)",
					ErrorVI: "Content-Type phải là application/json (UTF-8)"})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func notFound(w http.ResponseWriter) {
	reply(w, http.StatusNotFound, apiError{Error: "record not found", ErrorVI: "không tìm thấy hồ sơ"})
}

func (f *fakeAgent) status(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	conflicts := 0
	for _, rec := range f.records {
		conflicts += len(rec.Conflicts)
	}
	contact := baseTime.Add(-17 * time.Hour)
	reply(w, http.StatusOK, map[string]any{
		"device": devAdmin.name, "device_id": devAdmin.id, "role": map[bool]string{true: "admin", false: "field"}[f.canSettle],
		"deployment": "Công an huyện Mèo Vạc",
		"peers": []map[string]any{
			{"name": devA.name, "device_id": devA.id, "role": "field", "connected": true, "syncing": false},
			{"name": devB.name, "device_id": devB.id, "role": "field", "connected": true, "syncing": true},
			{"name": devC.name, "device_id": devC.id, "role": "field", "connected": false, "syncing": false},
		},
		"records": len(f.records), "conflicts": conflicts, "duplicates": len(f.dups),
		"at_risk": 3, "held_elsewhere": 41, "can_settle": f.canSettle,
		"upstream": map[string]any{
			"hubs": []string{"hub.catinh-hagiang.local:7421"}, "reachable": false, "last_contact": contact,
			"delivered": 38, "undelivered": 6,
			"receipts": map[string]uint64{devA.id: 120, devB.id: 96},
			"origins": map[string]any{
				devA.id: map[string]any{"device": devA.name, "captured": 21, "delivered": 19},
				devB.id: map[string]any{"device": devB.name, "captured": 17, "delivered": 15},
				devC.id: map[string]any{"device": devC.name, "captured": 6, "delivered": 4},
			},
		},
	})
}

// fold matches the way the agent's ?q= is meant to: no case, no diacritics.
func fold(s string) string {
	t := transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
	out, _, err := transform.String(t, s)
	if err != nil {
		out = s
	}
	out = strings.NewReplacer("đ", "d", "Đ", "d").Replace(out)
	return strings.Join(strings.Fields(strings.ToLower(out)), " ")
}

func (f *fakeAgent) list(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := fold(r.URL.Query().Get("q"))
	after := r.URL.Query().Get("after")
	limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
	if err != nil || limit < 1 {
		limit = 500
	}
	if f.maxLimit > 0 && limit > f.maxLimit {
		limit = f.maxLimit
	}
	ids := make([]string, 0, len(f.records))
	for id := range f.records {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := []record{}
	next := ""
	for _, id := range ids {
		if id <= after {
			continue
		}
		rec := f.records[id]
		if q != "" && !strings.Contains(fold(rec.Fields["full_name"]+" "+rec.Fields["personal_id"]+" "+rec.Fields["commune"]), q) {
			continue
		}
		if len(out) == limit {
			next = out[len(out)-1].ID
			break
		}
		out = append(out, *rec)
	}
	reply(w, http.StatusOK, map[string]any{"records": out, "next": next})
}

func (f *fakeAgent) get(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rec, ok := f.records[r.PathValue("id")]
	if !ok {
		notFound(w)
		return
	}
	reply(w, http.StatusOK, rec)
}

func (f *fakeAgent) hist(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.history[r.PathValue("id")]
	if !ok {
		notFound(w)
		return
	}
	reply(w, http.StatusOK, h)
}

func (f *fakeAgent) conflicts(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []conflictItem{}
	for _, rec := range f.records {
		for field, vs := range rec.Conflicts {
			out = append(out, conflictItem{Record: rec.ID, Field: field, FullName: rec.Fields["full_name"], Values: vs})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Record != out[j].Record {
			return out[i].Record < out[j].Record
		}
		return out[i].Field < out[j].Field
	})
	reply(w, http.StatusOK, out)
}

func (f *fakeAgent) duplicates(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	reply(w, http.StatusOK, append([]dupGroup{}, f.dups...))
}

// begin reads and logs a POST body, and says whether to go on: not when the
// device may not settle or a refusal was queued.
func (f *fakeAgent) begin(w http.ResponseWriter, r *http.Request, into any) bool {
	var body map[string]any
	raw := json.NewDecoder(r.Body)
	if err := raw.Decode(&body); err != nil {
		reply(w, http.StatusBadRequest, apiError{Error: "bad JSON: " + err.Error(), ErrorVI: "JSON không hợp lệ"})
		return false
	}
	f.posts = append(f.posts, post{Path: r.URL.Path, Body: body})
	if !f.canSettle {
		reply(w, http.StatusForbidden, apiError{Error: "only an admin device may settle",
			ErrorVI: "chỉ máy quản trị mới được giải quyết"})
		return false
	}
	if e := f.refuseNext; e != nil {
		f.refuseNext = nil
		reply(w, e.Status, e)
		return false
	}
	b, _ := json.Marshal(body)
	if err := json.Unmarshal(b, into); err != nil {
		reply(w, http.StatusBadRequest, apiError{Error: "bad body: " + err.Error(), ErrorVI: "nội dung không hợp lệ"})
		return false
	}
	return true
}

func (f *fakeAgent) resolve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var in struct {
		Field string   `json:"field"`
		Value string   `json:"value"`
		Seen  []string `json:"seen"`
	}
	if !f.begin(w, r, &in) {
		return
	}
	rec, ok := f.records[r.PathValue("id")]
	if !ok {
		notFound(w)
		return
	}
	op := f.op(devAdmin)
	now := f.at(400 + f.seq)
	var left []value
	for _, v := range rec.Conflicts[in.Field] {
		if !slices.Contains(in.Seen, v.Op) {
			left = append(left, v) // written since the admin looked: kept
		}
	}
	if len(left) == 0 {
		delete(rec.Conflicts, in.Field)
	} else {
		rec.Conflicts[in.Field] = append(left, value{Value: in.Value, Device: devAdmin.name, DeviceID: devAdmin.id,
			Officer: devAdmin.officer, At: now, Op: op})
	}
	rec.Fields[in.Field] = in.Value
	rec.UpdatedAt = now
	f.history[rec.ID] = append(f.history[rec.ID], histOp{Op: op, Kind: "resolve", Device: devAdmin.name,
		DeviceID: devAdmin.id, Officer: devAdmin.officer, At: now, Fields: map[string]string{in.Field: in.Value}})
	reply(w, http.StatusOK, rec)
}

func (f *fakeAgent) dropGroups(pred func(dupGroup) bool) {
	f.dups = slices.DeleteFunc(f.dups, pred)
}

func (f *fakeAgent) merge(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var in struct {
		Survivor string            `json:"survivor"`
		Other    string            `json:"other"`
		Fields   map[string]string `json:"fields"`
	}
	if !f.begin(w, r, &in) {
		return
	}
	keep, ok1 := f.records[in.Survivor]
	other, ok2 := f.records[in.Other]
	if !ok1 || !ok2 || in.Survivor == in.Other {
		notFound(w)
		return
	}
	now := f.at(400 + f.seq)
	for k, v := range in.Fields {
		keep.Fields[k] = v
	}
	keep.UpdatedAt = now
	other.RetiredInto = keep.ID
	mergeFields := clone(in.Fields)
	mergeFields["_merged_from."+other.ID] = "1"
	f.history[keep.ID] = append(f.history[keep.ID], histOp{Op: f.op(devAdmin), Kind: "merge", Device: devAdmin.name,
		DeviceID: devAdmin.id, Officer: devAdmin.officer, At: now, Fields: mergeFields})
	f.history[other.ID] = append(f.history[other.ID], histOp{Op: f.op(devAdmin), Kind: "retire", Device: devAdmin.name,
		DeviceID: devAdmin.id, Officer: devAdmin.officer, At: now, Fields: map[string]string{"_retired_into": keep.ID}})
	f.dropGroups(func(g dupGroup) bool { return slices.Contains(g.Records, other.ID) })
	reply(w, http.StatusOK, keep)
}

func (f *fakeAgent) distinct(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var in struct {
		Records []string `json:"records"`
	}
	if !f.begin(w, r, &in) {
		return
	}
	if len(in.Records) != 2 {
		reply(w, http.StatusBadRequest, apiError{Error: fmt.Sprintf("records must name 2 dossiers, not %d", len(in.Records)),
			ErrorVI: "records phải có đúng 2 hồ sơ"})
		return
	}
	f.dropGroups(func(g dupGroup) bool {
		return slices.Contains(g.Records, in.Records[0]) && slices.Contains(g.Records, in.Records[1])
	})
	reply(w, http.StatusOK, map[string]any{})
}
