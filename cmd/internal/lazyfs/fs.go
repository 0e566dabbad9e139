package lazyfs

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Model says which fsync makes a change of the namespace (create, mkdir,
// unlink, rmdir, rename, link) durable. File data is the same in both: a
// file's bytes and size are durable after that file's fsync or fdatasync,
// and not before.
type Model int

const (
	// Ordered is a journaling file system (ext4, XFS): namespace changes go
	// into one journal that commits in order, and the fsync or fdatasync of
	// a file or a directory commits it up to the last change that touched
	// that file or directory, with everything before. So fsync of a new
	// file makes its name durable, as Linux file systems do.
	Ordered Model = iota
	// Strict is the letter of POSIX: only a directory's fsync commits
	// namespace changes (up to the last change in that directory). A
	// file's fsync makes its bytes durable but not its name: a file
	// created or renamed since its directory's last fsync is gone after a
	// cut, with its bytes, even if it was fsynced.
	Strict
)

func (m Model) String() string {
	switch m {
	case Ordered:
		return "ordered"
	case Strict:
		return "strict"
	}
	return fmt.Sprintf("Model(%d)", int(m))
}

// ParseModel is the inverse of Model.String.
func ParseModel(s string) (Model, error) {
	switch s {
	case "", "ordered":
		return Ordered, nil
	case "strict":
		return Strict, nil
	}
	return 0, fmt.Errorf("lazyfs: unknown model %q (ordered or strict)", s)
}

// Options configure a mount.
type Options struct {
	// Backing is the directory that holds the durable image: what a disk
	// would hold. It must exist; whatever it holds is the file system's
	// starting content.
	Backing string
	// Mountpoint is an empty directory to mount on.
	Mountpoint string
	// Model says which fsync makes namespace changes durable; Ordered by
	// default.
	Model Model
	// Seed drives what survives at each cut beyond what was made durable
	// (see the package comment). Cut number k draws from (Seed, k), so a
	// run with the same seed makes the same choices for the same pending
	// state.
	Seed uint64
	// LoseAll makes every cut drop everything pending, with no random
	// survivors: LazyFS's clear-cache. Unit tests use it to check exact
	// outcomes.
	LoseAll bool
	// Debug logs every FUSE request.
	Debug bool
}

// Stats are counts since Mount, summed over every cut.
type Stats struct {
	Cuts      int   // power cuts (Restart or Close while off)
	Mutations int64 // mutating operations served (see PowerOffAfter)
	Fsyncs    int64 // fsync, fdatasync and msync calls served
	// Pending data operations (writes and truncates) at the cuts: lost,
	// kept whole, and kept torn (a prefix of a write, at a sector boundary).
	DataLost, DataKept, DataTorn int64
	// Pending namespace changes at the cuts: lost and kept.
	NamespaceLost, NamespaceKept int64
}

// FS is a mounted lazy file system.
type FS struct {
	opts Options

	mu      sync.Mutex
	server  *fuse.Server
	root    *node
	nextIno uint64
	// journal holds the namespace changes not yet durable, in order;
	// journal[0] has sequence number jseq.
	journal []nsOp
	jseq    uint64
	// dirty are the files holding data not yet in the backing directory.
	dirty map[*node]struct{}
	off   bool
	offC  chan struct{}
	gen   uint64 // counts mounts
	armed int64
	stats Stats
	// closed is set by Close, for good.
	closed bool
}

// ErrPoweredOff is what a cut file system answers (as EIO) to everything.
var ErrPoweredOff = errors.New("lazyfs: powered off")

// Mount mounts a lazy view of opts.Backing on opts.Mountpoint. It needs
// root (or CAP_SYS_ADMIN) and /dev/fuse; it never uses fusermount.
func Mount(opts Options) (*FS, error) {
	if opts.Backing == "" || opts.Mountpoint == "" {
		return nil, errors.New("lazyfs: Backing and Mountpoint are required")
	}
	if opts.Model != Ordered && opts.Model != Strict {
		return nil, fmt.Errorf("lazyfs: unknown model %d", opts.Model)
	}
	f := &FS{opts: opts}
	if err := f.mount(); err != nil {
		return nil, err
	}
	return f, nil
}

// Mountpoint is where the file system is mounted.
func (f *FS) Mountpoint() string { return f.opts.Mountpoint }

// Backing is the backing directory: the disk. Between Restart's unmount and
// mount nothing changes it, and it may be read (a copy of it opened) while
// no process uses the mount; writing to it behind the mount's back is not
// seen by the mount.
func (f *FS) Backing() string { return f.opts.Backing }

// Stats returns the counts so far.
func (f *FS) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

func (f *FS) mount() error {
	f.journal, f.jseq = nil, 1
	f.dirty = make(map[*node]struct{})
	f.off, f.offC, f.armed = false, make(chan struct{}), 0
	f.nextIno = 1
	f.gen++
	root, err := f.load()
	if err != nil {
		return err
	}
	f.root = root
	second := time.Second
	server, err := fs.Mount(f.opts.Mountpoint, root, &fs.Options{
		MountOptions: fuse.MountOptions{
			DirectMountStrict: true,
			FsName:            "lazyfs",
			Name:              "lazyfs",
			DisableXAttrs:     true,
			Debug:             f.opts.Debug,
		},
		EntryTimeout:    &second,
		AttrTimeout:     &second,
		RootStableAttr:  &fs.StableAttr{Ino: root.ino, Mode: syscall.S_IFDIR},
		NullPermissions: true,
	})
	if err != nil {
		return fmt.Errorf("lazyfs: mount %s: %w", f.opts.Mountpoint, err)
	}
	f.server = server
	return nil
}

// PowerOff is the instant of a power cut: from now on every operation on
// the mount fails with EIO, and nothing pending is made durable any more.
// The processes using the mount should then be killed (a power cut kills
// them too), and Restart called.
func (f *FS) PowerOff() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.powerOffLocked()
}

