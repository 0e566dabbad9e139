package api

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// fakeBackend is a small in-memory Backend. The real backend (the agent over
// its store) is tested in the agent's integration tests; these tests are about
// the HTTP edge: what reaches the backend and what the client sees.
type fakeBackend struct {
	mu      sync.Mutex
	recs    map[string]Record
	seq     int
	creates []map[string]string // fields of every Create, as received
	updates []map[string]string // fields of every Update, as received
	limits  []int               // limit of every List
	err     error               // when set, every method returns it
	panics  bool                // when set, every method panics
	status  Status
}

// fakeTime is a time in Vietnam's zone, so tests see the server turn it to UTC.
var fakeTime = time.Date(2026, 11, 23, 9, 30, 0, 0, time.FixedZone("ICT", 7*3600))

func newFakeBackend() *fakeBackend {
	return &fakeBackend{recs: map[string]Record{}}
}

func (f *fakeBackend) fail() error {
	if f.panics {
		panic("fake backend panics")
	}
	return f.err
}

// add stores a record directly, as if synced from another device.
func (f *fakeBackend) add(fields map[string]string) Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	rec := Record{
		ID:        fmt.Sprintf("rec-%05d", f.seq),
		Fields:    maps.Clone(fields),
		CreatedBy: "laptop-a",
		UpdatedAt: fakeTime,
	}
	created := fakeTime
	rec.CreatedAt = &created
	f.recs[rec.ID] = rec
	return rec
}

func (f *fakeBackend) Create(_ context.Context, fields map[string]string) (Record, error) {
	if err := f.fail(); err != nil {
		return Record{}, err
	}
	f.mu.Lock()
	f.creates = append(f.creates, maps.Clone(fields))
	f.mu.Unlock()
	return f.add(fields), nil
}

func (f *fakeBackend) Update(_ context.Context, id string, fields map[string]string) (Record, error) {
	if err := f.fail(); err != nil {
		return Record{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates = append(f.updates, maps.Clone(fields))
	rec, ok := f.recs[id]
	if !ok {
		return Record{}, fmt.Errorf("update %s: %w", id, ErrNotFound)
	}
	rec.Fields = maps.Clone(rec.Fields)
	for k, v := range fields {
		if v == "" {
			delete(rec.Fields, k)
		} else {
			rec.Fields[k] = v
		}
	}
	f.recs[id] = rec
	return rec, nil
}

func (f *fakeBackend) Get(_ context.Context, id string) (Record, error) {
	if err := f.fail(); err != nil {
		return Record{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	rec, ok := f.recs[id]
	if !ok {
		return Record{}, fmt.Errorf("get %s: %w", id, ErrNotFound)
	}
	return rec, nil
}

func (f *fakeBackend) List(_ context.Context, after string, limit int) ([]Record, string, error) {
	if err := f.fail(); err != nil {
		return nil, "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limits = append(f.limits, limit)
	ids := slices.Sorted(maps.Keys(f.recs))
	var out []Record
	for _, id := range ids {
		if id <= after {
			continue
		}
		if len(out) == limit {
			return out, out[len(out)-1].ID, nil
		}
		out = append(out, f.recs[id])
	}
	return out, "", nil
}

func (f *fakeBackend) Status(context.Context) (Status, error) {
	if err := f.fail(); err != nil {
		return Status{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.status
	st.Records = len(f.recs)
	return st, nil
}

var _ Backend = (*fakeBackend)(nil)
