package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/agent/schema"
)

// lockedBuffer collects log output written from server goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newTestServer returns a loopback server over b whose debug log goes to the
// returned buffer, with the clock fixed at fakeTime.
func newTestServer(t testing.TB, b Backend) (*Server, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	cfg := DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Now = func() time.Time { return fakeTime }
	s, err := NewServer(cfg, b)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	return s, logs
}

// call sends one request straight to the handler. Host is 127.0.0.1:7420
// unless hdr sets "Host".
func call(t *testing.T, h http.Handler, method, target, body string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	req.Host = "127.0.0.1:7420"
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// errorOf decodes an error answer and checks its shape.
func errorOf(t *testing.T, w *httptest.ResponseRecorder, status int) errorBody {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status = %d, want %d; body %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type = %q, want JSON", ct)
	}
	var b errorBody
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, w.Body)
	}
	if b.Error == "" || b.ErrorVI == "" {
		t.Fatalf("error body lacks a message in both languages: %s", w.Body)
	}
	return b
}

func fieldNames(b errorBody) []string {
	var names []string
	for _, f := range b.Fields {
		names = append(names, f.Field)
	}
	return names
}

const validBody = `{"full_name":"  Nguyễn   Văn An ","date_of_birth":"1990-05-12","sex":"Nam","commune":"Lũng Cú"}`