func (f *FS) powerOffLocked() {
	if !f.off {
		f.off = true
		close(f.offC)
	}
}

// PowerOffAfter arms a cut: the n-th mutating operation from now (write,
// truncate, fsync, create, mkdir, unlink, rmdir, rename, link) is not
// performed and powers the file system off, as PowerOff. n ≤ 0 disarms.
func (f *FS) PowerOffAfter(n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.armed = max(n, 0)
}

// Off is closed when the file system powers off (PowerOff or an armed cut).
func (f *FS) Off() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.offC
}

// Restart completes a power cut and boots again: it powers off if not yet
// off, unmounts, writes into the backing directory what survives of the
// pending changes (per the model and the seed), and mounts the backing
// directory afresh. Every process using the mount must be gone.
func (f *FS) Restart() error {
	if err := f.stop(); err != nil {
		return err
	}
	return f.mount()
}

// Cut is PowerOff then Restart.
func (f *FS) Cut() error {
	f.PowerOff()
	return f.Restart()
}

func (f *FS) stop() error {
	f.PowerOff()
	if err := f.unmount(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cutLocked()
}

// Sync makes everything durable, as sync(2) does.
func (f *FS) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.off {
		return ErrPoweredOff
	}
	return f.syncAllLocked()
}

// Close unmounts. A file system still on is synced first (a clean
// shutdown); one powered off is cut, as Restart would, and not mounted
// again.
func (f *FS) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	off := f.off
	var err error
	if !off {
		err = f.syncAllLocked()
	}
	f.mu.Unlock()
	if off {
		return f.stop()
	}
	f.PowerOff()
	return errors.Join(err, f.unmount())
}

func (f *FS) unmount() error {
	if f.server == nil {
		return nil
	}
	s := f.server
	f.server = nil
	if err := s.Unmount(); err != nil {
		// Something still holds the mount (a process not killed yet):
		// detach it, so the next mount starts clean all the same.
		if derr := syscall.Unmount(f.opts.Mountpoint, syscall.MNT_DETACH); derr != nil {
			return fmt.Errorf("lazyfs: unmount %s: %w (detach: %w)", f.opts.Mountpoint, err, derr)
		}
	}
	return nil
}

