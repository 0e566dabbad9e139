package lazyfs

import (
	"context"
	"slices"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// node is one file or directory of the live view. Every field is guarded by
// its FS's mu.
type node struct {
	fs.Inode
	lfs    *FS
	gen    uint64 // the mount it belongs to (FS.gen)
	ino    uint64
	isDir  bool
	mode   uint32 // permission bits, live
	dmode  uint32 // permission bits in the backing directory
	mtime  time.Time
	inited bool // has its fs.Inode

	children map[string]*node // a directory's live entries
	nlink    int              // a file's live names
	data     content          // a file's live bytes
	// pending are a file's data operations since its last fsync, in
	// order; unplaced are operations made durable while the file had no
	// durable name, written to the backing directory when it gets one.
	pending, unplaced []dataOp

	// dlinks are the node's names in the durable image (one for a
	// directory, any number for a file).
	dlinks []dlink
	// lastNS is the journal sequence of the last namespace change that
	// touched the node (as itself, or as the directory changed).
	lastNS uint64
}

type dlink struct {
	dir  *node
	name string
}

func (n *node) unlinkDurable(dir *node, name string) {
	n.dlinks = slices.DeleteFunc(n.dlinks, func(l dlink) bool { return l.dir == dir && l.name == name })
}

var (
	_ fs.NodeLookuper  = (*node)(nil)
	_ fs.NodeGetattrer = (*node)(nil)
	_ fs.NodeSetattrer = (*node)(nil)
	_ fs.NodeOpener    = (*node)(nil)
	_ fs.NodeReader    = (*node)(nil)
	_ fs.NodeWriter    = (*node)(nil)
	_ fs.NodeFsyncer   = (*node)(nil)
	_ fs.NodeCreater   = (*node)(nil)
	_ fs.NodeMkdirer   = (*node)(nil)
	_ fs.NodeUnlinker  = (*node)(nil)
	_ fs.NodeRmdirer   = (*node)(nil)
	_ fs.NodeRenamer   = (*node)(nil)
	_ fs.NodeLinker    = (*node)(nil)
	_ fs.NodeReaddirer = (*node)(nil)
	_ fs.NodeStatfser  = (*node)(nil)
)

func (n *node) typeBits() uint32 {
	if n.isDir {
		return syscall.S_IFDIR
	}
	return syscall.S_IFREG
}

func (n *node) fill(a *fuse.Attr) {
	a.Ino = n.ino
	a.Mode = n.typeBits() | n.mode
	if n.isDir {
		a.Nlink = 2
		for _, c := range n.children {
			if c.isDir {
				a.Nlink++
			}
		}
	} else {
		a.Nlink = uint32(max(n.nlink, 0))
		a.Size = uint64(n.data.size)
		a.Blocks = n.data.blocks()
	}
	a.Blksize = pageSize
	a.SetTimes(&n.mtime, &n.mtime, &n.mtime)
}

// inode returns child's fs.Inode, making it on first use. Nodes are
// persistent: the live tree is the FS's, not the kernel's cache.
func (n *node) inode(ctx context.Context, child *node) *fs.Inode {
	if !child.inited {
		n.NewPersistentInode(ctx, child, fs.StableAttr{Mode: child.typeBits(), Ino: child.ino})
		child.inited = true
	}
	return child.EmbeddedInode()
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	f := n.lfs
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.enter(n, false); e != 0 {
		return nil, e
	}
	c := n.children[name]
	if c == nil {
		return nil, syscall.ENOENT
	}
	c.fill(&out.Attr)
	return n.inode(ctx, c), 0
}

func (n *node) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f := n.lfs
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.enter(n, false); e != 0 {
		return e
	}
	n.fill(&out.Attr)
	return 0
}