func TestCreateStoresNormalisedFields(t *testing.T) {
	fb := newFakeBackend()
	s, _ := newTestServer(t, fb)
	w := call(t, s.Handler(), "POST", "/v1/records", validBody, nil)
	if w.Code != http.StatusCreated {
		t.Fatalf("status = %d, want 201; body %s", w.Code, w.Body)
	}
	want := map[string]string{"full_name": "Nguyễn Văn An", "date_of_birth": "1990-05-12", "sex": "nam", "commune": "Lũng Cú"}
	if len(fb.creates) != 1 || !reflect.DeepEqual(fb.creates[0], want) {
		t.Fatalf("backend got %v, want %v", fb.creates, want)
	}
	var rec Record
	if err := json.Unmarshal(w.Body.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.ID == "" || !reflect.DeepEqual(rec.Fields, want) {
		t.Fatalf("answer %+v", rec)
	}
	if loc := w.Header().Get("Location"); loc != "/v1/records/"+rec.ID {
		t.Fatalf("Location = %q", loc)
	}
	body := w.Body.String()
	// The fake returns nil conflicts and times in UTC+7: the wire shows {}
	// and UTC.
	for _, frag := range []string{`"conflicts":{}`, `"updated_at":"2026-11-23T02:30:00Z"`, `"created_at":"2026-11-23T02:30:00Z"`, `"created_by":"laptop-a"`} {
		if !strings.Contains(body, frag) {
			t.Errorf("answer lacks %s: %s", frag, body)
		}
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
}

func TestCreateReportsEveryBadField(t *testing.T) {
	fb := newFakeBackend()
	s, _ := newTestServer(t, fb)
	body := `{"full_name":"Nguyễn 3","date_of_birth":"2999-01-01","sex":"x","personal_id":"123","nickname":"An"}`
	b := errorOf(t, call(t, s.Handler(), "POST", "/v1/records", body, nil), http.StatusBadRequest)
	want := []string{"date_of_birth", "full_name", "nickname", "personal_id", "sex"}
	if got := fieldNames(b); !reflect.DeepEqual(got, want) {
		t.Fatalf("fields = %v, want %v", got, want)
	}
	for _, f := range b.Fields {
		if f.Problem == "" || f.ProblemVI == "" {
			t.Errorf("field %s lacks a problem in both languages: %+v", f.Field, f)
		}
	}
	if len(fb.creates) != 0 {
		t.Fatalf("backend was called with invalid input")
	}
}

func TestCreateReportsMissingRequiredFields(t *testing.T) {
	s, _ := newTestServer(t, newFakeBackend())
	b := errorOf(t, call(t, s.Handler(), "POST", "/v1/records", `{"commune":"Lũng Cú"}`, nil), http.StatusBadRequest)
	if got, want := fieldNames(b), []string{"date_of_birth", "full_name", "sex"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("fields = %v, want %v", got, want)
	}
}

func TestCreateRefusesWhatIsNotAnObjectOfStrings(t *testing.T) {
	for name, body := range map[string]string{
		"number":        `{"full_name":"An","date_of_birth":"1990","sex":"nam","personal_id":1234567890}`,
		"duplicate key": `{"full_name":"An","full_name":"Bình","date_of_birth":"1990","sex":"nam"}`,
		"array":         `[{"full_name":"An"}]`,
		"null":          `null`,
		"trailing":      `{"full_name":"An","date_of_birth":"1990","sex":"nam"} {}`,
		"broken":        `{"full_name":`,
		"empty":         ``,
	} {
		t.Run(name, func(t *testing.T) {
			fb := newFakeBackend()
			s, _ := newTestServer(t, fb)
			w := call(t, s.Handler(), "POST", "/v1/records", body, map[string]string{"Content-Type": "application/json"})
			errorOf(t, w, http.StatusBadRequest)
			if len(fb.creates) != 0 {
				t.Fatal("backend was called")
			}
		})
	}
}

func TestContentType(t *testing.T) {
	for ct, want := range map[string]int{
		"":                                  http.StatusCreated, // absent: curl --data-binary without -H
		"application/json":                  http.StatusCreated,
		"application/json; charset=UTF-8":   http.StatusCreated,
		"application/merge-patch+json":      http.StatusCreated,
		"application/json; charset=latin1":  http.StatusUnsupportedMediaType,
		"text/plain":                        http.StatusUnsupportedMediaType,
		"application/x-www-form-urlencoded": http.StatusUnsupportedMediaType,
		"multipart/form-data; boundary=x":   http.StatusUnsupportedMediaType,
		"not a media type;;":                http.StatusUnsupportedMediaType,
	} {
		s, _ := newTestServer(t, newFakeBackend())
		w := call(t, s.Handler(), "POST", "/v1/records", validBody, map[string]string{"Content-Type": ct})
		if w.Code != want {
			t.Errorf("Content-Type %q: status %d, want %d", ct, w.Code, want)
		}
		if want != http.StatusCreated {
			errorOf(t, w, want)
		}
	}
}

func TestBodyLimit(t *testing.T) {
	fb := newFakeBackend()
	s, _ := newTestServer(t, fb)
	big := `{"notes":"` + strings.Repeat("a", maxBodyBytes) + `"}`
	errorOf(t, call(t, s.Handler(), "POST", "/v1/records", big, nil), http.StatusRequestEntityTooLarge)

	// Without a Content-Length the limit holds while reading.
	req := httptest.NewRequest("POST", "/v1/records", io.MultiReader(strings.NewReader(big)))
	req.Host = "localhost:7420"
	req.ContentLength = -1
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	errorOf(t, w, http.StatusRequestEntityTooLarge)

	// Just under the limit is read and validated (notes is too long for
	// the schema, which is a 400 naming the field, not a 413).
	under := `{"full_name":"An","date_of_birth":"1990","sex":"nam","notes":"` + strings.Repeat("a", maxBodyBytes-100) + `"}`
	b := errorOf(t, call(t, s.Handler(), "PATCH", "/v1/records/rec-1", under, nil), http.StatusBadRequest)
	if b.Fields == nil || b.Fields[0].Field != "notes" {
		t.Fatalf("fields = %+v, want notes", b.Fields)
	}
	if len(fb.creates)+len(fb.updates) != 0 {
		t.Fatal("backend was called")
	}
}

func TestUpdatePassesOnlyTheGivenFields(t *testing.T) {
	fb := newFakeBackend()
	s, _ := newTestServer(t, fb)
	rec := fb.add(map[string]string{"full_name": "Nguyễn Văn An", "date_of_birth": "1990-05-12", "sex": "nam", "phone": "0912345678"})

	w := call(t, s.Handler(), "PATCH", "/v1/records/"+rec.ID, `{"commune":" Lũng  Cú ","phone":""}`, nil)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	want := map[string]string{"commune": "Lũng Cú", "phone": ""}
	if len(fb.updates) != 1 || !reflect.DeepEqual(fb.updates[0], want) {
		t.Fatalf("backend got %v, want only %v", fb.updates, want)
	}
	var got Record
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	wantFields := map[string]string{"full_name": "Nguyễn Văn An", "date_of_birth": "1990-05-12", "sex": "nam", "commune": "Lũng Cú"}
	if !reflect.DeepEqual(got.Fields, wantFields) {
		t.Fatalf("record fields %v, want %v", got.Fields, wantFields)
	}
}

func TestUpdateErrors(t *testing.T) {
	fb := newFakeBackend()
	s, _ := newTestServer(t, fb)
	rec := fb.add(map[string]string{"full_name": "An", "date_of_birth": "1990", "sex": "nam"})
	h := s.Handler()

	b := errorOf(t, call(t, h, "PATCH", "/v1/records/"+rec.ID, `{"full_name":""}`, nil), http.StatusBadRequest)
	if got := fieldNames(b); !reflect.DeepEqual(got, []string{"full_name"}) {
		t.Fatalf("fields = %v", got)
	}
	errorOf(t, call(t, h, "PATCH", "/v1/records/"+rec.ID, `{}`, nil), http.StatusBadRequest)
	errorOf(t, call(t, h, "PATCH", "/v1/records/rec-99999", `{"commune":"Lũng Cú"}`, nil), http.StatusNotFound)
	errorOf(t, call(t, h, "PATCH", "/v1/records/"+strings.Repeat("x", maxIDLen+1), `{"commune":"A"}`, nil), http.StatusNotFound)
	errorOf(t, call(t, h, "PATCH", "/v1/records/a%20b", `{"commune":"A"}`, nil), http.StatusNotFound)
	if len(fb.updates) != 1 { // only rec-99999 reached the backend
		t.Fatalf("backend saw %d updates, want 1", len(fb.updates))
	}
}

func TestGet(t *testing.T) {
	fb := newFakeBackend()
	s, _ := newTestServer(t, fb)
	rec := fb.add(map[string]string{"full_name": "Lò Thị Mai", "date_of_birth": "1985", "sex": "nữ"})
	rec.Conflicts = map[string][]Value{"full_name": {
		{Value: "Lò Thị Mai", Device: "laptop-a", DeviceID: "aa", At: fakeTime, Op: "aa:3"},
		{Value: "Lò Thị Mại", Device: "laptop-b", DeviceID: "bb", At: fakeTime, Op: "bb:7"},
	}}
	fb.recs[rec.ID] = rec

	w := call(t, s.Handler(), "GET", "/v1/records/"+rec.ID, "", nil)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var got Record
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Conflicts["full_name"]) != 2 || got.Conflicts["full_name"][1].Device != "laptop-b" {
		t.Fatalf("conflicts = %+v", got.Conflicts)
	}
	if !strings.Contains(w.Body.String(), `"at":"2026-11-23T02:30:00Z"`) {
		t.Fatalf("conflict time not in UTC: %s", w.Body)
	}
	if fb.recs[rec.ID].Conflicts["full_name"][0].At.Location() == nil || fb.recs[rec.ID].Conflicts["full_name"][0].At.Location().String() != "ICT" {
		t.Fatal("the server changed the backend's values in place")
	}
	b := errorOf(t, call(t, s.Handler(), "GET", "/v1/records/rec-404", "", nil), http.StatusNotFound)
	if b.Error != "record not found" {
		t.Fatalf("error = %q", b.Error)
	}
}

func TestBackendErrors(t *testing.T) {
	fb := newFakeBackend()
	s, logs := newTestServer(t, fb)
	h := s.Handler()

	fb.err = fmt.Errorf("record merged into rec-00002; update that one: %w", ErrConflict)
	b := errorOf(t, call(t, h, "PATCH", "/v1/records/rec-00001", `{"commune":"Lũng Cú"}`, nil), http.StatusConflict)
	if !strings.Contains(b.Error, "rec-00002") {
		t.Fatalf("409 error does not carry the backend's explanation: %q", b.Error)
	}

	fb.err = errors.New("badger: write /var/lib/fieldsync/000001.vlog: input/output error")
	for _, req := range [][3]string{
		{"POST", "/v1/records", validBody},
		{"PATCH", "/v1/records/rec-00001", `{"commune":"Lũng Cú"}`},
		{"GET", "/v1/records/rec-00001", ""},
		{"GET", "/v1/records", ""},
		{"GET", "/v1/status", ""},
	} {
		w := call(t, h, req[0], req[1], req[2], nil)
		errorOf(t, w, http.StatusInternalServerError)
		if strings.Contains(w.Body.String(), "badger") || strings.Contains(w.Body.String(), "/var/lib") {
			t.Errorf("%s %s: 500 leaks internals: %s", req[0], req[1], w.Body)
		}
	}
	log := logs.String()
	if !strings.Contains(log, "input/output error") {
		t.Fatalf("the cause of the 500 was not logged:\n%s", log)
	}
	for _, value := range []string{"Nguyễn", "Lũng", "1990-05-12"} {
		if strings.Contains(log, value) {
			t.Fatalf("log contains field value %q:\n%s", value, log)
		}
	}
}

func TestLogsNeverHoldFieldValues(t *testing.T) {
	fb := newFakeBackend()
	s, logs := newTestServer(t, fb)
	h := s.Handler()
	w := call(t, h, "POST", "/v1/records", validBody, nil)
	var rec Record
	_ = json.Unmarshal(w.Body.Bytes(), &rec)
	call(t, h, "PATCH", "/v1/records/"+rec.ID, `{"commune":"Sủng Là"}`, nil)
	call(t, h, "POST", "/v1/records", `{"full_name":"Giàng 7","date_of_birth":"1990-05-12","sex":"nam"}`, nil)
	call(t, h, "POST", "/v1/records", `{"full_name":"Giàng A Páo","personal_id":001234567890}`, nil)
	call(t, h, "GET", "/v1/records/"+rec.ID, "", nil)
	log := logs.String()
	if !strings.Contains(log, "api request") {
		t.Fatalf("requests were not logged:\n%s", log)
	}
	for _, value := range []string{"Nguyễn", "Lũng", "Sủng", "Giàng", "1990", "001234567890"} {
		if strings.Contains(log, value) {
			t.Fatalf("log contains field value %q:\n%s", value, log)
		}
	}
}

func TestPanicInBackendIsA500(t *testing.T) {
	fb := newFakeBackend()
	fb.panics = true
	s, logs := newTestServer(t, fb)
	errorOf(t, call(t, s.Handler(), "GET", "/v1/status", "", nil), http.StatusInternalServerError)
	if !strings.Contains(logs.String(), "panicked") {
		t.Fatalf("panic not logged:\n%s", logs)
	}
}

func TestListPages(t *testing.T) {
	fb := newFakeBackend()
	s, _ := newTestServer(t, fb)
	h := s.Handler()

	w := call(t, h, "GET", "/v1/records", "", nil)
	if w.Code != http.StatusOK || strings.TrimSpace(w.Body.String()) != `{"records":[],"next":""}` {
		t.Fatalf("empty list: %d %s", w.Code, w.Body)
	}
	for i := 0; i < 3; i++ {
		fb.add(map[string]string{"full_name": "An", "date_of_birth": "1990", "sex": "nam"})
	}
	w = call(t, h, "GET", "/v1/records?limit=2", "", nil)
	var page listBody
	if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Records) != 2 || page.Next != "rec-00002" {
		t.Fatalf("page 1: %d records, next %q", len(page.Records), page.Next)
	}
	w = call(t, h, "GET", "/v1/records?limit=2&after="+page.Next, "", nil)
	page = listBody{}
	if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Records) != 1 || page.Records[0].ID != "rec-00003" || page.Next != "" {
		t.Fatalf("page 2: %+v", page)
	}
	if page.Records[0].Conflicts == nil {
		t.Fatal("conflicts null in a listed record")
	}

	fb.limits = nil
	call(t, h, "GET", "/v1/records", "", nil)
	call(t, h, "GET", "/v1/records?limit=99999", "", nil)
	if want := []int{DefaultListLimit, MaxListLimit}; !reflect.DeepEqual(fb.limits, want) {
		t.Fatalf("backend limits %v, want %v", fb.limits, want)
	}
	for _, q := range []string{"limit=0", "limit=-1", "limit=abc", "limit=1e3", "after=a%20b"} {
		errorOf(t, call(t, h, "GET", "/v1/records?"+q, "", nil), http.StatusBadRequest)
	}
}

