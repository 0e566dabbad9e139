package store

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// pageOutMapped asks the kernel to page out this process's shared file
// mappings of badger's value log files in dir, and of its table files when
// tables is set (MADV_PAGEOUT, Linux 5.4+).
//
// It is safe whatever happens between reading /proc/self/maps and the call:
// MADV_PAGEOUT is reclaim, it never discards contents (a dirty shared page is
// written back first; an anonymous page is swapped or left alone), so even a
// range that badger unmapped and something else mapped in the meantime loses
// nothing. MADV_DONTNEED would not be safe here for exactly that reason.
func pageOutMapped(dir string, tables bool) bool {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return false
	}
	defer f.Close()
	prefix := []byte(abs + string(filepath.Separator))
	paged := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 7f12c0000000-7f12c4000000 rw-s 00000000 fd:01 1234  /path/000001.vlog
		fields := bytes.Fields(sc.Bytes())
		if len(fields) < 6 || len(fields[1]) != 4 || fields[1][3] != 's' {
			continue
		}
		path := fields[5]
		isTable := bytes.HasSuffix(path, []byte(".sst"))
		if !bytes.HasPrefix(path, prefix) || !(bytes.HasSuffix(path, []byte(".vlog")) || (tables && isTable)) {
			continue
		}
		lo, hi, ok := bytes.Cut(fields[0], []byte("-"))
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		_, _, errno := syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_PAGEOUT)
		if errno == 0 {
			paged = true
		}
	}
	return paged
}
