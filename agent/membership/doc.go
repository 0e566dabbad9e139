// Package membership owns "who of the team is present on the LAN".
//
// It runs one hashicorp/memberlist instance per agent (this is the only
// package that imports memberlist) and turns its view into Members and
// Events the agent can act on. Gossip is encrypted and authenticated with a
// 32-byte key derived from the deployment (the caller derives it), and
// labelled (Config.Label); a node holding another key or label cannot join
// or be heard.
//
// Gossip carries hints only, never records: each node's metadata holds its
// device id (the memberlist node name), its libp2p peer id and data port,
// and a small digest of its version vector so that peers learn when someone
// has something new. Anyone holding the gossip key can forge these hints, so
// the agent must treat them as "worth a look", and authenticate the peer
// over libp2p before trusting anything.
//
// Addresses: the agent has one public address, its libp2p listen HOST:PORT.
// memberlist binds the same host at PORT+1 over TCP and UDP (see
// GossipAddr), and Join takes the libp2p-style address of a peer.
//
// One device id alive at two addresses at once (a data directory copied to
// a second laptop) is something memberlist cannot represent: it keeps the
// address it saw first and ignores the other. Membership records each such
// conflict as memberlist reports it (Conflicted, Conflicts), telling a
// conflict about this node's own name (another process claims our
// identity) from one about another device, and sends a Conflict event when
// an occurrence begins, so that the agent can raise an alert and sync with
// both copies.
//
// memberlist never re-probes a node that has been dead for longer than its
// GossipToTheDeadTime, so two laptops separated for a while stay apart for
// good. Membership therefore remembers every address it ever joined or saw
// a member at, and RejoinAbsent joins the absent ones again. The package
// starts no goroutines of its own (memberlist's internal ones aside): the
// agent calls RejoinAbsent on its own timer.
package membership
