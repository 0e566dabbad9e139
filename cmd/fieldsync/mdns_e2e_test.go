package main

import (
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
	requireNetns(t)
	c := cluster(t)
	hosts := netnsPair(t, c, 7, [2]string{"wifi-a", "wifi-b"})
	for _, h := range hosts {
		startInNS(t, c, h)
	}
	putInNS(t, c, hosts[0], "Hoàng Văn Thào")
	if err := harness.WaitFor(30*time.Second, func() (bool, error) {
		got, err := namesInNS(c, hosts[1])
		return err == nil && len(got) == 1 && got[0] == "Hoàng Văn Thào", nil
	}); err != nil {
		t.Fatalf("wifi-b never got the dossier by mDNS: %v\n%s", err, nsLogs(hosts[0], hosts[1]))
	}
	var st api.Status
	if err := inNS(c, hosts[1], &st, "status", "--api", "127.0.0.1:7420", "--json"); err != nil || len(st.Peers) != 1 || st.Peers[0].Name != "wifi-a" {
		t.Fatalf("wifi-b status %+v (%v)", st.Peers, err)
	}
}
