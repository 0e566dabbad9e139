package lazyfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Helpers: each fails the test on error. Paths are relative to the mount.

func write(t *testing.T, f *FS, name, data string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.Mountpoint(), name), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func fsync(t *testing.T, f *FS, name string) {
	t.Helper()
	h, err := os.Open(filepath.Join(f.Mountpoint(), name))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Sync(); err != nil {
		t.Fatalf("fsync %s: %v", name, err)
	}
}

// writeSync writes a file and fsyncs it, not its directory.
func writeSync(t *testing.T, f *FS, name, data string) {
	t.Helper()
	write(t, f, name, data)
	fsync(t, f, name)
}

func cut(t *testing.T, f *FS) {
	t.Helper()
	if err := f.Cut(); err != nil {
		t.Fatalf("cut: %v", err)
	}
}

// read reads a file, "<absent>" if it does not exist.
func read(t *testing.T, f *FS, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.Mountpoint(), name))
	if errors.Is(err, os.ErrNotExist) {
		return "<absent>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func expect(t *testing.T, f *FS, name, want string) {
	t.Helper()
	if got := read(t, f, name); got != want {
		t.Errorf("%s: %q, want %q", name, got, want)
	}
}

func lose(t *testing.T, model Model) *FS {
	return MountT(t, Options{Model: model, LoseAll: true})
}

func TestWriteWithoutFsyncIsLost(t *testing.T) {
	f := lose(t, Ordered)
	writeSync(t, f, "a", "durable")
	write(t, f, "a", "not yet")      // O_TRUNC and a write, both pending
	write(t, f, "b", "never synced") // created, never synced
	expect(t, f, "a", "not yet")     // the live view reads what was written
	cut(t, f)
	expect(t, f, "a", "durable")
	expect(t, f, "b", "<absent>")
}

