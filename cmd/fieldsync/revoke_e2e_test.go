package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/cmd/internal/harness"
)

// revokeList runs `authority revoke` on the cluster's authority and returns
// the list file.
func revokeList(t *testing.T, c *harness.Cluster, device, reason string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "revocations-"+device+".cbor")
	if got, err := c.Run("authority", "revoke", "--authority", c.Authority, "--device", device, "--reason", reason, "--out", out); err != nil {
		t.Fatalf("authority revoke %s: %v\n%s", device, err, got)
	}
	return out
}

func hasPeer(t *testing.T, a *harness.Agent, name string) bool {
	t.Helper()
	for _, p := range status(t, a).Peers {
		if p.Name == name {
			return true
		}
	}
	return false
}

// A laptop is lost: the administrator revokes it, the list is handed to one
// laptop only, and the rest of the team and the hub learn it from each
// other. The lost laptop gets nothing new; what it writes afterwards and a
// relay carries is quarantined, not merged.
func TestE2ERevocationSpreadsWithoutTheAuthority(t *testing.T) {
	c := cluster(t)
	hub := startHub(t, c, "hub")
	a := start(t, c, "laptop-a")
	b := start(t, c, "laptop-b", a)
	lost := start(t, c, "laptop-c", a, b)
	relay, err := c.Provision("laptop-d", "field")
	if err != nil {
		t.Fatal(err)
	}
	all := []string{put(t, a, dossier(0, "Pả Vi")), put(t, b, dossier(1, "Pả Vi")), put(t, lost, dossier(2, "Pả Vi"))}
	converge(t, all, a, b, lost)
	if err := harness.WaitFor(30*time.Second, func() (bool, error) { return hasPeer(t, b, "laptop-c"), nil }); err != nil {
		t.Fatal("laptop-b never saw laptop-c")
	}

	// The administrator revokes laptop-c and hands the list to laptop-a.
	file := revokeList(t, c, "laptop-c", "lost on the ferry")
	cID := status(t, lost).DeviceID
	out, err := c.Run("revoke", "--api", a.API, file, "--json")
	if err != nil || !strings.Contains(string(out), `"installed": true`) {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	handed := time.Now()
	// Within 60 s (in practice about a second) laptop-b, which never saw
	// the list handed over, refuses laptop-c.
	if err := harness.WaitFor(60*time.Second, func() (bool, error) {
		st := status(t, b)
		return st.Revocation != nil && st.Revocation.Number == 1 && !hasPeer(t, b, "laptop-c") && !hasPeer(t, a, "laptop-c"), nil
	}); err != nil {
		t.Fatalf("laptop-b after 60 s: %+v, peers %+v", status(t, b).Revocation, status(t, b).Peers)
	}
	t.Logf("laptop-b refused laptop-c %v after the list reached laptop-a", time.Since(handed).Round(time.Millisecond))
	if took := time.Since(handed); took > 60*time.Second {
		t.Fatalf("took %v", took)
	}
	st := status(t, b)
	if len(st.Revocation.Devices) != 1 || st.Revocation.Devices[0].DeviceID != cID || st.Revocation.Devices[0].Name != "laptop-c" ||
		st.Revocation.Devices[0].Reason != "lost on the ferry" {
		t.Fatalf("laptop-b's revocation status: %+v", st.Revocation)
	}
	if err := harness.WaitFor(10*time.Second, func() (bool, error) {
		return strings.Contains(b.Log(), "was revoked by the deployment's authority") &&
			strings.Contains(lost.Log(), "was revoked by the deployment's authority"), nil
	}); err != nil {
		t.Fatalf("the refusal is not logged on both sides:\n--- laptop-b\n%s\n--- laptop-c\n%s", b.Log(), lost.Log())
	}

	// New dossiers on A and B reach each other, never laptop-c.
	fresh := []string{put(t, a, dossier(3, "Lũng Pù")), put(t, b, dossier(4, "Lũng Pù"))}
	converge(t, append(slices.Clone(all), fresh...), a, b)
	time.Sleep(3 * time.Second)
	for _, id := range fresh {
		if slices.Contains(ids(t, lost), id) {
			t.Fatalf("the revoked laptop received dossier %s", id)
		}
	}

	// laptop-c writes on; laptop-d, which has not got the list, meets it
	// while A and B are away, takes the dossier and carries it to laptop-b,
	// which quarantines it and hands laptop-d the list.
	for _, x := range []*harness.Agent{a, b} {
		if err := x.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	later := put(t, lost, dossier(5, "Sủng Máng"))
	startAgain(t, relay, lost)
	converge(t, append(slices.Clone(all), later), relay)
	lost.Kill()
	startAgain(t, b, relay)
	if err := harness.WaitFor(30*time.Second, func() (bool, error) {
		return status(t, b).Quarantined == 1 && status(t, relay).Revocation.Number == 1, nil
	}); err != nil {
		t.Fatalf("laptop-b quarantined %d ops; laptop-d holds list %d", status(t, b).Quarantined, status(t, relay).Revocation.Number)
	}
	if !slices.Contains(ids(t, relay), later) {
		t.Fatal("laptop-d, which met laptop-c before it had the list, does not hold its dossier")
	}
	if slices.Contains(ids(t, b), later) {
		t.Fatal("laptop-b lists the revoked laptop's later dossier")
	}
	q, err := b.Client.Quarantine(ctx)
	if err != nil || len(q) != 1 || q[0].Origin != cID || q[0].Record != later || q[0].Kind != "create" {
		t.Fatalf("quarantine listing: %+v, %v", q, err)
	}
	// The same from the command line, which finds the API token itself.
	out, err = c.Run("quarantine", "--api", b.API)
	if err != nil {
		t.Fatalf("fieldsync quarantine: %v\n%s", err, out)
	}
	row := regexp.MustCompile(`(?m)^laptop-c\s+` + strconv.FormatUint(q[0].Seq, 10) + `\s+create\s+` + regexp.QuoteMeta(later) + `\s+\d{4}-\d\d-\d\d `)
	if !row.Match(out) || !strings.Contains(string(out), "Cách ly / Quarantined: 1 (") || !strings.Contains(string(out), "DEVICE") {
		t.Fatalf("fieldsync quarantine on laptop-b:\n%s", out)
	}
	var listed []api.QuarantinedOp
	if out, err = c.Run("quarantine", "--api", b.API, "--json"); err != nil || json.Unmarshal(out, &listed) != nil ||
		len(listed) != 1 || listed[0].Origin != cID || listed[0].Device != "laptop-c" || listed[0].Record != later {
		t.Fatalf("fieldsync quarantine --json: %v\n%s", err, out)
	}
	if out, err = c.Run("quarantine", "--api", relay.API); err != nil || strings.TrimSpace(string(out)) !=
		"Cách ly / Quarantined: 0 (thay đổi của máy bị thu hồi, không được gộp / changes of revoked devices, not merged)" {
		t.Fatalf("fieldsync quarantine on laptop-d, which merged the dossier before it had the list: %v\n%s", err, out)
	}

	// The hub gets the list from the next laptop that syncs to it.
	if n := status(t, hub).Revocation.Number; n != 0 {
		t.Fatalf("hub holds list %d before any laptop reached it", n)
	}
	if err := a.Start("--hub", hub.Listen); err != nil {
		t.Fatal(err)
	}
	if err := harness.WaitFor(30*time.Second, func() (bool, error) {
		return status(t, hub).Revocation.Number == 1, nil
	}); err != nil {
		t.Fatalf("the hub never got the list: %+v", status(t, hub).Revocation)
	}
	if slices.Contains(ids(t, hub), later) || hasPeer(t, hub, "laptop-c") {
		t.Fatal("the hub took the revoked laptop's later dossier or lists it as a peer")
	}
}

// A list with a bad signature, from another deployment, or older than the
// one in force is refused, said so, and counted.
func TestE2EBadRevocationListsAreRefused(t *testing.T) {
	c := cluster(t)
	a := start(t, c, "laptop-a")
	if _, err := c.Provision("laptop-b", "field"); err != nil {
		t.Fatal(err)
	}
	first := revokeList(t, c, "laptop-b", "lost")
	second := revokeList(t, c, "zzzzzzzzzzzzzzzzzzzzzzzzzz", "issued by hand, never registered")
	if out, err := c.Run("revoke", "--api", a.API, second); err != nil {
		t.Fatalf("revoke: %v\n%s", err, out)
	}

	raw, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	forged := filepath.Join(t.TempDir(), "forged.cbor")
	raw[len(raw)-1] ^= 1
	if err := os.WriteFile(forged, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	other, err := harness.NewCluster(c.Bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Provision("laptop-x", "field"); err != nil {
		t.Fatal(err)
	}
	foreign := revokeList(t, other, "laptop-x", "")
	for file, want := range map[string]string{
		forged:  "not signed by the authority",
		foreign: "issued by another authority",
		first:   "older than the list 2 in force",
	} {
		out, err := c.Run("revoke", "--api", a.API, file)
		if err == nil || !strings.Contains(string(out), want) || !strings.Contains(string(out), "bị từ chối") {
			t.Errorf("%s: %v\n%s", filepath.Base(file), err, out)
		}
	}
	st := status(t, a)
	if st.Revocation.Number != 2 || st.Revocation.Refused != 3 || len(st.Revocation.Devices) != 2 {
		t.Fatalf("after three bad lists: %+v", st.Revocation)
	}
	if !strings.Contains(a.Log(), "refused a revocation list") {
		t.Fatal("refusals are not logged")
	}
}
