package transport

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	mss "github.com/multiformats/go-multistream"
)

// ConnectAddr connects to the agent at addr ("host:port") when only its
// address is known, as with --join and --hub: it first learns the peer id the
// address answers with, by a Noise handshake that proves the remote key, then
// connects to that peer as Connect does (credential handshake included).
// It returns the peer id.
//
// The probe costs one extra TCP connection and Noise handshake. It sends
// nothing but this device's own Noise identity, which any peer learns anyway.
func (h *Host) ConnectAddr(ctx context.Context, addr string) (string, error) {
	id, err := h.probePeerID(ctx, addr)
	if err != nil {
		return "", fmt.Errorf("reach %s: %w", addr, err)
	}
	if id == h.PeerID() {
		return id, fmt.Errorf("reach %s: %w: that is this agent's own address", addr, ErrBadAddress)
	}
	return id, h.Connect(ctx, id, addr)
}

// probePeerID opens a raw TCP connection to addr, selects Noise with
// multistream-select as a libp2p dialler would, runs the handshake without
// expecting a particular peer, and returns the peer id the remote key proves.
func (h *Host) probePeerID(ctx context.Context, addr string) (string, error) {
	if _, err := dialMultiaddr(addr); err != nil {
		return "", err
	}
	priv, err := crypto.UnmarshalEd25519PrivateKey(h.cfg.Key)
	if err != nil {
		return "", err
	}
	tpt, err := noise.New(noise.ID, priv, nil)
	if err != nil {
		return "", err
	}
	session, err := tpt.WithSessionOptions(noise.DisablePeerIDCheck())
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.HandshakeTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	if deadline.IsZero() {
		deadline = time.Now().Add(10 * time.Second)
	}
	conn.SetDeadline(deadline)
	if err := mss.SelectProtoOrFail(noise.ID, conn); err != nil {
		return "", fmt.Errorf("select noise: %w", err)
	}
	sc, err := session.SecureOutbound(ctx, conn, "")
	if err != nil {
		return "", fmt.Errorf("noise handshake: %w", err)
	}
	defer sc.Close()
	return sc.RemotePeer().String(), nil
}
