package store

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/dgraph-io/badger/v4"

	"github.com/fieldsync/fieldsync/crdt"
)

// MaxClockDriftMillis bounds how far ahead of this device's wall clock a
// received op's time may pull the hybrid logical clock (24 hours): a peer
// with a wrong clock must not drag every later local timestamp with it.
const MaxClockDriftMillis = 24 * 60 * 60 * 1000

// Write makes, signs and applies one op of this device's own: origin's next
// op (seq head+1, naming the head's hash), setting values on record recordID.
// Each field write supersedes exactly the values of that field the store
// holds now (crdt.Writes), so a concurrent write made elsewhere survives
// beside it as a sibling. The time is the hybrid logical clock advanced to
// wallMillis. The op and everything it changes are committed in one
// transaction and durable when Write returns nil.
//
// KindCreate needs a record id the store does not hold (else ErrExists);
// KindUpdate needs one it holds (else ErrNotFound). origin must be the
// store's self (ErrNotSelf); the first Write of a store without one makes
// origin its self. If origin has a stored credential, key must match it
// (ErrWrongKey). Values that do not make a valid op are refused with an error
// wrapping crdt.ErrMalformed.
func (s *Store) Write(origin string, key ed25519.PrivateKey, recordID string, kind crdt.Kind, values map[string]string, wallMillis int64) (crdt.Opened, error) {
	if err := s.enter(); err != nil {
		return crdt.Opened{}, err
	}
	defer s.leave()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	o, err := s.write(origin, key, recordID, kind, values, nil, wallMillis, nil)
	if err != nil {
		return crdt.Opened{}, fmt.Errorf("write %s: %w", recordID, err)
	}
	return o, nil
}

// Settle writes an admin's decision on an existing record: an op of a
// settling kind (crdt.KindResolve, KindMerge, KindRetire, KindDistinct)
// whose field writes supersede exactly the dots in seen (the values the
// admin saw), or, for a field missing from seen, the values live now.
// Whether this device may settle is the caller's check.
func (s *Store) Settle(origin string, key ed25519.PrivateKey, recordID string, kind crdt.Kind, values map[string]string, seen map[string][]crdt.Dot, wallMillis int64) (crdt.Opened, error) {
	if kind < crdt.KindResolve {
		return crdt.Opened{}, fmt.Errorf("settle %s: %s is not a settling kind", recordID, kind)
	}
	if err := s.enter(); err != nil {
		return crdt.Opened{}, err
	}
	defer s.leave()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if seen == nil {
		seen = map[string][]crdt.Dot{}
	}
	o, err := s.write(origin, key, recordID, kind, values, seen, wallMillis, nil)
	if err != nil {
		return crdt.Opened{}, fmt.Errorf("settle %s: %w", recordID, err)
	}
	return o, nil
}

// write makes, signs and applies one own op. extra are more writes that must
// be in the op's transaction (an upload's chunk marks, see chunks.go); an op
// that does not fit with them is refused (ErrTooLarge).
func (s *Store) write(origin string, key ed25519.PrivateKey, recordID string, kind crdt.Kind, values map[string]string, seen map[string][]crdt.Dot, wallMillis int64, extra []entry) (crdt.Opened, error) {
	if err := s.checkFailed(); err != nil {
		return crdt.Opened{}, err
	}
	if !validOrigin(origin) {
		return crdt.Opened{}, fmt.Errorf("%q: %w", origin, ErrBadOrigin)
	}
	if len(key) != ed25519.PrivateKeySize {
		return crdt.Opened{}, fmt.Errorf("%w: private key of %d bytes", ErrWrongKey, len(key))
	}
	if pub, ok := s.pubs[origin]; ok && !bytes.Equal(pub, key.Public().(ed25519.PublicKey)) {
		return crdt.Opened{}, fmt.Errorf("%w: does not match the credential of %s", ErrWrongKey, origin)
	}
	switch s.self {
	case origin:
	case "":
		if err := s.adoptSelfLocked(origin); err != nil {
			return crdt.Opened{}, err
		}
	default:
		return crdt.Opened{}, fmt.Errorf("%w: %s, this device is %s", ErrNotSelf, origin, s.self)
	}

	w := s.newWriter()
	defer func() { w.txn.Discard() }() // the writer may have moved on to a new transaction
	c, err := w.record(recordID)
	if err != nil {
		return crdt.Opened{}, err
	}
	var cur *crdt.Record
	switch kind {
	case crdt.KindCreate:
		if c.exists {
			return crdt.Opened{}, ErrExists
		}
	default:
		if !c.exists {
			return crdt.Opened{}, ErrNotFound
		}
		cur = c.rec
	}
	fields := crdt.Writes(cur, values)
	if seen != nil {
		fields = crdt.SettlingWrites(cur, values, seen)
	}
	head := w.head(origin)
	clock := w.clock
	op := &crdt.Op{
		Origin: origin,
		Seq:    head.Seq + 1,
		Time:   clock.Now(wallMillis),
		Record: recordID,
		Kind:   kind,
		Fields: fields,
	}
	if op.Seq > 1 {
		op.Prev = head.Hash[:]
	}
	signed, err := crdt.Sign(op, key)
	if err != nil {
		return crdt.Opened{}, err
	}
	// Apply the op as decoded from its body, exactly as every other
	// replica will.
	opened, err := crdt.Open(signed)
	if err != nil {
		return crdt.Opened{}, err
	}
	if err := w.apply(opened, clock); err != nil {
		return crdt.Opened{}, err
	}
	if len(extra) > 0 {
		// The op alone was staged in this transaction (a single write never
		// commits part way): the extra writes join it or the op is refused.
		if err := setAll(w.txn, extra); err != nil {
			if errors.Is(err, badger.ErrTxnTooBig) {
				return crdt.Opened{}, ErrTooLarge
			}
			return crdt.Opened{}, err
		}
		w.staged = append(w.staged, extra...)
	}
	if err := w.finish(); err != nil {
		return crdt.Opened{}, err
	}
	return opened, nil
}

