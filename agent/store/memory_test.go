package store

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/crdt"
)

const memChildEnv = "FIELDSYNC_STORE_MEM_CHILD"

// Memory bounds for a store ingesting 100,000 dossiers, whole process
// (store, Go runtime, test harness, the ops being generated).
//
// Anonymous memory (heap, stacks) is what a laptop really gives up: it is
// bounded tightly. The peak resident set also counts badger's memory-mapped
// files: every value log page written by this process would stay mapped and
// resident, ~2.4 KB per op; the store pages them out every 16 MB (trim.go),
// so the whole process stays under the 200 MB a laptop can spare.
const (
	peakAnonLimit = 100 << 20
	peakRSSLimit  = 200 << 20
)

// TestPeakMemory ingests 100,000 signed ~1 KB dossier ops into a fresh store
// in a child process, so that the peak it reports is the store's alone, not
// that of tests run before it in this binary.
func TestPeakMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("ingests 100,000 ops")
	}
	if raceEnabled {
		t.Skip("the race detector's memory would be measured, not the store's")
	}
	dir := filepath.Join(t.TempDir(), "store")
	cmd := exec.Command(os.Args[0], "-test.run=^TestPeakMemoryChild$", "-test.v")
	cmd.Env = append(os.Environ(), memChildEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	got := map[string]int64{}
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "mem.") {
			got[k], _ = strconv.ParseInt(v, 10, 64)
		}
		if strings.HasPrefix(line, "ingest ") {
			t.Log(line)
		}
	}
	hwm, anon, file := got["mem.vmhwm"], got["mem.peakanon"], got["mem.filerss"]
	if hwm == 0 {
		t.Skipf("no /proc/self/status here:\n%s", out)
	}
	t.Logf("ingesting %d ops: peak RSS (VmHWM) %.1f MB; peak anonymous %.1f MB; file-backed at end %.1f MB",
		benchOps, mb(hwm), mb(anon), mb(file))
	if anon > peakAnonLimit {
		t.Errorf("peak anonymous memory %.1f MB, limit %.0f MB", mb(anon), mb(peakAnonLimit))
	}
	if hwm > peakRSSLimit {
		t.Errorf("peak RSS %.1f MB, limit %.0f MB", mb(hwm), mb(peakRSSLimit))
	}
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }

func TestPeakMemoryChild(t *testing.T) {
	dir := os.Getenv(memChildEnv)
	if dir == "" {
		t.Skip("run by TestPeakMemory")
	}
	s, err := Open(testOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	g := newSigner("memdev", 9)
	if err := s.PutCredential(g.origin, g.pub(), nil); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(9, 9))
	batch := make([]crdt.Signed, 0, benchBatch)
	var ingest time.Duration
	var peakAnon int64
	for i := 0; i < benchOps; i++ {
		batch = append(batch, g.next(t, recordID(g.origin, i), crdt.KindCreate, plain(dossier(r, i)), baseWall+int64(i)))
		if len(batch) < benchBatch && i < benchOps-1 {
			continue
		}
		start := time.Now()
		res, err := s.Ingest(batch, baseWall)
		ingest += time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Refused) > 0 {
			t.Fatalf("refused: %s", refusalsString(res.Refused))
		}
		batch = batch[:0]
		peakAnon = max(peakAnon, procStatus()["RssAnon"])
	}
	fmt.Printf("ingest %d ops in batches of %d: %.0f ops/s (while signing them in the same process)\n",
		benchOps, benchBatch, benchOps/ingest.Seconds())
	if n, _ := s.RecordCount(); n != benchOps {
		t.Fatalf("records %d", n)
	}
	st := procStatus()
	fmt.Printf("mem.vmhwm=%d\nmem.peakanon=%d\nmem.filerss=%d\n", st["VmHWM"], max(peakAnon, st["RssAnon"]), st["RssFile"])
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// procStatus returns the memory lines of /proc/self/status, in bytes (empty
// where that file does not exist).
func procStatus() map[string]int64 {
	out := map[string]int64{}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || !strings.HasSuffix(v, "kB") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(v, "kB")), 10, 64)
		if err == nil {
			out[k] = kb << 10
		}
	}
	return out
}
