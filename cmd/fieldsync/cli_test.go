package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/fieldsync/fieldsync/cmd/internal/harness"
	"maps"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/agent/api"
)

// fakeBackend is an in-memory api.Backend: these tests are about the CLI
// (flags, exit codes, output), not the agent, which has its own tests.
type fakeBackend struct {
	mu      sync.Mutex
	recs    map[string]api.Record
	updates []map[string]string
	status  api.Status
}

var testTime = time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC)

func (f *fakeBackend) Create(_ context.Context, fields map[string]string) (api.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rec := api.Record{ID: fmt.Sprintf("rec-%04d", len(f.recs)+1), Fields: fields, CreatedBy: "laptop-a", UpdatedAt: testTime}
	f.recs[rec.ID] = rec
	return rec, nil
}

func (f *fakeBackend) Update(_ context.Context, id string, fields map[string]string) (api.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates = append(f.updates, maps.Clone(fields))
	rec, ok := f.recs[id]
	if !ok {
		return api.Record{}, api.ErrNotFound
	}
	rec.Fields = maps.Clone(rec.Fields)
	maps.Copy(rec.Fields, fields)
	f.recs[id] = rec
	return rec, nil
}

func (f *fakeBackend) Get(_ context.Context, id string) (api.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rec, ok := f.recs[id]
	if !ok {
		return api.Record{}, api.ErrNotFound
	}
	return rec, nil
}

func (f *fakeBackend) List(_ context.Context, after string, limit int) ([]api.Record, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.Record
	for _, id := range slices.Sorted(maps.Keys(f.recs)) {
		if id <= after {
			continue
		}
		if len(out) == limit {
			return out, out[len(out)-1].ID, nil
		}
		out = append(out, f.recs[id])
	}
	return out, "", nil
}

func (f *fakeBackend) Status(context.Context) (api.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.status
	st.Records = len(f.recs)
	return st, nil
}

// startAgentAPI serves the real API over a fake backend on 127.0.0.1 and
// returns its address.
func startAgentAPI(t *testing.T) (*fakeBackend, string) {
	t.Helper()
	fb := &fakeBackend{recs: map[string]api.Record{}}
	cfg := api.DefaultConfig()
	cfg.Logger = nil
	srv, err := api.NewServer(cfg, fb)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return fb, strings.TrimPrefix(ts.URL, "http://")
}

// cli runs the command line and returns the exit code and outputs.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "dossier.json")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const dossierJSON = `{"full_name":"  Nguyễn  Văn An","date_of_birth":"1990-05-12","sex":"Nam","commune":"Lũng Cú"}`

func TestUsageAndHelp(t *testing.T) {
	code, out, _ := cli(t, "--help")
	if code != 0 || !strings.Contains(out, "Usage") || !strings.Contains(out, "Cách dùng") || !strings.Contains(out, "authority") {
		t.Fatalf("--help: code %d, output:\n%s", code, out)
	}
	if code, out, _ = cli(t, "help"); code != 0 || !strings.Contains(out, "Lệnh / Commands") {
		t.Fatalf("help: code %d", code)
	}
	if code, _, errOut := cli(t); code != exitUsage || !strings.Contains(errOut, "Usage") {
		t.Fatalf("no arguments: code %d, stderr %q", code, errOut)
	}
	if code, _, errOut := cli(t, "frobnicate"); code != exitUsage || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: code %d, stderr %q", code, errOut)
	}
	if code, out, _ = cli(t, "help", "put"); code != 0 || !strings.Contains(out, "fieldsync put") {
		t.Fatalf("help put: code %d, output %q", code, out)
	}
}

func TestEverySubcommandHasHelp(t *testing.T) {
	for _, args := range [][]string{
		{"put", "--help"}, {"get", "-h"}, {"list", "--help"}, {"status", "--help"}, {"version", "--help"},
		{"authority", "--help"}, {"authority", "init", "--help"},
		{"device", "--help"}, {"device", "init", "--help"},
		{"agent", "--help"}, {"hub", "--help"},
		{"revoke", "--help"}, {"quarantine", "--help"},
		{"attach", "--help"}, {"attachments", "--help"}, {"attachment", "--help"},
	} {
		code, out, errOut := cli(t, args...)
		if code != 0 {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
			continue
		}
		if help := out + errOut; !strings.Contains(help, "fieldsync "+args[0]) {
			t.Errorf("%v: no usage printed:\n%s", args, help)
		}
		if strings.Contains(errOut, "fieldsync: ") {
			t.Errorf("%v: help printed as an error: %q", args, errOut)
		}
	}
}

