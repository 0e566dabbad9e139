package transport

import "fmt"

// Deny puts peerID on the deny list for Config.DenyFor, with reason, and
// closes every connection to it: the connection gater then refuses its dials
// and its connections right after Noise. The agent calls it for a device
// that a revocation list revoked while connected; a device that connects
// after the list is refused at the hello by Admit in any case, which also
// tells it why.
func (h *Host) Deny(peerID, reason string) error {
	p, err := decodePeerID(peerID)
	if err != nil {
		return err
	}
	h.deny.add(p, truncateReason(reason), h.now(), h.cfg.DenyFor)
	h.log.Warn("denied peer", "peer", peerID, "reason", truncateReason(reason))
	if err := h.host.Network().ClosePeer(p); err != nil {
		return fmt.Errorf("deny %s: %w", peerID, err)
	}
	return nil
}