// Refusal is a run of one origin's ops that Ingest did not apply: the op
// with seq Seq and the Count-1 ops of that origin after it in the batch.
// Err says why, wrapping crdt.ErrChain (a gap or a broken link: the sender
// should resend from the head), crdt.ErrSignature, crdt.ErrMalformed,
// ErrUnknownOrigin or ErrTooLarge. A malformed op whose origin cannot be read
// has Origin "" and Seq 0.
type Refusal struct {
	Origin string
	Seq    uint64
	Count  int
	Err    error
}

// IngestResult says what Ingest did with a batch.
type IngestResult struct {
	// Applied lists, per origin in batch order, the ops applied (durable).
	Applied []crdt.Range
	// Duplicates counts ops already held (seq at most the head) or repeated
	// in the batch.
	Duplicates int
	// Refused lists what was not applied and why.
	Refused []Refusal
	// Quarantined counts ops of quarantined origins kept apart (see
	// Options.Quarantine), durable like Applied.
	Quarantined int
	// Forks lists fork evidence found in the batch and not held before
	// (durable).
	Forks []Fork
	// Rewound lists origins whose branch lost a fork to the batch's: the
	// store moved it out of the log and applied the batch's branch, so its
	// head of the origin may be lower than before.
	Rewound []string
	// Probes names ops whose origin's log forked below what the batch
	// showed: the log differs from the sender's at this (origin, seq) or
	// before, and the sender should be asked where the two part.
	Probes []crdt.Dot
}

// AppliedOps is the number of ops applied.
func (r IngestResult) AppliedOps() int {
	n := 0
	for _, rg := range r.Applied {
		n += int(rg.Len())
	}
	return n
}

// Ingest applies ops received from a peer: any origins, each origin's ops in
// seq order, possibly including ops already held. Per origin, ops at or below
// the head are skipped as duplicates; the rest must continue the log from the
// head (seq head+1, naming its hash). The run is checked against the origin's
// stored public key with one signature verification (crdt.VerifyRun), and the
// verified prefix applied in order, each op merged against the version vector
// as it stands just before it. What cannot be applied is listed in Refused;
// the rest of the batch still goes in.
//
// The batch is committed in one transaction when it fits, else in several,
// each holding whole ops; everything in Applied is durable when Ingest
// returns. The error is for storage failures only; Applied then lists the ops
// committed before the failure.
func (s *Store) Ingest(batch []crdt.Signed, wallMillis int64) (IngestResult, error) {
	if err := s.enter(); err != nil {
		return IngestResult{}, err
	}
	defer s.leave()
	// Decoding needs no store state: done before taking the writers' lock,
	// so a caller that pipelines batches decodes one while another commits.
	opened, errs := openAll(batch)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.checkFailed(); err != nil {
		return IngestResult{}, fmt.Errorf("ingest: %w", err)
	}

	var res IngestResult
	var order []string
	runs := map[string][]crdt.Opened{}
	for i, o := range opened {
		if err := errs[i]; err != nil {
			res.Refused = append(res.Refused, Refusal{Count: 1, Err: err})
			continue
		}
		origin := o.Op.Origin
		if _, ok := runs[origin]; !ok {
			order = append(order, origin)
		}
		runs[origin] = append(runs[origin], o)
	}

	w := s.newWriter()
	defer func() { w.txn.Discard() }() // the writer may have moved on to a new transaction
	var storageErr error
	for _, origin := range order {
		if err := s.ingestOrigin(w, origin, runs[origin], wallMillis, &res); err != nil {
			storageErr = err
			break
		}
	}
	if storageErr == nil {
		storageErr = w.finish()
	}
	res.Applied = ranges(w.applied[:w.published])
	for _, sg := range batch {
		// The op and the record state it rewrote both went through the
		// mapped value log.
		s.trim.note(2 * (len(sg.Body) + len(sg.Sig)))
	}
	if storageErr != nil {
		return res, fmt.Errorf("ingest: %w", storageErr)
	}
	return res, nil
}

