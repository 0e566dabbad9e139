package store

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/crdt"
)

const memChildEnv = "FIELDSYNC_STORE_MEM_CHILD"

// peakRSSLimit is the resident memory a store holding 100,000 dossiers must
// stay under (the whole process: store, Go runtime, test harness).
const peakRSSLimit = 200 << 20

// TestPeakMemory ingests 100,000 signed ~1 KB dossier ops into a fresh store
// in a child process, so that the peak resident set (VmHWM) it reports is
// the store's alone, not that of tests run before it in this binary.
func TestPeakMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("ingests 100,000 ops")
	}
	dir := filepath.Join(t.TempDir(), "store")
	cmd := exec.Command(os.Args[0], "-test.run=^TestPeakMemoryChild$", "-test.v")
	cmd.Env = append(os.Environ(), memChildEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var peak int64 = -1
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "peak-rss-bytes "); ok {
			peak, _ = strconv.ParseInt(rest, 10, 64)
		}
		if strings.Contains(line, "ingest ") || strings.Contains(line, "rss ") {
			t.Log(strings.TrimSpace(line))
		}
	}
	if peak < 0 {
		t.Fatalf("child printed no peak:\n%s", out)
	}
	t.Logf("peak resident set ingesting %d ops: %.1f MB", benchOps, float64(peak)/(1<<20))
	if peak <= 0 {
		t.Skip("no /proc/self/status here")
	}
	if peak > peakRSSLimit {
		t.Fatalf("peak RSS %.1f MB, limit %d MB", float64(peak)/(1<<20), peakRSSLimit>>20)
	}
}

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
	for i := 0; i < benchOps; i++ {
		batch = append(batch, g.next(t, recordID(g.origin, i), crdt.KindCreate, plain(dossier(r, i)), baseWall+int64(i)))
		if len(batch) == benchBatch || i == benchOps-1 {
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
		}
		if i == 80000 && os.Getenv("HEAPPROF") != "" {
			f, _ := os.Create(os.Getenv("HEAPPROF"))
			pprof.WriteHeapProfile(f)
			f.Close()
		}
		if i%20000 == 0 || (os.Getenv("XVERBOSE") != "" && i%5000 == 0) {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			fmt.Printf("rss at %d: %s heap %d/%d MB\n", i, rssLine(), ms.HeapInuse>>20, ms.HeapSys>>20)
		}
	}
	fmt.Printf("ingest %d ops: %.0f ops/s\n", benchOps, benchOps/ingest.Seconds())
	fmt.Printf("rss at end: %s\n", rssLine())
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("rss go heap: sys %d MB, heap in use %d MB\n", ms.Sys>>20, ms.HeapInuse>>20)
	if n, _ := s.RecordCount(); n != benchOps {
		t.Fatalf("records %d", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("peak-rss-bytes %d\n", vmHWM())
}

func rssLine() string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return ""
	}
	defer f.Close()
	var parts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		for _, k := range []string{"VmHWM:", "VmRSS:", "RssAnon:", "RssFile:"} {
			if strings.HasPrefix(sc.Text(), k) {
				parts = append(parts, strings.Join(strings.Fields(sc.Text()), " "))
			}
		}
	}
	return strings.Join(parts, ", ")
}
