package main

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

func TestPprofServesOnLoopbackOnly(t *testing.T) {
	addr, stop, err := servePprof("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get("http://" + addr + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine") {
		t.Fatalf("GET /debug/pprof/: %s\n%s", resp.Status, body)
	}
	for _, bad := range []string{"0.0.0.0:0", "[::]:0", "192.0.2.1:6060", "example.org:6060", "6060"} {
		if _, _, err := servePprof(bad, slog.New(slog.DiscardHandler)); err == nil {
			t.Errorf("servePprof(%q) listened; want a refusal", bad)
		}
	}
}
