package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/agent/attach"
	"github.com/fieldsync/fieldsync/agent/export/pgtest"
	"github.com/fieldsync/fieldsync/cmd/internal/harness"
)

// End-to-end tests of the transfer of attachment chunks between laptops and
// up to the hub.

var (
	jpegHead = []byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0}
	fmrHead  = []byte("FMR\x00 20\x00")
)

// capture puts n dossiers on a, each with a photo of photoBytes and ten
// fingerprint templates of about 20 KB (synthetic, seeded), through the
// API, and returns the dossier ids and sha256 -> bytes of every file.
func capture(t *testing.T, a *harness.Agent, n, photoBytes int, seed uint64) ([]string, map[string][]byte) {
	t.Helper()
	dir := t.TempDir()
	files := map[string][]byte{}
	var recs []string
	for i := range n {
		id := put(t, a, dossier(int(seed)*1000+i, "Lũng Cú"))
		recs = append(recs, id)
		path, data := syntheticFile(t, dir, fmt.Sprintf("anh-%d.jpg", i), jpegHead, photoBytes, seed*100000+uint64(i))
		if _, err := a.Client.Attach(ctx, id, attach.KindPhoto, "", path); err != nil {
			t.Fatalf("attach photo on %s: %v", a.Name, err)
		}
		files[hexSum(data)] = data
		for f, finger := range attach.Fingers {
			path, data := syntheticFile(t, dir, fmt.Sprintf("%d-%s.fmr", i, finger), fmrHead, 20_000+f*37, seed*100000+uint64(1000*(i+1)+f))
			if _, err := a.Client.Attach(ctx, id, attach.KindFingerprint, finger, path); err != nil {
				t.Fatalf("attach %s on %s: %v", finger, a.Name, err)
			}
			files[hexSum(data)] = data
		}
	}
	return recs, files
}

// attachmentsDone waits until a holds every file of files whole, and checks
// that each comes back byte for byte.
func attachmentsDone(t *testing.T, a *harness.Agent, files map[string][]byte, timeout time.Duration) {
	t.Helper()
	err := harness.WaitFor(timeout, func() (bool, error) {
		st := status(t, a).Attachments
		return st.Complete == len(files) && st.Incomplete == 0, nil
	})
	if err != nil {
		t.Fatalf("%s: attachments %+v, want %d complete", a.Name, status(t, a).Attachments, len(files))
	}
	for sum, data := range files {
		body, _, _, err := a.Client.AttachmentFile(ctx, sum)
		if err != nil {
			t.Fatalf("%s: file %s: %v", a.Name, sum[:12], err)
		}
		got, err := io.ReadAll(body)
		body.Close()
		if err != nil || !bytes.Equal(got, data) {
			s := sha256.Sum256(got)
			t.Fatalf("%s: file %s came back as %s (%v)", a.Name, sum[:12], hex.EncodeToString(s[:6]), err)
		}
	}
	st := status(t, a).Attachments
	for kind, n := range st.PendingBytes {
		if n != 0 {
			t.Fatalf("%s: %d bytes of %s pending once complete", a.Name, n, kind)
		}
	}
}

func chunksOf(files map[string][]byte) int {
	n := 0
	for _, d := range files {
		n += (len(d) + attach.ChunkSize - 1) / attach.ChunkSize
	}
	return n
}

