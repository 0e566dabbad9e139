package agent

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/agent/identity"
	"github.com/fieldsync/fieldsync/agent/syncer"
	"github.com/fieldsync/fieldsync/agent/transport"
	"github.com/fieldsync/fieldsync/agent/uplink"
	"github.com/fieldsync/fieldsync/agent/wire"
	"github.com/fieldsync/fieldsync/crdt"
)

// The deterministic simulation of a deployment (docs/testing.md,
// "Deterministic simulation"). A world holds laptops and hubs, each a real
// agent with a real store on real badger, joined by simulated links that
// carry the real wire frames of real sessions. One goroutine drives
// everything: nothing runs unless the world calls it, time is the world's
// counter, and every random choice comes from the seed.

// simEpoch is the wall time at the start of every schedule.
var simEpoch = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC).UnixMilli()

// simWorld is one deployment under one schedule.
type simWorld struct {
	seed  uint64
	base  string // directory holding every store
	now   int64  // simulated milliseconds since simEpoch
	auth  *identity.Authority
	sync  syncer.Config
	nodes []*simNode
	links map[[2]int]*simLink // live links, by node pair (smaller first)
	stale []*simLink          // sessions replaced by a reconnect, still draining
	ids   int                 // link ids handed out
	rng   *rand.Rand          // the running step's randomness
	tick  int64               // next writer-loop tick, simulated ms

	fails  []string
	acked  []simAck                      // ops an API call acknowledged
	issued map[string]map[int64][]byte   // hub -> issued ms -> receipt body
	sent   map[string]crdt.VersionVector // node -> what it acked to peers
	trace  uint64                        // FNV-1a of the events, for replay checks
	stats  simStats
	tracef func(format string, args ...any) // nil: no trace
}

// simStats counts what one schedule did.
type simStats struct {
	Steps, Frames, Batches, Ops, Crashes, Restarts, Receipts, Settles int
}

// simAck is one op an API call acknowledged: it must be everywhere at the
// end, with these bytes.
type simAck struct {
	node   string
	origin string
	seq    uint64
	hash   [crdt.HashSize]byte
}

// simNode is one device: its identity, and the agent running it now
// (replaced at every crash or restart).
type simNode struct {
	w     *simWorld
	i     int
	name  string
	role  identity.Role
	dev   *identity.Device
	key   []byte // the store's encryption key
	a     *Agent
	dir   string
	gen   int
	skew  int64 // this device's clock minus the world's, ms
	logs  *simLog
	pass  int64 // hub: earliest next receipt pass (200 ms apart, as the loop)
	view  []simSeen
	n     int    // records captured here
	refus uint64 // refused ops of agents before the running one
}

// simSeen is one conflict as an admin saw it in the queue.
type simSeen struct {
	record, field string
	values        []string
	ops           []string
}

// simLink is one connection between two devices: one session at each end.
type simLink struct {
	id      int
	ends    [2]*simEnd
	latency int64 // ms
	slow    bool  // a borrowed link: seconds per frame
}

// simEnd is one side of a link: the session there and the frames it wrote
// that the other side has not read yet.
type simEnd struct {
	n, peer *simNode
	s       *session
	st      *simStream
	q       []simFrame
	last    int64 // delivery time of the last frame queued
	dead    bool
}

type simFrame struct {
	at   int64
	data []byte
}

