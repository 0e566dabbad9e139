package store

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/crdt"
)

const crashChildEnv = "FIELDSYNC_STORE_CRASH_CHILD"

// TestCrashKeepsAcknowledgedOps kills a writing process at arbitrary points
// and checks that the store it leaves opens with everything acknowledged.
//
// The child writes its own ops and ingests batches of a peer's ops in a
// loop, printing each acknowledgement only after the call returned nil. The
// parent SIGKILLs it after some acknowledgements (mid-write or mid-ingest),
// reopens the store and checks: every acknowledged op is present, both logs
// verify end to end from an empty head, the records are exactly what
// replaying the logs gives (no half-applied op), the counters match, and
// the clock never went back. Several cycles run on the same store.
//
// A SIGKILL loses what the process had not handed to the kernel; it does
// not lose the page cache as a power cut does. The fsync per commit covers
// that case, and badger's own recovery is what this exercises.
func TestCrashKeepsAcknowledgedOps(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := filepath.Join(t.TempDir(), "store")
	var acked, ackedPeer uint64
	for cycle := 0; cycle < 5; cycle++ {
		w, p := crashCycle(t, dir, 25+37*cycle)
		acked, ackedPeer = max(acked, w), max(ackedPeer, p)
		checkAfterCrash(t, dir, acked, ackedPeer)
	}
}

// crashCycle runs a child on dir, kills it after n acknowledgements and
// returns the highest acknowledged seq of its own log and of the peer's.
func crashCycle(t *testing.T, dir string, n int) (own, peer uint64) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	defer close(done)
	go func() { // never let a stuck child hang the test
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
		}
	}()
	sc := bufio.NewScanner(out)
	acks := 0
	for acks < n && sc.Scan() {
		kind, num, ok := strings.Cut(sc.Text(), " ")
		seq, err := strconv.ParseUint(num, 10, 64)
		if !ok || err != nil {
			continue // test framework chatter
		}
		switch kind {
		case "w":
			own = max(own, seq)
		case "i":
			peer = max(peer, seq)
		default:
			continue
		}
		acks++
	}
	if acks < n {
		t.Fatalf("child stopped after %d acknowledgements: %v", acks, sc.Err())
	}
	// Vary where the kill lands: right after an acknowledgement, or some
	// way into the next call (not a synchronisation: any point is valid).
	time.Sleep(time.Duration(n%7) * 300 * time.Microsecond)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, out)
	_ = cmd.Wait()
	return own, peer
}

func checkAfterCrash(t *testing.T, dir string, acked, ackedPeer uint64) {
	t.Helper()
	s, err := Open(testOptions(dir))
	if err != nil {
		t.Fatalf("open after crash: %v", err)
	}
	defer s.Close()
	me, peer := crashSigners()
	own, theirs := s.Head(me.origin).Seq, s.Head(peer.origin).Seq
	if own < acked || theirs < ackedPeer {
		t.Fatalf("after crash: heads %d, %d; acknowledged %d, %d", own, theirs, acked, ackedPeer)
	}
	checkLog(t, s, me.origin, me.pub(), int(own))
	checkLog(t, s, peer.origin, peer.pub(), int(theirs))

	// Replaying both logs gives exactly the stored records.
	ref := crdt.NewReplica()
	creates := 0
	var last crdt.Timestamp
	for _, origin := range []string{me.origin, peer.origin} {
		ops, err := s.ReadOps(origin, 1, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, sg := range ops {
			o, _ := crdt.Open(sg)
			ref.Deliver(o.Op)
			if origin == me.origin {
				if o.Op.Time.Compare(last) <= 0 {
					t.Fatalf("op %d at %v, not after %v: the clock went back", o.Op.Seq, o.Op.Time, last)
				}
				last = o.Op.Time
				if o.Op.Kind == crdt.KindCreate {
					creates++
				}
			}
		}
	}
	got := allRecords(t, s)
	if len(got) != len(ref.Records) {
		t.Fatalf("%d records stored, replay gives %d", len(got), len(ref.Records))
	}
	for id, want := range ref.Records {
		if err := sameRecord(got[id], want); err != nil {
			t.Fatalf("after crash: %v", err)
		}
	}
	if n, _ := s.RecordCount(); n != len(ref.Records) {
		t.Fatalf("record counter %d, records %d", n, len(ref.Records))
	}
	if held, atRisk, _ := s.AtRisk(me.origin); held+atRisk != creates {
		t.Fatalf("own creates indexed %d, log has %d", held+atRisk, creates)
	}
	t.Logf("after crash: own log %d (acknowledged %d), peer log %d (acknowledged %d), %d records",
		own, acked, theirs, ackedPeer, len(got))
}

// crashSigners are the two origins of the crash test: the device itself
// and a peer whose ops it ingests. Deterministic keys, so parent and
// children agree.
func crashSigners() (me, peer *signer) {
	return newSigner("crash-me", 21), newSigner("crash-peer", 22)
}

// TestCrashChild is the writing process of TestCrashKeepsAcknowledgedOps.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("run by TestCrashKeepsAcknowledgedOps")
	}
	me, peer := crashSigners()
	o := testOptions(dir)
	o.Self = me.origin
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutCredential(me.origin, me.pub(), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.PutCredential(peer.origin, peer.pub(), nil); err != nil {
		t.Fatal(err)
	}
	// The peer's log, regenerated deterministically up to well past what
	// this run can ingest.
	have := int(s.Head(peer.origin).Seq)
	peerLog := make([]crdt.Signed, have+4000)
	for i := range peerLog {
		peerLog[i] = peer.next(t, fmt.Sprintf("p-%d", i/3), kindFor(i), plain(map[string]string{"commune": fmt.Sprintf("Xã %d", i)}), baseWall+int64(i))
	}
	next := int(s.Head(me.origin).Seq)
	for i := 0; ; i++ {
		next++
		id := fmt.Sprintf("m-%d", (next-1)/3)
		kind := kindFor(next - 1)
		// The wall clock restarts low after each crash: the stored clock
		// must still move forward.
		if _, err := s.Write(me.origin, me.key, id, kind, map[string]string{"full_name": fmt.Sprintf("Hầu A Lử %d", next)}, baseWall+int64(i)); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("w %d\n", next)
		if i%4 == 3 {
			from := int(s.Head(peer.origin).Seq)
			if from+20 > len(peerLog) {
				continue
			}
			res, err := s.Ingest(peerLog[from:from+20], baseWall)
			if err != nil || res.AppliedOps() != 20 {
				t.Fatalf("ingest: %+v %v", res, err)
			}
			fmt.Printf("i %d\n", from+20)
		}
	}
}

// kindFor makes every third op (0-based index) a create, the next two
// updates of the same record.
func kindFor(i int) crdt.Kind {
	if i%3 == 0 {
		return crdt.KindCreate
	}
	return crdt.KindUpdate
}
