package agent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/agent/identity"
	"github.com/fieldsync/fieldsync/agent/membership"
	"github.com/fieldsync/fieldsync/agent/store"
	"github.com/fieldsync/fieldsync/agent/transport"
	"github.com/fieldsync/fieldsync/agent/web"
	"github.com/fieldsync/fieldsync/agent/wire"
	"github.com/fieldsync/fieldsync/agent/xfer"
)

// Agent is one running fieldsync daemon.
type Agent struct {
	cfg      Config
	log      *slog.Logger
	dev      *identity.Device
	verifier identity.Verifier
	store    *store.Store
	host     *transport.Host
	members  *membership.Membership
	api      *api.Server
	apiLn    net.Listener
	events   chan membership.Event
	// gossip is members once New has made it, for the transport's
	// callbacks, which may run before New returns (clone.go).
	gossip atomic.Pointer[membership.Membership]

	mu       sync.Mutex
	sessions map[string]*session // by libp2p peer id
	// extra holds, by peer id, a second session with a device seen at two
	// addresses at once (clone.go): both copies sync beside each other.
	extra   map[string]*session
	dialing map[string]bool
	// joinPeers remembers the peer id found at each --join address.
	joinPeers map[string]string
	names     map[string]deviceInfo // device id -> name and role, from credentials
	digestAt  time.Time

	isHub       bool
	up          upstream
	upAttach    upstreamAttachments
	exporter    exporter      // nil unless a hub with --postgres
	files       hubFiles      // a hub's attachments: receipt loop only (hubattach.go)
	receiptWake chan struct{} // hub: new ops may need a receipt
	refusedOps  atomic.Uint64
	changes     atomic.Uint64 // bumped by every commit that added ops
	dupMu       sync.Mutex
	dupCount    int
	dupGen      uint64
	dupValid    bool
	dupAt       time.Time
	gcAt        time.Time // safety loop only
	gcSeenGen   uint64    // safety loop only
	prunedAt    uint64    // safety loop only: receipts version of the last prune pass
	dupOps      atomic.Uint64
	// The transfer of attachment chunks (transfer.go).
	xfer           *xfer.Scheduler
	fresh          newFiles
	chunkIn        chan arrivedChunk // sessions → chunkSink
	joinWarnAt     time.Time
	rev            revocationState // revocation.go
	gossipEpochNow atomic.Uint64   // gossipkey.go
	forks          forkState       // fork.go
	clones         cloneState      // clone.go
	own            ownLog          // fork.go: the gate before writing on the own log

	stop      chan struct{}
	stopOnce  sync.Once
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	runtimePath string // the API token's runtime file, removed by Close
}

type deviceInfo struct {
	Name    string
	Role    identity.Role
	Officer string
}