// enter starts an operation on n, with f.mu held: a file system powered off
// answers EIO, and an armed cut fires on its mutating operation. A node of
// an earlier mount (one detached, not unmounted, at a Restart, still
// serving its last requests) answers EIO too: it must never touch the
// state of the mount that replaced it.
func (f *FS) enter(n *node, mutating bool) syscall.Errno {
	if f.off || n.gen != f.gen {
		return syscall.EIO
	}
	if mutating {
		f.stats.Mutations++
	}
	if mutating && f.armed > 0 {
		f.armed--
		if f.armed == 0 {
			f.powerOffLocked()
			return syscall.EIO
		}
	}
	return 0
}

// Namespace changes.

type nsKind int

const (
	opCreate nsKind = iota
	opMkdir
	opUnlink
	opRmdir
	opRename
	opLink
)

// nsOp is one namespace change, naming directories by node so that it
// replays against the durable image whatever renames happened since.
type nsOp struct {
	kind      nsKind
	dir       *node
	name      string
	dir2      *node // rename's target directory, link's directory
	name2     string
	child     *node // the node created, removed, moved or linked
	replaced  *node // the node a rename replaced
	mode      uint32
	createdAt time.Time
}

// log appends a namespace change to the journal.
func (f *FS) log(op nsOp) {
	seq := f.jseq + uint64(len(f.journal))
	f.journal = append(f.journal, op)
	for _, n := range []*node{op.dir, op.dir2, op.child, op.replaced} {
		if n != nil {
			n.lastNS = seq
		}
	}
}

// commit makes the journal durable up to seq (inclusive): each change is
// done to the backing directory in order.
func (f *FS) commit(seq uint64) error {
	for len(f.journal) > 0 && f.jseq <= seq {
		if err := f.apply(f.journal[0]); err != nil {
			return err
		}
		f.journal[0] = nsOp{}
		f.journal = f.journal[1:]
		f.jseq++
	}
	return nil
}

func (f *FS) apply(op nsOp) error {
	p, err := f.backingPath(op.dir, op.name)
	if err != nil {
		return err
	}
	switch op.kind {
	case opCreate:
		w, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, os.FileMode(op.mode))
		if err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		if err := os.Chmod(p, os.FileMode(op.mode)); err != nil {
			return err
		}
		op.child.dlinks = append(op.child.dlinks, dlink{op.dir, op.name})
		// Bytes fsynced while the file had no durable name (Strict)
		// reach the disk with the name.
		err = f.writeOut(op.child, op.child.unplaced)
		op.child.unplaced = nil
		return err
	case opMkdir:
		if err := os.Mkdir(p, os.FileMode(op.mode)); err != nil {
			return err
		}
		op.child.dlinks = []dlink{{op.dir, op.name}}
	case opUnlink, opRmdir:
		if err := os.Remove(p); err != nil {
			return err
		}
		op.child.unlinkDurable(op.dir, op.name)
	case opRename:
		p2, err := f.backingPath(op.dir2, op.name2)
		if err != nil {
			return err
		}
		if err := os.Rename(p, p2); err != nil {
			return err
		}
		if op.replaced != nil {
			op.replaced.unlinkDurable(op.dir2, op.name2)
		}
		op.child.unlinkDurable(op.dir, op.name)
		op.child.dlinks = append(op.child.dlinks, dlink{op.dir2, op.name2})
	case opLink:
		p2, err := f.backingPath(op.dir2, op.name2)
		if err != nil {
			return err
		}
		if err := os.Link(p, p2); err != nil {
			return err
		}
		op.child.dlinks = append(op.child.dlinks, dlink{op.dir2, op.name2})
	}
	return nil
}

// backingPath is the path in the backing directory of name in dir, by the
// durable names of dir and its ancestors.
func (f *FS) backingPath(dir *node, name string) (string, error) {
	var parts []string
	for n := dir; n != f.root; {
		if len(n.dlinks) == 0 {
			return "", fmt.Errorf("lazyfs: directory %d has no durable name", n.ino)
		}
		l := n.dlinks[0]
		parts = append(parts, l.name)
		n = l.dir
	}
	slices.Reverse(parts)
	return filepath.Join(append(append([]string{f.opts.Backing}, parts...), name)...), nil
}

// File data.

// dataOp is a write or a truncate of one file.
type dataOp struct {
	trunc bool
	off   int64 // a write's offset, or a truncate's size
	data  []byte
}

