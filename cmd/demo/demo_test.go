package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/agent/attach"
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
	// Ops: 12 creations and island-a's 11 attachment manifests.
	pgRows := "PostgreSQL của tỉnh: 12 hồ sơ (fieldsync_records), 23 thay đổi đã ký (fieldsync_ops)"
	bio := assertBiometricsCaptured(t, text)
	switch {
	case strings.Contains(text, pgRows):
		if !postgresURL.MatchString(text) || !strings.Contains(text, "PostgreSQL tạm đã dừng và xóa") {
			t.Errorf("PostgreSQL rows counted, but the hub's --postgres or the server's stop is not shown")
		}
		assertBiometricsExported(t, text, bio)
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

// capturedFile is one file `fieldsync attach` stored on island-a, as the
// demo's output shows it.
type capturedFile struct {
	finger string // "" for the photo
	sha    string
	size   int64
}

// blockAfter returns the framed command output (lines "│ ...", the frame
// removed) that follows the first line of text containing marker.
func blockAfter(t *testing.T, text, marker string) string {
	t.Helper()
	i := strings.Index(text, marker)
	if i < 0 {
		t.Errorf("output lacks %q", marker)
		return ""
	}
	lines := strings.Split(text[i:], "\n")[1:]
	// The rest of a command of several lines (the psql script is the
	// longest) comes before its output.
	for skip := 0; len(lines) > 0 && skip < 12 && !strings.HasPrefix(lines[0], resIndent+"│"); skip++ {
		lines = lines[1:]
	}
	var out []string
	for _, l := range lines {
		rest, ok := strings.CutPrefix(l, resIndent+"│")
		if !ok {
			break
		}
		out = append(out, strings.TrimPrefix(rest, " "))
	}
	return strings.Join(out, "\n")
}

// assertBiometricsCaptured checks step 11's capture on the island: the photo
// and ten fingerprints stored by `fieldsync attach` on island-a (about 300
// KB and 20 KB), island-b holding them all before it sails, with their
// bytes pending upstream by kind, and, back on the island, `fieldsync
// attachments` on island-a listing all eleven complete and delivered.
func assertBiometricsCaptured(t *testing.T, text string) []capturedFile {
	t.Helper()
	var files []capturedFile
	m := regexp.MustCompile(`\$ fieldsync attach --api 127\.0\.0\.1:\d+ --id (\S+) --kind photo \$DEMO/khanh-hoa/sinh-trac/anh-chan-dung\.jpg\n\s+│ ([0-9a-f]{64})  (\d+)\n`).FindStringSubmatch(text)
	if m == nil {
		t.Error("output shows no fieldsync attach of the photo with its SHA-256 and size")
		return nil
	}
	id := m[1]
	size, _ := strconv.ParseInt(m[3], 10, 64)
	files = append(files, capturedFile{"", m[2], size})
	if size < 280_000 || size >= 320_000 {
		t.Errorf("the photo is %d bytes, want about 300 KB", size)
	}
	if !strings.Contains(text, `--kind fingerprint --finger "$f" $DEMO/khanh-hoa/sinh-trac/vantay-$f.fmr`) {
		t.Error("output shows no fieldsync attach of the fingerprints")
	}
	var prints int64
	for _, l := range strings.Split(blockAfter(t, text, "printf '%-13s' \"$f\"; fieldsync attach --api"), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			t.Errorf("fingerprint line %q", l)
			continue
		}
		n, _ := strconv.ParseInt(f[2], 10, 64)
		if n < 19_000 || n > 21_000 || len(f[1]) != 64 {
			t.Errorf("fingerprint %s: %d bytes, SHA-256 %q; want about 20 KB", f[0], n, f[1])
		}
		files = append(files, capturedFile{f[0], f[1], n})
		prints += n
	}
	var fingers []string
	for _, f := range files[1:] {
		fingers = append(fingers, f.finger)
	}
	if !slices.Equal(fingers, attach.Fingers) {
		t.Errorf("fingerprints attached: %v, want the ten fingers %v", fingers, attach.Fingers)
	}
	if !strings.Contains(text, "island-b giữ đủ ảnh và 10 vân tay") {
		t.Error("output does not say island-b holds the files before it sails")
	}

	// island-b before the boat: every byte on board, none upstream yet.
	var st struct {
		Attachments struct {
			Complete, Incomplete int
			PendingBytes         map[string]int64 `json:"pending_bytes"`
		}
		Upstream struct {
			Undelivered            int
			AttachmentsUndelivered int              `json:"attachments_undelivered"`
			AttachmentsPending     map[string]int64 `json:"attachments_pending_bytes"`
		}
	}
	if err := json.Unmarshal([]byte(blockAfter(t, text, "(island-b, vài trường / a few fields)")), &st); err != nil {
		t.Errorf("island-b's status before the boat: %v", err)
	}
	if st.Attachments.Complete != 11 || st.Attachments.Incomplete != 0 || st.Attachments.PendingBytes["photo"] != 0 ||
		st.Attachments.PendingBytes["fingerprint"] != 0 {
		t.Errorf("island-b before the boat lacks some bytes: %+v", st.Attachments)
	}
	if st.Upstream.Undelivered != 12 || st.Upstream.AttachmentsUndelivered != 11 ||
		st.Upstream.AttachmentsPending["photo"] != size || st.Upstream.AttachmentsPending["fingerprint"] != prints {
		t.Errorf("island-b before the boat: upstream %+v, want 12 dossiers and 11 files undelivered, photo %d and fingerprint %d bytes pending",
			st.Upstream, size, prints)
	}

	// Back on the island: island-a lists all eleven, complete and delivered.
	listed := blockAfter(t, text, "$ fieldsync attachments --api 127.0.0.1:")
	row := regexp.MustCompile(`^(photo|fingerprint)\s+(\S+)\s+(\d+)\s+([0-9a-f]{64})\s+island-a\s+.+\s+có / yes\s+có / yes$`)
	var back []capturedFile
	for _, l := range strings.Split(listed, "\n")[1:] {
		r := row.FindStringSubmatch(l)
		if r == nil {
			t.Errorf("island-a's attachments: row %q is not a file captured on island-a, complete and delivered", l)
			continue
		}
		n, _ := strconv.ParseInt(r[3], 10, 64)
		finger := r[2]
		if finger == "-" {
			finger = ""
		}
		back = append(back, capturedFile{finger, r[4], n})
	}
	if !slices.Equal(back, files) {
		t.Errorf("island-a lists\n%v\nafter the trip, want the files captured\n%v", back, files)
	}
	if !strings.Contains(text, "$ fieldsync attachments --api 127.0.0.1:") || !strings.Contains(text, " "+id+"\n") {
		t.Errorf("fieldsync attachments is not shown for dossier %s", id)
	}
	return files
}

