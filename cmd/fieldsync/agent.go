package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/fieldsync/fieldsync/agent"
	"github.com/fieldsync/fieldsync/agent/identity"
	"github.com/fieldsync/fieldsync/agent/store"
)

// memoryLimit is the agent's soft Go memory limit (override with the
// GOMEMLIMIT environment variable): 96 MB for the agent and badger's
// memtables and table builders, plus the cache of decrypted blocks an
// encrypted store keeps. Without that room the cache alone pushed the live
// heap to the limit, and the collector ran without pause during a sync: it
// made encryption cost 35% of the sync rate instead of about 10%
// (docs/performance.md).
const memoryLimit = 96<<20 + store.EncryptedBlockCacheSize

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// daemonFlags are the flags shared by `agent` and `hub`.
type daemonFlags struct {
	cfg       agent.Config
	noMDNS    bool
	logLevel  string
	logFormat string
	join      stringList
	hubs      stringList
	config    string
	passFile  string
	pprof     string
}

// fileConfig is the optional configuration file (JSON), read from --config
// or DATADIR/fieldsync.json. Flags given on the command line win.
type fileConfig struct {
	Listen    string   `json:"listen"`
	Advertise string   `json:"advertise"`
	API       string   `json:"api"`
	Join      []string `json:"join"`
	Hub       []string `json:"hub"`
	NoMDNS    *bool    `json:"no_mdns"`
	Postgres  string   `json:"postgres"`
	// PruneDelivered: as --prune-delivered.
	PruneDelivered *bool `json:"prune_delivered"`
}

// applyFile fills what the flags did not set from the configuration file.
func (d *daemonFlags) applyFile(fs *flag.FlagSet) error {
	path := d.config
	if path == "" {
		path = filepath.Join(d.cfg.DataDir, "fieldsync.json")
		if _, err := os.Stat(path); err != nil {
			return nil // no file: defaults and flags only
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	var fc fileConfig
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if fc.Listen != "" && !set["listen"] {
		d.cfg.Listen = fc.Listen
	}
	if fc.Advertise != "" && !set["advertise"] {
		d.cfg.Advertise = fc.Advertise
	}
	if fc.API != "" && !set["api"] {
		d.cfg.API = fc.API
	}
	if fc.Postgres != "" && !set["postgres"] {
		d.cfg.Postgres = fc.Postgres
	}
	if fc.NoMDNS != nil && !set["no-mdns"] {
		d.noMDNS = *fc.NoMDNS
	}
	if fc.PruneDelivered != nil && !set["prune-delivered"] {
		d.cfg.PruneDelivered = *fc.PruneDelivered
	}
	d.join = append(d.join, fc.Join...)
	d.hubs = append(d.hubs, fc.Hub...)
	return nil
}

func (d *daemonFlags) register(fs *flag.FlagSet, defaultMDNS bool) {
	d.cfg = agent.DefaultConfig()
	d.cfg.Version = version
	fs.StringVar(&d.cfg.DataDir, "data", "", "device data directory made by 'fieldsync device init' (required)")
	fs.StringVar(&d.config, "config", "", "JSON configuration file (default DATADIR/fieldsync.json when present); flags win")
	fs.Var(&d.hubs, "hub", "an upstream hub's --listen address HOST:PORT (repeatable)")
	fs.StringVar(&d.cfg.Listen, "listen", agent.DefaultListen, "data address HOST:PORT other agents --join; LAN gossip uses PORT+1")
	fs.StringVar(&d.cfg.Advertise, "advertise", "", "HOST:PORT other agents should use to reach this one, if not --listen")
	fs.StringVar(&d.cfg.API, "api", agent.DefaultAPI, "local HTTP API address")
	fs.Var(&d.join, "join", "another agent's --listen address (repeatable)")
	fs.StringVar(&d.cfg.Postgres, "postgres", "", "hub only: PostgreSQL URL to export records and ops into")
	fs.BoolVar(&d.noMDNS, "no-mdns", !defaultMDNS, "turn off LAN discovery by multicast DNS")
	fs.DurationVar(&d.cfg.SafetyInterval, "safety-interval", d.cfg.SafetyInterval, "period of the safety pass that re-checks peers and sessions")
	fs.DurationVar(&d.cfg.GossipKeyOverlap, "gossip-key-overlap", d.cfg.GossipKeyOverlap, "after a revocation, how long the old gossip key is still accepted")
	fs.DurationVar(&d.cfg.OwnLogWait, "own-log-wait", d.cfg.OwnLogWait, "how long to wait at start for a peer to say how far this device's own log goes before writing (0: write at once)")
	fs.StringVar(&d.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&d.logFormat, "log-format", "text", "text or json")
	fs.StringVar(&d.passFile, "passphrase-file", "", "file holding the device's passphrase (default: $FIELDSYNC_PASSPHRASE, else asked on the terminal)")
	fs.StringVar(&d.cfg.AdminTokenFile, "admin-token-file", "", "hub only: file holding the admin token that settling conflicts and duplicates needs (default DATADIR/admin-token, made at the first start)")
	fs.StringVar(&d.pprof, "pprof", "", "serve Go's profiler on this loopback HOST:PORT (off by default; for measuring, see docs/performance.md)")
	fs.Int64Var(&d.cfg.AttachmentMaxBytes, "attachment-max-bytes", d.cfg.AttachmentMaxBytes, "largest file `fieldsync attach` may store, in bytes (at most 67108864, 64 MiB)")
	fs.BoolVar(&d.cfg.PruneDelivered, "prune-delivered", false, "field agents only: drop an attachment's bytes once a hub's receipt says the hub holds it whole (keeps its manifest; off by default)")
	fs.StringVar(&d.cfg.APITokenFile, "api-token-file", "", "file holding a fixed API token (services, scripts); default a random token written to the user's runtime file")
}

func (d *daemonFlags) logger(stderr io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(d.logLevel)); err != nil {
		return nil, usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", d.logLevel)}
	}
	opts := &slog.HandlerOptions{Level: level}
	switch d.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(stderr, opts)), nil
	}
	return nil, usageError{fmt.Errorf("--log-format %q: want text or json", d.logFormat)}
}