func TestParseFlagsInterspersed(t *testing.T) {
	fs := newFlagSet("x", "", &bytes.Buffer{})
	api := fs.String("api", "", "")
	id := fs.String("id", "", "")
	asJSON := fs.Bool("json", false, "")
	err := parseFlags(fs, []string{"FILE", "--api", "127.0.0.1:1", "--json", "-id=7", "-", "--", "--not-a-flag"})
	if err != nil {
		t.Fatal(err)
	}
	if *api != "127.0.0.1:1" || *id != "7" || !*asJSON {
		t.Fatalf("flags api=%q id=%q json=%v", *api, *id, *asJSON)
	}
	if got, want := fs.Args(), []string{"FILE", "-", "--not-a-flag"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("positional %q, want %q", got, want)
	}

	fs = newFlagSet("x", "", &bytes.Buffer{})
	fs.String("api", "", "")
	err = parseFlags(fs, []string{"--nope"})
	if _, ok := err.(usageError); !ok {
		t.Fatalf("unknown flag: err = %v (%T), want usageError", err, err)
	}
	if err := parseFlags(fs, []string{"--help"}); err != flag.ErrHelp {
		t.Fatalf("--help: err = %v, want flag.ErrHelp", err)
	}
}

func TestPutCreatesAndUpdates(t *testing.T) {
	fb, addr := startAgentAPI(t)
	file := writeFile(t, dossierJSON)

	// Flags after the positional argument.
	code, out, errOut := cli(t, "put", file, "--api", addr)
	if code != 0 {
		t.Fatalf("put: exit %d, stderr %q", code, errOut)
	}
	id := strings.TrimSpace(out)
	rec, ok := fb.recs[id]
	if !ok {
		t.Fatalf("put printed %q, not a stored id", out)
	}
	if rec.Fields["full_name"] != "Nguyễn Văn An" || rec.Fields["sex"] != "nam" {
		t.Fatalf("stored fields %v", rec.Fields)
	}

	// Update from standard input, flags first, with --json.
	stdin = strings.NewReader(`{"phone":"0912 345 678"}`)
	t.Cleanup(func() { stdin = os.Stdin })
	code, out, errOut = cli(t, "put", "--api", addr, "--id", id, "--json", "-")
	if code != 0 {
		t.Fatalf("put --id: exit %d, stderr %q", code, errOut)
	}
	if want := []map[string]string{{"phone": "0912345678"}}; !reflect.DeepEqual(fb.updates, want) {
		t.Fatalf("backend updates %v, want %v", fb.updates, want)
	}
	var got api.Record
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("--json output is not a Record: %v\n%s", err, out)
	}
	if got.ID != id || got.Fields["phone"] != "0912345678" || got.Fields["commune"] != "Lũng Cú" || got.Conflicts == nil {
		t.Fatalf("record %+v", got)
	}
	if !strings.Contains(out, `"conflicts": {}`) {
		t.Fatalf("conflicts not {} in --json output:\n%s", out)
	}
}

