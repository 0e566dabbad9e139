package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
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

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/agent/web"
)

// The fake agent: the real API server (agent/api) with web.Handler() as its
// page, over a small in-memory Backend with canned Vietnamese dossiers that
// logs every settling request. The page is thus held to the API's real wire
// format and request rules (strict JSON bodies, JSON content type, loopback
// Host and Origin), while the data stays deterministic.

type (
	record   = api.Record
	value    = api.Value
	histOp   = api.HistoryEntry
	dupGroup = api.Duplicate
)

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
	srv *httptest.Server

	mu         sync.Mutex
	canSettle  bool
	records    map[string]*record
	history    map[string][]histOp
	dups       []dupGroup
	posts      []post
	seq        int
	refuseNext error // returned to the next settling request instead of acting
	maxLimit   int   // caps a page, as the real API caps it at MaxListLimit
	alerts     []api.Alert
	files      map[string][]*fakeFile // attachments by dossier id
}

var (
	_ api.Backend  = (*fakeAgent)(nil)
	_ api.Admin    = (*fakeAgent)(nil)
	_ api.Searcher = (*fakeAgent)(nil)
)

// newFakeAgent starts the fake on 127.0.0.1; admin says whether it may
// settle (an admin device) or only show the queues (a field laptop).
func newFakeAgent(t testing.TB, admin bool) *fakeAgent {
	t.Helper()
	f := &fakeAgent{canSettle: admin, records: map[string]*record{}, history: map[string][]histOp{}}
	f.seed()
	f.seedAttachments(t)
	cfg := api.DefaultConfig()
	cfg.Addr = "127.0.0.1:0" // loopback: the Host and Origin checks are on
	cfg.Logger = nil
	cfg.UI = web.Handler()
	srv, err := api.NewServer(cfg, f)
	if err != nil {
		t.Fatalf("api server: %v", err)
	}
	f.srv = httptest.NewServer(srv.Handler())
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

// RefuseNext makes the next settling request fail with err.
func (f *fakeAgent) RefuseNext(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuseNext = err
}

func (f *fakeAgent) at(min int) time.Time { return baseTime.Add(time.Duration(min) * time.Minute) }

func (f *fakeAgent) op(d device) string {
	f.seq++
	return d.id + ":" + strconv.Itoa(f.seq)
}

// add creates a record captured by d at minute min, with its create op.
func (f *fakeAgent) add(id string, d device, min int, fields map[string]string) *record {
	created := f.at(min)
	r := &record{ID: id, Fields: fields, Conflicts: map[string][]value{}, CreatedBy: d.name,
		CreatedAt: &created, UpdatedAt: f.at(min)}
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
	f.records[idHung2].MergedFrom = []string{idHung1}
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

// copyRecord returns a copy the caller may keep: the server encodes it
// after the lock is released.
func copyRecord(r *record) record {
	c := *r
	c.Fields = clone(r.Fields)
	c.Conflicts = make(map[string][]value, len(r.Conflicts))
	for k, v := range r.Conflicts {
		c.Conflicts[k] = slices.Clone(v)
	}
	c.MergedFrom = slices.Clone(r.MergedFrom)
	return c
}

// logPost notes a settling request as the page sent it (the server has
// decoded and normalised it), and says whether to act on it.
func (f *fakeAgent) logPost(path string, req any) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		return err
	}
	f.posts = append(f.posts, post{Path: path, Body: body})
	if !f.canSettle {
		return fmt.Errorf("%w: this device is a field laptop", api.ErrForbidden)
	}
	if err := f.refuseNext; err != nil {
		f.refuseNext = nil
		return err
	}
	return nil
}

var errNotInFake = errors.New("the page never creates or edits dossiers")

func (f *fakeAgent) Create(context.Context, map[string]string) (record, error) {
	return record{}, errNotInFake
}

func (f *fakeAgent) Update(context.Context, string, map[string]string) (record, error) {
	return record{}, errNotInFake
}

func (f *fakeAgent) Get(_ context.Context, id string) (record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.records[id]
	if !ok {
		return record{}, fmt.Errorf("%w: %s", api.ErrNotFound, id)
	}
	return copyRecord(r), nil
}

func (f *fakeAgent) Status(context.Context) (api.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	conflicts := 0
	for _, rec := range f.records {
		conflicts += len(rec.Conflicts)
	}
	contact := baseTime.Add(-17 * time.Hour)
	role := "field"
	if f.canSettle {
		role = "admin"
	}
	return api.Status{
		Device: devAdmin.name, DeviceID: devAdmin.id, Role: role, Deployment: "Công an huyện Mèo Vạc",
		Peers: []api.Peer{
			{Name: devA.name, DeviceID: devA.id, Role: "field", Connected: true},
			{Name: devB.name, DeviceID: devB.id, Role: "field", Connected: true, Syncing: true},
			{Name: devC.name, DeviceID: devC.id, Role: "field"},
		},
		Records: len(f.records), Conflicts: conflicts, Duplicates: len(f.dups),
		AtRisk: 3, Held: 41, CanSettle: f.canSettle, Alerts: append([]api.Alert{}, f.alerts...),
		Upstream: api.Upstream{
			Hubs: []string{"hub.catinh-hagiang.local:7421"}, LastContact: &contact,
			Delivered: 38, Undelivered: 6,
			Receipts: map[string]uint64{devA.id: 120, devB.id: 96},
			Origins: map[string]api.OriginDelivery{
				devA.id: {Device: devA.name, Captured: 21, Delivered: 19},
				devB.id: {Device: devB.name, Captured: 17, Delivered: 15},
				devC.id: {Device: devC.name, Captured: 6, Delivered: 4},
			},
		},
	}, nil
}

