package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

// FuzzCreateBody posts arbitrary bodies: the server never panics, never
// answers 500, always answers JSON, and whatever it accepts is schema-valid
// and normalised (validating it again changes nothing).
func FuzzCreateBody(f *testing.F) {
	for _, seed := range []string{
		validBody,
		`{"full_name":"Giàng A Páo","date_of_birth":"1950","sex":"nam","personal_id":"002050001234","phone":"+84 912 345 678"}`,
		`{"full_name":"Nguye\u0302\u0303n","date_of_birth":"2000-02-29","sex":"N\u1eef"}`,
		`{"full_name":"A","full_name":"B"}`,
		`{"personal_id":123}`,
		`{"_id":"x"}`,
		`{"notes":"\ud800"}`,
		`[]`, `null`, `{}`, ``, `{"a":"b"} x`, "\xff\xfe",
		`{"full_name":"‮evil","date_of_birth":"1990-13-01","sex":"x"}`,
	} {
		f.Add([]byte(seed))
	}
	fb := newFakeBackend()
	cfg := DefaultConfig()
	cfg.Logger = nil // a long run would pile up log lines in memory
	cfg.Now = func() time.Time { return fakeTime }
	s, err := NewServer(cfg, fb)
	if err != nil {
		f.Fatal(err)
	}
	h := s.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", "/v1/records", strings.NewReader(string(body)))
		req.Host = "127.0.0.1:7420"
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		// Keep the fake's memory flat over a long fuzzing run.
		fb.mu.Lock()
		clear(fb.recs)
		fb.creates = nil
		fb.mu.Unlock()
		if !json.Valid(w.Body.Bytes()) {
			t.Fatalf("answer is not JSON: %q", w.Body)
		}
		switch w.Code {
		case http.StatusCreated:
			var rec Record
			if err := json.Unmarshal(w.Body.Bytes(), &rec); err != nil {
				t.Fatal(err)
			}
			again, err := s.cfg.Schema.ValidateNew(rec.Fields, fakeTime)
			if err != nil {
				t.Fatalf("accepted fields do not validate again: %v", err)
			}
			if !reflect.DeepEqual(again, rec.Fields) {
				t.Fatalf("accepted fields are not normalised: %q became %q", rec.Fields, again)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			var b errorBody
			if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || b.Error == "" || b.ErrorVI == "" {
				t.Fatalf("bad error body %q", w.Body)
			}
		default:
			t.Fatalf("status %d for body %q: %s", w.Code, body, w.Body)
		}
	})
}