// New loads the device identity from cfg.DataDir, opens the store and binds
// the data, gossip and API addresses. Nothing is sent until Run.
func New(cfg Config) (_ *Agent, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Vault == nil {
		return nil, ErrLocked
	}
	dev, err := identity.LoadDeviceSealed(cfg.DataDir, cfg.Vault)
	if err != nil {
		return nil, fmt.Errorf("load device: %w", err)
	}
	if cfg.Vault.Params().Weak() {
		cfg.Logger.Warn("the data directory's passphrase key derivation is weaker than the default (made for tests with FIELDSYNC_KDF=test); set a new passphrase with `fieldsync device passphrase` on a real laptop",
			"kdf", cfg.Vault.Params().String())
	}
	if cfg.PruneDelivered && dev.Credential.Role == identity.RoleHub {
		return nil, errors.New("--prune-delivered is for field agents: a hub keeps every attachment it receipts")
	}
	verifier := dev.Verifier()
	if err := verifier.VerifyPeer(dev.Credential, dev.Public(), cfg.Now()); err != nil {
		return nil, fmt.Errorf("this device's credential: %w (provision it again with `fieldsync device init`)", err)
	}
	a := newAgent(cfg, dev, verifier)
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	key := cfg.Vault.StoreKey()
	if storeInClear {
		key = nil
		cfg.Logger.Warn("MEASURING BUILD: this store is kept in clear, to measure what encryption costs; never use this build in the field")
	}
	if err := a.openStore(a.storeOptions(filepath.Join(cfg.DataDir, "store"), key)); err != nil {
		return nil, err
	}
	st := a.store
	raw, err := dev.Credential.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encode own credential: %w", err)
	}
	if cfg.Postgres != "" {
		if !a.isHub {
			return nil, fmt.Errorf("--postgres is for a hub: this device has role %s", dev.Credential.Role)
		}
		if a.exporter, err = openExporter(cfg.Postgres, a.log); err != nil {
			return nil, err
		}
	}

	tc := transport.DefaultConfig()
	tc.Listen = cfg.Listen
	tc.Key = dev.Private
	tc.Credential = raw
	tc.Admit = a.admit
	tc.MDNS = cfg.MDNS
	tc.MDNSService = "fieldsync-" + verifier.Deployment()
	tc.Logger = a.log
	tc.OnAdmitted = a.onAdmitted
	tc.OnGone = a.onGone
	if a.host, err = transport.New(tc); err != nil {
		return nil, fmt.Errorf("start data transport on %s: %w", cfg.Listen, err)
	}
	a.host.Handle(wire.Protocol, a.acceptSession)

	mc := membership.DefaultConfig()
	mc.DeviceID = dev.ID()
	mc.PeerID = a.host.PeerID()
	mc.Listen = cfg.Listen
	mc.Advertise = cfg.Advertise
	gk, err := a.startGossipKey()
	if err != nil {
		return nil, err
	}
	mc.Key, mc.AlsoAccept = gk.send, gk.accept
	mc.Label = "fieldsync/" + verifier.Deployment()
	mc.Logger = a.log
	mc.Events = a.events
	if a.members, err = membership.New(mc); err != nil {
		return nil, fmt.Errorf("start LAN membership: %w", err)
	}
	a.gossip.Store(a.members)
	if gk.pending != nil {
		if err := a.members.RotateKey(gk.pending, gk.remaining); err != nil {
			return nil, fmt.Errorf("resume the gossip key change: %w", err)
		}
	}
	a.installProvisionedRevocation()

	ac := api.DefaultConfig()
	ac.Addr = cfg.API
	ac.Schema = cfg.Schema
	ac.Logger = a.log
	ac.Now = cfg.Now
	ac.UI = web.Handler()
	ac.AttachmentMaxBytes = cfg.AttachmentMaxBytes
	token, err := apiToken(cfg)
	if err != nil {
		return nil, err
	}
	ac.Token = token
	if ac.AdminToken, err = a.adminToken(); err != nil {
		return nil, err
	}
	if a.api, err = api.NewServer(ac, backend{a}); err != nil {
		return nil, err
	}
	if a.apiLn, err = net.Listen("tcp", cfg.API); err != nil {
		return nil, fmt.Errorf("listen for the API on %s: %w", cfg.API, err)
	}
	a.writeRuntime(token)
	vv := st.VersionVector()
	a.log.Info("agent ready", "device_id", dev.ID(), "role", string(dev.Credential.Role),
		"deployment", verifier.Deployment(), "listen", a.host.ListenAddrs(), "api", a.apiLn.Addr().String(),
		"ops", vv.Total(), "origins", len(vv))
	return a, nil
}

// newAgent builds an agent's in-memory state, with nothing opened yet.
func newAgent(cfg Config, dev *identity.Device, verifier identity.Verifier) *Agent {
	return &Agent{
		xfer:        xfer.New(),
		chunkIn:     make(chan arrivedChunk, sinkQueue),
		cfg:         cfg,
		log:         cfg.Logger.With("device", dev.Name()),
		dev:         dev,
		verifier:    verifier,
		events:      make(chan membership.Event, 256),
		sessions:    map[string]*session{},
		extra:       map[string]*session{},
		dialing:     map[string]bool{},
		joinPeers:   map[string]string{},
		names:       map[string]deviceInfo{},
		stop:        make(chan struct{}),
		receiptWake: make(chan struct{}, 1),
		isHub:       dev.Credential.Role == identity.RoleHub,
	}
}

