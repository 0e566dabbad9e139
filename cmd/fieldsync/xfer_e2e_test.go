package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/agent/attach"
	"github.com/fieldsync/fieldsync/agent/export/pgtest"
	"github.com/fieldsync/fieldsync/agent/identity"
	"github.com/fieldsync/fieldsync/agent/transport"
	"github.com/fieldsync/fieldsync/agent/wire"
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
	// 72 MB: loopback moves it in about a second, long enough for the
	// watch below (every 5 ms) to see B halfway and kill A
	// before the rest arrives; 20 MB once went whole between two looks.
	recs, files := capture(t, a, 12, 6_000_000, 2)
	total := chunksOf(files)
	l3 := start(t, c, "laptop-c", a)
	converge(t, recs, l3)
	attachmentsDone(t, l3, files, 90*time.Second)
	if err := l3.Stop(); err != nil {
		t.Fatal(err)
	}
	b := start(t, c, "laptop-b", a)
	// Received counts chunks stored; those arrived and waiting to be
	// stored in a batch (Storing) are B's too, and A's death loses none.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		st := status(t, b).Attachments
		if st.ReceivedChunks+uint64(st.Storing) >= uint64(total/2) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B: %+v", st)
		}
	}
	a.Kill()
	if err := harness.WaitFor(30*time.Second, func() (bool, error) {
		return status(t, b).Attachments.Storing == 0, nil
	}); err != nil {
		t.Fatalf("B never stored what it received: %+v", status(t, b).Attachments)
	}
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
	if code, out := cliRun(t, c, "status", "--api", a.API); code != 0 || !strings.Contains(out, fmt.Sprintf("Attachments undelivered:  %d (fingerprint ", len(files))) || !strings.Contains(out, "photo 2400000 B") {
		t.Fatalf("status table: exit %d\n%s", code, out)
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

// With --prune-delivered, a laptop drops the bytes of the attachments the
// hub's receipt covers, keeps their manifests, says how much it freed, and
// does not fetch them again from a peer that still holds them.
func TestE2EPruneDeliveredDropsBytesTheHubHolds(t *testing.T) {
	c := cluster(t)
	hub := startHub(t, c, "hub")
	a, err := c.Provision("laptop-a", "field")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start("--prune-delivered"); err != nil {
		t.Fatal(err)
	}
	recs, files := capture(t, a, 6, 300_000, 5)
	var total int64
	for _, d := range files {
		total += int64(len(d))
	}
	b := start(t, c, "laptop-b", a)
	converge(t, recs, b)
	attachmentsDone(t, b, files, 60*time.Second)
	if st := status(t, a).Attachments; st.PrunedBytes != 0 {
		t.Fatalf("pruned %d bytes before any receipt", st.PrunedBytes)
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := a.Start("--prune-delivered", "--hub", hub.Listen, "--join", b.Listen); err != nil {
		t.Fatal(err)
	}
	attachmentsDone(t, hub, files, 60*time.Second)
	if err := harness.WaitFor(30*time.Second, func() (bool, error) {
		return status(t, a).Attachments.PrunedBytes == total, nil
	}); err != nil {
		t.Fatalf("laptop-a pruned %d of %d bytes", status(t, a).Attachments.PrunedBytes, total)
	}
	// The log line follows the commit that status reads.
	if err := harness.WaitFor(5*time.Second, func() (bool, error) {
		return strings.Contains(a.Log(), "pruned delivered attachments"), nil
	}); err != nil {
		t.Fatalf("the prune is not in the log:\n%s", a.Log())
	}
	list, err := a.Client.Attachments(ctx, recs[0])
	if err != nil || len(list) != 11 {
		t.Fatalf("attachments after the prune: %v %v", list, err)
	}
	for _, at := range list {
		if !at.Pruned || !at.Delivered || at.Complete {
			t.Fatalf("after the prune: %+v", at)
		}
	}
	code, out := cliRun(t, c, "attachment", "--api", a.API, "--sha256", list[0].SHA256, "--out", t.TempDir()+"/x.jpg")
	if code == 0 || !strings.Contains(out, "đã được xoá") {
		t.Fatalf("reading a pruned file: exit %d\n%s", code, out)
	}
	// B, connected, still holds every file; A asks it for none of them.
	time.Sleep(3 * time.Second) // a safety pass and the chunk scheduler's tick
	st := status(t, a)
	if st.Attachments.ReceivedChunks != 0 || st.Attachments.Incomplete != 0 {
		t.Fatalf("laptop-a fetched pruned files again: %+v", st.Attachments)
	}
	for kind, n := range st.Attachments.PendingBytes {
		if n != 0 {
			t.Fatalf("laptop-a counts %d bytes of %s pending after the prune", n, kind)
		}
	}
	if got, err := a.Client.ListUndelivered(ctx); err != nil || len(got) != 0 {
		t.Fatalf("undelivered after the prune: %d (%v)", len(got), err)
	}
	attachmentsDone(t, b, files, time.Second)
	// A restart does not bring them back either.
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := a.Start("--prune-delivered", "--join", b.Listen); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if st := status(t, a).Attachments; st.ReceivedChunks != 0 || st.PrunedBytes != total {
		t.Fatalf("after a restart: %+v", st)
	}
}

// On a thin link (a 1 Mbit/s proxy), a laptop's whole backlog of dossier
// changes reaches the hub before the first chunk of any file, and every
// fingerprint before the first photo chunk.
func TestE2EThinLinkCarriesDossiersThenFingerprintsThenPhotos(t *testing.T) {
	c := cluster(t)
	hub := startHub(t, c, "hub")
	a, err := c.Provision("boat", "field")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := harness.LoadDevice(a.Data)
	if err != nil {
		t.Fatal(err)
	}
	ops, opBytes, err := harness.SignedDossiers(dev, 500, 7)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := harness.Preload(a, ops); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	_, files := capture(t, a, 3, 100_000, 9)
	total := status(t, a).VersionVector[dev.ID()]
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	proxy, err := harness.NewProxy(hub.Listen)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	proxy.Throttle(125_000)
	if err := a.Start("--hub", proxy.Addr); err != nil {
		t.Fatal(err)
	}
	const photos = 3 * 100_000
	var samples, fingerprintPhase, photoPhase int
	deadline := time.Now().Add(90 * time.Second)
	for {
		st := status(t, hub)
		at := st.Attachments
		opsDone := st.VersionVector[dev.ID()] == total
		known := at.Complete+at.Incomplete == len(files)
		samples++
		if at.ReceivedChunks > 0 && !opsDone {
			t.Fatalf("a chunk reached the hub before the dossiers: %d of %d changes, %d chunks", st.VersionVector[dev.ID()], total, at.ReceivedChunks)
		}
		if opsDone && known {
			fp, ph := at.PendingBytes["fingerprint"], at.PendingBytes["photo"]
			if fp > 0 && ph < photos {
				t.Fatalf("a photo chunk before the fingerprints: %d bytes of fingerprints and %d of photos pending", fp, ph)
			}
			if fp > 0 {
				fingerprintPhase++
			} else if ph > 0 {
				photoPhase++
			}
			if at.Incomplete == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hub holds %+v after 90 s", at)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if fingerprintPhase == 0 || photoPhase == 0 {
		t.Fatalf("%d samples: %d while fingerprints were pending, %d while photos were: the link was not thin enough to tell", samples, fingerprintPhase, photoPhase)
	}
	t.Logf("%d bytes of changes then %d files through a 1 Mbit/s link: %d samples, %d in the fingerprint phase, %d in the photo phase, %d bytes carried",
		opBytes, len(files), samples, fingerprintPhase, photoPhase, proxy.Bytes())
	attachmentsDone(t, hub, files, 10*time.Second)
}

// A peer that sends a chunk nobody asked for, or bytes that do not match the
// hash asked for, is refused chunk by chunk and counted; the session goes
// on, and the file completes from the right bytes.
func TestE2EBadChunksAreRefusedAndCounted(t *testing.T) {
	c := cluster(t)
	a := start(t, c, "laptop-a")
	recs, files := capture(t, a, 1, 300_000, 11)
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	ops, err := harness.OwnOps(a)
	if err != nil {
		t.Fatal(err)
	}
	devA, err := harness.LoadDevice(a.Data)
	if err != nil {
		t.Fatal(err)
	}
	credA, err := devA.Credential.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	chunks := map[[32]byte][]byte{}
	for _, data := range files {
		for off := 0; off < len(data); off += attach.ChunkSize {
			part := data[off:min(off+attach.ChunkSize, len(data))]
			chunks[sha256.Sum256(part)] = part
		}
	}
	b := start(t, c, "laptop-b")
	relay, err := c.Provision("relay", "field")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := harness.LoadDevice(relay.Data)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := dev.Credential.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	st, cleanup := openSync(t, dev, cred, b.Listen)
	defer cleanup()
	w, r := wire.NewWriter(st), wire.NewReader(st)
	send := func(m *wire.Message) {
		t.Helper()
		if err := w.Write(m); err != nil {
			t.Fatal(err)
		}
	}
	send(&wire.Message{Hello: &wire.Hello{VV: map[string]uint64{devA.ID(): uint64(len(ops))}, Chunks: true}})
	// A chunk of the file, before anyone asked for it: B does not even
	// hold the manifest yet.
	var some [32]byte
	for h := range chunks {
		some = h
		break
	}
	send(&wire.Message{Chunk: &wire.Chunk{Hash: some[:], Data: chunks[some]}})
	send(&wire.Message{Batch: &wire.Batch{N: 1, Ops: ops, Creds: []wire.Credential{{Origin: devA.ID(), Raw: credA}}}})
	altered := false
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		st.SetDeadline(time.Now().Add(2 * time.Second))
		m, err := r.Read()
		if err != nil {
			if s := status(t, b).Attachments; s.Complete == len(files) {
				break
			}
			continue
		}
		if m.Want == nil {
			continue
		}
		for _, raw := range m.Want.Hashes {
			h := [32]byte(raw)
			data := chunks[h]
			if !altered {
				data = bytes.Clone(data)
				data[len(data)/2] ^= 0xFF
				altered = true
			}
			send(&wire.Message{Chunk: &wire.Chunk{Hash: h[:], Data: data}})
		}
	}
	attachmentsDone(t, b, files, 10*time.Second)
	s := status(t, b).Attachments
	if s.RefusedChunks != 2 {
		t.Fatalf("B refused %d chunks, want 2 (one not asked for, one altered)", s.RefusedChunks)
	}
	for _, msg := range []string{"refused chunk: not asked of this peer", "refused chunk: bytes do not match the hash asked for"} {
		if !strings.Contains(b.Log(), msg) {
			t.Fatalf("B's log lacks %q:\n%s", msg, b.Log())
		}
	}
	converge(t, recs, b)
}

// openSync connects to an agent as dev and opens a sync stream.
func openSync(t *testing.T, dev *identity.Device, cred []byte, addr string) (transport.Stream, func()) {
	t.Helper()
	tc := transport.DefaultConfig()
	tc.Listen = "127.0.0.1:0"
	tc.Key = dev.Private
	tc.Credential = cred
	tc.Admit = func(pub ed25519.PublicKey, raw []byte) (transport.Peer, error) {
		c, err := identity.UnmarshalCredential(raw)
		if err != nil {
			return transport.Peer{}, err
		}
		return transport.Peer{DeviceID: c.DeviceID, Name: c.Name}, dev.Verifier().VerifyPeer(c, pub, time.Now())
	}
	h, err := transport.New(tc)
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	peerID, err := h.ConnectAddr(cctx, addr)
	if err != nil {
		h.Close()
		t.Fatal(err)
	}
	st, err := h.Open(cctx, peerID, wire.Protocol)
	if err != nil {
		h.Close()
		t.Fatal(err)
	}
	return st, func() { st.Reset(); h.Close() }
}