const agentUsage = `fieldsync agent --data DATADIR [--listen HOST:PORT] [--api HOST:PORT] [--join HOST:PORT]... [--no-mdns] [--hub HOST:PORT]...

Chạy tác tử đồng bộ trên máy này / Run the sync agent on this laptop.
Laptops on the same network find each other (mDNS) and exchange every dossier;
--join names another agent directly where multicast does not work.
--hub names the upstream hub: whenever it is reachable the agent uploads every
dossier it holds (its own and its team's) and brings back receipts.
`

func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runDaemon(ctx, "agent", agentUsage, args, stdout, stderr, "")
}

const hubUsage = `fieldsync hub --data HUBDIR [--listen HOST:PORT] [--api HOST:PORT] [--postgres URL]

Chạy máy chủ trung tâm / Run the upstream hub (a device provisioned with --role hub).
It accepts every device of the deployment, verifies every op's signature and
chain, stores them, exports into PostgreSQL with --postgres, and signs receipts
that travel back to every laptop.
`

func runHub(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runDaemon(ctx, "hub", hubUsage, args, stdout, stderr, identity.RoleHub)
}

func runDaemon(ctx context.Context, name, usage string, args []string, stdout, stderr io.Writer, needRole identity.Role) error {
	fs := newFlagSet(name, usage, stdout)
	var d daemonFlags
	d.register(fs, true)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if d.cfg.DataDir == "" {
		return usageError{errors.New("--data DATADIR is required (thư mục dữ liệu của thiết bị)")}
	}
	if d.pprof != "" {
		if err := checkPprofAddr(d.pprof); err != nil {
			return err
		}
	}
	if err := d.applyFile(fs); err != nil {
		return err
	}
	log, err := d.logger(stderr)
	if err != nil {
		return err
	}
	d.cfg.Logger = log
	d.cfg.MDNS = !d.noMDNS
	d.cfg.Join = d.join
	d.cfg.Hubs = d.hubs
	if d.cfg.Postgres != "" && needRole != identity.RoleHub {
		return usageError{errors.New("--postgres is for `fieldsync hub`")}
	}
	if d.cfg.Vault, err = unlock(d.cfg.DataDir, d.passFile); err != nil {
		return err
	}
	if needRole != "" {
		dev, err := identity.LoadDeviceSealed(d.cfg.DataDir, d.cfg.Vault)
		if err != nil {
			return err
		}
		if dev.Credential.Role != needRole {
			return fmt.Errorf("device %q has role %s; `fieldsync %s` needs a device provisioned with --role %s", dev.Name(), dev.Credential.Role, name, needRole)
		}
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// A soft limit on the Go heap: past it the collector works harder
		// instead of letting garbage from a burst of sync double the heap.
		// Laptops are small; the agent's live data is far below this.
		debug.SetMemoryLimit(memoryLimit)
	}
	if d.pprof != "" {
		_, stopPprof, err := servePprof(d.pprof, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := agent.New(d.cfg)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}