func TestFsyncKeepsWrite(t *testing.T) {
	f := lose(t, Ordered)
	writeSync(t, f, "a", "one")
	h, err := os.OpenFile(filepath.Join(f.Mountpoint(), "a"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteString(" two"); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fdatasync(int(h.Fd())); err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteString(" three"); err != nil { // after the fdatasync: lost
		t.Fatal(err)
	}
	h.Close()
	cut(t, f)
	expect(t, f, "a", "one two")
	// And the file system works on after a cut.
	writeSync(t, f, "a", "after")
	cut(t, f)
	expect(t, f, "a", "after")
}

func TestTruncateIsPendingUntilFsync(t *testing.T) {
	f := lose(t, Ordered)
	writeSync(t, f, "a", "0123456789")
	p := filepath.Join(f.Mountpoint(), "a")
	if err := os.Truncate(p, 4); err != nil {
		t.Fatal(err)
	}
	expect(t, f, "a", "0123")
	cut(t, f)
	expect(t, f, "a", "0123456789")
	if err := os.Truncate(p, 4); err != nil {
		t.Fatal(err)
	}
	fsync(t, f, "a")
	cut(t, f)
	expect(t, f, "a", "0123")
}

// In the Ordered model a file's fsync makes its name durable (ext4, XFS);
// in the Strict model only the directory's fsync does.
func TestCreatedFileNeedsDirectoryFsyncInStrict(t *testing.T) {
	t.Run("ordered", func(t *testing.T) {
		f := lose(t, Ordered)
		writeSync(t, f, "a", "data")
		cut(t, f)
		expect(t, f, "a", "data")
	})
	t.Run("strict", func(t *testing.T) {
		f := lose(t, Strict)
		writeSync(t, f, "a", "data")
		cut(t, f)
		expect(t, f, "a", "<absent>")

		writeSync(t, f, "b", "data")
		fsync(t, f, ".")
		cut(t, f)
		expect(t, f, "b", "data")

		// The name without the data: the directory synced, not the file.
		write(t, f, "c", "data")
		fsync(t, f, ".")
		cut(t, f)
		expect(t, f, "c", "")

		// Data synced before the name still arrives with it.
		if err := os.Mkdir(filepath.Join(f.Mountpoint(), "d"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeSync(t, f, "d/x", "early")
		fsync(t, f, "d") // commits mkdir d and create d/x, in order
		cut(t, f)
		expect(t, f, "d/x", "early")
	})
}

// The rename pattern of atomic replacement (write tmp, fsync, rename,
// fsync the directory): the new name is durable only after the directory's
// fsync, and before it the old state is whole.
func TestRenameIsDurableAfterDirectoryFsync(t *testing.T) {
	for _, model := range []Model{Ordered, Strict} {
		t.Run(model.String(), func(t *testing.T) {
			f := lose(t, model)
			mnt := f.Mountpoint()
			writeSync(t, f, "final", "old")
			fsync(t, f, ".")
			writeSync(t, f, "tmp", "new")
			fsync(t, f, ".")
			if err := os.Rename(filepath.Join(mnt, "tmp"), filepath.Join(mnt, "final")); err != nil {
				t.Fatal(err)
			}
			expect(t, f, "final", "new")
			cut(t, f)
			expect(t, f, "final", "old")
			expect(t, f, "tmp", "new")

			if err := os.Rename(filepath.Join(mnt, "tmp"), filepath.Join(mnt, "final")); err != nil {
				t.Fatal(err)
			}
			fsync(t, f, ".")
			cut(t, f)
			expect(t, f, "final", "new")
			expect(t, f, "tmp", "<absent>")
		})
	}
}

// Ordered: fsync of a renamed file commits the rename too (it touched the
// file), as ext4 does; a later change in the directory stays pending.
func TestOrderedFsyncCommitsUpToTheFilesLastChange(t *testing.T) {
	f := lose(t, Ordered)
	mnt := f.Mountpoint()
	writeSync(t, f, "a", "x")
	if err := os.Rename(filepath.Join(mnt, "a"), filepath.Join(mnt, "b")); err != nil {
		t.Fatal(err)
	}
	write(t, f, "c", "later")
	fsync(t, f, "b")
	cut(t, f)
	expect(t, f, "a", "<absent>")
	expect(t, f, "b", "x")
	expect(t, f, "c", "<absent>")
}

func TestUnlinkAndRmdirArePendingUntilDirectoryFsync(t *testing.T) {
	f := lose(t, Ordered)
	mnt := f.Mountpoint()
	if err := os.Mkdir(filepath.Join(mnt, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeSync(t, f, "d/x", "x")
	writeSync(t, f, "y", "y")
	fsync(t, f, ".")
	if err := errors.Join(os.Remove(filepath.Join(mnt, "d/x")), os.Remove(filepath.Join(mnt, "d")), os.Remove(filepath.Join(mnt, "y"))); err != nil {
		t.Fatal(err)
	}
	cut(t, f)
	expect(t, f, "d/x", "x")
	expect(t, f, "y", "y")
	if err := errors.Join(os.Remove(filepath.Join(mnt, "d/x")), os.Remove(filepath.Join(mnt, "d")), os.Remove(filepath.Join(mnt, "y"))); err != nil {
		t.Fatal(err)
	}
	fsync(t, f, ".")
	cut(t, f)
	expect(t, f, "d/x", "<absent>")
	expect(t, f, "y", "<absent>")
}

// device init makes device.key with a hard link so an existing key is never
// replaced.
func TestHardLink(t *testing.T) {
	f := lose(t, Strict)
	mnt := f.Mountpoint()
	writeSync(t, f, "tmp", "key")
	fsync(t, f, ".")
	if err := os.Link(filepath.Join(mnt, "tmp"), filepath.Join(mnt, "key")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(mnt, "tmp"), filepath.Join(mnt, "key")); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second link: %v, want EEXIST", err)
	}
	if err := os.Remove(filepath.Join(mnt, "tmp")); err != nil {
		t.Fatal(err)
	}
	cut(t, f)
	expect(t, f, "key", "<absent>")
	expect(t, f, "tmp", "key")
	if err := os.Link(filepath.Join(mnt, "tmp"), filepath.Join(mnt, "key")); err != nil {
		t.Fatal(err)
	}
	fsync(t, f, ".")
	writeSync(t, f, "key", "via the link") // one inode, two names
	cut(t, f)
	expect(t, f, "key", "via the link")
	expect(t, f, "tmp", "via the link")
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(mnt, "key"), &st); err != nil || st.Nlink != 2 {
		t.Fatalf("key: nlink %d (%v), want 2", st.Nlink, err)
	}
}

// badger writes its memtable log and value log through a shared mmap and
// makes them durable with msync: the kernel writes the dirty pages back as
// writes, then sends an fsync.
func TestMmapWritesAreDurableAfterMsync(t *testing.T) {
	f := lose(t, Ordered)
	p := filepath.Join(f.Mountpoint(), "wal")
	h, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	const size = 4 * pageSize
	if err := h.Truncate(size); err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(h.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	copy(m, "synced")
	if err := unix.Msync(m, unix.MS_SYNC); err != nil {
		t.Fatal(err)
	}
	copy(m[2*pageSize:], "not synced")
	if err := unix.Munmap(m); err != nil { // writes the page back, without a sync
		t.Fatal(err)
	}
	h.Close()
	cut(t, f)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != size || !bytes.HasPrefix(b, []byte("synced")) || !allZero(b[2*pageSize:]) {
		t.Fatalf("after the cut: size %d, head %q, third page %q", len(b), b[:6], bytes.TrimRight(b[2*pageSize:], "\x00"))
	}
}

func TestPowerOffAfterFailsThatOperationAndEveryLaterOne(t *testing.T) {
	f := lose(t, Ordered)
	writeSync(t, f, "a", "kept")
	f.PowerOffAfter(2)
	h, err := os.OpenFile(filepath.Join(f.Mountpoint(), "a"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt([]byte("K"), 0); err != nil { // the 1st: done, pending
		t.Fatal(err)
	}
	if err := h.Sync(); !errors.Is(err, syscall.EIO) { // the 2nd: the power fails
		t.Fatalf("fsync at the cut: %v, want EIO", err)
	}
	select {
	case <-f.Off():
	default:
		t.Fatal("Off not closed")
	}
	if _, err := h.WriteAt([]byte("K"), 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("write after the cut: %v, want EIO", err)
	}
	h.Close()
	if err := f.Restart(); err != nil {
		t.Fatal(err)
	}
	expect(t, f, "a", "kept")
}

// Without LoseAll, a cut keeps some pending writes by the seeded model:
// every outcome is one a disk could leave (each 4 KiB block holds its
// durable bytes, its pending write, or a sector-aligned part of it), the
// outcomes vary, and the same seed gives the same outcomes.
func TestTornCutsAreSeededAndPlausible(t *testing.T) {
	run := func(seed uint64) []string {
		f := MountT(t, Options{Seed: seed})
		const blocks = 8
		base := bytes.Repeat([]byte{'d'}, blocks*pageSize)
		var outcomes []string
		for range 24 {
			writeSync(t, f, "f", string(base))
			h, err := os.OpenFile(filepath.Join(f.Mountpoint(), "f"), os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			for i := range blocks {
				if _, err := h.WriteAt(bytes.Repeat([]byte{byte('0' + i)}, pageSize), int64(i*pageSize)); err != nil {
					t.Fatal(err)
				}
			}
			h.Close()
			cut(t, f)
			got := []byte(read(t, f, "f"))
			if len(got) != len(base) {
				t.Fatalf("size %d after the cut, want %d", len(got), len(base))
			}
			var summary []byte
			for i := range blocks {
				b := got[i*pageSize : (i+1)*pageSize]
				mine := byte('0' + i)
				k := bytes.IndexFunc(b, func(r rune) bool { return byte(r) != mine })
				switch {
				case k < 0:
					summary = append(summary, mine)
				case k%sector == 0 && allBytes(b[k:], 'd'):
					if k == 0 {
						summary = append(summary, 'd')
					} else {
						summary = append(summary, 't')
					}
				default:
					t.Fatalf("block %d after the cut: %q...: neither durable, pending nor torn at a sector", i, b[:16])
				}
			}
			outcomes = append(outcomes, string(summary))
		}
		return outcomes
	}
	a, b := run(7), run(7)
	if !slices.Equal(a, b) {
		t.Fatalf("seed 7 gave different outcomes:\n%v\n%v", a, b)
	}
	distinct := map[string]bool{}
	for _, o := range a {
		distinct[o] = true
	}
	if len(distinct) < 4 || !distinct["dddddddd"] {
		t.Fatalf("outcomes %v: want several, and at least one cut that lost everything", a)
	}
	t.Logf("seed 7: %v", a)
}

func allBytes(b []byte, c byte) bool {
	for _, x := range b {
		if x != c {
			return false
		}
	}
	return true
}

// Close on a file system still on syncs everything, as a clean shutdown.
func TestCloseSyncsAndRemountSeesIt(t *testing.T) {
	dir := t.TempDir()
	back, mnt := filepath.Join(dir, "b"), filepath.Join(dir, "m")
	if err := errors.Join(os.Mkdir(back, 0o700), os.Mkdir(mnt, 0o700)); err != nil {
		t.Fatal(err)
	}
	f := MountT(t, Options{Backing: back, Mountpoint: mnt, LoseAll: true})
	if err := os.MkdirAll(filepath.Join(mnt, "x/y"), 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, f, "x/y/z", "clean")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(back, "x/y/z")); err != nil || string(b) != "clean" {
		t.Fatalf("backing after close: %q, %v", b, err)
	}
}

// Namespace changes survive a cut as a prefix of the journal: never a later
// create without the earlier ones.
func TestNamespaceSurvivorsAreAPrefix(t *testing.T) {
	f := MountT(t, Options{Seed: 3})
	seen := map[int]bool{}
	for round := range 16 {
		dir := filepath.Join(f.Mountpoint(), fmt.Sprintf("r%d", round))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		fsync(t, f, ".")
		for i := range 10 {
			write(t, f, fmt.Sprintf("r%d/f%d", round, i), "x")
		}
		cut(t, f)
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		for i := range len(names) {
			want := fmt.Sprintf("f%d", i)
			if !slices.Contains(names, want) {
				t.Fatalf("round %d: survivors %v are not a prefix of the creates (no %s)", round, names, want)
			}
		}
		seen[len(names)] = true
	}
	if len(seen) < 3 || !seen[0] {
		t.Fatalf("surviving counts %v: want several, 0 among them", seen)
	}
}