// newSimWorld provisions a deployment: laptops (field and admin) and hubs,
// each with a key and credential derived from the seed, and opens their
// stores under base.
func newSimWorld(seed uint64, base string, p simParams) (*simWorld, error) {
	w := &simWorld{seed: seed, base: base, links: map[[2]int]*simLink{}, sync: p.sync,
		issued: map[string]map[int64][]byte{}, sent: map[string]crdt.VersionVector{}}
	r := rand.New(rand.NewPCG(seed, 0x70726f76))
	seedBytes := func() []byte {
		b := make([]byte, 32)
		for i := 0; i < 32; i += 8 {
			binary.LittleEndian.PutUint64(b[i:], r.Uint64())
		}
		return b
	}
	ak := ed25519.NewKeyFromSeed(seedBytes())
	w.auth = &identity.Authority{Private: ak, Public: ak.Public().(ed25519.PublicKey), Secret: seedBytes()}
	issued := time.UnixMilli(simEpoch).Add(-30 * 24 * time.Hour)
	add := func(name string, role identity.Role) error {
		priv := ed25519.NewKeyFromSeed(seedBytes())
		cred, err := w.auth.IssueTo(name, "officer "+name, role, priv.Public().(ed25519.PublicKey), issued, 2*365*24*time.Hour)
		if err != nil {
			return err
		}
		n := &simNode{w: w, i: len(w.nodes), name: name, role: role, key: seedBytes(), logs: &simLog{},
			dev: &identity.Device{Private: priv, Credential: cred, AuthorityPublic: w.auth.Public, DeploymentSecret: w.auth.Secret}}
		n.skew = p.skews[n.i%len(p.skews)]
		n.dir = filepath.Join(base, fmt.Sprintf("%s-%d", name, n.gen))
		w.nodes = append(w.nodes, n)
		return n.open()
	}
	for i := 0; i < p.laptops; i++ {
		role, name := identity.RoleField, fmt.Sprintf("laptop-%d", i+1)
		if i < p.admins {
			role, name = identity.RoleAdmin, fmt.Sprintf("admin-%d", i+1)
		}
		if err := add(name, role); err != nil {
			return nil, err
		}
	}
	for i := 0; i < p.hubs; i++ {
		if err := add(fmt.Sprintf("hub-%d", i+1), identity.RoleHub); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// simParams are the shape of one deployment, drawn from the seed.
type simParams struct {
	laptops, admins, hubs int
	skews                 []int64
	sync                  syncer.Config
	steps                 int
}

func (w *simWorld) failf(format string, args ...any) {
	msg := fmt.Sprintf("t=%dms: ", w.now) + fmt.Sprintf(format, args...)
	w.fails = append(w.fails, msg)
	w.logf("FAIL %s", msg)
}

func (w *simWorld) logf(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], w.trace)
	h.Write(b[:])
	h.Write([]byte(s))
	w.trace = h.Sum64()
	if w.tracef != nil {
		w.tracef("%8d %s", w.now, s)
	}
}

// clock is the device's wall clock: the world's time plus its skew.
func (n *simNode) clock() time.Time { return time.UnixMilli(simEpoch + n.w.now + n.skew) }

// open starts an agent on the node's store: the daemon's own openStore,
// with the daemon's store options and session bounds drawn for the seed.
func (n *simNode) open() error {
	cfg := DefaultConfig()
	cfg.DataDir = n.dir
	cfg.MDNS = false
	cfg.OwnLogWait = 0
	cfg.Sync = n.w.sync
	cfg.Logger = slog.New(n.logs).With("gen", n.gen)
	cfg.Now = n.clock
	a := newAgent(cfg, n.dev, n.dev.Verifier())
	so := a.storeOptions(n.dir, n.key)
	// Smaller buffers than a laptop's, same code: badger zeroes its
	// memtable arena at every open, and a schedule opens stores often. A
	// device of a schedule never fills even these, so no flush or
	// compaction runs in the background (see crash).
	so.MemTableSize = 2 << 20
	so.BaseTableSize = 512 << 10
	so.ValueLogFileSize = 16 << 20
	if err := a.openStore(so); err != nil {
		return fmt.Errorf("open %s: %w", n.name, err)
	}
	n.a = a
	n.pass = 0
	return nil
}

// stop ends the running agent: its sessions were cut by the caller.
func (n *simNode) stop() error {
	n.refus += n.a.refusedOps.Load()
	close(n.a.stop)
	return n.a.store.Close()
}

// crash is kill -9: the store's files are copied as they are on disk
// between two calls (badger's write-ahead log and value log are written
// through shared mappings and synced at every commit, so the copy is what
// the kernel holds), the old agent is dropped without closing anything, and
// a new agent opens the copy. Nothing of the old agent's memory survives.
func (n *simNode) crash() error {
	n.gen++
	dir := filepath.Join(n.w.base, fmt.Sprintf("%s-%d", n.name, n.gen))
	if err := snapshot(n.dir, dir); err != nil {
		return fmt.Errorf("snapshot %s: %w", n.name, err)
	}
	old, oldDir := n.a, n.dir
	n.refus += old.refusedOps.Load()
	close(old.stop)
	// The dropped agent's badger is closed only now, after the copy, so
	// nothing it does on close reaches the copy.
	_ = old.store.Close()
	_ = os.RemoveAll(oldDir)
	n.dir = dir
	return n.open()
}

// restart is a clean stop and start on the same store.
func (n *simNode) restart() error {
	if err := n.stop(); err != nil {
		return err
	}
	n.gen++
	return n.open()
}

// peerOf is how a device appears to another after the handshake.
func (n *simNode) peer() transport.Peer {
	raw, _ := n.dev.Credential.Marshal()
	return transport.Peer{PeerID: n.dev.ID(), PublicKey: n.dev.Public(), DeviceID: n.dev.ID(), Name: n.name, Credential: raw}
}