// writeOut does data operations to the file's backing copy.
func (f *FS) writeOut(n *node, ops []dataOp) error {
	if len(n.dlinks) == 0 {
		return errors.New("lazyfs: file has no durable name")
	}
	p, err := f.backingPath(n.dlinks[0].dir, n.dlinks[0].name)
	if err != nil {
		return err
	}
	w, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer w.Close()
	for _, op := range ops {
		if op.trunc {
			err = w.Truncate(op.off)
		} else {
			_, err = w.WriteAt(op.data, op.off)
		}
		if err != nil {
			return err
		}
	}
	if n.mode != n.dmode {
		if err := w.Chmod(os.FileMode(n.mode)); err != nil {
			return err
		}
		n.dmode = n.mode
	}
	return w.Close()
}

// fsync makes n durable per the model: its data if it is a file, and the
// journal up to its last change if it is a directory, or a file in the
// Ordered model.
func (f *FS) fsync(n *node) error {
	f.stats.Fsyncs++
	if n.isDir || f.opts.Model == Ordered {
		if err := f.commit(n.lastNS); err != nil {
			return err
		}
	}
	if n.isDir {
		return nil
	}
	if len(n.dlinks) == 0 {
		// No durable name (Strict, or unlinked): the bytes are durable
		// but reach the disk only with a name.
		n.unplaced = append(n.unplaced, n.pending...)
	} else if err := f.writeOut(n, n.pending); err != nil {
		return err
	}
	n.pending = nil
	if len(n.unplaced) == 0 {
		delete(f.dirty, n)
	}
	return nil
}

func (f *FS) syncAllLocked() error {
	if err := f.commit(f.jseq + uint64(len(f.journal))); err != nil {
		return err
	}
	for _, n := range f.dirtyNodes() {
		if len(n.dlinks) > 0 {
			if err := f.writeOut(n, append(n.unplaced, n.pending...)); err != nil {
				return err
			}
		}
		n.pending, n.unplaced = nil, nil
		delete(f.dirty, n)
	}
	return nil
}

func (f *FS) dirtyNodes() []*node {
	var out []*node
	for n := range f.dirty {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b *node) int { return int(a.ino) - int(b.ino) })
	return out
}

// sector is the unit a torn write is cut at.
const sector = 512

// cutLocked writes into the backing directory what survives of the pending
// changes at a power cut. See the package comment for the model.
func (f *FS) cutLocked() error {
	f.stats.Cuts++
	rng := rand.New(rand.NewPCG(f.opts.Seed, uint64(f.stats.Cuts)))
	keep := 0
	if !f.opts.LoseAll && len(f.journal) > 0 && rng.IntN(2) == 1 {
		keep = rng.IntN(len(f.journal) + 1)
	}
	f.stats.NamespaceKept += int64(keep)
	f.stats.NamespaceLost += int64(len(f.journal) - keep)
	if err := f.commit(f.jseq + uint64(keep) - 1); err != nil {
		return err
	}
	for _, n := range f.dirtyNodes() {
		pending := n.pending
		n.pending, n.unplaced = nil, nil
		delete(f.dirty, n)
		if len(n.dlinks) == 0 || f.opts.LoseAll {
			f.stats.DataLost += int64(len(pending))
			continue
		}
		var out []dataOp
		switch rng.IntN(3) {
		case 0: // the disk wrote none of it
		case 1: // in order, up to a point, the next write torn
			k := rng.IntN(len(pending) + 1)
			out = slices.Clone(pending[:k])
			if k < len(pending) && !pending[k].trunc && rng.IntN(2) == 0 {
				if torn, ok := tear(pending[k], rng); ok {
					out = append(out, torn)
					f.stats.DataTorn++
				}
			}
		case 2: // in any order: each operation independently
			for _, op := range pending {
				if rng.IntN(2) == 0 {
					out = append(out, op)
				}
			}
		}
		f.stats.DataKept += int64(len(out))
		f.stats.DataLost += int64(len(pending) - len(out))
		if err := f.writeOut(n, out); err != nil {
			return err
		}
	}
	f.journal = nil
	return nil
}