// assertBiometricsExported checks what psql showed of the province's
// PostgreSQL: the dossier's record and 12 ops (its creation and 11
// manifests), then its 11 files in the order written, the ten fingerprints
// before the photo, each written after every row of its dossier and each the
// file captured on the island (its SHA-256 and size).
func assertBiometricsExported(t *testing.T, text string, files []capturedFile) {
	t.Helper()
	if len(files) != 11 {
		return // assertBiometricsCaptured said why
	}
	tables := psqlTables(blockAfter(t, text, "<<'SQL'"))
	if len(tables) != 2 {
		t.Errorf("psql shows %d tables, want 2", len(tables))
		return
	}
	var dossier []string
	for _, r := range tables[0].rows {
		dossier = append(dossier, strings.Join(r[:2], " "))
	}
	if !slices.Equal(dossier, []string{"fieldsync_records 1", "fieldsync_ops 12"}) {
		t.Errorf("the dossier's rows in PostgreSQL: %v, want its record and 12 ops", dossier)
	}
	if want := []string{"exported_at", "kind", "finger", "size", "sha256", "after_dossier"}; !slices.Equal(tables[1].header, want) {
		t.Errorf("fieldsync_attachments columns %v, want %v", tables[1].header, want)
		return
	}
	// Captured: the photo, then right_thumb … left_little; written: the
	// fingerprints in the order captured, then the photo.
	want := append(slices.Clone(files[1:]), files[0])
	var got []capturedFile
	for _, r := range tables[1].rows {
		n, _ := strconv.ParseInt(r[3], 10, 64)
		got = append(got, capturedFile{r[2], r[4], n})
		if r[5] != "t" {
			t.Errorf("%s %s was written to PostgreSQL before its dossier's rows", r[1], r[2])
		}
		if (r[1] == "photo") != (r[2] == "") {
			t.Errorf("row %v: kind and finger disagree", r)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("fieldsync_attachments by exported_at:\n%v\nwant the fingerprints, then the photo:\n%v", got, want)
	}
	if !strings.Contains(text, "SHA-256 của ảnh trên đảo (fieldsync attach) và trong PostgreSQL: "+files[0].sha+", giống nhau") {
		t.Error("output does not compare the photo's SHA-256 on the island and in PostgreSQL")
	}
	if !strings.Contains(text, "(11 dòng fieldsync_attachments, vân tay trước ảnh)") {
		t.Error("the summary does not count the files in PostgreSQL")
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
