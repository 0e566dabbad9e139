package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/agent/export/pgtest"
	"github.com/fieldsync/fieldsync/cmd/internal/harness"
)

// demoOptions builds the binary and returns options for a quiet run under
// a fresh temporary root.
func demoOptions(t *testing.T) options {
	t.Helper()
	if testing.Short() {
		t.Skip("runs real agent processes: skipped with -short")
	}
	bin, err := harness.Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	o := defaultOptions()
	o.Bin = bin
	o.TempRoot = t.TempDir()
	return o
}

// lockedBuffer collects output written from several goroutines and calls
// onText once the text contains a trigger.
type lockedBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	trigger string
	onText  func()
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if b.onText != nil && strings.Contains(b.buf.String(), b.trigger) {
		b.onText()
		b.onText = nil
	}
	return n, err
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// assertCleanedUp checks that no agent of any deployment is left running
// and the demo's temporary directory is gone.
func assertCleanedUp(t *testing.T, cs []*harness.Cluster, root string) {
	t.Helper()
	if len(cs) == 0 {
		t.Fatal("the demo never made its cluster")
	}
	for _, c := range cs {
		for _, a := range c.Agents() {
			if a.Running() {
				t.Errorf("%s still running after the demo", a.Name)
			}
		}
	}
	left, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		t.Errorf("left behind in the temporary root: %s", e.Name())
	}
}

// postgresURL is the URL the demo started the hub with, or "".
var postgresURL = regexp.MustCompile(`--postgres "?(postgres://[^" \n]+)`)

// assertPostgresStopped checks that the throwaway PostgreSQL whose URL the
// output shows, if any, no longer accepts connections.
func assertPostgresStopped(t *testing.T, text string) {
	t.Helper()
	m := postgresURL.FindStringSubmatch(text)
	if m == nil {
		if os.Getenv(pgtest.RequireEnv) == "1" {
			t.Errorf("no hub started with --postgres, and %s=1", pgtest.RequireEnv)
		}
		return
	}
	u, err := url.Parse(m[1])
	if err != nil {
		t.Fatalf("postgres url %q: %v", m[1], err)
	}
	if c, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
		c.Close()
		t.Errorf("PostgreSQL still listening on %s after the demo", u.Host)
	}
}

