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

// Two laptops on one Wi-Fi find each other with no configuration: two agent
// processes in two network namespaces joined by a veth pair, mDNS on, no
// --join. It needs root and iproute2, so it runs when FIELDSYNC_NETNS_TEST=1
// (make test sets it); multicast never leaves the namespaces the test made.
func TestE2ELaptopsOnOneNetworkFindEachOtherByMDNS(t *testing.T) {
	if os.Getenv("FIELDSYNC_NETNS_TEST") != "1" {
		t.Skip("set FIELDSYNC_NETNS_TEST=1 (as root) to run agents in network namespaces")
	}
	c := cluster(t)
	suffix := fmt.Sprintf("%d", os.Getpid()%100000)
	type host struct {
		name, ns, ifc, addr string
		agent               *harness.Agent
		cmd                 *exec.Cmd
	}
	hosts := []*host{
		{name: "wifi-a", ns: "fsa" + suffix, ifc: "fsa" + suffix, addr: "10.232.7.1"},
		{name: "wifi-b", ns: "fsb" + suffix, ifc: "fsb" + suffix, addr: "10.232.7.2"},
	}
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, h := range hosts {
		ip("netns", "add", h.ns)
		ns := h.ns
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	ip("link", "add", hosts[0].ifc, "netns", hosts[0].ns, "type", "veth", "peer", "name", hosts[1].ifc, "netns", hosts[1].ns)
	for _, h := range hosts {
		ip("-n", h.ns, "addr", "add", h.addr+"/24", "dev", h.ifc)
		ip("-n", h.ns, "link", "set", h.ifc, "up")
		ip("-n", h.ns, "link", "set", "lo", "up")
		a, err := c.Provision(h.name, "field")
		if err != nil {
			t.Fatal(err)
		}
		h.agent = a
		h.cmd = exec.Command("ip", "netns", "exec", h.ns, c.Bin, "agent", "--data", a.Data,
			"--listen", h.addr+":7421", "--api", "127.0.0.1:7420", "--safety-interval", "2s")
		logf, err := os.Create(filepath.Join(c.Dir, h.name+".log"))
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
	inNS := func(h *host, out any, args ...string) error {
		b, err := exec.Command("ip", append([]string{"netns", "exec", h.ns, c.Bin}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, b)
		}
		if out != nil {
			return json.Unmarshal(b, out)
		}
		return nil
	}
	file := filepath.Join(c.Dir, "ho-so.json")
	if err := os.WriteFile(file, []byte(`{"full_name":"Hoàng Văn Thào","date_of_birth":"1982-03-14","sex":"nam","commune":"Vạn Thạnh"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := harness.WaitFor(20*time.Second, func() (bool, error) {
		return inNS(hosts[0], nil, "put", "--api", "127.0.0.1:7420", file) == nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	var recs []api.Record
	if err := harness.WaitFor(30*time.Second, func() (bool, error) {
		err := inNS(hosts[1], &recs, "list", "--api", "127.0.0.1:7420", "--json")
		return err == nil && len(recs) == 1 && recs[0].Fields["full_name"] == "Hoàng Văn Thào", err
	}); err != nil {
		logA, _ := os.ReadFile(filepath.Join(c.Dir, "wifi-a.log"))
		logB, _ := os.ReadFile(filepath.Join(c.Dir, "wifi-b.log"))
		t.Fatalf("wifi-b never got the dossier by mDNS: %v\n--- a:\n%s\n--- b:\n%s", err, logA, logB)
	}
	var st api.Status
	if err := inNS(hosts[1], &st, "status", "--api", "127.0.0.1:7420", "--json"); err != nil || len(st.Peers) != 1 || st.Peers[0].Name != "wifi-a" {
		t.Fatalf("wifi-b status %+v (%v)", st.Peers, err)
	}
}