// tear returns the first part of a write, up to a random sector boundary
// strictly inside it, if it crosses one.
func tear(op dataOp, rng *rand.Rand) (dataOp, bool) {
	first := (op.off/sector + 1) * sector
	end := op.off + int64(len(op.data))
	if first >= end {
		return dataOp{}, false
	}
	cuts := (end-1-first)/sector + 1
	at := first + rng.Int64N(cuts)*sector
	return dataOp{off: op.off, data: op.data[:at-op.off]}, true
}

// Loading the backing directory.

func (f *FS) newNode(dir bool, mode uint32) *node {
	n := &node{lfs: f, gen: f.gen, ino: f.nextIno, isDir: dir, mode: mode & 07777, dmode: mode & 07777, mtime: time.Now()}
	f.nextIno++
	if dir {
		n.children = make(map[string]*node)
	} else {
		n.nlink = 0
	}
	return n
}

func (f *FS) load() (*node, error) {
	info, err := os.Stat(f.opts.Backing)
	if err != nil {
		return nil, fmt.Errorf("lazyfs: backing directory: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("lazyfs: backing %s is not a directory", f.opts.Backing)
	}
	root := f.newNode(true, uint32(info.Mode().Perm()))
	f.root = root
	byIno := make(map[uint64]*node)
	var walk func(dir *node, path string) error
	walk = func(dir *node, path string) error {
		entries, err := os.ReadDir(path)
		if err != nil {
			return err
		}
		for _, e := range entries {
			p := filepath.Join(path, e.Name())
			var st syscall.Stat_t
			if err := syscall.Lstat(p, &st); err != nil {
				return err
			}
			mode := st.Mode & 07777
			switch st.Mode & syscall.S_IFMT {
			case syscall.S_IFDIR:
				c := f.newNode(true, mode)
				c.dlinks = []dlink{{dir, e.Name()}}
				dir.children[e.Name()] = c
				if err := walk(c, p); err != nil {
					return err
				}
			case syscall.S_IFREG:
				c := byIno[st.Ino]
				if c == nil {
					c = f.newNode(false, mode)
					c.mtime = time.Unix(st.Mtim.Sec, st.Mtim.Nsec)
					if err := readContent(p, &c.data); err != nil {
						return err
					}
					byIno[st.Ino] = c
				}
				c.nlink++
				c.dlinks = append(c.dlinks, dlink{dir, e.Name()})
				dir.children[e.Name()] = c
			default:
				return fmt.Errorf("lazyfs: %s: only directories and regular files are supported", p)
			}
		}
		return nil
	}
	if err := walk(root, f.opts.Backing); err != nil {
		return nil, fmt.Errorf("lazyfs: load backing directory: %w", err)
	}
	return root, nil
}

// readContent reads a backing file into c, skipping its holes and the
// pages that hold only zeros.
func readContent(path string, c *content) error {
	r, err := os.Open(path)
	if err != nil {
		return err
	}
	defer r.Close()
	info, err := r.Stat()
	if err != nil {
		return err
	}
	size := info.Size()
	buf := make([]byte, 1<<20)
	read := func(from, to int64) error {
		for off := from; off < to; {
			n, err := r.ReadAt(buf[:min(int64(len(buf)), to-off)], off)
			for i := 0; i < n; i += pageSize {
				if p := buf[i:min(n, i+pageSize)]; !allZero(p) {
					c.writeAt(p, off+int64(i))
				}
			}
			off += int64(n)
			if err != nil && off < to {
				return err
			}
		}
		return nil
	}
	for off := int64(0); off < size; {
		data, err := r.Seek(off, seekData)
		if errors.Is(err, syscall.ENXIO) {
			break // nothing but a hole after off
		}
		if err != nil { // no SEEK_DATA here: read it all
			if err := read(off, size); err != nil {
				return err
			}
			break
		}
		hole, err := r.Seek(data, seekHole)
		if err != nil {
			hole = size
		}
		if err := read(data, hole); err != nil {
			return err
		}
		off = hole
	}
	c.size = size
	return nil
}

const (
	seekData = 3 // SEEK_DATA
	seekHole = 4 // SEEK_HOLE
)

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