func TestDemoRunsEveryStep(t *testing.T) {
	o := demoOptions(t)
	out := &lockedBuffer{}
	o.Out = out
	var cs []*harness.Cluster
	o.onCluster = func(cl *harness.Cluster) { cs = append(cs, cl) }
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	began := time.Now()
	if err := run(ctx, o); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out)
	}
	took := time.Since(began)
	text := out.String()
	for _, want := range []string{
		"▶ Bước 1 / Step 1:", "▶ Bước 12 / Step 12:",
		"$ fieldsync authority init --dir $DEMO/authority",
		"--no-mdns", "--join",
		"laptop-a: 60 hồ sơ",                    // step 4: 3 × 20 converged
		"laptop-c bắt kịp: 60 → 70 hồ sơ",       // step 5: caught up
		"laptop-d giữ cả 25 hồ sơ của laptop-a", // step 6: relayed
		"Chỉ có trên máy này / Only on this laptop:  0",
		`"Vừ Mí Chứ"  laptop-b`, `"Vừ Mý Chứ"  laptop-c`, // step 7: both values, by device
		"Tạo bởi / Created by:  laptop-a",
		// Officers, and the admin's laptop provisioned in step 1.
		`--role field --officer "Thượng úy Sùng Mí Lử"`,
		`--name admin-huyen --data $DEMO/admin-huyen --role admin --officer "Trung tá Giàng Xuân Thắng"`,
		// Step 8: the admin settles the conflict; a field laptop may not.
		"Xung đột / Conflicts: 1",
		"fieldsync: only an admin device or the hub may settle (this device is field) / chỉ máy quản trị hoặc máy chủ trung tâm mới được giải quyết",
		"bị từ chối (HTTP 403, mã thoát 1); xung đột vẫn còn nguyên",
		`full_name = "Vừ Mí Chứ"`,
		"Xung đột / Conflicts: 0",
		"trang trả lời 200 (text/html; charset=utf-8, tiếng Việt)",
		// Step 9: duplicates found, merged and kept apart.
		"Có thể trùng / Possible duplicates: 2",
		`--field "commune=Khâu Vai" --field "permanent_address=Thôn Pắc Cạm, xã Khâu Vai, huyện Mèo Vạc, tỉnh Hà Giang" --field phone=`,
		"Đã gộp / Merged",
		"Đã ghi nhận hai người khác nhau / Marked as two different people",
		"Có thể trùng / Possible duplicates: 0",
		"admin-huyen giải quyết 1/1 xung đột, gộp 1 cặp hồ sơ trùng, tách 1 cặp là hai người",
		// Step 10: a laptop is lost, revoked, and refused by the team.
		`$ fieldsync authority revoke --authority $DEMO/authority --device laptop-c --reason "rơi mất khi đi thăm nhà / lost on a home visit" --out $DEMO/thu-hoi-1.cbor`,
		"Đã thu hồi / Revoked: laptop-c (",
		"$ fieldsync revoke --api 127.0.0.1:",
		"Đã áp dụng danh sách thu hồi số 1 / Revocation list 1 is in force",
		`"number": 1,`, `"name": "laptop-c",`, `"quarantined": 0`,
		"laptop-c không còn kết nối với máy nào",
		"laptop-c bị thu hồi: 4 máy của huyện từ chối nó",
		// Step 11: the island trip.
		"--name hub-khanh-hoa --data $DEMO/khanh-hoa/hub-khanh-hoa --role hub",
		"$ fieldsync hub --data $DEMO/khanh-hoa/hub-khanh-hoa",
		"--hub 127.0.0.1:",
		"island-a: 12 hồ sơ chưa lên tỉnh (undelivered), 0 đã lên (delivered)",
		"hub-khanh-hoa: 12 hồ sơ / dossiers",
		"Hồ sơ / Dossiers:                           12",
		"island-b nhận biên nhận của hub-khanh-hoa",
		`"delivered": 12,`, `"undelivered": 0`, `"reachable": false,`, `"last_contact": null,`,
		"$ fieldsync list --api 127.0.0.1:",
		"Tổng / Total: 0",
		"island-a biết sau",
		"đã xóa thư mục tạm / temporary directory removed",
		"Tổng / Total",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	assertSettled(t, text)
	// island-b's per-laptop counts: both laptops' 6 dossiers delivered.
	for _, name := range []string{"island-a", "island-b"} {
		if !regexp.MustCompile(`(?m)^\s+` + name + `\s+6\s+6$`).MatchString(text) {
			t.Errorf("output lacks %s's origins row: 6 captured, 6 delivered", name)
		}
	}
	// With PostgreSQL (required under make test), the hub exports into it
	// and the rows are counted; without, the demo says so.
	pgRows := "PostgreSQL của tỉnh: 12 hồ sơ (fieldsync_records), 12 thay đổi đã ký (fieldsync_ops)"
	switch {
	case strings.Contains(text, pgRows):
		if !postgresURL.MatchString(text) || !strings.Contains(text, "PostgreSQL tạm đã dừng và xóa") {
			t.Errorf("PostgreSQL rows counted, but the hub's --postgres or the server's stop is not shown")
		}
	case os.Getenv(pgtest.RequireEnv) == "1":
		t.Errorf("output lacks %q, and %s=1", pgRows, pgtest.RequireEnv)
	case !strings.Contains(text, "không có PostgreSQL / without PostgreSQL"):
		t.Errorf("neither PostgreSQL rows nor a hub without PostgreSQL in the output")
	}
	// The path shows once, in "export DEMO=...": commands use $DEMO.
	if n := strings.Count(text, o.TempRoot); n != 1 {
		t.Errorf("output shows the temporary path %d times, want once (export DEMO=)", n)
	}
	if t.Failed() {
		t.Logf("output:\n%s", text)
	}
	assertCleanedUp(t, cs, o.TempRoot)
	assertPostgresStopped(t, text)
	// The demo promises to stay under about a minute.
	if took > time.Minute {
		t.Errorf("demo took %s", took)
	}
}

