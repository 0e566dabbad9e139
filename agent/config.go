package agent

import (
	"errors"
	"fmt"
	"github.com/fieldsync/fieldsync/agent/vault"
	"log/slog"
	"net"
	"time"

	"github.com/fieldsync/fieldsync/agent/attach"
	"github.com/fieldsync/fieldsync/agent/schema"
	"github.com/fieldsync/fieldsync/agent/syncer"
)

// Default addresses. The data port is the one address another agent needs;
// LAN membership (memberlist) uses the next port up on the same host.
const (
	DefaultListen = "0.0.0.0:7421"
	DefaultAPI    = "127.0.0.1:7420"
)

// Config configures an agent. Build one with DefaultConfig and change what
// you need.
type Config struct {
	// DataDir holds the device identity (from `fieldsync device init`) and the
	// store.
	DataDir string
	// Listen is the data address, "HOST:PORT". Gossip binds HOST:PORT+1.
	Listen string
	// Advertise, if set, is the "HOST:PORT" other agents should use to reach
	// this one (behind port forwarding, or through a proxy in benchmarks).
	Advertise string
	// API is the address of the local HTTP API, 127.0.0.1 by default because
	// it serves citizens' data to whoever can reach it.
	API string
	// Join lists other agents' Listen addresses to join without discovery.
	Join []string
	// MDNS turns on LAN discovery by multicast DNS.
	MDNS bool
	// Hubs lists upstream hubs' addresses ("HOST:PORT", their --listen).
	// The agent keeps trying to reach them and uploads everything they lack.
	Hubs []string
	// Postgres, on a hub, is the PostgreSQL URL to export into; receipts are
	// then issued only after the export committed.
	Postgres string
	// SafetyInterval is how often the agent checks that every peer present
	// has a live sync session, re-joins known peers that dropped out of
	// membership and refreshes its gossiped digest. New ops are pushed at
	// once; this pass only catches what was missed. Seconds, not less, so an
	// idle laptop stays idle.
	SafetyInterval time.Duration
	// OwnLogWait is how long an agent that has peers to meet (--join,
	// --hub or mDNS) waits, at start and after its own log lost a fork,
	// for a peer to say how far this device's own log goes before it
	// writes on it (API writes wait meanwhile). A laptop restored from a
	// backup then continues its log instead of forking it; a lone laptop
	// writes after the wait. 0 writes at once.
	OwnLogWait time.Duration
	// Sync bounds sync sessions.
	Sync syncer.Config
	// Schema validates dossiers arriving through the API.
	Schema schema.Schema
	// Logger receives the agent's structured logs. Citizens' data never
	// appears in them.
	Logger *slog.Logger
	// Now returns the wall clock; tests replace it.
	Now func() time.Time
	// Version is reported by status.
	Version string
	// Vault is the data directory's unlocked key: it opens the device key
	// and the deployment secret and encrypts the store. Required.
	Vault *vault.Key
	// GossipKeyOverlap is how long the previous gossip key is still
	// accepted after a revocation list brings a new one (it is still used
	// for sending for the first half), so laptops that have not yet got the
	// list keep meeting the team. It is also how long a revoked laptop can
	// still read gossip hints; sync itself refuses it at once.
	GossipKeyOverlap time.Duration
	// AdminTokenFile, on a hub, holds the admin token that settling needs
	// (default DATADIR/admin-token, made at the first start).
	AdminTokenFile string
	// APITokenFile, if set, holds the API's bearer token (services and
	// scripts); otherwise a random token is made at each start.
	APITokenFile string
	// AttachmentMaxBytes is the largest file attached through this agent's
	// API, in bytes: 20 MiB by default (attach.DefaultMaxBytes), at most
	// attach.MaxSize (64 MiB, what one manifest can describe).
	AttachmentMaxBytes int64
	// PruneDelivered drops an attachment's bytes once a hub's receipt says
	// the hub holds it whole; its manifest stays (prune.go). Field agents
	// only: a hub keeps every file.
	PruneDelivered bool
}

// DefaultConfig returns a configuration that works with no flags on a real
// LAN: listen on every interface, API on loopback, mDNS on.
func DefaultConfig() Config {
	return Config{
		Listen:           DefaultListen,
		API:              DefaultAPI,
		MDNS:             true,
		SafetyInterval:   30 * time.Second,
		GossipKeyOverlap: DefaultGossipKeyOverlap,
		// Five seconds: a peer on the LAN answers a hello in milliseconds,
		// a hub over a borrowed link in a second or two; an officer
		// waits at most this once, at the first capture after start.
		OwnLogWait: 5 * time.Second,
		Sync:       syncer.DefaultConfig(),
		Schema:     schema.Dossier(),
		Logger:     slog.Default(),
		Now:        time.Now,
		Version:    "dev",

		AttachmentMaxBytes: attach.DefaultMaxBytes,
	}
}

func (c *Config) validate() error {
	if c.DataDir == "" {
		return errors.New("no data directory: pass --data DIR (made by `fieldsync device init`)")
	}
	for _, a := range append(append([]string{c.Listen, c.API}, c.Join...), c.Hubs...) {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("address %q: want HOST:PORT: %w", a, err)
		}
	}
	if c.Advertise != "" {
		if _, _, err := net.SplitHostPort(c.Advertise); err != nil {
			return fmt.Errorf("advertise address %q: want HOST:PORT: %w", c.Advertise, err)
		}
	}
	if c.SafetyInterval < time.Second {
		return fmt.Errorf("safety interval %s: must be at least 1s", c.SafetyInterval)
	}
	if c.AttachmentMaxBytes == 0 {
		c.AttachmentMaxBytes = attach.DefaultMaxBytes
	}
	if c.AttachmentMaxBytes < 1 || c.AttachmentMaxBytes > attach.MaxSize {
		return fmt.Errorf("attachment limit %d bytes: must be 1 to %d (what one manifest can describe)", c.AttachmentMaxBytes, attach.MaxSize)
	}
	if c.OwnLogWait < 0 {
		return fmt.Errorf("own log wait %s: must not be negative", c.OwnLogWait)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// ErrLocked: the agent was started without the data directory's unlocked
// vault key.
var ErrLocked = errors.New("the data directory is locked: the agent needs its passphrase (thư mục dữ liệu đang khóa: cần mật khẩu)")
