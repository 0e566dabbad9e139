package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/agent/attach"
	"github.com/fieldsync/fieldsync/agent/export/pgtest"
	"github.com/fieldsync/fieldsync/agent/store"
	"github.com/fieldsync/fieldsync/cmd/internal/harness"
	"github.com/jackc/pgx/v5"
)

// syntheticFile writes n bytes, head then seeded random bytes, into dir.
func syntheticFile(t *testing.T, dir, name string, head []byte, n int, seed uint64) (string, []byte) {
	t.Helper()
	data := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 42))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	copy(data, head)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, data
}

// cliRun runs the real binary against the cluster and returns its exit code
// and combined output.
func cliRun(t *testing.T, c *harness.Cluster, args ...string) (int, string) {
	t.Helper()
	out, err := c.Run(args...)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("run %v: %v", args, err)
	return 0, ""
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// A photo and ten fingerprints attached to a dossier through the CLI come
// back byte for byte; a new photo replaces the old; every bad input is
// refused with its exit code, the agent keeps running and keeps nothing of
// it; and no byte of a file is readable in the data directory.
func TestE2EAttachments(t *testing.T) {
	c := cluster(t)
	a, err := c.Provision("laptop-a", "field")
	if err != nil {
		t.Fatal(err)
	}
	const limit = 1_000_000
	if err := a.Start("--attachment-max-bytes", fmt.Sprint(limit)); err != nil {
		t.Fatal(err)
	}
	id := put(t, a, dossier(1, "Lũng Cú"))
	dir := t.TempDir()
	jpeg := []byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0}

	photo, photoData := syntheticFile(t, dir, "anh.jpg", jpeg, 300_000, 1)
	files := map[string][]byte{} // sha256 -> bytes
	code, out := cliRun(t, c, "attach", "--api", a.API, "--id", id, "--kind", "photo", "--json", photo)
	if code != 0 {
		t.Fatalf("attach photo: exit %d\n%s", code, out)
	}
	var res api.Attached
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.SHA256 != hexSum(photoData) || res.Size != 300_000 || res.Chunks != 5 || res.MediaType != "image/jpeg" {
		t.Fatalf("attach photo answered %+v (%v)\n%s", res, err, out)
	}
	files[res.SHA256] = photoData
	for i, finger := range attach.Fingers {
		path, data := syntheticFile(t, dir, finger+".fmr", []byte("FMR\x00 20\x00"), 20_000+i, uint64(10+i))
		code, out := cliRun(t, c, "attach", "--api", a.API, "--id", id, "--kind", "fingerprint", "--finger", finger, path)
		if code != 0 || !strings.HasPrefix(out, hexSum(data)+"  ") {
			t.Fatalf("attach %s: exit %d\n%s", finger, code, out)
		}
		files[hexSum(data)] = data
	}

	list := func() []api.Attachment {
		t.Helper()
		code, out := cliRun(t, c, "attachments", "--api", a.API, "--json", id)
		if code != 0 {
			t.Fatalf("attachments: exit %d\n%s", code, out)
		}
		var l []api.Attachment
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			t.Fatalf("attachments --json: %v\n%s", err, out)
		}
		return l
	}
	l := list()
	if len(l) != 11 || l[0].Kind != "photo" || l[1].Finger != "right_thumb" || l[10].Finger != "left_little" {
		t.Fatalf("list: %+v", l)
	}
	for _, at := range l {
		if !at.Complete || at.Delivered || at.CapturedBy != "laptop-a" || at.Conflict || files[at.SHA256] == nil {
			t.Fatalf("listed %+v", at)
		}
	}
	if code, out := cliRun(t, c, "attachments", "--api", a.API, id); code != 0 || !strings.Contains(out, "Loại/Kind") || !strings.Contains(out, "left_little") {
		t.Fatalf("attachments table: exit %d\n%s", code, out)
	}
	// Every file comes back byte for byte.
	for sum, data := range files {
		dst := filepath.Join(dir, "back-"+sum[:8])
		if code, out := cliRun(t, c, "attachment", "--api", a.API, "--sha256", sum, "--out", dst); code != 0 {
			t.Fatalf("attachment %s: exit %d\n%s", sum[:8], code, out)
		}
		got, err := os.ReadFile(dst)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("attachment %s: read back differs (%v)", sum[:8], err)
		}
	}
	// The dossier's fields do not show manifests.
	rec, err := a.Client.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for name := range rec.Fields {
		if strings.HasPrefix(name, "attachment.") {
			t.Fatalf("record fields show %s", name)
		}
	}

	// A new photo replaces the old one.
	photo2, photo2Data := syntheticFile(t, dir, "anh-moi.jpg", jpeg, 280_000, 2)
	if code, out := cliRun(t, c, "attach", "--api", a.API, "--id", id, "--kind", "photo", photo2); code != 0 {
		t.Fatalf("replace photo: exit %d\n%s", code, out)
	}
	l = list()
	if len(l) != 11 || l[0].Kind != "photo" || l[0].SHA256 != hexSum(photo2Data) || l[0].Conflict {
		t.Fatalf("after the replacement: %+v", l[0])
	}

	// Bad input: refused, with its exit code, nothing kept.
	st, err := a.Client.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seqBefore := st.VersionVector[st.DeviceID]
	empty := filepath.Join(dir, "rong.jpg")
	os.WriteFile(empty, nil, 0o600)
	big, _ := syntheticFile(t, dir, "lon.jpg", jpeg, limit+1, 3)
	pdf, _ := syntheticFile(t, dir, "giay.pdf", []byte("%PDF-1.7\n"), 50_000, 4)
	text, _ := syntheticFile(t, dir, "van-tay.txt", []byte("hello, not a template"), 5_000, 5)
	for _, tc := range []struct {
		name string
		args []string
		code int
		say  string // in the output, beside the Vietnamese
	}{
		{"empty file", []string{"--id", id, "--kind", "photo", empty}, exitRefused, "empty"},
		{"over the limit", []string{"--id", id, "--kind", "photo", big}, exitRefused, "larger than the limit"},
		{"photo that is a PDF", []string{"--id", id, "--kind", "photo", pdf}, exitRefused, "JPEG, PNG or JPEG 2000"},
		{"fingerprint of text", []string{"--id", id, "--kind", "fingerprint", "--finger", "left_ring", text}, exitRefused, "FMR"},
		{"unknown kind", []string{"--id", id, "--kind", "selfie", photo}, exitUsage, "unknown attachment kind"},
		{"unknown finger", []string{"--id", id, "--kind", "fingerprint", "--finger", "right_toe", photo}, exitUsage, "unknown finger"},
		{"no finger", []string{"--id", id, "--kind", "fingerprint", photo}, exitUsage, "needs --finger"},
		{"finger on a photo", []string{"--id", id, "--kind", "photo", "--finger", "left_thumb", photo}, exitUsage, "only for a fingerprint"},
		{"unknown dossier", []string{"--id", "01a209b2-def6-72db-8bba-000000000000", "--kind", "photo", photo}, exitNotFound, "record not found"},
	} {
		code, out := cliRun(t, c, append([]string{"attach", "--api", a.API}, tc.args...)...)
		if code != tc.code || !strings.Contains(out, tc.say) || !strings.Contains(out, " / ") || strings.IndexFunc(out, func(r rune) bool { return r > 127 }) < 0 {
			t.Errorf("%s: exit %d, want %d, output:\n%s", tc.name, code, tc.code, out)
		}
	}
	if code, out := cliRun(t, c, "attachment", "--api", a.API, "--sha256", strings.Repeat("0", 64), "--out", filepath.Join(dir, "x")); code != exitNotFound {
		t.Errorf("unknown attachment: exit %d\n%s", code, out)
	}
	if !a.Running() {
		t.Fatal("the agent stopped after bad input")
	}
	st, err = a.Client.Status(ctx)
	if err != nil || st.VersionVector[st.DeviceID] != seqBefore {
		t.Fatalf("bad input wrote ops: seq %d, before %d (%v)", st.VersionVector[st.DeviceID], seqBefore, err)
	}
	if l := list(); len(l) != 11 || l[0].SHA256 != hexSum(photo2Data) {
		t.Fatalf("bad input changed the list: %+v", l)
	}

	// At rest: the store holds exactly the chunks of the files attached
	// (both photos, the ten templates), and no byte pattern of them.
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	key, err := harness.Unlock(a.Data)
	if err != nil {
		t.Fatal(err)
	}
	so := store.DefaultOptions(filepath.Join(a.Data, "store"))
	so.EncryptionKey = key.StoreKey()
	s, err := store.Open(so)
	if err != nil {
		t.Fatal(err)
	}
	n, _, err := s.ChunkStats()
	s.Close()
	if err != nil || n != 5+5+10 {
		t.Fatalf("the store holds %d chunks, want 20 (%v)", n, err)
	}
	for _, data := range [][]byte{photoData, photo2Data, files[hexSum(photoData)]} {
		for _, off := range []int{1000, 150_000, len(data) - 100} {
			if hits := grepTree(t, a.Data, data[off:off+32]); len(hits) > 0 {
				t.Errorf("bytes of an attached file readable in %v", hits)
			}
		}
	}
	if strings.Contains(a.Log(), string(photoData[5000:5016])) {
		t.Error("the agent's log holds bytes of the photo")
	}
}

