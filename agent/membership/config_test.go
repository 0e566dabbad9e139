package membership

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestGossipAddr(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"127.0.0.1:4001", "127.0.0.1:4002"},
		{"0.0.0.0:9000", "0.0.0.0:9001"},
		{"[::1]:4001", "[::1]:4002"},
		{"[fe80::1%eth0]:4001", "[fe80::1%eth0]:4002"},
		{"[2001:db8::7]:1", "[2001:db8::7]:2"},
		{":4001", ":4002"},
		{"laptop-3.lan:65534", "laptop-3.lan:65535"},
	} {
		got, err := GossipAddr(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("GossipAddr(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{
		"127.0.0.1:65535", // no port left for gossip
		"[::1]:65535",
		"127.0.0.1:0",
		"127.0.0.1:65536",
		"127.0.0.1:-1",
		"127.0.0.1:+5",
		"127.0.0.1:abc",
		"127.0.0.1:",
		"127.0.0.1",
		"::1:4001", // IPv6 without brackets
		"",
	} {
		got, err := GossipAddr(in)
		if !errors.Is(err, ErrBadAddress) {
			t.Errorf("GossipAddr(%q) = %q, %v; want ErrBadAddress", in, got, err)
		}
	}
}

func validConfig() Config {
	c := DefaultConfig()
	c.DeviceID = "dev-a"
	c.PeerID = "12D3KooWabc"
	c.Listen = "127.0.0.1:4001"
	c.Key = make([]byte, KeySize)
	return c
}

func TestConfigValidate(t *testing.T) {
	p, err := func() (bindPlan, error) { c := validConfig(); return c.validate() }()
	if err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	if p.gossipPort != 4002 || p.dataPort != 4001 || p.bindIP.String() != "127.0.0.1" || p.advertiseIP.IsValid() {
		t.Fatalf("plan = %+v", p)
	}

	c := validConfig()
	c.Listen = ":4001"
	c.Advertise = "[2001:db8::5]:5001"
	p, err = c.validate()
	if err != nil {
		t.Fatalf("advertise config rejected: %v", err)
	}
	if !p.bindIP.IsUnspecified() || p.gossipPort != 4002 || p.advertisePort != 5002 ||
		p.dataPort != 5001 || p.advertiseIP.String() != "2001:db8::5" {
		t.Fatalf("plan = %+v", p)
	}

	for name, mutate := range map[string]func(*Config){
		"no device id":            func(c *Config) { c.DeviceID = "" },
		"long device id":          func(c *Config) { c.DeviceID = strings.Repeat("x", maxIDLen+1) },
		"device id not utf8":      func(c *Config) { c.DeviceID = "\xff" },
		"no peer id":              func(c *Config) { c.PeerID = "" },
		"long peer id":            func(c *Config) { c.PeerID = strings.Repeat("p", maxIDLen+1) },
		"short key":               func(c *Config) { c.Key = make([]byte, 16) },
		"no key":                  func(c *Config) { c.Key = nil },
		"listen port 65535":       func(c *Config) { c.Listen = "127.0.0.1:65535" },
		"listen port 0":           func(c *Config) { c.Listen = "127.0.0.1:0" },
		"listen host name":        func(c *Config) { c.Listen = "localhost:4001" },
		"listen [::] alone":       func(c *Config) { c.Listen = "[::]:4001" },
		"advertise host name":     func(c *Config) { c.Advertise = "laptop.lan:4001" },
		"advertise unspecified":   func(c *Config) { c.Advertise = "0.0.0.0:4001" },
		"advertise empty host":    func(c *Config) { c.Advertise = ":4001" },
		"advertise port 65535":    func(c *Config) { c.Advertise = "10.0.0.2:65535" },
		"zero gossip interval":    func(c *Config) { c.GossipInterval = 0 },
		"zero probe interval":     func(c *Config) { c.ProbeInterval = 0; c.ProbeTimeout = 0 },
		"probe timeout too long":  func(c *Config) { c.ProbeTimeout = c.ProbeInterval },
		"zero push/pull":          func(c *Config) { c.PushPullInterval = 0 },
		"zero tcp timeout":        func(c *Config) { c.TCPTimeout = 0 },
		"negative update timeout": func(c *Config) { c.UpdateTimeout = -1 },
		"negative leave timeout":  func(c *Config) { c.LeaveTimeout = -time.Second },
		"zero leave timeout":      func(c *Config) { c.LeaveTimeout = 0 },
		"zero suspicion mult":     func(c *Config) { c.SuspicionMult = 0 },
		"negative reclaim":        func(c *Config) { c.DeadNodeReclaimTime = -1 },
		"zero config":             func(c *Config) { *c = Config{} },
	} {
		c := validConfig()
		mutate(&c)
		if _, err := c.validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: validate() = %v, want ErrInvalidConfig", name, err)
		}
		if m, err := New(c); !errors.Is(err, ErrInvalidConfig) {
			if m != nil {
				_ = m.Close()
			}
			t.Errorf("%s: New() = %v, want ErrInvalidConfig", name, err)
		}
	}
}

func TestDefaultConfigIsGentlerThanMemberlistLAN(t *testing.T) {
	c := DefaultConfig()
	// The reasons are on the fields; this only guards against a default
	// drifting back to memberlist's busier LAN values unnoticed.
	if c.GossipInterval < 500*time.Millisecond || c.ProbeInterval < 2*time.Second ||
		c.PushPullInterval < 60*time.Second {
		t.Fatalf("defaults too busy for laptops on battery: %+v", c)
	}
}
