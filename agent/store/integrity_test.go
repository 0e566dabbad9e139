package store

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fieldsync/fieldsync/crdt"
)

// damageSubject writes a store (encrypted, as the agent's) with dossiers,
// corrections and a large record, and returns its directory: closed cleanly,
// or, with crashed set, a copy taken while it was open, which is what a
// kill -9 leaves (the copy reads the page cache, as the next open would),
// memtable log included.
func damageSubject(t *testing.T, crashed bool) (dir string, head crdt.Head) {
	t.Helper()
	key := testKey(1)
	s, src := openTest(t, damageOptions)
	r := rand.New(rand.NewPCG(7, 8))
	for i := 0; i < 260; i++ {
		id := recordID("me", i)
		if _, err := s.Write("me", key, id, crdt.KindCreate, dossier(r, i), baseWall+int64(i)); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			if _, err := s.Write("me", key, recordID("me", i/2), crdt.KindUpdate, map[string]string{"notes": strings.Repeat("sửa ", 20+i)}, baseWall+int64(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	head = s.Head("me")
	if !crashed {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return src, head
	}
	dir = copyStore(t, src)
	os.Remove(filepath.Join(dir, "LOCK"))
	return dir, head
}

// damageOptions: encrypted, and memtables of 1 MB, so the stores have
// tables and several logs, and a value log longer than the reach of one
// write batch (2 × 15% of a memtable).
func damageOptions(o *Options) {
	o.EncryptionKey = make([]byte, 32)
	o.EncryptionKey[1] = 9
	o.MemTableSize = 1 << 20
}

// copyStore copies a closed store's directory (sparse files stay sparse).
func copyStore(t *testing.T, src string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	if out, err := exec.Command("cp", "-a", "--sparse=always", src, dir).CombinedOutput(); err != nil {
		t.Fatalf("copy: %v %s", err, out)
	}
	return dir
}

func openDamaged(dir string) (*Store, error) {
	o := testOptions(dir)
	damageOptions(&o)
	return Open(o)
}

// firstFile returns the path of the only file of dir ending in suffix.
func firstFile(t *testing.T, dir, suffix string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*"+suffix))
	if len(m) == 0 {
		t.Fatalf("no %s file in %s", suffix, dir)
	}
	return m[len(m)-1]
}

// extent is the offset after the last non-zero byte of path.
func extent(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := len(b)
	for i > 0 && b[i-1] == 0 {
		i--
	}
	return int64(i)
}

func flip(t *testing.T, path string, at int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[at] ^= 0x20
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Damage that badger would have repaired by cutting, silently (an older
// state served as current, or nothing at all), or met with a panic, is
// refused at open with an error naming the file; the store opens again
// once the file is restored. Found by flipping bytes of the stores of real
// agents (cmd/fieldsync TestCorruptExplore).
func TestDamagedFilesAreRefused(t *testing.T) {
	cases := []struct {
		name    string
		crashed bool
		file    string // suffix of the file damaged
		damage  func(t *testing.T, path string)
	}{
		{"memtable log, byte flipped, committed transactions after it", true, ".mem", func(t *testing.T, p string) { flip(t, p, extent(t, p)/3) }},
		{"memtable log, byte flipped three transactions before its end", true, ".mem", func(t *testing.T, p string) { flip(t, p, entryStarts(t, p, 12)) }},
		{"memtable log cut short inside an entry", true, ".mem", func(t *testing.T, p string) { truncate(t, p, entryStarts(t, p, 3)+2) }},
		{"newest value log, byte flipped well before its end", true, ".vlog", func(t *testing.T, p string) { flip(t, p, extent(t, p)/5) }},
		{"newest value log, byte flipped near its end, where the memtable log points", true, ".vlog", func(t *testing.T, p string) { flip(t, p, extent(t, p)-2000) }},
		{"newest value log cut short inside an entry", true, ".vlog", func(t *testing.T, p string) { truncate(t, p, extent(t, p)-3) }},
		{"value log of a cleanly closed store, last byte flipped", false, ".vlog", func(t *testing.T, p string) { flip(t, p, extent(t, p)-1) }},
		{"value log of a cleanly closed store cut at an entry", false, ".vlog", func(t *testing.T, p string) { truncate(t, p, lastEntryStart(t, p)) }},
		{"table, byte flipped in a block", false, ".sst", func(t *testing.T, p string) { flip(t, p, 100) }},
		{"table, footer cut", false, ".sst", func(t *testing.T, p string) { truncate(t, p, extent(t, p)/2) }},
		{"MANIFEST, length of a change set", false, "MANIFEST", func(t *testing.T, p string) { flipLength(t, p) }},
		{"MANIFEST of a cleanly closed store, last byte cut", false, "MANIFEST", func(t *testing.T, p string) { truncate(t, p, extent(t, p)-1) }},
	}
	type subject struct {
		dir  string
		head crdt.Head
	}
	subjects := map[bool]subject{}
	for _, crashed := range []bool{false, true} {
		dir, head := damageSubject(t, crashed)
		subjects[crashed] = subject{dir, head}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir, head := copyStore(t, subjects[c.crashed].dir), subjects[c.crashed].head
			path := firstFile(t, dir, c.file)
			switch c.file {
			case ".vlog":
				path = newestVlog(t, dir)
			case ".mem":
				path = newestMem(t, dir)
			}
			saved, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			record, _ := os.ReadFile(filepath.Join(dir, closeRecordName))
			c.damage(t, path)
			s, err := openDamaged(dir)
			if err == nil {
				s.Close()
				t.Fatalf("a store with %s opened", c.name)
			}
			var de *DamageError
			if !errors.Is(err, ErrDamaged) || !errors.As(err, &de) || de.File != path || !strings.Contains(err.Error(), path) {
				t.Fatalf("open: %v, want a DamageError naming %s", err, path)
			}
			// Refusing changed nothing: restored, the store opens whole.
			if err := os.WriteFile(path, saved, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(dir, closeRecordName)); (err == nil) != (record != nil) {
				t.Fatalf("close record kept %v, was there %v", err == nil, record != nil)
			}
			s, err = openDamaged(dir)
			if err != nil {
				t.Fatalf("restored store: %v", err)
			}
			defer s.Close()
			if s.Head("me") != head {
				t.Fatalf("head %+v, want %+v", s.Head("me"), head)
			}
			if _, err := os.Stat(filepath.Join(dir, closeRecordName)); err == nil {
				t.Fatal("close record still there with the store open")
			}
		})
	}
}

// A store killed while open, and one cleanly closed, open as they are, and
// so does one whose memtable log ends in a torn entry (the write a crash
// cut): checkFiles refuses damage, not crashes.
func TestCrashedStoresStillOpen(t *testing.T) {
	for _, crashed := range []bool{false, true} {
		dir, head := damageSubject(t, crashed)
		s, err := openDamaged(dir)
		if err != nil {
			t.Fatalf("crashed=%v: %v", crashed, err)
		}
		if s.Head("me") != head {
			t.Fatalf("crashed=%v: head %+v, want %+v", crashed, s.Head("me"), head)
		}
		s.Close()
	}
	crashedDir, crashedHead := damageSubject(t, true)
	for _, tear := range []struct {
		name string
		fn   func(t *testing.T, mem string)
	}{
		// A kill in the middle of badger's copy into the file: the last
		// entry's second half never written.
		{"last entry torn", func(t *testing.T, mem string) {
			start, end := lastEntrySpan(t, mem)
			zero(t, mem, (start+end)/2, end)
		}},
		// A power cut that kept the page with the last transaction's
		// closing entry and lost the one before it (written, not synced):
		// an unacknowledged write, not damage.
		{"last transaction's page lost, its closing entry kept", func(t *testing.T, mem string) {
			starts := entryStartList(t, mem)
			zero(t, mem, starts[len(starts)-3], starts[len(starts)-1])
		}},
	} {
		dir, head := copyStore(t, crashedDir), crashedHead
		newest := newestMem(t, dir)
		tear.fn(t, newest)
		s, err := openDamaged(dir)
		if err != nil {
			t.Fatalf("%s: %v", tear.name, err)
		}
		if h := s.Head("me"); h.Seq != head.Seq && h.Seq != head.Seq-1 {
			t.Fatalf("%s: head %d, want %d or the one before", tear.name, h.Seq, head.Seq)
		}
		s.Close()
	}
}

func zero(t *testing.T, path string, from, to int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	clear(b[from:to])
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func newestMem(t *testing.T, dir string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*.mem"))
	if len(m) == 0 {
		t.Fatalf("no memtable log in %s", dir)
	}
	return m[len(m)-1] // names are zero-padded numbers
}

// entryStartList returns the offsets of a log file's entries that check.
func entryStartList(t *testing.T, path string) []int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	r := &logReader{f: f, size: fi.Size()}
	var out []int64
	for off := int64(logFileHeader); ; {
		_, _, size, state, err := r.entry(off)
		if err != nil {
			t.Fatal(err)
		}
		if state != entryOK {
			return out
		}
		out = append(out, off)
		off += size
	}
}

// entryStarts returns the start of the n-th entry from the end, plus 3
// (inside its header's lengths, or its key).
func entryStarts(t *testing.T, path string, n int) int64 {
	starts := entryStartList(t, path)
	return starts[len(starts)-n] + 3
}

func truncate(t *testing.T, path string, to int64) {
	t.Helper()
	if err := os.Truncate(path, to); err != nil {
		t.Fatal(err)
	}
}

func newestVlog(t *testing.T, dir string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	newest := ""
	for _, p := range m {
		if fi, err := os.Stat(p); err == nil && fi.Size() > logFileHeader && p > newest {
			newest = p
		}
	}
	if newest == "" {
		t.Fatalf("no value log with data in %s", dir)
	}
	return newest
}

// lastEntrySpan walks a log file and returns where its last entry that
// checks starts and ends.
func lastEntrySpan(t *testing.T, path string) (start, end int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	r := &logReader{f: f, size: fi.Size()}
	off := int64(logFileHeader)
	for {
		_, _, size, state, err := r.entry(off)
		if err != nil {
			t.Fatal(err)
		}
		if state != entryOK {
			return start, end
		}
		start, end = off, off+size
		off += size
	}
}

func lastEntryStart(t *testing.T, path string) int64 {
	start, _ := lastEntrySpan(t, path)
	return start
}

// flipLength raises the length of the MANIFEST's last change set past the
// end of the file, as a flipped high bit would.
func flipLength(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off, last := 8, 8
	for off+8 <= len(b) {
		last = off
		off += 8 + int(binary.BigEndian.Uint32(b[off:]))
	}
	b[last+2] ^= 0x01 // +65536
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A close record older than the files (the store was opened since by a
// build that keeps none: badger made a value log the record does not list,
// and may have collected one it lists) is ignored, not taken for damage.
func TestStaleCloseRecordIsIgnored(t *testing.T) {
	dir, head := damageSubject(t, false)
	record, err := os.ReadFile(filepath.Join(dir, closeRecordName))
	if err != nil {
		t.Fatal(err)
	}
	s, err := openDamaged(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// What an older build leaves: the old record beside a value log it
	// does not list.
	if err := os.WriteFile(filepath.Join(dir, closeRecordName), record, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "000999.vlog"), make([]byte, logFileHeader), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = openDamaged(dir)
	if err != nil {
		t.Fatalf("stale record: %v", err)
	}
	defer s.Close()
	if s.Head("me") != head {
		t.Fatalf("head %+v, want %+v", s.Head("me"), head)
	}
}