// assertSettled checks the facts of steps 8 and 9 in the demo's output:
// the conflict's values with their officers, the decision and the merge on
// every field laptop, the retired dossier's pointer and the history.
func assertSettled(t *testing.T, text string) {
	t.Helper()
	stamp := `\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+\s+op \S+:\d+`
	took := `(\d+ ms|\d+\.\d\d s)`
	for _, re := range []string{
		// The conflict queue, values side by side with laptop, officer, time.
		`"Vừ Mý Chứ"\s+laptop-c Đại úy Triệu Tiến Chài` + stamp,
		`"Vừ Mí Chứ"\s+laptop-b Trung úy Hoàng Thị Mến` + stamp,
		`→ http://127\.0\.0\.1:\d+/\n`,
		`\$ fieldsync resolve --api 127\.0\.0\.1:\d+ \S+ full_name "Vừ Mí Chứ"`,
		`(?m)^\s+│ personal_id\s+\S+ \S+$`,
		`(?m)^\s+│ name_dob\s+\S+ \S+$`,
		`(?m)^\s+│ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+\s+create\s+laptop-a Thượng úy Sùng Mí Lử\s+op `,
		`(?m)^\s+│ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+\s+merge\s+admin-huyen Trung tá Giàng Xuân Thắng\s+op `,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("output lacks a match of %s", re)
		}
	}
	for _, name := range []string{"laptop-a", "laptop-b", "laptop-c", "laptop-d"} {
		for _, re := range []string{
			name + `: "Vừ Mí Chứ", không còn xung đột, ` + took + ` sau lệnh resolve`,
			name + `: đã gộp, không còn hồ sơ trùng, ` + took + ` sau lệnh merge`,
		} {
			if !regexp.MustCompile(re).MatchString(text) {
				t.Errorf("output lacks a match of %s", re)
			}
		}
	}
	// The retired dossier points at the survivor, and the survivor names it.
	m := regexp.MustCompile(`\$ fieldsync merge --api \S+ (\S+) (\S+) `).FindStringSubmatch(text)
	if m == nil {
		t.Error("output shows no merge command")
		return
	}
	survivor, other := m[1], m[2]
	for _, want := range []string{
		`"id": "` + other + `",` + "\n" + resIndent + `│   "retired_into": "` + survivor + `"`,
		`"id": "` + survivor + `",` + "\n" + resIndent + `│   "merged_from": [` + "\n" + resIndent + `│     "` + other + `"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// Ctrl-C in the middle (the context cancelled) stops every agent and removes
// the temporary directory.
func TestDemoInterruptedCleansUp(t *testing.T) {
	o := demoOptions(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &lockedBuffer{trigger: "▶ Bước 3 / Step 3", onText: cancel}
	o.Out = out
	var cs []*harness.Cluster
	o.onCluster = func(cl *harness.Cluster) { cs = append(cs, cl) }
	err := run(ctx, o)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("run returned %v, want context.Canceled\n%s", err, out)
	}
	if len(cs) != 1 || len(cs[0].Agents()) != 4 {
		t.Fatalf("%d deployments before the interrupt, want 1 with 4 devices (3 laptops and the admin's)", len(cs))
	}
	assertCleanedUp(t, cs, o.TempRoot)
}

// Ctrl-C on the island, with the hub and PostgreSQL running, stops the
// agents of both deployments and the PostgreSQL server too.
func TestDemoInterruptedOnTheIslandCleansUp(t *testing.T) {
	o := demoOptions(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &lockedBuffer{trigger: "island-b chạy", onText: cancel}
	o.Out = out
	var cs []*harness.Cluster
	o.onCluster = func(cl *harness.Cluster) { cs = append(cs, cl) }
	err := run(ctx, o)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("run returned %v, want context.Canceled\n%s", err, out)
	}
	if len(cs) != 2 || len(cs[1].Agents()) != 3 {
		t.Fatalf("%d deployments before the interrupt, want 2, the province's with its hub and 2 laptops\n%s", len(cs), out)
	}
	assertCleanedUp(t, cs, o.TempRoot)
	assertPostgresStopped(t, out.String())
}

func TestOptionsRefuseAMissingBinary(t *testing.T) {
	o := defaultOptions()
	o.Bin = t.TempDir() + "/no-such-fieldsync"
	if err := run(context.Background(), o); !errors.Is(err, errOptions) {
		t.Fatalf("run with a missing binary: %v, want errOptions", err)
	}
	o.Bin = t.TempDir() // a directory
	if err := run(context.Background(), o); !errors.Is(err, errOptions) {
		t.Fatalf("run with a directory as binary: %v, want errOptions", err)
	}
}