// fold matches the way the agent's ?q= does: no case, no diacritics.
func fold(s string) string {
	t := transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
	out, _, err := transform.String(t, s)
	if err != nil {
		out = s
	}
	out = strings.NewReplacer("đ", "d", "Đ", "d").Replace(out)
	return strings.Join(strings.Fields(strings.ToLower(out)), " ")
}

func (f *fakeAgent) List(ctx context.Context, after string, limit int) ([]record, string, error) {
	return f.Search(ctx, "", after, limit)
}

func (f *fakeAgent) Search(_ context.Context, q, after string, limit int) ([]record, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q = fold(q)
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
		out = append(out, copyRecord(rec))
	}
	return out, next, nil
}

func (f *fakeAgent) History(_ context.Context, id string) ([]histOp, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.history[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", api.ErrNotFound, id)
	}
	return slices.Clone(h), nil
}

func (f *fakeAgent) Conflicts(context.Context) ([]api.Conflict, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []api.Conflict{}
	for _, rec := range f.records {
		for field, vs := range rec.Conflicts {
			out = append(out, api.Conflict{Record: rec.ID, Field: field, FullName: rec.Fields["full_name"], Values: slices.Clone(vs)})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Record != out[j].Record {
			return out[i].Record < out[j].Record
		}
		return out[i].Field < out[j].Field
	})
	return out, nil
}

func (f *fakeAgent) Duplicates(context.Context) ([]dupGroup, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.dups), nil
}

func (f *fakeAgent) Resolve(_ context.Context, id string, req api.ResolveRequest) (record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.logPost("/v1/records/"+id+"/resolve", req); err != nil {
		return record{}, err
	}
	rec, ok := f.records[id]
	if !ok {
		return record{}, fmt.Errorf("%w: %s", api.ErrNotFound, id)
	}
	op := f.op(devAdmin)
	now := f.at(400 + f.seq)
	var left []value
	for _, v := range rec.Conflicts[req.Field] {
		if !slices.Contains(req.Seen, v.Op) {
			left = append(left, v) // written since the admin looked: kept
		}
	}
	if len(left) == 0 {
		delete(rec.Conflicts, req.Field)
	} else {
		rec.Conflicts[req.Field] = append(left, value{Value: req.Value, Device: devAdmin.name, DeviceID: devAdmin.id,
			Officer: devAdmin.officer, At: now, Op: op})
	}
	rec.Fields[req.Field] = req.Value
	rec.UpdatedAt = now
	f.history[rec.ID] = append(f.history[rec.ID], histOp{Op: op, Kind: "resolve", Device: devAdmin.name,
		DeviceID: devAdmin.id, Officer: devAdmin.officer, At: now, Fields: map[string]string{req.Field: req.Value}})
	return copyRecord(rec), nil
}

func (f *fakeAgent) Merge(_ context.Context, req api.MergeRequest) (record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.logPost("/v1/merge", req); err != nil {
		return record{}, err
	}
	keep, ok1 := f.records[req.Survivor]
	other, ok2 := f.records[req.Other]
	if !ok1 || !ok2 {
		return record{}, fmt.Errorf("%w: %s or %s", api.ErrNotFound, req.Survivor, req.Other)
	}
	now := f.at(400 + f.seq)
	for k, v := range req.Fields {
		keep.Fields[k] = v
	}
	keep.UpdatedAt = now
	keep.MergedFrom = append(keep.MergedFrom, other.ID)
	other.RetiredInto = keep.ID
	mergeFields := clone(req.Fields)
	mergeFields["_merged_from."+other.ID] = "1"
	f.history[keep.ID] = append(f.history[keep.ID], histOp{Op: f.op(devAdmin), Kind: "merge", Device: devAdmin.name,
		DeviceID: devAdmin.id, Officer: devAdmin.officer, At: now, Fields: mergeFields})
	f.history[other.ID] = append(f.history[other.ID], histOp{Op: f.op(devAdmin), Kind: "retire", Device: devAdmin.name,
		DeviceID: devAdmin.id, Officer: devAdmin.officer, At: now, Fields: map[string]string{"_retired_into": keep.ID}})
	f.dups = slices.DeleteFunc(f.dups, func(g dupGroup) bool { return slices.Contains(g.Records, other.ID) })
	return copyRecord(keep), nil
}

func (f *fakeAgent) Distinct(_ context.Context, a, b string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.logPost("/v1/distinct", api.DistinctRequest{Records: []string{a, b}}); err != nil {
		return err
	}
	f.dups = slices.DeleteFunc(f.dups, func(g dupGroup) bool {
		return slices.Contains(g.Records, a) && slices.Contains(g.Records, b)
	})
	return nil
}