func (n *node) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	f := n.lfs
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.enter(n, true); e != 0 {
		return e
	}
	if size, ok := in.GetSize(); ok {
		if n.isDir {
			return syscall.EISDIR
		}
		n.truncate(int64(size))
	}
	if mode, ok := in.GetMode(); ok {
		n.mode = mode & 07777
	}
	if mtime, ok := in.GetMTime(); ok {
		n.mtime = mtime
	}
	n.fill(&out.Attr)
	return 0
}

// truncate changes a file's size, as a pending data operation.
func (n *node) truncate(size int64) {
	n.data.truncate(size)
	n.pending = append(n.pending, dataOp{trunc: true, off: size})
	n.lfs.dirty[n] = struct{}{}
	n.mtime = time.Now()
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	f := n.lfs
	f.mu.Lock()
	defer f.mu.Unlock()
	trunc := flags&syscall.O_TRUNC != 0 && flags&syscall.O_ACCMODE != syscall.O_RDONLY
	if e := f.enter(n, trunc); e != 0 {
		return nil, 0, e
	}
	if trunc && n.data.size > 0 {
		n.truncate(0)
	}
	// The kernel's page cache stays valid across opens: this mount is
	// the only writer, and a remount starts with an empty cache.
	return nil, fuse.FOPEN_KEEP_CACHE, 0
}

func (n *node) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f := n.lfs
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.enter(n, false); e != 0 {
		return nil, e
	}
	k := n.data.readAt(dest, off)
	return fuse.ReadResultData(dest[:k]), 0
}

func (n *node) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	f := n.lfs
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.enter(n, true); e != 0 {
		return 0, e
	}
	n.data.writeAt(data, off)
	n.pending = append(n.pending, dataOp{off: off, data: slices.Clone(data)})
	f.dirty[n] = struct{}{}
	n.mtime = time.Now()
	return uint32(len(data)), 0
}

// Fsync serves fsync and fdatasync (and msync, which the kernel turns into
// fdatasync) of files, and fsync of directories: the model treats the two
// alike.
func (n *node) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	f := n.lfs
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.enter(n, true); e != 0 {
		return e
	}
	if err := f.fsync(n); err != nil {
		return fs.ToErrno(err)
	}
	return 0
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	f := n.lfs
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.enter(n, true); e != 0 {
		return nil, nil, 0, e
	}
	if c := n.children[name]; c != nil {
		switch {
		case flags&syscall.O_EXCL != 0:
			return nil, nil, 0, syscall.EEXIST
		case c.isDir:
			return nil, nil, 0, syscall.EISDIR
		}
		if flags&syscall.O_TRUNC != 0 && c.data.size > 0 {
			c.truncate(0)
		}
		c.fill(&out.Attr)
		return n.inode(ctx, c), nil, fuse.FOPEN_KEEP_CACHE, 0
	}
	c := f.newNode(false, mode)
	c.nlink = 1
	n.children[name] = c
	n.mtime = time.Now()
	f.log(nsOp{kind: opCreate, dir: n, name: name, child: c, mode: c.mode})
	c.fill(&out.Attr)
	return n.inode(ctx, c), nil, fuse.FOPEN_KEEP_CACHE, 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	f := n.lfs
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.enter(n, true); e != 0 {
		return nil, e
	}
	if n.children[name] != nil {
		return nil, syscall.EEXIST
	}
	c := f.newNode(true, mode)
	n.children[name] = c
	n.mtime = time.Now()
	f.log(nsOp{kind: opMkdir, dir: n, name: name, child: c, mode: c.mode})
	c.fill(&out.Attr)
	return n.inode(ctx, c), 0
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	f := n.lfs
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.enter(n, true); e != 0 {
		return e
	}
	c := n.children[name]
	switch {
	case c == nil:
		return syscall.ENOENT
	case c.isDir:
		return syscall.EISDIR
	}
	delete(n.children, name)
	c.nlink--
	n.mtime = time.Now()
	f.log(nsOp{kind: opUnlink, dir: n, name: name, child: c})
	return 0
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	f := n.lfs
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.enter(n, true); e != 0 {
		return e
	}
	c := n.children[name]
	switch {
	case c == nil:
		return syscall.ENOENT
	case !c.isDir:
		return syscall.ENOTDIR
	case len(c.children) > 0:
		return syscall.ENOTEMPTY
	}
	delete(n.children, name)
	n.mtime = time.Now()
	f.log(nsOp{kind: opRmdir, dir: n, name: name, child: c})
	return 0
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	f := n.lfs
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.enter(n, true); e != 0 {
		return e
	}
	np, ok := newParent.(*node)
	if !ok || flags&^renameNoReplace != 0 {
		return syscall.EINVAL // RENAME_EXCHANGE and RENAME_WHITEOUT are not modelled
	}
	c := n.children[name]
	if c == nil {
		return syscall.ENOENT
	}
	old := np.children[newName]
	if old == c {
		return 0 // two names of one file: rename does nothing
	}
	if old != nil {
		switch {
		case flags&renameNoReplace != 0:
			return syscall.EEXIST
		case c.isDir && !old.isDir:
			return syscall.ENOTDIR
		case !c.isDir && old.isDir:
			return syscall.EISDIR
		case old.isDir && len(old.children) > 0:
			return syscall.ENOTEMPTY
		}
		old.nlink--
	}
	delete(n.children, name)
	np.children[newName] = c
	now := time.Now()
	n.mtime, np.mtime = now, now
	f.log(nsOp{kind: opRename, dir: n, name: name, dir2: np, name2: newName, child: c, replaced: old})
	return 0
}