func pairKey(i, j int) [2]int {
	if i > j {
		i, j = j, i
	}
	return [2]int{i, j}
}

// up connects two devices: both admit the other's credential (the agent's
// own admission check, on each device's clock), then a session starts at
// each end and sends its hello. A link already up is reconnected: the old
// sessions keep draining what is in flight until dropStale ends them, as an
// older stream does until the newer session's reset reaches it.
func (w *simWorld) up(i, j int) {
	if i == j {
		return
	}
	k := pairKey(i, j)
	if old := w.links[k]; old != nil {
		w.unregister(old)
		w.stale = append(w.stale, old)
		delete(w.links, k)
	}
	x, y := w.nodes[k[0]], w.nodes[k[1]]
	for _, p := range [][2]*simNode{{x, y}, {y, x}} {
		if _, err := p[0].a.admit(p[1].dev.Public(), p[1].peer().Credential); err != nil {
			w.failf("%s refused %s at the handshake: %v", p[0].name, p[1].name, err)
			return
		}
	}
	w.ids++
	l := &simLink{id: w.ids, latency: 1 + w.rng.Int64N(80)}
	l.slow = w.rng.IntN(8) == 0
	for side, p := range [][2]*simNode{{x, y}, {y, x}} {
		st := &simStream{}
		e := &simEnd{n: p[0], peer: p[1], st: st}
		e.s = p[0].a.newSession(p[1].peer(), st, false)
		l.ends[side] = e
	}
	w.links[k] = l
	for _, e := range l.ends {
		a := e.n.a
		a.mu.Lock()
		a.sessions[e.peer.dev.ID()] = e.s
		a.mu.Unlock()
	}
	w.logf("up %s-%s link %d latency %d slow %v", x.name, y.name, l.id, l.latency, l.slow)
	for _, e := range l.ends {
		if err := e.s.hello(); err != nil {
			w.failf("%s hello to %s: %v", e.n.name, e.peer.name, err)
		}
		w.collect(l, e)
	}
}

// down cuts a link: both sessions end and whatever was in flight is lost.
func (w *simWorld) down(i, j int) {
	k := pairKey(i, j)
	l := w.links[k]
	if l == nil {
		return
	}
	delete(w.links, k)
	w.kill(l)
	w.logf("down %s-%s link %d", w.nodes[k[0]].name, w.nodes[k[1]].name, l.id)
}

// kill ends both sessions of a link, as runSession's end does.
func (w *simWorld) kill(l *simLink) {
	w.unregister(l)
	for _, e := range l.ends {
		e.dead = true
		e.q = nil
		_ = e.st.Reset()
		e.n.a.xfer.Drop(e.s.xferKey())
	}
}

// unregister takes a link's sessions out of their agents' session maps.
func (w *simWorld) unregister(l *simLink) {
	for _, e := range l.ends {
		a := e.n.a
		a.mu.Lock()
		if a.sessions[e.peer.dev.ID()] == e.s {
			delete(a.sessions, e.peer.dev.ID())
		}
		a.mu.Unlock()
	}
}

// dropStale ends every replaced session.
func (w *simWorld) dropStale() {
	for _, l := range w.stale {
		w.kill(l)
	}
	w.stale = nil
}

// isolate cuts every link of a device (a crash, or it leaves).
func (w *simWorld) isolate(n *simNode) []int {
	var peers []int
	for _, k := range w.linkKeys() {
		if k[0] == n.i || k[1] == n.i {
			peers = append(peers, k[0]+k[1]-n.i)
			w.down(k[0], k[1])
		}
	}
	for _, l := range w.stale {
		if l.ends[0].n == n || l.ends[1].n == n {
			w.kill(l)
		}
	}
	return peers
}

func (w *simWorld) linkKeys() [][2]int {
	keys := make([][2]int, 0, len(w.links))
	for k := range w.links {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool {
		if keys[a][0] != keys[b][0] {
			return keys[a][0] < keys[b][0]
		}
		return keys[a][1] < keys[b][1]
	})
	return keys
}

// allLinks returns the live links in key order, then the stale ones.
func (w *simWorld) allLinks() []*simLink {
	out := make([]*simLink, 0, len(w.links)+len(w.stale))
	for _, k := range w.linkKeys() {
		out = append(out, w.links[k])
	}
	return append(out, w.stale...)
}

