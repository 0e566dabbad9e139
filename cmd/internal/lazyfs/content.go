package lazyfs

// pageSize is the granularity of a file's live content in memory. Pages that
// were never written (holes) take no memory, so a store's value log,
// preallocated to 128 MB and mostly empty, costs what was written into it.
const pageSize = 4096

// content is the live bytes of one regular file: a size and the pages written
// so far. A page absent from the map reads as zeros.
type content struct {
	size  int64
	pages map[int64]*[pageSize]byte
}

func (c *content) page(i int64) *[pageSize]byte {
	if c.pages == nil {
		c.pages = make(map[int64]*[pageSize]byte)
	}
	p := c.pages[i]
	if p == nil {
		p = new([pageSize]byte)
		c.pages[i] = p
	}
	return p
}

// writeAt copies data at off, growing the file as needed.
func (c *content) writeAt(data []byte, off int64) {
	for len(data) > 0 {
		i, o := off/pageSize, off%pageSize
		n := copy(c.page(i)[o:], data)
		data, off = data[n:], off+int64(n)
	}
	c.size = max(c.size, off)
}

// readAt fills dest from off and returns how many bytes the file has there.
func (c *content) readAt(dest []byte, off int64) int {
	if off >= c.size {
		return 0
	}
	n := int(min(int64(len(dest)), c.size-off))
	dest = dest[:n]
	for len(dest) > 0 {
		i, o := off/pageSize, off%pageSize
		var k int
		if p := c.pages[i]; p != nil {
			k = copy(dest, p[o:])
		} else {
			k = min(len(dest), int(pageSize-o))
			clear(dest[:k])
		}
		dest, off = dest[k:], off+int64(k)
	}
	return n
}

// truncate sets the size; bytes beyond it are gone, and reads past the old
// end up to a larger size see zeros.
func (c *content) truncate(size int64) {
	if size < c.size {
		for i, p := range c.pages {
			switch {
			case i*pageSize >= size:
				delete(c.pages, i)
			case (i+1)*pageSize > size:
				clear(p[size-i*pageSize:])
			}
		}
	}
	c.size = size
}

// blocks is the number of 512-byte blocks the content occupies (st_blocks).
func (c *content) blocks() uint64 { return uint64(len(c.pages)) * pageSize / 512 }
