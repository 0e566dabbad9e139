package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

// startAPI serves s on a real loopback socket and returns a client for it.
func startAPI(t *testing.T, s *Server) *Client {
	t.Helper()
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return NewClient(strings.TrimPrefix(ts.URL, "http://"))
}

func TestClientRoundTrip(t *testing.T) {
	fb := newFakeBackend()
	s, _ := newTestServer(t, fb)
	c := startAPI(t, s)
	ctx := context.Background()

	rec, err := c.Create(ctx, map[string]string{"full_name": "Hoàng Thị Hoa", "date_of_birth": "2001-02-03", "sex": "nữ", "personal_id": "001201012345"})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if rec.ID == "" || rec.Fields["full_name"] != "Hoàng Thị Hoa" || rec.Conflicts == nil {
		t.Fatalf("created %+v", rec)
	}
	rec, err = c.Update(ctx, rec.ID, map[string]string{"commune": "Vạn Thạnh"})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if rec.Fields["commune"] != "Vạn Thạnh" || rec.Fields["personal_id"] != "001201012345" {
		t.Fatalf("updated %+v", rec)
	}
	got, err := c.Get(ctx, rec.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !reflect.DeepEqual(got.Fields, rec.Fields) || !got.UpdatedAt.Equal(fakeTime) {
		t.Fatalf("Get = %+v, want %+v", got, rec)
	}
	fb.status = Status{Device: "laptop-a", Role: "field", Version: "v1.0.0"}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if st.Device != "laptop-a" || st.Records != 1 || st.Peers == nil || st.VersionVector == nil {
		t.Fatalf("Status = %+v", st)
	}
}

func TestClientErrors(t *testing.T) {
	fb := newFakeBackend()
	s, _ := newTestServer(t, fb)
	c := startAPI(t, s)
	ctx := context.Background()

	_, err := c.Create(ctx, map[string]string{"full_name": "An", "sex": "?"})
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("err = %v, want *APIError", err)
	}
	if apiErr.Status != http.StatusBadRequest || apiErr.MessageVI == "" || len(apiErr.Fields) != 2 {
		t.Fatalf("APIError = %+v", apiErr)
	}
	if apiErr.Fields[0].Field != "date_of_birth" || apiErr.Fields[1].Field != "sex" || apiErr.Fields[1].ProblemVI == "" {
		t.Fatalf("fields = %+v", apiErr.Fields)
	}
	if !strings.Contains(err.Error(), "date_of_birth") || !strings.Contains(err.Error(), "sex") {
		t.Fatalf("error text does not name the fields: %v", err)
	}

	_, err = c.Get(ctx, "rec-00404")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get unknown: err = %v, want ErrNotFound", err)
	}
	// An id with characters a path must escape is sent escaped and is
	// simply not found.
	if _, err = c.Get(ctx, "a/b c"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get odd id: err = %v, want ErrNotFound", err)
	}

	fb.err = fmt.Errorf("merged: %w", ErrConflict)
	if _, err = c.Update(ctx, "rec-00001", map[string]string{"commune": "A"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("err = %v, want ErrConflict", err)
	}
}

func TestClientWhenNoAgentListens(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	c := NewClient(addr)
	_, err = c.Status(context.Background())
	if !errors.Is(err, ErrNoAgent) {
		t.Fatalf("err = %v, want ErrNoAgent", err)
	}
	want := "no agent answering at " + addr + " (is `fieldsync agent` running?)"
	if err.Error() != want {
		t.Fatalf("err = %q, want %q", err, want)
	}
}

func TestClientHonoursContext(t *testing.T) {
	s, _ := newTestServer(t, newFakeBackend())
	c := startAPI(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Status(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestClientOnAnswerThatIsNotTheAPI(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream says\x1b[2J no", http.StatusBadGateway)
	}))
	defer ts.Close()
	_, err := NewClient(ts.URL).Status(context.Background())
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadGateway {
		t.Fatalf("err = %v, want *APIError 502", err)
	}
	if !strings.Contains(apiErr.Message, "upstream says") || strings.Contains(apiErr.Message, "\x1b") {
		t.Fatalf("message = %q", apiErr.Message)
	}
}

func TestListAllFollowsPages(t *testing.T) {
	fb := newFakeBackend()
	s, _ := newTestServer(t, fb)
	c := startAPI(t, s)

	all, err := c.ListAll(context.Background())
	if err != nil || all == nil || len(all) != 0 {
		t.Fatalf("empty ListAll = %v, %v; want [] and no error", all, err)
	}
	const n = 2*clientPageSize + 1
	for i := 0; i < n; i++ {
		fb.add(map[string]string{"full_name": fmt.Sprintf("Người %d", i)})
	}
	fb.limits = nil
	all, err = c.ListAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != n {
		t.Fatalf("ListAll returned %d records, want %d", len(all), n)
	}
	for i, rec := range all {
		if want := fmt.Sprintf("rec-%05d", i+1); rec.ID != want {
			t.Fatalf("record %d is %s, want %s", i, rec.ID, want)
		}
	}
	if len(fb.limits) != 3 {
		t.Fatalf("ListAll made %d page requests, want 3", len(fb.limits))
	}
}

func TestListAllRefusesACursorThatDoesNotAdvance(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"records":[],"next":"rec-1"}`)
	}))
	defer ts.Close()
	if _, err := NewClient(ts.URL).ListAll(context.Background()); err == nil || !strings.Contains(err.Error(), "did not advance") {
		t.Fatalf("err = %v, want a cursor error", err)
	}
}

func TestServeAndShutdown(t *testing.T) {
	cfg := DefaultConfig()
	// Not a loopback address in the config: the loopback listener must
	// still turn the Host check on.
	cfg.Addr = "0.0.0.0:0"
	cfg.Logger = nil
	s, err := NewServer(cfg, newFakeBackend())
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()

	c := NewClient(l.Addr().String())
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatalf("Status: %v", err)
	}
	req, _ := http.NewRequest("GET", "http://"+l.Addr().String()+"/v1/status", nil)
	req.Host = "rebind.evil.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign Host: status %d, want 403", resp.StatusCode)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve returned %v after Shutdown, want nil", err)
		}
	case <-ctx.Done():
		t.Fatal("Serve did not return after Shutdown")
	}
	if _, err := c.Status(context.Background()); !errors.Is(err, ErrNoAgent) {
		t.Fatalf("after Shutdown: err = %v, want ErrNoAgent", err)
	}
}