// collect turns what a session wrote into frames on the wire, each with a
// delivery time: the link's latency and jitter, in order per direction (a
// stream is ordered), so frames of different links and directions
// interleave freely.
func (w *simWorld) collect(l *simLink, e *simEnd) {
	b := e.st.out.Bytes()
	for len(b) >= 4 {
		size := int(binary.BigEndian.Uint32(b))
		if len(b) < 4+size {
			break
		}
		frame := bytes.Clone(b[:4+size])
		b = b[4+size:]
		m, err := wire.Decode(frame[4:])
		if err != nil {
			w.failf("%s wrote a frame it cannot decode: %v", e.n.name, err)
			continue
		}
		w.note(e, m)
		if e.dead {
			continue
		}
		delay := l.latency + w.rng.Int64N(l.latency+1)
		if l.slow {
			delay += 1000 + w.rng.Int64N(20000)
		}
		at := max(w.now+delay, e.last)
		e.last = at
		e.q = append(e.q, simFrame{at: at, data: frame})
	}
	rest := bytes.Clone(b)
	e.st.out.Reset()
	e.st.out.Write(rest)
}

// note keeps what the world must check about a frame a device sent: an ack
// promises that what it names is durable there.
func (w *simWorld) note(e *simEnd, m *wire.Message) {
	w.stats.Frames++
	switch {
	case m.Ack != nil:
		vv := w.sent[e.n.name]
		if vv == nil {
			vv = crdt.VersionVector{}
			w.sent[e.n.name] = vv
		}
		vv.Merge(m.Ack.VV)
	case m.Batch != nil:
		w.stats.Batches++
		w.stats.Ops += len(m.Batch.Ops)
		// A hub sends a laptop only the hub's own ops and the laptop's
		// own log, never the province's dossiers.
		if e.n.role == identity.RoleHub && e.peer.role != identity.RoleHub {
			for _, r := range m.Batch.Ranges {
				if r.Origin != e.n.dev.ID() && r.Origin != e.peer.dev.ID() {
					w.failf("%s sent %s ops of %.8s", e.n.name, e.peer.name, r.Origin)
				}
			}
		}
	}
}

// nextFrame returns the end whose first frame is due first, nil if none.
func (w *simWorld) nextFrame() (*simLink, int) {
	var best *simLink
	side := 0
	for _, l := range w.allLinks() {
		for s, e := range l.ends {
			if e.dead || len(e.q) == 0 {
				continue
			}
			if best == nil || e.q[0].at < best.ends[side].q[0].at {
				best, side = l, s
			}
		}
	}
	return best, side
}

// deliverOne delivers the next frame due, advancing time to it. It reports
// false when nothing is in flight.
func (w *simWorld) deliverOne() bool {
	l, side := w.nextFrame()
	if l == nil {
		return false
	}
	from, to := l.ends[side], l.ends[1-side]
	f := from.q[0]
	from.q = from.q[1:]
	w.advance(f.at)
	if to.dead {
		return true
	}
	to.st.in.Write(f.data)
	m, err := to.s.in.Read()
	if err != nil {
		w.failf("%s reads a frame from %s: %v", to.n.name, from.n.name, err)
		return true
	}
	w.logf("deliver %s->%s link %d %s", from.n.name, to.n.name, l.id, describe(m))
	if err := to.s.handle(m); err != nil {
		if errors.Is(err, io.EOF) {
			w.logf("session %s<-%s ended by the peer", to.n.name, from.n.name)
		} else {
			w.failf("%s handling a frame from %s (%s): %v", to.n.name, from.n.name, describe(m), err)
		}
		w.endLink(l)
		return true
	}
	w.service()
	return true
}

// endLink ends a link whose session failed.
func (w *simWorld) endLink(l *simLink) {
	for k, x := range w.links {
		if x == l {
			delete(w.links, k)
		}
	}
	w.kill(l)
}

func describe(m *wire.Message) string {
	switch {
	case m.Hello != nil:
		return fmt.Sprintf("hello %v", crdt.VersionVector(m.Hello.VV).Total())
	case m.Batch != nil:
		var rs []string
		for _, r := range m.Batch.Ranges {
			rs = append(rs, fmt.Sprintf("%.6s:%d-%d", r.Origin, r.From, r.To))
		}
		return fmt.Sprintf("batch %d [%s] creds %d", m.Batch.N, strings.Join(rs, " "), len(m.Batch.Creds))
	case m.Ack != nil:
		return fmt.Sprintf("ack %d %d", m.Ack.N, crdt.VersionVector(m.Ack.VV).Total())
	case m.Receipts != nil:
		return fmt.Sprintf("receipts %d", len(m.Receipts.List))
	}
	return "other"
}

