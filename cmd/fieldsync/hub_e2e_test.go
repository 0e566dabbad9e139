package main

import (
	"strings"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/agent/export"
	"github.com/fieldsync/fieldsync/agent/export/pgtest"
	"github.com/fieldsync/fieldsync/agent/identity"
	"github.com/fieldsync/fieldsync/agent/wire"
	"github.com/fieldsync/fieldsync/cmd/internal/harness"
	"github.com/fieldsync/fieldsync/crdt"
)

// End-to-end tests of the relay upstream: a hub process, field agents, and
// PostgreSQL where the test needs it, all real.

func startHub(t *testing.T, c *harness.Cluster, name string, extra ...string) *harness.Agent {
	t.Helper()
	h, err := c.Provision(name, "hub")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(extra...); err != nil {
		t.Fatal(err)
	}
	return h
}

func status(t *testing.T, a *harness.Agent) api.Status {
	t.Helper()
	st, err := a.Client.Status(ctx)
	if err != nil {
		t.Fatalf("status of %s: %v", a.Name, err)
	}
	return st
}

func pgCounts(t *testing.T, url string) (ops, records int64) {
	t.Helper()
	e, err := export.Open(ctx, export.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ops, records, err = e.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ops, records
}

// The island trip: A and B merge; B reaches the hub and, with no action by
// its officer, delivers A's dossiers and its own; back on the island, A
// learns from B that its dossiers are stored upstream, though it never met
// the hub.
func TestE2EHubRelayDeliversAndReceiptsReturn(t *testing.T) {
	pg := pgtest.Require(t)
	c := cluster(t)
	hub := startHub(t, c, "hub", "--postgres", pg)
	a := start(t, c, "island-a")
	b := start(t, c, "island-b", a)
	var all []string
	for i := 0; i < 5; i++ {
		all = append(all, put(t, a, dossier(i, "Vạn Thạnh")), put(t, b, dossier(10+i, "Vạn Thạnh")))
	}
	converge(t, all, a, b)
	if st := status(t, a); st.Upstream.Undelivered != 10 || st.Upstream.Delivered != 0 || st.Upstream.Reachable {
		t.Fatalf("before the trip: %+v", st.Upstream)
	}
	if got, err := a.Client.ListUndelivered(ctx); err != nil || len(got) != 10 {
		t.Fatalf("undelivered before the trip: %d (%v)", len(got), err)
	}

	// A stays on the island; B goes to the border post, where the hub is.
	a.Kill()
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	startAgain(t, b)
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := b.Start("--hub", hub.Listen); err != nil {
		t.Fatal(err)
	}
	converge(t, all, hub)
	if err := harness.WaitFor(30*time.Second, func() (bool, error) {
		st := status(t, b)
		return st.Upstream.Delivered == 10 && st.Upstream.Undelivered == 0 && st.Upstream.Reachable && st.Upstream.LastContact != nil, nil
	}); err != nil {
		t.Fatalf("island-b's upstream: %+v", status(t, b).Upstream)
	}
	// Exported to PostgreSQL, one row per op and per record.
	if ops, recs := pgCounts(t, pg); ops != 10 || recs != 10 {
		t.Fatalf("PostgreSQL holds %d ops and %d records", ops, recs)
	}

	// Back on the island: A meets B, not the hub.
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	startAgain(t, a)
	startAgain(t, b, a)
	var st api.Status
	if err := harness.WaitFor(30*time.Second, func() (bool, error) {
		st = status(t, a)
		return st.Upstream.Delivered == 10 && st.Upstream.Undelivered == 0, nil
	}); err != nil {
		t.Fatalf("island-a never learned of the delivery: %+v", st.Upstream)
	}
	if st.Upstream.Reachable || st.Upstream.LastContact != nil {
		t.Fatalf("island-a never met the hub, yet: %+v", st.Upstream)
	}
	if got := st.Upstream.Origins[st.DeviceID]; got.Captured != 5 || got.Delivered != 5 || got.Device != "island-a" {
		t.Fatalf("island-a's own count: %+v", got)
	}
	if got, err := a.Client.ListUndelivered(ctx); err != nil || len(got) != 0 {
		t.Fatalf("undelivered after the trip: %d (%v)", len(got), err)
	}
	// Capture goes on; the new dossier is not yet safe.
	id := put(t, a, dossier(99, "Vạn Thạnh"))
	if got, err := a.Client.ListUndelivered(ctx); err != nil || len(got) != 1 || got[0].ID != id {
		t.Fatalf("new dossier not listed as undelivered: %v (%v)", got, err)
	}
}

// The same dossiers carried up by two laptops to two hubs sharing one
// PostgreSQL are stored once.
func TestE2ETwoRelaysTwoHubsOnePostgres(t *testing.T) {
	pg := pgtest.Require(t)
	c := cluster(t)
	hub1 := startHub(t, c, "hub-1", "--postgres", pg)
	hub2 := startHub(t, c, "hub-2", "--postgres", pg)
	a := start(t, c, "laptop-a")
	b := start(t, c, "laptop-b", a)
	var all []string
	for i := 0; i < 6; i++ {
		all = append(all, put(t, a, dossier(i, "Tủa Chùa")), put(t, b, dossier(20+i, "Tủa Chùa")))
	}
	converge(t, all, a, b)
	a.Kill()
	b.Kill()
	// Each laptop reaches a hub of its own, and laptop-b also the first one.
	if err := a.Start("--hub", hub1.Listen); err != nil {
		t.Fatal(err)
	}
	if err := b.Start("--hub", hub2.Listen, "--hub", hub1.Listen); err != nil {
		t.Fatal(err)
	}
	converge(t, all, hub1, hub2)
	if err := harness.WaitFor(30*time.Second, func() (bool, error) {
		ops, recs := pgCounts(t, pg)
		return ops == 12 && recs == 12, nil
	}); err != nil {
		ops, recs := pgCounts(t, pg)
		t.Fatalf("PostgreSQL holds %d ops and %d records, want 12 and 12", ops, recs)
	}
	// Receipts of both hubs reach laptop-a, which met only hub-1.
	if err := harness.WaitFor(30*time.Second, func() (bool, error) {
		st := status(t, a)
		return st.Upstream.Delivered == 12, nil
	}); err != nil {
		t.Fatalf("laptop-a upstream: %+v", status(t, a).Upstream)
	}
	for _, h := range []*harness.Agent{hub1, hub2} {
		if st := status(t, h); st.RefusedOps != 0 {
			t.Fatalf("%s refused %d ops", h.Name, st.RefusedOps)
		}
	}
}

// A device of the deployment that forges or alters another's op is refused
// by the hub: nothing of it is stored, and it is logged and counted.
func TestE2EHubRefusesForgedAndAlteredOps(t *testing.T) {
	c := cluster(t)
	hub := startHub(t, c, "hub")
	a := start(t, c, "laptop-a", hub)
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := a.Start("--hub", hub.Listen); err != nil {
		t.Fatal(err)
	}
	real := put(t, a, dossier(1, "Pả Vi"))
	converge(t, []string{real}, hub)

	// mallory is a laptop of the deployment, run in process so it can lie.
	mallory, err := c.Provision("mallory", "field")
	if err != nil {
		t.Fatal(err)
	}
	mdev, err := harness.LoadDevice(mallory.Data)
	if err != nil {
		t.Fatal(err)
	}
	adev, err := harness.LoadDevice(a.Data)
	if err != nil {
		t.Fatal(err)
	}
	aCred, err := adev.Credential.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// 1. An op claiming to be laptop-a's next op, signed by mallory.
	forged := &crdt.Op{Origin: adev.ID(), Seq: 2, Prev: make([]byte, 32), Time: crdt.Timestamp{Wall: time.Now().UnixMilli()},
		Record: real, Kind: crdt.KindUpdate, Fields: crdt.Writes(nil, map[string]string{"full_name": "Kẻ Giả Mạo"})}
	fs, err := crdt.Sign(forged, mdev.Private)
	if err != nil {
		t.Fatal(err)
	}
	// 2. mallory's own op, altered after signing.
	own := &crdt.Op{Origin: mdev.ID(), Seq: 1, Time: crdt.Timestamp{Wall: time.Now().UnixMilli()},
		Record: "01900000-0000-7000-8000-000000000001", Kind: crdt.KindCreate, Fields: crdt.Writes(nil, map[string]string{"full_name": "Thật", "sex": "nam", "date_of_birth": "1990"})}
	os1, err := crdt.Sign(own, mdev.Private)
	if err != nil {
		t.Fatal(err)
	}
	own.Fields = crdt.Writes(nil, map[string]string{"full_name": "Đã Sửa", "sex": "nam", "date_of_birth": "1990"})
	altered, err := crdt.EncodeOp(own)
	if err != nil {
		t.Fatal(err)
	}
	os1.Body = altered
	mCred, err := mdev.Credential.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	heads := sendBatch(t, mdev, mCred, hub.Listen, &wire.Batch{N: 1, Ops: []crdt.Signed{fs, os1},
		Creds:  []wire.Credential{{Origin: adev.ID(), Raw: aCred}, {Origin: mdev.ID(), Raw: mCred}},
		Ranges: []wire.Range{{Origin: adev.ID(), From: 2, To: 2}, {Origin: mdev.ID(), From: 1, To: 1}}})
	if heads[adev.ID()] != 1 || heads[mdev.ID()] != 0 {
		t.Fatalf("hub's heads after the forgeries: %v", heads)
	}
	st := status(t, hub)
	if st.RefusedOps != 2 || st.Records != 1 {
		t.Fatalf("hub refused %d ops and holds %d records", st.RefusedOps, st.Records)
	}
	rec, err := hub.Client.Get(ctx, real)
	if err != nil || rec.Fields["full_name"] != dossier(1, "Pả Vi")["full_name"] {
		t.Fatalf("record on the hub: %+v (%v)", rec, err)
	}
	if err := harness.WaitFor(5*time.Second, func() (bool, error) {
		return countLines(hub.Log(), `msg="refused op"`) >= 2, nil
	}); err != nil {
		t.Fatalf("no refusal logged:\n%s", hub.Log())
	}
}

// sendBatch connects to an agent as dev, sends a hello and one batch, and
// returns the heads of the agent's acknowledgement.
func sendBatch(t *testing.T, dev *identity.Device, cred []byte, addr string, b *wire.Batch) map[string]uint64 {
	t.Helper()
	st, cleanup := openSync(t, dev, cred, addr)
	defer cleanup()
	st.SetDeadline(time.Now().Add(20 * time.Second))
	w, r := wire.NewWriter(st), wire.NewReader(st)
	if err := w.Write(&wire.Message{Hello: &wire.Hello{VV: map[string]uint64{}}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(&wire.Message{Batch: b}); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := r.Read()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if m.Ack != nil && m.Ack.N == b.N {
			return m.Ack.VV
		}
	}
}

func countLines(log, substr string) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// A device of another deployment cannot upload to the hub.
func TestE2EHubRefusesAnotherDeployment(t *testing.T) {
	c := cluster(t)
	hub := startHub(t, c, "hub")
	x := startIntruder(t, c, "--hub", hub.Listen)
	put(t, x, dossier(3, "Pả Vi"))
	if err := harness.WaitFor(20*time.Second, func() (bool, error) {
		return strings.Contains(hub.Log(), `msg="refused`) && strings.Contains(hub.Log(), "credential of deployment"), nil
	}); err != nil {
		t.Fatalf("hub did not refuse:\n%s", hub.Log())
	}
	if st := status(t, hub); st.Records != 0 || len(st.Peers) != 0 {
		t.Fatalf("hub holds %d records, peers %v", st.Records, st.Peers)
	}
	if st := status(t, x); st.Upstream.Reachable || st.Upstream.Delivered != 0 {
		t.Fatalf("intruder upstream %+v", st.Upstream)
	}
}

// An uplink cut mid-transfer resumes where it stopped: only unacknowledged
// batches are sent again.
func TestE2EUplinkCutMidTransferResumes(t *testing.T) {
	const n = 20000
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
	ops, opBytes, err := harness.SignedDossiers(dev, n, 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := harness.Preload(a, ops); err != nil {
		t.Fatal(err)
	}
	proxy, err := harness.NewProxy(hub.Listen)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	proxy.CutAfter(opBytes / 2)
	if err := a.Start("--hub", proxy.Addr); err != nil {
		t.Fatal(err)
	}
	if err := harness.WaitFor(60*time.Second, func() (bool, error) {
		return status(t, hub).VersionVector[dev.ID()] == n, nil
	}); err != nil {
		t.Fatalf("hub holds %d of %d ops", status(t, hub).VersionVector[dev.ID()], n)
	}
	if proxy.Cuts() != 1 {
		t.Fatalf("the link was cut %d times", proxy.Cuts())
	}
	// At most the window of unacknowledged batches (4 × 512 ops) is resent.
	st := status(t, hub)
	if st.DuplicateOps > 4*512 {
		t.Fatalf("%d ops resent after the cut", st.DuplicateOps)
	}
	// What crossed the link in all: the ops once, the protocol's few
	// percent, and at most the unacknowledged window sent again.
	if limit := opBytes*103/100 + 4*512<<10; proxy.Bytes() > limit {
		t.Fatalf("%d bytes crossed the link for %d bytes of ops (limit %d)", proxy.Bytes(), opBytes, limit)
	}
	t.Logf("cut after %d bytes; %d ops received twice; the link carried %d bytes for %d bytes of ops", opBytes/2, st.DuplicateOps, proxy.Bytes(), opBytes)
	if err := harness.WaitFor(30*time.Second, func() (bool, error) {
		return status(t, a).Upstream.Delivered == n, nil
	}); err != nil {
		t.Fatalf("boat upstream %+v", status(t, a).Upstream)
	}
}
