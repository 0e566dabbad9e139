package agent

import (
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/fieldsync/fieldsync/agent/identity"
)

// DefaultGossipKeyOverlap is how long the previous gossip key is accepted
// after a revocation brings a new one: long enough for the list to cross a
// team that meets every few minutes, short enough that a lost laptop is
// shut out of the gossip within the quarter hour.
const DefaultGossipKeyOverlap = 10 * time.Minute

// Gossip keys (docs/protocol.md, "Gossip keys after a revocation"): epoch 0
// is the key derived from the deployment secret; every revocation list
// carries the key of its own epoch sealed to each device that remains, and a
// device issued after a list gets it in its data directory (gossip.cbor).
// The agent gossips with the key of the highest epoch it can open.

// gossipStart is the keyring gossip starts with: send is used for
// sending, accept also accepted, and pending (if not nil) is a key change
// still within its overlap, resumed for the remaining time.
type gossipStart struct {
	send, pending []byte
	accept        [][]byte
	remaining     time.Duration
}

// startGossipKey chooses the gossip keys at start.
func (a *Agent) startGossipKey() (gossipStart, error) {
	best, bestEpoch := a.dev.GossipKey(), uint64(0)
	if best == nil {
		return gossipStart{}, errors.New("the device holds no valid deployment secret for the gossip key (thiếu khóa triển khai)")
	}
	if g, err := identity.LoadGossipGrant(a.cfg.DataDir); err != nil {
		a.log.Warn("gossip key of the data directory not readable; using the deployment's", "err", err)
	} else if g != nil {
		if k, err := a.dev.OpenGossipKey(g); err != nil {
			a.log.Warn("gossip key of the data directory does not open; using the deployment's", "err", err)
		} else {
			best, bestEpoch = k, g.Epoch
		}
	}
	l, _ := a.revocation()
	if l == nil || l.Gossip == nil || l.Gossip.Epoch <= bestEpoch {
		a.gossipEpochNow.Store(bestEpoch)
		return gossipStart{send: best}, nil
	}
	k, err := a.dev.OpenGossipKey(l.Gossip)
	if err != nil {
		a.warnNoGossipKey(l, err)
		a.gossipEpochNow.Store(bestEpoch)
		return gossipStart{send: best}, nil
	}
	a.gossipEpochNow.Store(l.Gossip.Epoch)
	a.rev.mu.Lock()
	since := a.cfg.Now().Sub(a.rev.at)
	a.rev.mu.Unlock()
	if since >= 0 && since < a.cfg.GossipKeyOverlap {
		// Restarted within the overlap: keep it, for the time left.
		return gossipStart{send: best, pending: k, remaining: a.cfg.GossipKeyOverlap - since}, nil
	}
	return gossipStart{send: k}, nil
}

// rotateGossipKey starts using the gossip key a newly installed list
// carries, when it is newer than the one in use.
func (a *Agent) rotateGossipKey(l *identity.RevocationList) {
	if l.Gossip == nil || l.Gossip.Epoch <= a.gossipEpochNow.Load() || a.members == nil {
		return
	}
	k, err := a.dev.OpenGossipKey(l.Gossip)
	if err != nil {
		a.warnNoGossipKey(l, err)
		return
	}
	if err := a.members.RotateKey(k, a.cfg.GossipKeyOverlap); err != nil {
		a.log.Error("gossip key change", "err", err)
		return
	}
	a.gossipEpochNow.Store(l.Gossip.Epoch)
	a.log.Warn("gossip key changes with revocation list; the old key is refused after the overlap",
		"epoch", l.Gossip.Epoch, "overlap", a.cfg.GossipKeyOverlap.String())
}

func (a *Agent) warnNoGossipKey(l *identity.RevocationList, err error) {
	if errors.Is(err, identity.ErrNoGossipGrant) {
		a.log.Error("revocation list carries a new gossip key but none for this device: it is not in the authority's register. "+
			"Once the overlap ends this device no longer meets the team by gossip (sync through mDNS, --join and the hub still works); "+
			"ask the IT officer to issue this device again (máy này không có trong sổ đăng ký của cơ quan cấp)",
			"epoch", l.Gossip.Epoch)
		return
	}
	a.log.Error("the new gossip key does not open", "epoch", l.Gossip.Epoch, "err", err)
}

// gossipEpoch is the list number whose gossip key is in use; 0 for the key
// derived from the deployment secret.
func (a *Agent) gossipEpoch() uint64 { return a.gossipEpochNow.Load() }

// installProvisionedRevocation installs the list `device init` put in the
// data directory of a device issued after a revocation, so that a new
// laptop refuses revoked ones from its first start.
func (a *Agent) installProvisionedRevocation() {
	raw, err := os.ReadFile(filepath.Join(a.cfg.DataDir, identity.RevocationsFile))
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		a.log.Warn("revocation list of the data directory not readable", "err", err)
		return
	}
	if l, _, _, err := identity.DecodeRevocation(raw); err == nil && l.Number <= a.revocationNumber() {
		return // held already, or a newer one came from a peer
	}
	if _, err := a.installRevocation(raw, "data directory"); err != nil {
		a.log.Warn("revocation list of the data directory not installed", "err", err)
	}
}