// storeOptions are the options of the device's store in dir (encrypted
// under key; nil only in a measuring build): the agent's rules for what the
// store checks on ingest and indexes.
func (a *Agent) storeOptions(dir string, key []byte) store.Options {
	so := store.DefaultOptions(dir)
	so.Logger = a.cfg.Logger
	so.Self = a.dev.ID()
	// A hub is the end of every relay path: it checks each op's own
	// signature, not only the last of each run.
	so.VerifyEverySignature = a.isHub
	so.MaySettle = a.mayOriginSettle
	so.IndexKeys = indexKeys
	so.Quarantine = a.isRevoked
	so.AttachmentFile = a.attachmentHook
	so.EncryptionKey = key
	return so
}

// openStore opens the device's store, then loads what the agent keeps in
// memory of it: its own credential, the revocation list, forks, transfers,
// receipts and, on a hub, the attachments it completed. The deterministic
// simulation (sim_test.go) opens and reopens its agents the same way.
func (a *Agent) openStore(so store.Options) error {
	st, err := store.Open(so)
	if err != nil {
		return err
	}
	a.store = st
	dev := a.dev
	raw, err := dev.Credential.Marshal()
	if err != nil {
		return fmt.Errorf("encode own credential: %w", err)
	}
	if err := st.PutCredential(dev.ID(), dev.Public(), raw); err != nil {
		return fmt.Errorf("store own credential: %w", err)
	}
	a.names[dev.ID()] = deviceInfo{Name: dev.Name(), Role: dev.Credential.Role, Officer: dev.Credential.Officer}
	if err := a.loadRevocation(); err != nil {
		return err
	}
	if err := a.loadForks(); err != nil {
		return err
	}
	a.own.init()
	if err := a.loadTransfers(); err != nil {
		return err
	}
	if err := a.loadReceipts(); err != nil {
		return err
	}
	if a.isHub {
		if err := a.loadHubFiles(); err != nil {
			return err
		}
	}
	return nil
}

// Run serves until ctx is done, then closes the agent.
func (a *Agent) Run(ctx context.Context) error {
	if a.isHub {
		a.wg.Add(1)
		go func() { defer a.wg.Done(); a.receiptLoop() }()
		a.kickReceipts()
	}
	if len(a.cfg.Join) > 0 || len(a.cfg.Hubs) > 0 || a.cfg.MDNS {
		// Restored from a backup, this device's own log may end before
		// what its peers hold: ask before writing on it.
		a.own.reset(a, "starting")
	}
	a.wg.Add(1 + sinkWorkers)
	go func() { defer a.wg.Done(); a.resignLoop() }()
	for range sinkWorkers {
		go func() { defer a.wg.Done(); a.chunkSink() }()
	}
	for _, addr := range a.cfg.Hubs {
		a.wg.Add(1)
		go func(addr string) { defer a.wg.Done(); a.hubLoop(addr) }(addr)
	}
	a.wg.Add(3)
	go func() {
		defer a.wg.Done()
		if err := a.api.Serve(a.apiLn); err != nil && !errors.Is(err, net.ErrClosed) {
			a.log.Error("API server stopped", "err", err)
		}
	}()
	go func() { defer a.wg.Done(); a.watchMembers() }()
	go func() { defer a.wg.Done(); a.safetyLoop() }()
	select {
	case <-ctx.Done():
	case <-a.stop:
	}
	return a.Close()
}

// Close stops every session and closes the store. Safe to call twice.
func (a *Agent) Close() error {
	a.closeOnce.Do(func() {
		a.stopOnce.Do(func() { close(a.stop) })
		a.removeRuntime()
		if a.api != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			a.api.Shutdown(ctx)
			cancel()
		} else if a.apiLn != nil {
			a.apiLn.Close()
		}
		if a.members != nil {
			a.members.Close()
		}
		a.mu.Lock()
		for _, s := range a.liveSessionsLocked() {
			s.stream.Reset()
		}
		a.mu.Unlock()
		if a.host != nil {
			a.host.Close()
		}
		a.wg.Wait()
		if a.exporter != nil {
			a.exporter.Close()
		}
		if a.store != nil {
			a.closeErr = a.store.Close()
		}
		a.log.Info("agent stopped")
	})
	return a.closeErr
}

