// Package transport owns the data connections between devices: a libp2p host
// whose identity is the device's ed25519 key, the admission of peers by
// deployment credential, mDNS discovery on the LAN, and the streams the sync
// protocol runs on. It is the only package that imports go-libp2p.
//
// The host speaks TCP with Noise and yamux and nothing else: no QUIC, no
// relay, no NAT port mapping, no hole punching, no AutoNAT probing, no ping.
// Laptops of a team sit on one LAN and reach each other directly; every extra
// service would be one more protocol a stranger can talk to before the
// credential check.
//
// # Admission
//
// Noise proves that the peer holds the private key of its peer id. Then, on
// every new connection, each side opens a stream of protocol
// /fieldsync/hello/1 on that connection and sends its credential:
//
//	request:  u16 big-endian length, credential (at most 4 KiB)
//	reply:    verdict byte (0 accepted, 1 refused),
//	          u16 big-endian length, reason (UTF-8, at most 200 bytes; empty when accepted)
//
// The receiver passes the peer's Noise-proven public key and the credential
// to Config.Admit. A connection is admitted once both directions are
// accepted; a peer is admitted while it has an admitted connection, and only
// then do OnAdmitted, Open and Handle's handlers work for it (a handler only
// gets streams of admitted connections). A refusal is logged at Warn as
// "refused peer" on the refusing side and, once the reason has arrived, as
// "refused by peer" on the other; the refusing side closes every connection
// of that peer and keeps its peer id on a deny list for Config.DenyFor, which
// the connection gater enforces right after Noise, so repeated attempts cost
// one TCP and one Noise handshake. Both directions must finish within
// Config.HandshakeTimeout of the connection, or it is closed.
//
// The handshake runs per connection rather than per peer because the two
// ends need not agree on which connection is new: during a reconnect one
// side may see the new connection before the old one's close. It costs one
// signature check per connection, and a credential that expired since the
// previous connection is caught.
//
// libp2p's identify protocol runs on every connection before the credential
// check (libp2p's host requires it); it tells the peer our listen addresses,
// supported protocols and agent name, nothing the peer could not learn by
// dialling us.
//
// # Limits
//
// The libp2p resource manager runs with fixed limits sized for a laptop in a
// team of up to 12 (limits.go): 256 MiB and 64 connections in all, 4
// connections and 64 streams each way per peer. A peer that exceeds them has
// its streams or connections refused by libp2p.
//
// # Goroutines
//
// The host starts goroutines for each handshake and for mDNS dials, all
// tied to its lifetime: Close stops them and waits for them. libp2p runs
// each stream handler on a goroutine of its own; Close resets the streams,
// which ends handlers that read or write them.
package transport
