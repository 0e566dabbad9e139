package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fieldsync/fieldsync/agent/transport"
)

// The simulation's stand-ins for what the daemon gets from the operating
// system: a stream, a log, and the files a kill -9 leaves.

// simStream is a transport.Stream whose writes the world collects as frames
// and whose reads serve the frames the world delivers.
type simStream struct {
	out, in bytes.Buffer
	closed  bool
}

var _ transport.Stream = (*simStream)(nil)

func (s *simStream) Write(p []byte) (int, error) {
	if s.closed {
		return 0, io.ErrClosedPipe
	}
	return s.out.Write(p)
}
func (s *simStream) Read(p []byte) (int, error) {
	if s.in.Len() == 0 {
		return 0, io.EOF
	}
	return s.in.Read(p)
}
func (s *simStream) Close() error                  { s.closed = true; return nil }
func (s *simStream) CloseWrite() error             { return nil }
func (s *simStream) Reset() error                  { s.closed = true; return nil }
func (s *simStream) SetDeadline(_ time.Time) error { return nil }

// simLog keeps a device's warnings and errors: in a schedule of valid
// devices and valid ops, any is a finding.
type simLog struct {
	mu    sync.Mutex
	lines []string
	attrs []slog.Attr
}

func (l *simLog) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelWarn }
func (l *simLog) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	for _, a := range l.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	l.mu.Lock()
	l.lines = append(l.lines, r.Level.String()+" "+b.String())
	l.mu.Unlock()
	return nil
}
func (l *simLog) WithAttrs(as []slog.Attr) slog.Handler {
	return &simLogView{l: l, attrs: as}
}
func (l *simLog) WithGroup(string) slog.Handler { return l }

// simLogView is a simLog with attributes, as slog's With makes.
type simLogView struct {
	l     *simLog
	attrs []slog.Attr
}

func (v *simLogView) Enabled(ctx context.Context, lv slog.Level) bool { return v.l.Enabled(ctx, lv) }
func (v *simLogView) Handle(ctx context.Context, r slog.Record) error {
	r2 := r.Clone()
	r2.AddAttrs(v.attrs...)
	return v.l.Handle(ctx, r2)
}
func (v *simLogView) WithAttrs(as []slog.Attr) slog.Handler {
	return &simLogView{l: v.l, attrs: append(append([]slog.Attr{}, v.attrs...), as...)}
}
func (v *simLogView) WithGroup(string) slog.Handler { return v }

// snapshot copies a live store's files as they are at one instant. Only
// the agent's own calls write the write-ahead and value logs, and none runs
// during the copy; a background flush or compaction would write tables and
// the manifest, so the copy is taken again until no file changed name or
// size while it was made.
func snapshot(src, dst string) error {
	for try := 0; try < 50; try++ {
		before, err := listing(src)
		if err == nil {
			_ = os.RemoveAll(dst)
			err = copyFiles(src, dst)
		}
		var after string
		if err == nil {
			after, err = listing(src)
		}
		switch {
		case err == nil && before == after:
			return nil
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return err
		}
		// A file came or went under the copy: badger flushes, at open,
		// the memtables it replayed from the write-ahead log.
		time.Sleep(10 * time.Millisecond)
	}
	return errors.New("the store's files kept changing while copied")
}

// listing names a directory's files and their sizes.
func listing(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%s %d\n", e.Name(), fi.Size())
	}
	return b.String(), nil
}

// copyFiles copies the regular files of src into dst (made), keeping holes:
// badger preallocates its log files sparse.
func copyFiles(src, dst string) error {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if err := copySparse(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func copySparse(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	const seekData, seekHole = 3, 4 // Linux lseek whence values
	size := fi.Size()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; {
		start, err := in.Seek(off, seekData)
		if err != nil {
			break // no more data (ENXIO), or no SEEK_DATA: handled below
		}
		end, err := in.Seek(start, seekHole)
		if err != nil {
			end = size
		}
		if _, err := in.Seek(start, io.SeekStart); err != nil {
			return err
		}
		if _, err := out.Seek(start, io.SeekStart); err != nil {
			return err
		}
		if _, err := io.CopyBuffer(out, io.LimitReader(in, end-start), buf); err != nil {
			return err
		}
		off = end
	}
	return out.Truncate(size)
}
