package transport

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConfigValidation(t *testing.T) {
	good := func() Config {
		c := DefaultConfig()
		c.Listen = "127.0.0.1:0"
		c.Key = testKey(9)
		c.Credential = []byte("cred")
		c.Admit = func(ed25519.PublicKey, []byte) (Peer, error) { return Peer{}, nil }
		return c
	}
	if _, err := func() (any, error) { c := good(); return c.validate() }(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	cases := []struct {
		name string
		edit func(*Config)
	}{
		{"short key", func(c *Config) { c.Key = c.Key[:32] }},
		{"no credential", func(c *Config) { c.Credential = nil }},
		{"huge credential", func(c *Config) { c.Credential = make([]byte, MaxCredentialSize+1) }},
		{"no admit", func(c *Config) { c.Admit = nil }},
		{"zero handshake timeout", func(c *Config) { c.HandshakeTimeout = 0 }},
		{"negative deny", func(c *Config) { c.DenyFor = -time.Second }},
		{"listen without port", func(c *Config) { c.Listen = "127.0.0.1" }},
		{"listen on a name", func(c *Config) { c.Listen = "localhost:0" }},
		{"listen bad port", func(c *Config) { c.Listen = "127.0.0.1:70000" }},
		{"mdns service with dot", func(c *Config) { c.MDNS, c.MDNSService = true, "a.b" }},
		{"mdns service empty", func(c *Config) { c.MDNS, c.MDNSService = true, "" }},
		{"mdns service dash", func(c *Config) { c.MDNS, c.MDNSService = true, "-x" }},
		{"mdns service too long", func(c *Config) { c.MDNS, c.MDNSService = true, strings.Repeat("a", 63) }},
	}
	for _, tc := range cases {
		c := good()
		tc.edit(&c)
		if _, err := New(c); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: New returned %v, want ErrInvalidConfig", tc.name, err)
		}
	}
	// The service name is only checked when mDNS is on.
	c := good()
	c.MDNSService = "a.b"
	if _, err := c.validate(); err != nil {
		t.Errorf("mdns off with odd service name: %v", err)
	}
	c.MDNS, c.MDNSService = true, "fieldsync-0123456789abcdef"
	if _, err := c.validate(); err != nil {
		t.Errorf("deployment service name: %v", err)
	}
}

func TestAddresses(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:4001":    "/ip4/127.0.0.1/tcp/4001",
		"[::1]:4001":        "/ip6/::1/tcp/4001",
		"laptop.local:4001": "/dns/laptop.local/tcp/4001",
	} {
		a, err := dialMultiaddr(in)
		if err != nil || a.String() != want {
			t.Errorf("dialMultiaddr(%q) = %v, %v; want %s", in, a, err, want)
		}
	}
	for _, in := range []string{"", "127.0.0.1", "127.0.0.1:0", ":4001", "127.0.0.1:x", "[fe80::1%eth0]:4001"} {
		if _, err := dialMultiaddr(in); !errors.Is(err, ErrBadAddress) {
			t.Errorf("dialMultiaddr(%q): %v, want ErrBadAddress", in, err)
		}
	}
	a, err := listenMultiaddr(":0")
	if err != nil || a.String() != "/ip4/0.0.0.0/tcp/0" {
		t.Errorf("listenMultiaddr(:0) = %v, %v", a, err)
	}
}

func TestPeerIDFromPublicKey(t *testing.T) {
	th := newTestHost(t, hostOpts{key: 7, deployment: "d", accepts: "d", name: "x"})
	id, err := PeerIDFromPublicKey(th.key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if id != th.PeerID() {
		t.Fatalf("PeerIDFromPublicKey = %s, host id %s", id, th.PeerID())
	}
	if _, err := PeerIDFromPublicKey(make([]byte, 31)); !errors.Is(err, ErrBadPeerID) {
		t.Fatalf("short key: %v, want ErrBadPeerID", err)
	}
	if err := th.Connect(t.Context(), "not-a-peer-id", "127.0.0.1:1"); !errors.Is(err, ErrBadPeerID) {
		t.Fatalf("connect with bad id: %v", err)
	}
	if err := th.Connect(t.Context(), th.PeerID(), th.addr(t)); !errors.Is(err, ErrBadPeerID) {
		t.Fatalf("connect to self: %v", err)
	}
}
