package membership

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// waitFor bounds every poll; the fast timings below settle in well under a
// second on loopback.
const waitFor = 5 * time.Second

var (
	portsMu sync.Mutex
	ports   = map[int]bool{} // handed out in this test binary
)

// freeListen returns a libp2p-style listen address "127.0.0.1:P" such that
// P and P+1 (the gossip port, TCP and UDP) are free now and not handed out
// before in this test binary.
func freeListen(t *testing.T) string {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 200 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		ok := p < 65535 && !ports[p] && !ports[p+1] && portFree(p+1)
		_ = l.Close()
		if ok {
			ports[p], ports[p+1] = true, true
			return net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		}
	}
	t.Fatal("no free port pair on 127.0.0.1")
	return ""
}

func portFree(p int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	tl, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer tl.Close()
	ul, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	_ = ul.Close()
	return true
}

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

// testConfig is a node on 127.0.0.1 with timings shrunk about tenfold, so
// that failure detection takes about a second, yet loose enough that a busy
// two-core CI machine does not make nodes suspect each other falsely.
func testConfig(t *testing.T, id string, key []byte) Config {
	c := DefaultConfig()
	c.DeviceID = id
	c.PeerID = "12D3KooW" + id
	c.Listen = freeListen(t)
	c.Key = key
	c.GossipInterval = 20 * time.Millisecond
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.PushPullInterval = 500 * time.Millisecond
	c.GossipToTheDeadTime = 500 * time.Millisecond
	c.SuspicionMult = 3
	c.TCPTimeout = time.Second
	return c
}

// node is a running Membership with its event channel.
type node struct {
	*Membership
	cfg    Config
	events chan Event
	log    recorder
}

func startNode(t *testing.T, cfg Config) *node {
	t.Helper()
	n := &node{cfg: cfg, events: make(chan Event, 256), log: newRecorder()}
	if cfg.Events == nil {
		cfg.Events = n.events
	}
	cfg.Logger = slog.New(n.log)
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.DeviceID, err)
	}
	n.Membership = m
	t.Cleanup(func() { _ = m.Close() })
	return n
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitFor, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitEvent reads n's events until one of kind about device arrives.
func waitEvent(t *testing.T, n *node, kind EventKind, device string) Event {
	t.Helper()
	timeout := time.After(waitFor)
	for {
		select {
		case ev := <-n.events:
			if ev.Kind == kind && ev.Member.DeviceID == device {
				return ev
			}
		case <-timeout:
			t.Fatalf("%s: no %v event for %s within %v", n.cfg.DeviceID, kind, device, waitFor)
		}
	}
}

func member(n *node, device string) (Member, bool) {
	for _, mem := range n.Members() {
		if mem.DeviceID == device {
			return mem, true
		}
	}
	return Member{}, false
}

func ids(ms []Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.DeviceID
	}
	return out
}

func sees(n *node, devices ...string) func() bool {
	want := fmt.Sprint(devices)
	return func() bool { return fmt.Sprint(ids(n.Members())) == want }
}

func TestTwoNodesJoin(t *testing.T) {
	key := testKey(1)
	a := startNode(t, testConfig(t, "dev-a", key))
	b := startNode(t, testConfig(t, "dev-b", key))

	n, err := b.Join([]string{a.cfg.Listen})
	if err != nil || n != 1 {
		t.Fatalf("Join = %d, %v; want 1, nil", n, err)
	}
	evA := waitEvent(t, a, Joined, "dev-b")
	evB := waitEvent(t, b, Joined, "dev-a")
	eventually(t, "a to list b", sees(a, "dev-b"))
	eventually(t, "b to list a", sees(b, "dev-a"))

	// Addr is the libp2p data address, not the gossip one.
	want := Member{Meta: Meta{DeviceID: "dev-b", PeerID: "12D3KooWdev-b", DataPort: port(t, b.cfg.Listen)}, Addr: b.cfg.Listen}
	if got, _ := member(a, "dev-b"); got != want || evA.Member != want {
		t.Fatalf("a sees b as %+v (event %+v), want %+v", got, evA.Member, want)
	}
	if evB.Member.Addr != a.cfg.Listen || evB.Member.PeerID != "12D3KooWdev-a" {
		t.Fatalf("b's event about a: %+v", evB.Member)
	}
	if a.DroppedEvents() != 0 || b.DroppedEvents() != 0 {
		t.Fatalf("dropped events: %d, %d", a.DroppedEvents(), b.DroppedEvents())
	}
}