// ingestOrigin stages one origin's ops of a batch. It returns only storage
// errors; what it refuses goes to res.
func (s *Store) ingestOrigin(w *writer, origin string, ops []crdt.Opened, wallMillis int64, res *IngestResult) error {
	if s.quarantine != nil && origin != s.self && s.quarantine(origin) {
		return s.quarantineOrigin(w, origin, ops, res)
	}
	ops, err := s.checkForkInBatch(w, origin, ops, res)
	if err != nil || len(ops) == 0 {
		return err
	}
	head := w.head(origin)
	prev := head
	run := make([]crdt.Opened, 0, len(ops))
	cut := len(ops) // ops[cut:] do not link to the log
	for i, o := range ops {
		if o.Op.Seq <= prev.Seq {
			res.Duplicates++
			continue
		}
		if o.Op.Seq != prev.Seq+1 || (o.Op.Seq > 1 && !bytes.Equal(o.Op.Prev, prev.Hash[:])) {
			cut = i
			break
		}
		run = append(run, o)
		prev = crdt.Head{Seq: o.Op.Seq, Hash: o.Hash}
	}
	rest := len(ops) - cut
	refuse := func(seq uint64, n int, err error) {
		res.Refused = append(res.Refused, Refusal{Origin: origin, Seq: seq, Count: n + rest, Err: err})
		rest = 0
	}
	defer func() {
		if rest > 0 {
			seq := ops[cut].Op.Seq
			refuse(seq, 0, fmt.Errorf("%w: %s seq %d after %d", crdt.ErrChain, origin, seq, prev.Seq))
		}
	}()
	if len(run) == 0 {
		return nil
	}
	pub, ok := s.pubs[origin]
	if !ok {
		refuse(run[0].Op.Seq, len(run), fmt.Errorf("%w: %s", ErrUnknownOrigin, origin))
		return nil
	}
	n, verr := crdt.VerifyRun(head, run, pub)
	if s.verifyAll {
		n, verr = verifyEach(run[:n], pub, n, verr)
	}
	for i, o := range run[:n] {
		if o.Op.Settles() && origin != s.self && (s.maySettle == nil || !s.maySettle(origin)) {
			n, verr = i, fmt.Errorf("%w: %s seq %d (%s) is not an admin device or hub", ErrNotAuthorized, origin, o.Op.Seq, o.Op.Kind)
			break
		}
	}
	for i, o := range run[:n] {
		clock := w.clock
		clock.Observe(o.Op.Time, wallMillis, MaxClockDriftMillis)
		if err := w.apply(o, clock); err != nil {
			if errors.Is(err, ErrTooLarge) {
				refuse(o.Op.Seq, len(run)-i, fmt.Errorf("%w: %s seq %d", ErrTooLarge, origin, o.Op.Seq))
				return nil
			}
			return err
		}
	}
	if n < len(run) {
		refuse(run[n].Op.Seq, len(run)-n, verr)
	}
	return nil
}

// openAll decodes a batch (crdt.Open: parse, validate, hash), spread over
// the available cores: decoding is most of ingest's own CPU time, and a sync
// batch is hundreds of independent ops.
func openAll(batch []crdt.Signed) ([]crdt.Opened, []error) {
	opened := make([]crdt.Opened, len(batch))
	errs := make([]error, len(batch))
	open := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			opened[i], errs[i] = crdt.Open(batch[i])
		}
	}
	const minChunk = 32
	workers := min(runtime.GOMAXPROCS(0), 8, len(batch)/minChunk)
	if workers < 2 {
		open(0, len(batch))
		return opened, errs
	}
	var wg sync.WaitGroup
	chunk := (len(batch) + workers - 1) / workers
	for lo := 0; lo < len(batch); lo += chunk {
		hi := min(lo+chunk, len(batch))
		wg.Add(1)
		go func() {
			defer wg.Done()
			open(lo, hi)
		}()
	}
	wg.Wait()
	return opened, errs
}

// ranges groups dots, in order, into runs of consecutive seqs of one origin.
func ranges(dots []crdt.Dot) []crdt.Range {
	var out []crdt.Range
	for _, d := range dots {
		if n := len(out); n > 0 && out[n-1].Origin == d.Origin && out[n-1].To+1 == d.Seq {
			out[n-1].To = d.Seq
			continue
		}
		out = append(out, crdt.Range{Origin: d.Origin, From: d.Seq, To: d.Seq})
	}
	return out
}

// verifyEach checks every signature of a chain-verified prefix, cutting it
// at the first that fails.
func verifyEach(run []crdt.Opened, pub ed25519.PublicKey, n int, verr error) (int, error) {
	verified := verifyParallel(run, pub)
	for i := range run {
		if !verified[i] {
			return i, fmt.Errorf("%w: %s seq %d", crdt.ErrSignature, run[i].Op.Origin, run[i].Op.Seq)
		}
	}
	return n, verr
}

// verifyParallel verifies signatures on every core: the one part of ingest
// that is pure CPU.
func verifyParallel(run []crdt.Opened, pub ed25519.PublicKey) []bool {
	ok := make([]bool, len(run))
	workers := min(runtime.GOMAXPROCS(0), max(1, len(run)/32))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(run); i += workers {
				ok[i] = ed25519.Verify(pub, run[i].Body, run[i].Sig)
			}
		}(w)
	}
	wg.Wait()
	return ok
}