// A manifest reaches the hub with its dossier and PostgreSQL's record row
// names the file by its SHA-256, the key of fieldsync_attachments.
func TestE2EHubExportsAttachmentFieldsAsHashes(t *testing.T) {
	pg := pgtest.Require(t)
	c := cluster(t)
	hub := startHub(t, c, "hub", "--postgres", pg)
	a := start(t, c, "laptop-a")
	id := put(t, a, dossier(2, "Lũng Cú"))
	photo, data := syntheticFile(t, t.TempDir(), "anh.jpg", []byte{0xFF, 0xD8, 0xFF, 0xE0}, 50_000, 3)
	if code, out := cliRun(t, c, "attach", "--api", a.API, "--id", id, "--kind", "photo", photo); code != 0 {
		t.Fatalf("attach: exit %d\n%s", code, out)
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := a.Start("--hub", hub.Listen); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, pg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var got string
	if err := harness.WaitFor(30*time.Second, func() (bool, error) {
		err := conn.QueryRow(ctx, `SELECT coalesce(fields->>'attachment.photo', '') FROM fieldsync_records WHERE id = $1`, id).Scan(&got)
		return err == nil && got != "", nil
	}); err != nil {
		t.Fatalf("the record row never named its photo (got %q)", got)
	}
	if got != hexSum(data) {
		t.Fatalf("PostgreSQL names the photo %q, want its SHA-256 %s", got, hexSum(data))
	}
}