func port(t *testing.T, addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestThreeNodesLearnEachOtherThroughGossip(t *testing.T) {
	key := testKey(2)
	a := startNode(t, testConfig(t, "dev-a", key))
	b := startNode(t, testConfig(t, "dev-b", key))
	c := startNode(t, testConfig(t, "dev-c", key))

	if _, err := b.Join([]string{a.cfg.Listen}); err != nil {
		t.Fatal(err)
	}
	// c knows only b; it must learn a, and a must learn c, by gossip.
	if _, err := c.Join([]string{b.cfg.Listen}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a to list b and c", sees(a, "dev-b", "dev-c"))
	eventually(t, "b to list a and c", sees(b, "dev-a", "dev-c"))
	eventually(t, "c to list a and b", sees(c, "dev-a", "dev-b"))
	waitEvent(t, a, Joined, "dev-c")
	waitEvent(t, c, Joined, "dev-a")
}

func TestSetDigestPropagates(t *testing.T) {
	key := testKey(3)
	a := startNode(t, testConfig(t, "dev-a", key))
	b := startNode(t, testConfig(t, "dev-b", key))
	if _, err := b.Join([]string{a.cfg.Listen}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b to list a", sees(b, "dev-a"))

	a.SetDigest(0xfeedface)
	ev := waitEvent(t, b, Updated, "dev-a")
	if ev.Member.Digest != 0xfeedface {
		t.Fatalf("update event digest = %#x", ev.Member.Digest)
	}
	if got, _ := member(b, "dev-a"); got.Digest != 0xfeedface || got.PeerID != "12D3KooWdev-a" {
		t.Fatalf("b sees a as %+v", got)
	}

	// Setting the same digest again gossips nothing.
	before := a.metaUpdates.Load()
	a.SetDigest(0xfeedface)
	if a.metaUpdates.Load() != before {
		t.Fatal("SetDigest with an unchanged digest called UpdateNode")
	}

	// A node joining later learns the digest through the state exchange.
	c := startNode(t, testConfig(t, "dev-c", key))
	if _, err := c.Join([]string{b.cfg.Listen}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "c to see a's digest", func() bool {
		m, ok := member(c, "dev-a")
		return ok && m.Digest == 0xfeedface
	})
}

func TestSetDigestDoesNotWaitForGossip(t *testing.T) {
	key := testKey(15)
	slow := func(id string) Config {
		c := testConfig(t, id, key)
		// memberlist would take minutes to finish gossiping an update;
		// probes still carry it within ProbeInterval.
		c.GossipInterval = time.Minute
		return c
	}
	a := startNode(t, slow("dev-a"))
	b := startNode(t, slow("dev-b"))
	if _, err := b.Join([]string{a.cfg.Listen}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a to list b", sees(a, "dev-b"))
	start := time.Now()
	a.SetDigest(31)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("SetDigest blocked for %v", d)
	}
	eventually(t, "b to see a's digest", func() bool { m, _ := member(b, "dev-a"); return m.Digest == 31 })
}

func TestWrongKeyCannotJoin(t *testing.T) {
	a := startNode(t, testConfig(t, "dev-a", testKey(4)))
	intruder := startNode(t, testConfig(t, "dev-x", testKey(5)))

	n, err := intruder.Join([]string{a.cfg.Listen})
	if n != 0 || !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Join with another key = %d, %v; want 0, ErrUnreachable", n, err)
	}
	// Refused for the right reason, and said so in a's log.
	eventually(t, "a to log the undecryptable join", func() bool {
		for _, r := range a.log.find(slog.LevelWarn, "refused peer") {
			if strings.Contains(r.attrs["detail"], "no installed keys could decrypt") {
				return true
			}
		}
		return false
	})
	// The other way round fails as well.
	if n, err := a.Join([]string{intruder.cfg.Listen}); n != 0 || !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Join towards another key = %d, %v; want 0, ErrUnreachable", n, err)
	}

	// A genuine node joins after the attempts; once a has seen it, the
	// intruder must not have slipped in through any side.
	b := startNode(t, testConfig(t, "dev-b", testKey(4)))
	if _, err := b.Join([]string{a.cfg.Listen}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a and b to list each other", func() bool { return sees(a, "dev-b")() && sees(b, "dev-a")() })
	// Let a few probe and push/pull rounds pass over the intruder's
	// attempts: it must never appear on either side, even in memberlist's
	// own list (which holds members with unreadable metadata too).
	deadline := time.Now().Add(3 * b.cfg.PushPullInterval)
	for time.Now().Before(deadline) {
		for _, n := range []*node{a, b} {
			for _, mem := range n.ml.Members() {
				if mem.Name == "dev-x" {
					t.Fatalf("%s lists the intruder", n.cfg.DeviceID)
				}
			}
		}
		if got := intruder.ml.NumMembers(); got != 1 || len(intruder.Members()) != 0 {
			t.Fatalf("the intruder sees %d nodes: %v", got, ids(intruder.Members()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestOtherLabelCannotJoin(t *testing.T) {
	key := testKey(16)
	aCfg := testConfig(t, "dev-a", key)
	aCfg.Label = "fieldsync/deployment-1"
	a := startNode(t, aCfg)
	xCfg := testConfig(t, "dev-x", key) // same key, default label
	x := startNode(t, xCfg)
	if n, err := x.Join([]string{a.cfg.Listen}); n != 0 || !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Join with another label = %d, %v; want 0, ErrUnreachable", n, err)
	}
	bCfg := testConfig(t, "dev-b", key)
	bCfg.Label = aCfg.Label
	b := startNode(t, bCfg)
	if _, err := b.Join([]string{a.cfg.Listen}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a and b to list each other", func() bool { return sees(a, "dev-b")() && sees(b, "dev-a")() })
	if len(x.Members()) != 0 {
		t.Fatalf("x sees %v", ids(x.Members()))
	}
}

func TestLeaveSendsLeft(t *testing.T) {
	key := testKey(6)
	a := startNode(t, testConfig(t, "dev-a", key))
	b := startNode(t, testConfig(t, "dev-b", key))
	if _, err := b.Join([]string{a.cfg.Listen}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, a, Joined, "dev-b")

	if err := b.Leave(waitFor); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	ev := waitEvent(t, a, Left, "dev-b")
	if ev.Member.PeerID != "12D3KooWdev-b" || ev.Member.Addr != b.cfg.Listen {
		t.Fatalf("left event carries %+v", ev.Member)
	}
	eventually(t, "a to list nobody", sees(a))

	if _, err := b.Join([]string{a.cfg.Listen}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Join after Leave: %v, want ErrClosed", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close after Leave: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := b.Leave(time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("Leave after Close: %v, want ErrClosed", err)
	}
	b.SetDigest(9) // must neither block nor panic after Close
}

func TestCloseSendsLeftAndReleasesPorts(t *testing.T) {
	key := testKey(7)
	a := startNode(t, testConfig(t, "dev-a", key))
	bCfg := testConfig(t, "dev-b", key)
	b := startNode(t, bCfg)
	if _, err := b.Join([]string{a.cfg.Listen}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, a, Joined, "dev-b")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, a, Left, "dev-b")
	// The gossip port is free again: a new instance binds it at once.
	startNode(t, bCfg)
}

// TestRejoinAbsent covers the known memberlist pitfall: a node that was
// gone comes back at the same address, joins no one, and memberlist alone
// would never find it again; RejoinAbsent does.
func TestRejoinAbsent(t *testing.T) {
	key := testKey(8)
	a := startNode(t, testConfig(t, "dev-a", key))
	bCfg := testConfig(t, "dev-b", key)
	b := startNode(t, bCfg)
	c := startNode(t, testConfig(t, "dev-c", key))

	// a never calls Join: it must remember b's address from seeing it.
	if _, err := b.Join([]string{a.cfg.Listen}); err != nil {
		t.Fatal(err)
	}
	// c remembers the address it joined.
	if _, err := c.Join([]string{a.cfg.Listen}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a to list b and c", sees(a, "dev-b", "dev-c"))
	eventually(t, "c to list a and b", sees(c, "dev-a", "dev-b"))
	if n, err := a.RejoinAbsent(); n != 0 || err != nil {
		t.Fatalf("RejoinAbsent with everyone present = %d, %v; want 0, nil", n, err)
	}

	// b vanishes without a word (crash, lid closed, out of Wi-Fi range).
	crash(t, b)
	waitEvent(t, a, Left, "dev-b")
	eventually(t, "a to list only c", sees(a, "dev-c"))
	if n, err := a.RejoinAbsent(); n != 0 || !errors.Is(err, ErrUnreachable) {
		t.Fatalf("RejoinAbsent with b down = %d, %v; want 0, ErrUnreachable", n, err)
	}

	// A fresh b on the same address, joining no one. This sleep is part of
	// the scenario, not a synchronisation: past GossipToTheDeadTime,
	// memberlist has stopped gossiping to the dead b for good.
	time.Sleep(bCfg.GossipToTheDeadTime)
	b2 := startNode(t, bCfg)
	if n, err := a.RejoinAbsent(); n != 1 || err != nil {
		t.Fatalf("RejoinAbsent = %d, %v; want 1, nil", n, err)
	}
	waitEvent(t, a, Joined, "dev-b")
	eventually(t, "a to list b and c", sees(a, "dev-b", "dev-c"))
	eventually(t, "b2 to list a and c", sees(b2, "dev-a", "dev-c"))
	eventually(t, "c to list a and b", sees(c, "dev-a", "dev-b"))

	b2.SetDigest(5)
	eventually(t, "c to see b2's digest", func() bool { m, _ := member(c, "dev-b"); return m.Digest == 5 })
}

// crash stops n's memberlist without leaving, as a crash would, and makes
// its Close a no-op (memberlist panics on Leave after Shutdown).
func crash(t *testing.T, n *node) {
	t.Helper()
	n.mu.Lock()
	n.left, n.closed = true, true
	n.mu.Unlock()
	if err := n.ml.Shutdown(); err != nil {
		t.Fatal(err)
	}
}

func TestRejoinSkipsMemberThatMoved(t *testing.T) {
	a := startNode(t, testConfig(t, "dev-a", testKey(9)))
	a.mu.Lock()
	// b was seen at an old address, and is alive now at another one.
	a.rememberLocked("127.0.0.1:1", "dev-b")
	a.members["dev-b"] = memberEntry{member: Member{Meta: Meta{DeviceID: "dev-b"}}, gossip: "127.0.0.1:3"}
	a.mu.Unlock()
	if n, err := a.RejoinAbsent(); n != 0 || err != nil {
		t.Fatalf("RejoinAbsent = %d, %v; want nothing tried", n, err)
	}
}

func TestJoinSkipsSelfAndReportsBadAddresses(t *testing.T) {
	key := testKey(10)
	a := startNode(t, testConfig(t, "dev-a", key))
	b := startNode(t, testConfig(t, "dev-b", key))

	// A peer list shared by the team includes a itself.
	if n, err := a.Join([]string{a.cfg.Listen}); n != 0 || err != nil {
		t.Fatalf("Join(self) = %d, %v; want 0, nil", n, err)
	}
	n, err := a.Join([]string{"127.0.0.1:65535", a.cfg.Listen, b.cfg.Listen, b.cfg.Listen, ":4001"})
	if n != 1 || !errors.Is(err, ErrBadAddress) || errors.Is(err, ErrUnreachable) {
		t.Fatalf("Join = %d, %v; want 1 and ErrBadAddress only", n, err)
	}
	a.mu.Lock()
	known := len(a.known)
	a.mu.Unlock()
	if known != 1 {
		t.Fatalf("a remembers %d addresses, want b's only", known)
	}
	eventually(t, "a to list b", sees(a, "dev-b"))
	if n, err := a.RejoinAbsent(); n != 0 || err != nil {
		t.Fatalf("RejoinAbsent = %d, %v; want 0, nil", n, err)
	}
}

func TestIsSelfWhenBoundToAllInterfaces(t *testing.T) {
	// No sockets: tests never bind beyond 127.0.0.1, and isSelf only needs
	// the plan and the advertised address.
	m := &Membership{
		plan: bindPlan{bindIP: netip.IPv4Unspecified(), gossipPort: 4002},
		self: "192.0.2.9:5002", // advertised behind NAT
	}
	cases := map[string]bool{
		"192.0.2.9:5002":     true,
		"127.0.0.1:4002":     true,
		"127.0.0.2:4002":     true, // loopback, and we bind all
		"[::1]:4002":         true,
		"127.0.0.1:4003":     false,
		"laptop.lan:4002":    false,
		"192.0.2.1:4002":     false, // TEST-NET, not ours
		"[2001:db8::1]:4002": false,
	}
	// One of this machine's own addresses, if it has any besides loopback.
	if ifAddrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range ifAddrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && !p.Addr().IsLoopback() && p.Addr().Zone() == "" {
				cases[netip.AddrPortFrom(p.Addr().Unmap(), 4002).String()] = true
				break
			}
		}
	}
	for addr, want := range cases {
		if got := m.isSelf(addr); got != want {
			t.Errorf("isSelf(%s) = %v, want %v", addr, got, want)
		}
	}
	// Bound to one address, only that address is us.
	m.plan.bindIP = netip.MustParseAddr("127.0.0.1")
	if m.isSelf("127.0.0.2:4002") || !m.isSelf("127.0.0.1:4002") {
		t.Error("isSelf with a specific bind address")
	}
}

func TestFullEventChannelNeverBlocksMemberlist(t *testing.T) {
	key := testKey(12)
	aCfg := testConfig(t, "dev-a", key)
	aCfg.Events = make(chan Event) // unbuffered and never read
	a := startNode(t, aCfg)
	b := startNode(t, testConfig(t, "dev-b", key))
	if _, err := b.Join([]string{a.cfg.Listen}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a to list b", sees(a, "dev-b"))
	b.SetDigest(77)
	eventually(t, "a to see b's digest", func() bool { m, _ := member(a, "dev-b"); return m.Digest == 77 })
	if a.DroppedEvents() < 2 {
		t.Fatalf("dropped %d events, want at least the join and the update", a.DroppedEvents())
	}
}

// rawDelegate gives a bare memberlist node whatever metadata a test wants.
type rawDelegate struct{ meta atomic.Pointer[[]byte] }

func (d *rawDelegate) NodeMeta(int) []byte                 { return *d.meta.Load() }
func (d *rawDelegate) NotifyMsg([]byte)                    {}
func (d *rawDelegate) GetBroadcasts(int, int) [][]byte     { return nil }
func (d *rawDelegate) LocalState(bool) []byte              { return nil }
func (d *rawDelegate) MergeRemoteState(buf []byte, _ bool) {}

// TestUndecodableMetaIgnored runs a bare memberlist node holding the key but
// gossiping garbage metadata: it is never listed, and listed once its
// metadata becomes readable.
func TestUndecodableMetaIgnored(t *testing.T) {
	key := testKey(13)
	a := startNode(t, testConfig(t, "dev-a", key))

	d := &rawDelegate{}
	garbage := []byte("\xff\xfe not cbor")
	d.meta.Store(&garbage)
	keyring, err := memberlist.NewKeyring(nil, key)
	if err != nil {
		t.Fatal(err)
	}
	listen := freeListen(t)
	mc := memberlist.DefaultLocalConfig()
	mc.Name = "dev-odd"
	mc.BindAddr = "127.0.0.1"
	mc.BindPort = port(t, listen) + 1
	mc.AdvertisePort = mc.BindPort
	mc.Keyring = keyring
	mc.Label = defaultLabel
	mc.Delegate = d
	mc.Logger = log.New(io.Discard, "", 0)
	odd, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = odd.Shutdown() })

	gossip, err := GossipAddr(a.cfg.Listen)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := odd.Join([]string{gossip}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a's memberlist to hold the odd node", func() bool { return a.ml.NumMembers() == 2 })
	if ms := a.Members(); len(ms) != 0 {
		t.Fatalf("a lists %v", ids(ms))
	}
	eventually(t, "the warning", func() bool { return len(a.log.find(slog.LevelWarn, "unreadable metadata")) == 1 })
	if w := a.log.find(slog.LevelWarn, "unreadable metadata")[0]; w.attrs["node"] != "dev-odd" {
		t.Fatalf("warning names %q", w.attrs["node"])
	}

	// Readable metadata: the node is listed and announced.
	good, err := encodeMeta(Meta{DeviceID: "dev-odd", PeerID: "12D3KooWodd", DataPort: port(t, listen), Digest: 1})
	if err != nil {
		t.Fatal(err)
	}
	d.meta.Store(&good)
	if err := odd.UpdateNode(time.Second); err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, a, Joined, "dev-odd")
	if ev.Member.Addr != listen || ev.Member.Digest != 1 {
		t.Fatalf("joined event %+v", ev.Member)
	}

	// Garbage again: it is dropped with a Left event.
	d.meta.Store(&garbage)
	if err := odd.UpdateNode(time.Second); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, a, Left, "dev-odd")
	eventually(t, "a to list nobody", sees(a))
}

func TestUndecodableMetaLoggedOnce(t *testing.T) {
	a := startNode(t, testConfig(t, "dev-a", testKey(14)))
	bad := &memberlist.Node{Name: "dev-odd", Addr: net.ParseIP("127.0.0.1"), Port: 9, Meta: []byte{0xff}}
	for range 5 {
		a.observe(bad)
	}
	if got := len(a.log.find(slog.LevelWarn, "unreadable metadata")); got != 1 {
		t.Fatalf("%d warnings, want 1", got)
	}
	a.mu.Lock()
	known := len(a.known)
	a.mu.Unlock()
	if known != 0 {
		t.Fatalf("a node with unreadable metadata was remembered for rejoining")
	}
}

func TestRememberIsBounded(t *testing.T) {
	m := &Membership{known: make(map[string]knownAddr)}
	for i := range maxKnown + 10 {
		m.rememberLocked(fmt.Sprintf("10.0.0.%d:4002", i), "")
	}
	m.rememberLocked("10.0.0.0:4002", "") // was evicted; comes back as newest
	if len(m.known) != maxKnown {
		t.Fatalf("remembers %d addresses, want %d", len(m.known), maxKnown)
	}
	if _, ok := m.known["10.0.0.10:4002"]; ok {
		t.Fatal("the stalest address was kept")
	}
	if _, ok := m.known[fmt.Sprintf("10.0.0.%d:4002", maxKnown+9)]; !ok {
		t.Fatal("the newest address was evicted")
	}
}