// The field trip's attachments: A captures 50 dossiers with a photo and ten
// fingerprints each; B and C, which joined A, hold every file byte for byte;
// A leaves and D, which meets only C, gets everything from C.
func TestE2EAttachmentsReachEveryLaptop(t *testing.T) {
	c := cluster(t)
	a := start(t, c, "laptop-a")
	recs, files := capture(t, a, 50, 300_000, 1)
	if len(files) != 550 {
		t.Fatalf("%d distinct files", len(files))
	}
	b := start(t, c, "laptop-b", a)
	l3 := start(t, c, "laptop-c", a)
	converge(t, recs, b, l3)
	attachmentsDone(t, b, files, 90*time.Second)
	attachmentsDone(t, l3, files, 90*time.Second)
	// The same manifests list the same files on every laptop.
	for _, id := range recs[:5] {
		want, err := a.Client.Attachments(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		got, err := l3.Client.Attachments(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		sums := func(l []api.Attachment) []string {
			var out []string
			for _, x := range l {
				out = append(out, x.Kind+x.Finger+x.SHA256)
			}
			return out
		}
		if !slices.Equal(sums(want), sums(got)) {
			t.Fatalf("dossier %s lists %v on A, %v on C", id, sums(want), sums(got))
		}
	}
	if st := status(t, b).Attachments; st.RefusedChunks != 0 {
		t.Fatalf("B refused %d chunks", st.RefusedChunks)
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	d := start(t, c, "laptop-d", l3)
	converge(t, recs, d)
	attachmentsDone(t, d, files, 90*time.Second)
}

// A transfer cut halfway resumes from another laptop: B gets about half of
// the files from A, A dies, and B gets the rest from C, asking C for no
// chunk B already holds beyond one window.
func TestE2EAttachmentTransferResumesFromAnotherLaptop(t *testing.T) {
	c := cluster(t)
	a := start(t, c, "laptop-a")
	recs, files := capture(t, a, 10, 2_000_000, 2)
	total := chunksOf(files)
	l3 := start(t, c, "laptop-c", a)
	converge(t, recs, l3)
	attachmentsDone(t, l3, files, 90*time.Second)
	if err := l3.Stop(); err != nil {
		t.Fatal(err)
	}
	b := start(t, c, "laptop-b", a)
	if err := harness.WaitFor(60*time.Second, func() (bool, error) {
		return status(t, b).Attachments.ReceivedChunks >= uint64(total/2), nil
	}); err != nil {
		t.Fatalf("B: %+v", status(t, b).Attachments)
	}
	a.Kill()
	half := status(t, b).Attachments
	if half.Incomplete == 0 {
		t.Fatalf("B got everything before the cut: %+v", half)
	}
	startAgain(t, l3, b)
	attachmentsDone(t, b, files, 90*time.Second)
	st := status(t, b)
	if resent := int(st.Attachments.ReceivedChunks) - total; resent > 8 || resent < 0 {
		t.Fatalf("B received %d chunks for %d (%d again)", st.Attachments.ReceivedChunks, total, resent)
	}
	var fromC uint64
	for _, p := range st.Peers {
		if p.Name == "laptop-c" && p.Session != nil {
			fromC += p.Session.ChunksReceived
		}
	}
	if fromC == 0 || fromC >= uint64(total) {
		t.Fatalf("B received %d of %d chunks from C", fromC, total)
	}
	t.Logf("B: %d chunks from A before the cut, %d from C after, %d in all", half.ReceivedChunks, fromC, total)
}

// The border post: A captures dossiers with their photo and fingerprints; B
// merges them; B alone reaches the hub, which receives every file through
// B, verifies it, exports it to PostgreSQL byte for byte, and receipts it;
// back on the island A learns from B which biometrics are safe upstream,
// and a photo taken after the trip makes its dossier undelivered again.
func TestE2EHubCompletesDossiersWithTheirAttachments(t *testing.T) {
	pg := pgtest.Require(t)
	c := cluster(t)
	hub := startHub(t, c, "hub", "--postgres", pg)
	a := start(t, c, "island-a")
	recs, files := capture(t, a, 8, 300_000, 3)
	b := start(t, c, "island-b", a)
	converge(t, recs, b)
	attachmentsDone(t, b, files, 60*time.Second)
	if got, err := a.Client.ListUndelivered(ctx); err != nil || len(got) != len(recs) {
		t.Fatalf("undelivered before the trip: %d (%v)", len(got), err)
	}
	if st := status(t, a).Upstream; st.AttachmentsUndelivered != len(files) || st.AttachmentsPendingBytes["photo"] != 8*300_000 {
		t.Fatalf("before the trip: %d attachments undelivered, pending %v", st.AttachmentsUndelivered, st.AttachmentsPendingBytes)
	}

	a.Kill()
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := b.Start("--hub", hub.Listen); err != nil {
		t.Fatal(err)
	}
	attachmentsDone(t, hub, files, 60*time.Second)
	if err := harness.WaitFor(30*time.Second, func() (bool, error) {
		st := status(t, b).Upstream
		return st.AttachmentsUndelivered == 0 && st.Undelivered == 0, nil
	}); err != nil {
		t.Fatalf("island-b's upstream: %+v", status(t, b).Upstream)
	}
	// PostgreSQL holds every file once per dossier field, byte for byte.
	conn, err := pgx.Connect(ctx, pg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT record_id, kind, finger, sha256, size, bytes FROM fieldsync_attachments`)
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for rows.Next() {
		var rec, kind, finger, sum string
		var size int64
		var data []byte
		if err := rows.Scan(&rec, &kind, &finger, &sum, &size, &data); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(files[sum], data) || int64(len(data)) != size || !slices.Contains(recs, rec) || (kind == "fingerprint") == (finger == "") {
			t.Fatalf("row %s %s %s %s: %d bytes, not the file captured", rec, kind, finger, sum[:12], len(data))
		}
		exported[sum] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(exported) != len(files) {
		t.Fatalf("PostgreSQL holds %d of %d files", len(exported), len(files))
	}
	// In the transfer's priority order: the hub asked for every
	// fingerprint before any photo, and exports each file as it becomes
	// whole, several found whole at once in that same order (not in log
	// order, where each photo precedes its dossier's fingerprints).
	var printsFirst bool
	if err := conn.QueryRow(ctx, `SELECT max(exported_at) FILTER (WHERE kind = 'fingerprint')
		< min(exported_at) FILTER (WHERE kind = 'photo') FROM fieldsync_attachments`).Scan(&printsFirst); err != nil {
		t.Fatal(err)
	}
	if !printsFirst {
		t.Fatal("PostgreSQL got a photo before some fingerprint")
	}

	// Back on the island: A meets B, not the hub.
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	startAgain(t, a)
	startAgain(t, b, a)
	if err := harness.WaitFor(30*time.Second, func() (bool, error) {
		st := status(t, a).Upstream
		return st.AttachmentsUndelivered == 0 && st.Undelivered == 0, nil
	}); err != nil {
		t.Fatalf("island-a never learned of the delivery: %+v", status(t, a).Upstream)
	}
	list, err := a.Client.Attachments(ctx, recs[0])
	if err != nil || len(list) != 11 {
		t.Fatalf("attachments of %s: %v %v", recs[0], list, err)
	}
	for _, at := range list {
		if !at.Delivered {
			t.Fatalf("not delivered on A after the trip: %+v", at)
		}
	}
	if got, err := a.Client.ListUndelivered(ctx); err != nil || len(got) != 0 {
		t.Fatalf("undelivered after the trip: %d (%v)", len(got), err)
	}
	// A new photo of a delivered dossier: the dossier is undelivered until
	// the hub holds the photo.
	path, _ := syntheticFile(t, t.TempDir(), "anh-moi.jpg", jpegHead, 100_000, 77)
	if _, err := a.Client.Attach(ctx, recs[3], attach.KindPhoto, "", path); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Client.ListUndelivered(ctx); err != nil || len(got) != 1 || got[0].ID != recs[3] {
		t.Fatalf("undelivered after a new photo: %v (%v)", got, err)
	}
	if st := status(t, a).Upstream; st.AttachmentsUndelivered != 1 || st.AttachmentsPendingBytes["photo"] != 100_000 {
		t.Fatalf("after a new photo: %+v", st)
	}
}