// admit decides whether a peer that proved its key may connect: only a valid
// credential of this deployment for exactly that key.
func (a *Agent) admit(pub ed25519.PublicKey, raw []byte) (transport.Peer, error) {
	cred, err := identity.UnmarshalCredential(raw)
	if err != nil {
		return transport.Peer{}, err
	}
	if err := a.verifier.VerifyPeer(cred, pub, a.cfg.Now()); err != nil {
		return transport.Peer{}, err
	}
	if r, ok := a.revoked(cred.DeviceID); ok {
		return transport.Peer{}, errors.New(revokedReason(r, a.revocationNumber()))
	}
	if err := a.store.PutCredential(cred.DeviceID, cred.PublicKey, raw); err != nil {
		return transport.Peer{}, fmt.Errorf("store credential: %w", err)
	}
	a.mu.Lock()
	a.names[cred.DeviceID] = deviceInfo{Name: cred.Name, Role: cred.Role, Officer: cred.Officer}
	a.mu.Unlock()
	return transport.Peer{DeviceID: cred.DeviceID, Name: cred.Name}, nil
}

// acceptCredential checks a credential that came with relayed ops. Ops
// written before a device's credential expired stay valid data, so expiry is
// not checked here; the deployment's signature and the key binding are.
func (a *Agent) acceptCredential(origin string, raw []byte) error {
	cred, err := identity.UnmarshalCredential(raw)
	if err != nil {
		return err
	}
	if cred.DeviceID != origin {
		return fmt.Errorf("credential of %s sent for origin %s", cred.DeviceID, origin)
	}
	if err := a.verifier.Verify(cred, time.Unix(cred.IssuedAt, 0)); err != nil {
		return err
	}
	if err := a.store.PutCredential(origin, cred.PublicKey, raw); err != nil {
		return err
	}
	a.mu.Lock()
	a.names[origin] = deviceInfo{Name: cred.Name, Role: cred.Role, Officer: cred.Officer}
	a.mu.Unlock()
	return nil
}

// deviceName returns the name of a device from its credential, or its id
// when the credential is unknown.
func (a *Agent) deviceName(id string) string {
	a.mu.Lock()
	info, ok := a.names[id]
	a.mu.Unlock()
	if ok {
		return info.Name
	}
	_, raw, found, err := a.store.Credential(id)
	if err != nil || !found {
		return id
	}
	cred, err := identity.UnmarshalCredential(raw)
	if err != nil {
		return id
	}
	a.mu.Lock()
	a.names[id] = deviceInfo{Name: cred.Name, Role: cred.Role, Officer: cred.Officer}
	a.mu.Unlock()
	return cred.Name
}

// wakeSessions makes every session look for something to send.
func (a *Agent) wakeSessions() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.liveSessionsLocked() {
		s.wake()
	}
}

// changed is called after every commit that added ops: it wakes every
// session so the new ops are pushed at once, and refreshes the digest
// gossiped to the LAN (at most once a second: gossip is a hint).
func (a *Agent) changed() {
	a.changes.Add(1)
	a.takeNewFiles()
	if a.isHub {
		a.kickReceipts()
	}
	a.mu.Lock()
	for _, s := range a.liveSessionsLocked() {
		s.wake()
	}
	refresh := time.Since(a.digestAt) > time.Second
	if refresh {
		a.digestAt = time.Now()
	}
	a.mu.Unlock()
	// changed can run from a session before New has set a.members.
	if m := a.gossip.Load(); refresh && m != nil {
		m.SetDigest(a.store.VersionVector().Digest())
	}
}

// untilStop returns a context that ends after d or when the agent stops,
// whichever comes first: for dials that must not hold up Close.
func (a *Agent) untilStop(d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	go func() {
		select {
		case <-a.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