// advance moves time forward to t, running the writer loops' ticks
// (every second) that fall on the way, at most a few of them: a tick that
// found nothing to send finds nothing the next time either.
func (w *simWorld) advance(t int64) {
	if t <= w.now {
		return
	}
	for n := 0; w.tick <= t && n < 3; n++ {
		w.now = max(w.now, w.tick)
		w.tickAll()
		w.tick = w.now + 1000
	}
	w.now = t
	if w.tick <= t {
		w.tick = t + 1000
	}
}

// tickAll is the writer loops' ticker: every session pushes what is due.
func (w *simWorld) tickAll() {
	for _, l := range w.allLinks() {
		for _, e := range l.ends {
			w.push(l, e)
		}
	}
	w.service()
}

// push runs one writer-loop pass of a session and collects its frames.
func (w *simWorld) push(l *simLink, e *simEnd) {
	if e.dead {
		return
	}
	if err := e.s.push(); err != nil {
		w.failf("%s push to %s: %v", e.n.name, e.peer.name, err)
		w.endLink(l)
		return
	}
	w.collect(l, e)
}

// service runs what the daemon's goroutines would run now: the writer
// loop of every session that was woken (or has acks queued), and on hubs
// the receipt loop when it was kicked and 200 ms have passed since its last
// pass. It repeats until nothing is woken.
func (w *simWorld) service() {
	for round := 0; ; round++ {
		if round > 10000 {
			w.failf("sessions keep waking each other")
			return
		}
		woke := false
		for _, l := range w.allLinks() {
			for _, e := range l.ends {
				if e.dead {
					continue
				}
				select {
				case <-e.s.wakeCh:
				default:
					if len(e.s.acks) == 0 {
						continue
					}
				}
				woke = true
				w.push(l, e)
			}
		}
		for _, n := range w.nodes {
			if n.role == identity.RoleHub && len(n.a.receiptWake) > 0 && w.now >= n.pass {
				<-n.a.receiptWake
				w.receiptPass(n)
				woke = true
			}
		}
		if !woke {
			return
		}
	}
}

// receiptPass runs a hub's receipt loop once and checks what it issued:
// a receipt may claim only what the hub's store holds.
func (w *simWorld) receiptPass(n *simNode) {
	n.pass = w.now + 200
	before := n.a.up.lastSelf.Issued
	if !n.a.receiptPass() {
		w.failf("%s receipt pass failed", n.name)
		return
	}
	r := n.a.up.lastSelf
	if r.Issued == before {
		return
	}
	w.stats.Receipts++
	vv := n.a.store.VersionVector()
	for o, s := range r.Stored {
		if vv[o] < s {
			w.failf("%s issued a receipt for %.8s up to %d but holds %d", n.name, o, s, vv[o])
		}
	}
	signed := n.a.up.travel[n.dev.ID()]
	if w.issued[n.name] == nil {
		w.issued[n.name] = map[int64][]byte{}
	}
	w.issued[n.name][r.Issued] = bytes.Clone(signed.Body)
	w.logf("receipt %s issued %d ops %d", n.name, r.Issued, crdt.VersionVector(r.Stored).Total())
}

// pendingPasses reports whether a hub was kicked and waits for its 200 ms.
func (w *simWorld) pendingPass() (int64, bool) {
	at, ok := int64(0), false
	for _, n := range w.nodes {
		if n.role == identity.RoleHub && len(n.a.receiptWake) > 0 && (!ok || n.pass < at) {
			at, ok = n.pass, true
		}
	}
	return at, ok
}

// quiesce runs the network until nothing is in flight, no session has
// anything to send after a tick, and no hub has a receipt pass due.
func (w *simWorld) quiesce(limit int) bool {
	for i := 0; i < limit; i++ {
		if w.deliverOne() {
			continue
		}
		if at, ok := w.pendingPass(); ok {
			w.advance(max(at, w.now+1))
			w.service()
			continue
		}
		// One tick, as the writer loops' ticker would: anything a missed
		// wake left unsent goes now.
		w.advance(w.now + 1000)
		w.tickAll()
		if l, _ := w.nextFrame(); l == nil {
			if _, ok := w.pendingPass(); !ok {
				return true
			}
		}
	}
	return false
}

// receiptsOf returns the receipts a device holds, by hub.
func (n *simNode) receiptsOf() map[string]uplink.Receipt {
	n.a.up.mu.Lock()
	defer n.a.up.mu.Unlock()
	out := make(map[string]uplink.Receipt, len(n.a.up.receipts))
	for h, r := range n.a.up.receipts {
		out[h] = r
	}
	return out
}
