package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/agent/attach"
	"github.com/fieldsync/fieldsync/cmd/internal/harness"
)

// The load of the kill -9 campaign: officers capturing through the API of
// every laptop, and a ledger of what the API acknowledged. A call that
// answered is acknowledged; a call cut by a kill may or may not have been
// applied, and the ledger keeps it apart ("attempted").

// ledger is what the laptops' APIs acknowledged. Safe for concurrent use.
type ledger struct {
	mu       sync.Mutex
	dossiers map[string]string        // record id -> laptop that acknowledged its creation
	order    []string                 // record ids in acknowledgement order
	notes    map[string]*noteLog      // record id -> its updates (one writer per record)
	files    []ackedFile              // acknowledged attachments, in order
	inFlight map[string]*atomic.Int64 // laptop -> API calls outstanding
	problems []string                 // answers that were wrong on their face
}

func (l *ledger) problem(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.problems = append(l.problems, fmt.Sprintf(format, args...))
}

// noteLog is the sequence of values written to one dossier's notes field
// by its one writer, and how far the API acknowledged them.
type noteLog struct {
	tokens []string // every value attempted, in order
	acked  int      // index in tokens of the last acknowledged one, -1 for none
}

// ackedFile is one acknowledged attachment.
type ackedFile struct {
	laptop, record, field, sha string
	size                       int64
	seq                        uint64 // the manifest op in the laptop's own log
}

func newLedger(laptops ...string) *ledger {
	l := &ledger{dossiers: map[string]string{}, notes: map[string]*noteLog{}, inFlight: map[string]*atomic.Int64{}}
	for _, n := range laptops {
		l.inFlight[n] = &atomic.Int64{}
	}
	return l
}

// snapshot is the ledger at one instant, for checking against reads made
// after it: whatever it holds was acknowledged before the read began.
type snapshot struct {
	dossiers map[string]string
	order    []string
	notes    map[string]noteLog
	files    []ackedFile
}

// attempted returns every notes value attempted on dossier id so far.
func (l *ledger) attempted(id string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if nl := l.notes[id]; nl != nil {
		return slices.Clone(nl.tokens)
	}
	return nil
}

func (l *ledger) snapshot() snapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := snapshot{dossiers: make(map[string]string, len(l.dossiers)), order: slices.Clone(l.order),
		notes: make(map[string]noteLog, len(l.notes)), files: slices.Clone(l.files)}
	for id, by := range l.dossiers {
		s.dossiers[id] = by
	}
	for id, n := range l.notes {
		s.notes[id] = noteLog{tokens: slices.Clone(n.tokens), acked: n.acked}
	}
	return s
}

// worker is one officer typing into one laptop: it creates dossiers,
// corrects the notes of its own dossiers and attaches photos and
// fingerprints to them, each call after the last one answered.
type worker struct {
	l      *ledger
	laptop *harness.Agent
	id     int // unique over the campaign, part of every value it writes
	rng    *rand.Rand
	dir    string   // where it writes the files it attaches
	own    []string // dossiers it created (acknowledged)
	// attempted marks record|field pairs already attached (acknowledged or
	// not): a field is attached once, so an acknowledged manifest is the
	// value the field must keep.
	attempted map[string]bool
	n         int
}

// run works until stop is closed. Calls fail while the laptop is down; the
// worker then waits a little and goes on.
func (w *worker) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		if !w.step() {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		select {
		case <-stop:
			return
		case <-time.After(time.Duration(200+w.rng.IntN(800)) * time.Millisecond):
		}
	}
}

// step makes one API call and reports whether it was answered.
func (w *worker) step() bool {
	w.n++
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inFlight := w.l.inFlight[w.laptop.Name]
	inFlight.Add(1)
	defer inFlight.Add(-1)
	cl := w.laptop.Client
	switch r := w.rng.IntN(10); {
	case r < 5 || len(w.own) == 0:
		rec, err := cl.Create(ctx, dossier(w.id*1_000_000+w.n, "Lũng Cú"))
		if err != nil {
			return false
		}
		w.own = append(w.own, rec.ID)
		w.l.mu.Lock()
		w.l.dossiers[rec.ID] = w.laptop.Name
		w.l.order = append(w.l.order, rec.ID)
		w.l.mu.Unlock()
		return true
	case r < 8:
		id := w.own[w.rng.IntN(len(w.own))]
		token := fmt.Sprintf("ghi chú %d/%d", w.id, w.n)
		w.l.mu.Lock()
		nl := w.l.notes[id]
		if nl == nil {
			nl = &noteLog{acked: -1}
			w.l.notes[id] = nl
		}
		nl.tokens = append(nl.tokens, token)
		w.l.mu.Unlock()
		if _, err := cl.Update(ctx, id, map[string]string{"notes": token}); err != nil {
			return false
		}
		w.l.mu.Lock()
		nl.acked = len(nl.tokens) - 1 // the writer is sequential: this is the last
		w.l.mu.Unlock()
		return true
	default:
		id := w.own[w.rng.IntN(len(w.own))]
		kind, finger, head, size := attach.KindPhoto, "", jpegHead, 10_000+w.rng.IntN(190_000)
		if w.rng.IntN(2) == 0 {
			kind, finger, head, size = attach.KindFingerprint, attach.Fingers[w.rng.IntN(len(attach.Fingers))], fmrHead, 15_000+w.rng.IntN(10_000)
		}
		field := attach.FieldName(kind, finger)
		if w.attempted[id+"|"+field] {
			return true // nothing to do this time
		}
		w.attempted[id+"|"+field] = true
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(w.rng.Uint32())
		}
		copy(data, head)
		path := filepath.Join(w.dir, fmt.Sprintf("%d-%d", w.id, w.n))
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return false
		}
		defer os.Remove(path)
		res, err := cl.Attach(ctx, id, kind, finger, path)
		if err != nil {
			return false
		}
		if res.SHA256 != hexSum(data) || res.Size != int64(size) || res.Record != id {
			w.l.problem("%s: attach answered %s (%d bytes) for a file %s of %d bytes", w.laptop.Name, res.SHA256, res.Size, hexSum(data), size)
			return true
		}
		w.l.mu.Lock()
		w.l.files = append(w.l.files, ackedFile{laptop: w.laptop.Name, record: id, field: field, sha: res.SHA256, size: res.Size, seq: res.Seq})
		w.l.mu.Unlock()
		return true
	}
}

// poller keeps the latest status each running agent answered. Every value
// it holds was read before anything that happens after it, so the version
// vector it last saw of an agent is a floor the agent must never fall
// below, even across a kill: the agent showed those ops as committed.
type poller struct {
	mu   sync.Mutex
	last map[string]api.Status
}

func (p *poller) run(stop <-chan struct{}, agents ...*harness.Agent) {
	for {
		for _, a := range agents {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := a.Client.Status(ctx)
			cancel()
			if err == nil {
				p.mu.Lock()
				p.last[a.Name] = st
				p.mu.Unlock()
			}
		}
		select {
		case <-stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (p *poller) get(name string) api.Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last[name]
}

// forget drops what was seen of an agent (it is about to be killed: the
// floor was taken, and statuses read before the kill must not be taken for
// statuses of the restarted process).
func (p *poller) forget(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.last, name)
}

// covers reports whether vv holds every op of floor.
func covers(vv, floor map[string]uint64) (string, bool) {
	for o, n := range floor {
		if vv[o] < n {
			return fmt.Sprintf("origin %s at %d, was seen at %d", o, vv[o], n), false
		}
	}
	return "", true
}