func TestStatusNeverNull(t *testing.T) {
	fb := newFakeBackend()
	fb.status = Status{Device: "laptop-a", DeviceID: "aa", Role: "field", Version: "test"}
	s, _ := newTestServer(t, fb)
	w := call(t, s.Handler(), "GET", "/v1/status", "", nil)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	for _, frag := range []string{`"peers":[]`, `"listen":[]`, `"version_vector":{}`, `"held_elsewhere":0`, `"device":"laptop-a"`} {
		if !strings.Contains(w.Body.String(), frag) {
			t.Errorf("status lacks %s: %s", frag, w.Body)
		}
	}
}

func TestRoutes(t *testing.T) {
	s, _ := newTestServer(t, newFakeBackend())
	h := s.Handler()
	if w := call(t, h, "GET", "/healthz", "", nil); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"ok"`) {
		t.Fatalf("healthz: %d %s", w.Code, w.Body)
	}
	w := call(t, h, "DELETE", "/v1/records/rec-1", "", nil)
	errorOf(t, w, http.StatusMethodNotAllowed)
	if allow := w.Header().Get("Allow"); allow != "GET, HEAD, PATCH" {
		t.Fatalf("Allow = %q", allow)
	}
	errorOf(t, call(t, h, "PUT", "/v1/records", validBody, nil), http.StatusMethodNotAllowed)
	errorOf(t, call(t, h, "POST", "/v1/status", "", nil), http.StatusMethodNotAllowed)
	errorOf(t, call(t, h, "GET", "/v2/records", "", nil), http.StatusNotFound)
	errorOf(t, call(t, h, "GET", "/v1/records/a/b", "", nil), http.StatusNotFound)
}

func TestHostAndOriginChecks(t *testing.T) {
	s, _ := newTestServer(t, newFakeBackend())
	h := s.Handler()
	for host, want := range map[string]int{
		"127.0.0.1:7420":        http.StatusOK,
		"127.0.0.1":             http.StatusOK,
		"127.8.9.10:7420":       http.StatusOK,
		"localhost:7420":        http.StatusOK,
		"LOCALHOST.:7420":       http.StatusOK,
		"[::1]:7420":            http.StatusOK,
		"[::ffff:127.0.0.1]:80": http.StatusOK,
		"evil.example:7420":     http.StatusForbidden,
		"evil.example":          http.StatusForbidden,
		"app.localhost:7420":    http.StatusForbidden,
		"192.168.1.5:7420":      http.StatusForbidden,
		"127.0.0.1.nip.io":      http.StatusForbidden,
		"":                      http.StatusForbidden,
	} {
		w := call(t, h, "GET", "/v1/status", "", map[string]string{"Host": host})
		if w.Code != want {
			t.Errorf("Host %q: status %d, want %d", host, w.Code, want)
		}
		if want == http.StatusForbidden {
			errorOf(t, w, want)
		}
	}
	for origin, want := range map[string]int{
		"http://localhost:3000": http.StatusCreated,
		"http://127.0.0.1:7420": http.StatusCreated,
		"https://evil.example":  http.StatusForbidden,
		"null":                  http.StatusForbidden,
		"file://":               http.StatusForbidden,
	} {
		w := call(t, h, "POST", "/v1/records", validBody, map[string]string{"Origin": origin, "Content-Type": ""})
		if w.Code != want {
			t.Errorf("Origin %q: status %d, want %d", origin, w.Code, want)
		}
	}
}

func TestNoHostCheckOffLoopback(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Addr = "0.0.0.0:7420"
	s, err := NewServer(cfg, newFakeBackend())
	if err != nil {
		t.Fatal(err)
	}
	if w := call(t, s.Handler(), "GET", "/v1/status", "", map[string]string{"Host": "laptop-a.lan:7420"}); w.Code != http.StatusOK {
		t.Fatalf("status %d, want 200 when not loopback-only", w.Code)
	}
}

func TestNewServerChecksConfig(t *testing.T) {
	if _, err := NewServer(DefaultConfig(), nil); err == nil {
		t.Error("no error for a nil backend")
	}
	cfg := DefaultConfig()
	cfg.Addr = "7420"
	if _, err := NewServer(cfg, newFakeBackend()); err == nil {
		t.Error("no error for an address without a port")
	}
	cfg = DefaultConfig()
	cfg.Schema = schema.Schema{Fields: map[string]schema.FieldSpec{"x": {Kind: "nonsense"}}}
	if _, err := NewServer(cfg, newFakeBackend()); !errors.Is(err, schema.ErrSchema) {
		t.Errorf("err = %v, want ErrSchema", err)
	}
	cfg = DefaultConfig()
	cfg.Logger, cfg.Now = nil, nil
	if _, err := NewServer(cfg, newFakeBackend()); err != nil {
		t.Errorf("nil Logger and Now must take defaults: %v", err)
	}
}