func TestPutRefusedInput(t *testing.T) {
	fb, addr := startAgentAPI(t)
	file := writeFile(t, `{"full_name":"Nguyễn 3","date_of_birth":"2099-01-01","sex":"x"}`)
	code, out, errOut := cli(t, "put", "--api", addr, file)
	if code != exitError || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	for _, want := range []string{"date_of_birth", "full_name", "sex", "must not be in the future", "không được là ngày trong tương lai", "trường không hợp lệ"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if len(fb.recs) != 0 {
		t.Fatal("a refused dossier was stored")
	}

	// A file that is not an object of strings is refused before sending.
	code, _, errOut = cli(t, "put", "--api", addr, writeFile(t, `{"personal_id": 1234}`))
	if code != exitError || !strings.Contains(errOut, "offset") {
		t.Fatalf("malformed file: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = cli(t, "put", "--api", addr, filepath.Join(t.TempDir(), "missing.json"))
	if code != exitError || !strings.Contains(errOut, "missing.json") {
		t.Fatalf("missing file: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = cli(t, "put", "--id", "rec-9999", "--api", addr, writeFile(t, `{"commune":"Lũng Cú"}`))
	if code != exitError || !strings.Contains(errOut, "record not found / không tìm thấy hồ sơ") {
		t.Fatalf("unknown id: exit %d, stderr %q", code, errOut)
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"put"}, {"put", "a.json", "b.json"}, {"put", "--bogus", "a.json"},
		{"get"}, {"get", "a", "b"}, {"list", "extra"}, {"status", "--api"}, {"version", "x"},
		{"authority"}, {"authority", "rotate"}, {"authority", "init"},
		{"device"}, {"device", "init", "--authority", "a", "--data", "d"},
		// The profiler has no token: never off loopback.
		{"agent", "--data", "d", "--pprof", "0.0.0.0:6060"}, {"agent", "--data", "d", "--pprof", "6060"},
	} {
		code, _, errOut := cli(t, args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d (stderr %q)", args, code, exitUsage, errOut)
		}
		if !strings.HasPrefix(errOut, "fieldsync: ") || !strings.Contains(errOut, "--help") {
			t.Errorf("%v: stderr %q", args, errOut)
		}
	}
}

func TestGet(t *testing.T) {
	fb, addr := startAgentAPI(t)
	created := testTime.Add(-time.Hour)
	fb.recs["rec-0001"] = api.Record{
		ID:        "rec-0001",
		Fields:    map[string]string{"full_name": "Lò Thị Mai", "date_of_birth": "1985", "sex": "nữ"},
		CreatedBy: "laptop-a", CreatedAt: &created, UpdatedAt: testTime,
		Conflicts: map[string][]api.Value{"full_name": {
			{Value: "Lò Thị Mai", Device: "laptop-a", DeviceID: "aaaa", At: created, Op: "aaaa:1"},
			{Value: "Lò Thị Mại", Device: "laptop-b", DeviceID: "bbbb", At: testTime, Op: "bbbb:4"},
		}},
	}
	code, out, errOut := cli(t, "get", "rec-0001", "--api", addr)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"rec-0001", "Lò Thị Mai", "1985", "Xung đột / Conflicts (1)", "laptop-b", "Lò Thị Mại", "bbbb:4"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = cli(t, "get", "--json", "--api", addr, "rec-0001")
	var rec api.Record
	if code != 0 || json.Unmarshal([]byte(out), &rec) != nil || len(rec.Conflicts["full_name"]) != 2 {
		t.Fatalf("--json: exit %d, output %s", code, out)
	}
	code, _, errOut = cli(t, "get", "--api", addr, "rec-0404")
	if code != exitError || !strings.Contains(errOut, "không tìm thấy hồ sơ") {
		t.Fatalf("unknown id: exit %d, stderr %q", code, errOut)
	}
}

func TestList(t *testing.T) {
	fb, addr := startAgentAPI(t)
	code, out, _ := cli(t, "list", "--json", "--api", addr)
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("empty --json list: exit %d, output %q", code, out)
	}
	for i := range 3 {
		fb.Create(context.Background(), map[string]string{"full_name": fmt.Sprintf("Giàng A Páo %d", i), "date_of_birth": "1970", "commune": "Sủng Là"})
	}
	code, out, _ = cli(t, "list", "--api", addr)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"HỌ TÊN / FULL NAME", "Giàng A Páo 2", "Sủng Là", "1970", "Tổng / Total: 3"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = cli(t, "list", "--api", addr, "--json")
	var recs []api.Record
	if code != 0 || json.Unmarshal([]byte(out), &recs) != nil || len(recs) != 3 {
		t.Fatalf("--json: exit %d, output %s", code, out)
	}
}

func TestStatus(t *testing.T) {
	fb, addr := startAgentAPI(t)
	fb.status = api.Status{
		Device: "laptop-a", DeviceID: "aaaa", Role: "field", Deployment: "dep1", Version: "v0.1.0",
		Listen: []string{"0.0.0.0:7421"}, AtRisk: 4, Held: 10,
		Peers:         []api.Peer{{Name: "laptop-b", DeviceID: "bbbb", Role: "field", Addr: "192.168.1.7:7421", Connected: true}},
		VersionVector: map[string]uint64{"aaaa": 14, "bbbb": 3},
		Alerts: []api.Alert{{Kind: api.AlertFork, Device: "cccc", Seq: 7},
			{Kind: api.AlertClone, Device: "cccc", Addrs: []string{"10.0.0.5:7422", "10.0.0.9:7422"}}},
	}
	code, out, errOut := cli(t, "status", "--api", addr)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"Thiết bị / Device", "laptop-a", "Chỉ có trên máy này / Only on this laptop", "laptop-b", "192.168.1.7:7421", "có / yes", "bbbb",
		"CẢNH BÁO / ALERTS (2)", "device cccc forked its log at 7", "10.0.0.5:7422, 10.0.0.9:7422"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = cli(t, "status", "--json", "--api", addr)
	var st map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("--json: exit %d, output %s", code, out)
	}
	for _, key := range []string{"device", "peers", "version_vector", "at_risk", "held_elsewhere", "records"} {
		if _, ok := st[key]; !ok {
			t.Errorf("--json lacks %q", key)
		}
	}
}

func TestNoAgentListening(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	code, _, errOut := cli(t, "status", "--api", addr)
	if code != exitError || !strings.Contains(errOut, "no agent answering at "+addr) {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestAuthorityAndDeviceInit(t *testing.T) {
	authDir := filepath.Join(t.TempDir(), "authority")
	code, out, errOut := cli(t, "authority", "init", "--dir", authDir)
	if code != 0 {
		t.Fatalf("authority init: exit %d, stderr %q", code, errOut)
	}
	a, err := harness.LoadAuthority(authDir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, a.Deployment()) || !strings.Contains(out, "WARNING") || !strings.Contains(out, "CẢNH BÁO") {
		t.Fatalf("authority init output:\n%s", out)
	}
	if code, _, errOut = cli(t, "authority", "init", "--dir", authDir); code != exitError || !strings.Contains(errOut, "already exists") {
		t.Fatalf("second authority init: exit %d, stderr %q", code, errOut)
	}

	dataDir := filepath.Join(t.TempDir(), "laptop-a")
	code, out, errOut = cli(t, "device", "init", "--authority", authDir, "--name", "laptop-a", "--data", dataDir)
	if code != 0 {
		t.Fatalf("device init: exit %d, stderr %q", code, errOut)
	}
	d, err := harness.LoadDevice(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{d.ID(), "laptop-a", "field", a.Deployment(), "fieldsync agent --data"} {
		if !strings.Contains(out, want) {
			t.Errorf("device init output lacks %q:\n%s", want, out)
		}
	}

	hubDir := filepath.Join(t.TempDir(), "hub")
	code, out, errOut = cli(t, "device", "init", "--json", "--authority", authDir, "--name", "hub-1", "--data", hubDir, "--role", "HUB", "--valid-days", "30")
	if code != 0 {
		t.Fatalf("device init --json: exit %d, stderr %q", code, errOut)
	}
	var info deviceInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	if info.Role != "hub" || info.Name != "hub-1" || info.Deployment != a.Deployment() || info.DeviceID == "" {
		t.Fatalf("info %+v", info)
	}
	if got := info.Expires.Sub(info.IssuedAt); got != 30*24*time.Hour {
		t.Fatalf("validity %v, want 30 days", got)
	}

	if code, _, _ = cli(t, "device", "init", "--authority", authDir, "--name", "x", "--data", t.TempDir(), "--role", "boss"); code != exitUsage {
		t.Fatalf("unknown role: exit %d, want %d", code, exitUsage)
	}
	if code, _, _ = cli(t, "device", "init", "--authority", authDir, "--name", "x", "--data", t.TempDir(), "--valid-days", "0"); code != exitUsage {
		t.Fatalf("zero days: exit %d, want %d", code, exitUsage)
	}
	if code, _, errOut = cli(t, "device", "init", "--authority", authDir, "--name", "laptop-a", "--data", dataDir); code != exitError || !strings.Contains(errOut, "already") {
		t.Fatalf("re-provisioning: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut = cli(t, "device", "init", "--authority", t.TempDir(), "--name", "x", "--data", t.TempDir()); code != exitError || !strings.Contains(errOut, "authority init") {
		t.Fatalf("no authority: exit %d, stderr %q", code, errOut)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := cli(t, "version")
	if code != 0 || !strings.HasPrefix(out, "fieldsync dev") {
		t.Fatalf("exit %d, output %q", code, out)
	}
}
