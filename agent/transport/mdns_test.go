package transport

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// mDNS cannot be bound to one interface, so it is only tested between two
// network namespaces joined by a veth pair, which the test makes and removes
// itself; each side is a child process of this test binary running in its
// namespace. Needs root and iproute2; run with FIELDSYNC_NETNS_TEST=1.

const (
	envNetnsTest = "FIELDSYNC_NETNS_TEST"
	envMDNSChild = "FIELDSYNC_MDNS_CHILD" // "a" or "b"
	envMDNSAddr  = "FIELDSYNC_MDNS_LISTEN"
	mdnsService  = "fieldsync-test"
	mdnsAdmitted = "MDNS-ADMITTED"
)

// mdnsRoles are the two children: key seed, listen address (inside the
// test's own namespaces, nowhere else).
var mdnsRoles = map[string]struct {
	key  byte
	addr string
}{
	"a": {60, "10.231.0.1"},
	"b": {61, "10.231.0.2"},
}

func TestMDNSBetweenNamespaces(t *testing.T) {
	if os.Getenv(envNetnsTest) != "1" || os.Getenv(envMDNSChild) != "" {
		t.Skip("set " + envNetnsTest + "=1 (as root) to run the mDNS test in network namespaces")
	}
	suffix := strconv.Itoa(os.Getpid() % 100000)
	ns := map[string]string{"a": "fsmdnsa" + suffix, "b": "fsmdnsb" + suffix}
	ifs := map[string]string{"a": "fsa" + suffix, "b": "fsb" + suffix}
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, role := range []string{"a", "b"} {
		ip("netns", "add", ns[role])
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns[role]).Run() })
	}
	ip("link", "add", ifs["a"], "netns", ns["a"], "type", "veth", "peer", "name", ifs["b"], "netns", ns["b"])
	for _, role := range []string{"a", "b"} {
		ip("-n", ns[role], "addr", "add", mdnsRoles[role].addr+"/24", "dev", ifs[role])
		ip("-n", ns[role], "link", "set", ifs[role], "up")
		ip("-n", ns[role], "link", "set", "lo", "up")
	}

	type child struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		lines chan string
	}
	children := map[string]*child{}
	for _, role := range []string{"a", "b"} {
		cmd := exec.Command("ip", "netns", "exec", ns[role], os.Args[0],
			"-test.run=^TestMDNSChild$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), envMDNSChild+"="+role, envMDNSAddr+"="+mdnsRoles[role].addr+":0")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		c := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 1000)}
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				c.lines <- sc.Text()
			}
			close(c.lines)
		}()
		children[role] = c
		t.Cleanup(func() {
			_ = stdin.Close()
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		})
	}

	deadline := time.After(30 * time.Second)
	for _, role := range []string{"a", "b"} {
		c := children[role]
		var output []string
	wait:
		for {
			select {
			case line, ok := <-c.lines:
				if !ok {
					t.Fatalf("child %s ended before admitting its peer:\n%s", role, strings.Join(output, "\n"))
				}
				output = append(output, line)
				if strings.HasPrefix(line, mdnsAdmitted) {
					t.Logf("child %s: %s", role, strings.Join(output, "\n"))
					break wait
				}
			case <-deadline:
				t.Fatalf("child %s did not find and admit its peer by mDNS:\n%s", role, strings.Join(output, "\n"))
			}
		}
	}
}

// TestMDNSChild is one side of TestMDNSBetweenNamespaces.
func TestMDNSChild(t *testing.T) {
	role := os.Getenv(envMDNSChild)
	if role == "" {
		t.Skip("run by TestMDNSBetweenNamespaces")
	}
	me, ok := mdnsRoles[role]
	if !ok {
		t.Fatalf("unknown role %q", role)
	}
	other := mdnsRoles["b"]
	if role == "b" {
		other = mdnsRoles["a"]
	}
	otherID, err := PeerIDFromPublicKey(testKey(other.key).Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	admitted := make(chan Peer, 4)
	cfg := DefaultConfig()
	cfg.Listen = os.Getenv(envMDNSAddr)
	cfg.Key = testKey(me.key)
	cfg.Credential = testCredential("d", "dev-"+role, role)
	cfg.Admit = (&admitter{deployment: "d"}).admit
	cfg.MDNS, cfg.MDNSService = true, mdnsService
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.OnAdmitted = func(p Peer) { admitted <- p }
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	select {
	case p := <-admitted:
		if p.PeerID != otherID {
			t.Fatalf("admitted %s, want %s", p.PeerID, otherID)
		}
		fmt.Printf("%s %s %s\n", mdnsAdmitted, p.Name, p.Addr)
	case <-time.After(25 * time.Second):
		t.Fatal("peer not found by mDNS")
	}
	// Stay up until the parent has seen both sides admitted (it closes
	// our stdin), so the other side's handshake is not cut short.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); cancel() }()
	<-ctx.Done()
}
