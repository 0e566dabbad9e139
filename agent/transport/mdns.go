package transport

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	ma "github.com/multiformats/go-multiaddr"
)

// mdnsTieBreak is how long the host with the greater peer id waits before
// dialling a peer it found, giving the other host (which found it too, in
// the usual case) the chance to dial first: one connection instead of two
// crossing ones. The wait only matters when multicast reaches one way.
const mdnsTieBreak = 2 * time.Second

// startMDNS advertises this host under "_<MDNSService>._udp" and dials the
// peers it finds.
func (h *Host) startMDNS() error {
	svc := mdns.NewMdnsService(h.host, "_"+h.cfg.MDNSService+"._udp", mdnsNotifee{h})
	if err := svc.Start(); err != nil {
		return fmt.Errorf("start mdns: %w", err)
	}
	h.mdns = svc
	return nil
}

// mdnsNotifee keeps the mdns.Notifee method off Host's exported API.
type mdnsNotifee struct{ h *Host }

var _ mdns.Notifee = mdnsNotifee{}

// HandlePeerFound runs on a goroutine of the mdns package, which does not
// wait for it when it closes; it joins the host's WaitGroup so Close does.
func (n mdnsNotifee) HandlePeerFound(info peer.AddrInfo) {
	h := n.h
	if info.ID == h.self || info.ID == "" {
		return
	}
	h.mu.Lock()
	if h.closed || h.dialing[info.ID] || h.peers[info.ID] != nil {
		// Connected already, or being dialled: mDNS repeats itself.
		h.mu.Unlock()
		return
	}
	h.dialing[info.ID] = true
	h.wg.Add(1)
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.dialing, info.ID)
		h.mu.Unlock()
		h.wg.Done()
	}()

	now := h.now()
	if _, denied := h.deny.get(info.ID, now); denied {
		return
	}
	if _, refused := h.refusedBy.get(info.ID, now); refused {
		// It refused us; dialling it again until DenyFor passes only
		// earns another refusal.
		return
	}
	addrs := tcpAddrs(info.Addrs)
	if len(addrs) == 0 {
		return
	}
	if h.self > info.ID {
		t := time.NewTimer(mdnsTieBreak)
		select {
		case <-t.C:
		case <-h.ctx.Done():
			t.Stop()
			return
		}
		h.mu.Lock()
		_, connected := h.peers[info.ID]
		h.mu.Unlock()
		if connected {
			return
		}
	}
	h.log.Debug("mdns found peer", "peer", info.ID.String(), "addrs", fmt.Sprint(addrs))
	ctx, cancel := context.WithTimeout(h.ctx, h.cfg.HandshakeTimeout+connectGrace)
	defer cancel()
	if err := h.connect(ctx, info.ID, addrs); err != nil && h.ctx.Err() == nil {
		// Refusals were logged at Warn where they happened.
		h.log.Debug("mdns peer not admitted", "peer", info.ID.String(), "err", err)
	}
}

// tcpAddrs keeps the plain IP/TCP addresses: the only transport we have.
func tcpAddrs(in []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range in {
		if hostPort(a) == "" {
			continue
		}
		if _, err := a.ValueForProtocol(ma.P_TCP); err != nil {
			continue
		}
		out = append(out, a)
	}
	return out
}
