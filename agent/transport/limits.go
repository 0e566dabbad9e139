package transport

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// Fixed resource limits for a laptop in a team of a few to 12 devices. They
// do not scale with the machine's memory (libp2p's default does, up to 1 GiB)
// because the agent shares a laptop with the enrolment software and the
// store; a team this size needs a few connections and a few dozen streams.
const (
	// limitMemory is what the whole libp2p stack may reserve (mostly yamux
	// receive windows, up to 16 MiB per busy stream).
	limitMemory = 256 << 20
	// limitConns bounds all connections; strangers beyond it are not
	// accepted at all. Twelve laptops need 11, more during reconnects.
	limitConns = 64
	// limitPeerConns allows a simultaneous dial from both sides plus a
	// replacement while the old connection drains.
	limitPeerConns = 4
	// limitPeerStreams bounds the streams of one peer in each direction:
	// sync opens a handful at a time; identify adds a few.
	limitPeerStreams = 64
	// limitPeerMemory lets one peer keep a few streams at full yamux window.
	limitPeerMemory = 64 << 20
	// limitTransientStreams bounds streams whose protocol is not yet
	// negotiated, which is where a flood from a stranger sits.
	limitTransientStreams = 64
)

// newResourceManager builds the resource manager with the limits above, on
// top of libp2p's defaults for its own services (identify) at the same
// memory size.
func newResourceManager() (network.ResourceManager, error) {
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	base := scaling.Scale(limitMemory, 256)

	peer := rcmgr.ResourceLimits{
		Conns:           limitPeerConns,
		ConnsInbound:    limitPeerConns,
		ConnsOutbound:   limitPeerConns,
		Streams:         2 * limitPeerStreams,
		StreamsInbound:  limitPeerStreams,
		StreamsOutbound: limitPeerStreams,
		Memory:          limitPeerMemory,
		FD:              limitPeerConns,
	}
	partial := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns:           limitConns,
			ConnsInbound:    limitConns,
			ConnsOutbound:   limitConns,
			Streams:         16 * limitPeerStreams,
			StreamsInbound:  8 * limitPeerStreams,
			StreamsOutbound: 8 * limitPeerStreams,
			Memory:          limitMemory,
			FD:              limitConns,
		},
		Transient: rcmgr.ResourceLimits{
			Conns:           limitConns / 4,
			ConnsInbound:    limitConns / 4,
			ConnsOutbound:   limitConns / 4,
			Streams:         limitTransientStreams,
			StreamsInbound:  limitTransientStreams,
			StreamsOutbound: limitTransientStreams,
			Memory:          16 << 20,
			FD:              limitConns / 4,
		},
		PeerDefault: peer,
		ProtocolPeerDefault: rcmgr.ResourceLimits{
			Streams:         2 * limitPeerStreams,
			StreamsInbound:  limitPeerStreams,
			StreamsOutbound: limitPeerStreams,
			Memory:          limitPeerMemory,
		},
		ProtocolPeer: map[protocol.ID]rcmgr.ResourceLimits{
			// One hello stream each way per connection.
			helloProtocol: {
				Streams:         2 * limitPeerConns,
				StreamsInbound:  limitPeerConns,
				StreamsOutbound: limitPeerConns,
				Memory:          8 << 20,
			},
		},
	}
	mgr, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(partial.Build(base)))
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	return mgr, nil
}
