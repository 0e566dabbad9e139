package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/cmd/internal/harness"
)

// Agents in network namespaces of the test's own, joined by a veth pair:
// two real hosts on one machine, for what crosses a network (mDNS, a link
// going down). Needs root and iproute2: run when FIELDSYNC_NETNS_TEST=1
// (make test sets it).

type nsHost struct {
	name, ns, ifc, addr string
	agent               *harness.Agent
	cmd                 *exec.Cmd
	logPath             string
}

// env gives each namespace's agent and CLI a runtime directory of their
// own: both APIs are 127.0.0.1:7420, each in its namespace, and share one
// runtime file name.
func (h *nsHost) env(c *harness.Cluster) []string {
	return append(c.Env(), "FIELDSYNC_RUNTIME_DIR="+filepath.Join(c.Dir, "run-"+h.name))
}

func requireNetns(t *testing.T) {
	t.Helper()
	if os.Getenv("FIELDSYNC_NETNS_TEST") != "1" {
		t.Skip("set FIELDSYNC_NETNS_TEST=1 (as root) to run agents in network namespaces")
	}
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// netnsPair makes two namespaces joined by a veth pair, 10.232.<subnet>.1
// and .2, and provisions a field laptop for each.
func netnsPair(t *testing.T, c *harness.Cluster, subnet int, names [2]string) [2]*nsHost {
	t.Helper()
	suffix := fmt.Sprintf("%d%d", os.Getpid()%10000, subnet)
	var hosts [2]*nsHost
	for i, name := range names {
		tag := string(rune('a' + i))
		hosts[i] = &nsHost{name: name, ns: "fs" + tag + suffix, ifc: "fs" + tag + suffix, addr: fmt.Sprintf("10.232.%d.%d", subnet, i+1)}
		ipCmd(t, "netns", "add", hosts[i].ns)
		ns := hosts[i].ns
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	ipCmd(t, "link", "add", hosts[0].ifc, "netns", hosts[0].ns, "type", "veth", "peer", "name", hosts[1].ifc, "netns", hosts[1].ns)
	for _, h := range hosts {
		ipCmd(t, "-n", h.ns, "addr", "add", h.addr+"/24", "dev", h.ifc)
		ipCmd(t, "-n", h.ns, "link", "set", h.ifc, "up")
		ipCmd(t, "-n", h.ns, "link", "set", "lo", "up")
		a, err := c.Provision(h.name, "field")
		if err != nil {
			t.Fatal(err)
		}
		h.agent = a
		h.logPath = filepath.Join(c.Dir, h.name+".log")
	}
	return hosts
}

// startInNS starts h's agent inside its namespace on its address, port 7421.
func startInNS(t *testing.T, c *harness.Cluster, h *nsHost, extra ...string) {
	t.Helper()
	args := append([]string{"netns", "exec", h.ns, c.Bin, "agent", "--data", h.agent.Data,
		"--listen", h.addr + ":7421", "--api", "127.0.0.1:7420", "--safety-interval", "2s"}, extra...)
	h.cmd = exec.Command("ip", args...)
	h.cmd.Env = h.env(c)
	logf, err := os.OpenFile(h.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	h.cmd.Stdout, h.cmd.Stderr = logf, logf
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd := h.cmd
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() })
}

// inNS runs the CLI inside h's namespace, decoding its JSON output into out.
func inNS(c *harness.Cluster, h *nsHost, out any, args ...string) error {
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.ns, c.Bin}, args...)...)
	cmd.Env = h.env(c)
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func nsLogs(hosts ...*nsHost) string {
	var b strings.Builder
	for _, h := range hosts {
		l, _ := os.ReadFile(h.logPath)
		fmt.Fprintf(&b, "--- %s:\n%s\n", h.name, l)
	}
	return b.String()
}

// putInNS captures a dossier on h through the CLI.
func putInNS(t *testing.T, c *harness.Cluster, h *nsHost, fullName string) {
	t.Helper()
	file := filepath.Join(c.Dir, fmt.Sprintf("ho-so-%d.json", time.Now().UnixNano()))
	body := fmt.Sprintf(`{"full_name":%q,"date_of_birth":"1982-03-14","sex":"nam","commune":"Vạn Thạnh"}`, fullName)
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := harness.WaitFor(20*time.Second, func() (bool, error) {
		return inNS(c, h, nil, "put", "--api", "127.0.0.1:7420", file) == nil, nil
	}); err != nil {
		t.Fatalf("put on %s: %v\n%s", h.name, err, nsLogs(h))
	}
}

func namesInNS(c *harness.Cluster, h *nsHost) ([]string, error) {
	var recs []api.Record
	if err := inNS(c, h, &recs, "list", "--api", "127.0.0.1:7420", "--json"); err != nil {
		return nil, err
	}
	var out []string
	for _, r := range recs {
		out = append(out, r.Fields["full_name"])
	}
	return out, nil
}

// A laptop cut off for longer than memberlist gives a dead member (its
// dead-node reclaim time and the time gossip still goes to the dead) comes
// back by itself: once the link is up again, both sides hold each other's
// dossiers within 60 s. Without the agent's own re-join of known peers,
// memberlist alone never brings them together again.
func TestE2ELaptopIsolatedLongRejoinsByItself(t *testing.T) {
	requireNetns(t)
	c := cluster(t)
	hosts := netnsPair(t, c, 9, [2]string{"isolated-a", "isolated-b"})
	a, b := hosts[0], hosts[1]
	startInNS(t, c, b, "--no-mdns")
	startInNS(t, c, a, "--no-mdns", "--join", b.addr+":7421")
	putInNS(t, c, a, "Giàng Thị Mỷ")
	has := func(h *nsHost, n int) bool {
		got, err := namesInNS(c, h)
		return err == nil && len(got) == n
	}
	if err := harness.WaitFor(30*time.Second, func() (bool, error) { return has(b, 1), nil }); err != nil {
		got, err := namesInNS(c, b)
		t.Fatalf("the first dossier never reached isolated-b: %v %v\n%s", got, err, nsLogs(a, b))
	}
	// The link goes down for longer than memberlist keeps a dead member
	// (DeadNodeReclaimTime 10 s, GossipToTheDeadTime 60 s: agent/membership).
	ipCmd(t, "-n", a.ns, "link", "set", a.ifc, "down")
	putInNS(t, c, a, "Vừ Mí Chứ")
	putInNS(t, c, b, "Thò Thị Súng")
	time.Sleep(75 * time.Second)
	ipCmd(t, "-n", a.ns, "link", "set", a.ifc, "up")
	back := time.Now()
	if err := harness.WaitFor(60*time.Second, func() (bool, error) { return has(a, 3) && has(b, 3), nil }); err != nil {
		t.Fatalf("60 s after the link came back the laptops have not synced:\n%s", nsLogs(a, b))
	}
	t.Logf("synced %.1f s after the link came back, after 75 s apart", time.Since(back).Seconds())
}