func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	f := n.lfs
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.enter(n, true); e != 0 {
		return nil, e
	}
	t, ok := target.(*node)
	switch {
	case !ok:
		return nil, syscall.EXDEV
	case t.isDir:
		return nil, syscall.EPERM
	case n.children[name] != nil:
		return nil, syscall.EEXIST
	}
	// The change is logged as "link the file named (dir, name) to (dir2,
	// name2)", so the source is one of the file's durable names when it
	// replays: the journal is replayed in order, so the name the file
	// has in the live tree now is durable when this change is.
	src, ok := t.liveName(f.root)
	if !ok {
		return nil, syscall.ENOENT
	}
	n.children[name] = t
	t.nlink++
	f.log(nsOp{kind: opLink, dir: src.dir, name: src.name, dir2: n, name2: name, child: t})
	t.fill(&out.Attr)
	return n.inode(ctx, t), 0
}

// liveName finds one name of a file in the live tree (a search, for link
// only: fieldsync links rarely and in small directories).
func (n *node) liveName(root *node) (dlink, bool) {
	var found dlink
	var ok bool
	var walk func(d *node)
	walk = func(d *node) {
		names := make([]string, 0, len(d.children))
		for name := range d.children {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			if ok {
				return
			}
			c := d.children[name]
			if c == n {
				found, ok = dlink{d, name}, true
				return
			}
			if c.isDir {
				walk(c)
			}
		}
	}
	walk(root)
	return found, ok
}

func (n *node) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	f := n.lfs
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.enter(n, false); e != 0 {
		return nil, e
	}
	names := make([]string, 0, len(n.children))
	for name := range n.children {
		names = append(names, name)
	}
	slices.Sort(names)
	entries := make([]fuse.DirEntry, len(names))
	for i, name := range names {
		c := n.children[name]
		entries[i] = fuse.DirEntry{Name: name, Ino: c.ino, Mode: c.typeBits()}
	}
	return fs.NewListDirStream(entries), 0
}

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	const blocks = 64 << 30 / pageSize // 64 GiB, all free: the layer never runs out
	out.Bsize, out.Frsize = pageSize, pageSize
	out.Blocks, out.Bfree, out.Bavail = blocks, blocks, blocks
	out.Files, out.Ffree = 1<<20, 1<<20
	out.NameLen = 255
	return 0
}

// renameNoReplace is RENAME_NOREPLACE of renameat2(2).
const renameNoReplace = 0x1
