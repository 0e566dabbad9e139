package membership

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/fxamacker/cbor/v2"
	"github.com/hashicorp/memberlist"
)

// Meta is what a node tells the team about itself through gossip. It holds
// hints only: anyone with the gossip key can forge them, so the agent
// authenticates the peer over libp2p before trusting anything.
type Meta struct {
	DeviceID string // also the memberlist node name
	PeerID   string // libp2p peer id string
	DataPort int    // libp2p TCP port
	Digest   uint64 // digest of the node's version vector (0 = empty)
}

// Member is a team member currently alive on the LAN.
type Member struct {
	Meta
	// Addr is the host:port of the member's libp2p data port: the IP it
	// gossips from and Meta.DataPort.
	Addr string
}

// wireMeta is Meta as carried in memberlist's node metadata: a CBOR map with
// small integer keys, encoded deterministically (RFC 8949 core rules).
//
//	1: peer id (text), 2: data port (uint, 1..65535), 3: digest (uint,
//	omitted when 0)
//
// DeviceID is not carried: it is the memberlist node name already, so the
// two can never disagree. The format only grows: decoders ignore unknown
// keys, so a later version adds keys and never changes a key's meaning.
// memberlist's delegate protocol versions are deliberately left unset:
// memberlist refuses to merge with any node outside the version range, and
// during a rollout old and new laptops must still see each other.
type wireMeta struct {
	PeerID   string `cbor:"1,keyasint"`
	DataPort uint16 `cbor:"2,keyasint"`
	Digest   uint64 `cbor:"3,keyasint,omitempty"`
}

// errBadMeta marks metadata that cannot be decoded or fails its checks.
var errBadMeta = errors.New("bad member metadata")

var (
	metaEnc cbor.EncMode
	metaDec cbor.DecMode
)

func init() {
	var err error
	if metaEnc, err = cbor.CoreDetEncOptions().EncMode(); err != nil {
		panic(err) // static options: fails only if the library changed
	}
	// Metadata arrives from the network, at most 512 bytes: keep every
	// decoder limit at its minimum and reject duplicate keys.
	metaDec, err = cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:  4,
		MaxArrayElements: 16,
		MaxMapPairs:      16,
	}.DecMode()
	if err != nil {
		panic(err) // static options, as above
	}
}

// encodeMeta encodes m for gossip. The result fits memberlist.MetaMaxSize
// whenever m.PeerID passed checkID.
func encodeMeta(m Meta) ([]byte, error) {
	b, err := metaEnc.Marshal(wireMeta{PeerID: m.PeerID, DataPort: uint16(m.DataPort), Digest: m.Digest})
	if err != nil {
		return nil, fmt.Errorf("encode meta: %w", err)
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("encode meta: %d bytes, limit %d", len(b), memberlist.MetaMaxSize)
	}
	return b, nil
}

// decodeMeta decodes the metadata b gossiped by the node called name. Both
// come from the network: it never panics, and rejects what the agent could
// not use.
func decodeMeta(name string, b []byte) (Meta, error) {
	if err := checkID(name); err != nil {
		return Meta{}, fmt.Errorf("%w: node name: %w", errBadMeta, err)
	}
	if len(b) == 0 {
		return Meta{}, fmt.Errorf("%w: empty", errBadMeta)
	}
	var w wireMeta
	if err := metaDec.Unmarshal(b, &w); err != nil {
		return Meta{}, fmt.Errorf("%w: %w", errBadMeta, err)
	}
	if err := checkID(w.PeerID); err != nil {
		return Meta{}, fmt.Errorf("%w: peer id: %w", errBadMeta, err)
	}
	if w.DataPort == 0 {
		return Meta{}, fmt.Errorf("%w: no data port", errBadMeta)
	}
	return Meta{DeviceID: name, PeerID: w.PeerID, DataPort: int(w.DataPort), Digest: w.Digest}, nil
}

// memberFromNode converts a memberlist node into a Member.
func memberFromNode(n *memberlist.Node) (Member, error) {
	meta, err := decodeMeta(n.Name, n.Meta)
	if err != nil {
		return Member{}, err
	}
	if n.Addr == nil {
		return Member{}, fmt.Errorf("%w: no address", errBadMeta)
	}
	return Member{Meta: meta, Addr: net.JoinHostPort(n.Addr.String(), strconv.Itoa(meta.DataPort))}, nil
}
