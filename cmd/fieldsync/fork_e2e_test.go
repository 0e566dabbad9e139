package main

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/cmd/internal/harness"
)

// forkAlerts returns the fork alerts of `fieldsync status --json` on a.
func forkAlerts(t *testing.T, c *harness.Cluster, a *harness.Agent) []api.Alert {
	t.Helper()
	out, err := c.Run("status", "--json", "--api", a.API)
	if err != nil {
		t.Fatalf("status --json on %s: %v\n%s", a.Name, err, out)
	}
	var st struct {
		Alerts []api.Alert `json:"alerts"`
	}
	if err := json.Unmarshal(out, &st); err != nil || st.Alerts == nil {
		t.Fatalf("status --json on %s: alerts %v, %v\n%s", a.Name, st.Alerts, err, out)
	}
	return st.Alerts
}

// waitDossiers waits until every agent lists exactly the dossiers of want,
// each with the full name it was captured with.
func waitDossiers(t *testing.T, want map[string]string, agents ...*harness.Agent) {
	t.Helper()
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	converge(t, ids, agents...)
	for _, a := range agents {
		for id, name := range want {
			rec, err := a.Client.Get(ctx, id)
			if err != nil || rec.Fields["full_name"] != name || len(rec.Conflicts) != 0 {
				t.Fatalf("%s: dossier %s: %+v, %v; want full name %q", a.Name, id, rec, err, name)
			}
		}
	}
}

// A laptop's data directory is copied (a backup restored on a second
// laptop). The copy and the original each capture dossiers alone, on
// their own branch of one log, then come back to the team one after the
// other. The team raises a fork alert, and every acknowledged dossier of
// both branches ends up on every laptop: the team takes the branch written
// first, and the original, whose branch lost, writes its dossiers again on
// top of it.
func TestE2EForkedLaptopLosesNothing(t *testing.T) {
	c := cluster(t)
	p := start(t, c, "laptop-p")
	q := start(t, c, "laptop-q", p)
	orig := start(t, c, "laptop-l", p, q)
	capture := func(a *harness.Agent, i int, into ...map[string]string) {
		d := dossier(i, "Pả Vi")
		id := put(t, a, d)
		for _, m := range into {
			m[id] = d["full_name"]
		}
	}
	all, shared, ofCopy, ofOrig := map[string]string{}, map[string]string{}, map[string]string{}, map[string]string{}
	union := func(ms ...map[string]string) map[string]string {
		out := map[string]string{}
		for _, m := range ms {
			maps.Copy(out, m)
		}
		return out
	}
	capture(orig, 0, all, shared)
	waitDossiers(t, shared, p, q, orig)
	self := status(t, orig).DeviceID
	if err := orig.Stop(); err != nil {
		t.Fatal(err)
	}
	cp, err := c.Copy(orig, "laptop-l-copy")
	if err != nil {
		t.Fatal(err)
	}

	// The copy captures first, alone: its branch is the one written first.
	if err := cp.Start(); err != nil {
		t.Fatal(err)
	}
	capture(cp, 1, all, ofCopy)
	capture(cp, 2, all, ofCopy)
	if err := cp.Stop(); err != nil {
		t.Fatal(err)
	}
	// The original captures later, with the team, which takes its branch.
	startAgain(t, orig, p, q)
	capture(orig, 3, all, ofOrig)
	capture(orig, 4, all, ofOrig)
	waitDossiers(t, union(shared, ofOrig), p, q)
	if err := orig.Stop(); err != nil {
		t.Fatal(err)
	}

	// The copy comes back: the team sees both branches, raises the alert
	// and takes the branch written first. The original's two dossiers now
	// wait for the original, the one device that can sign them again.
	startAgain(t, cp, p, q)
	for _, a := range []*harness.Agent{p, q, cp} {
		if err := harness.WaitFor(30*time.Second, func() (bool, error) { return len(forkAlerts(t, c, a)) > 0, nil }); err != nil {
			t.Fatalf("no fork alert on %s", a.Name)
		}
		if al := forkAlerts(t, c, a); len(al) != 1 || al[0].Kind != "fork" || al[0].Device != self || al[0].Seq != 2 {
			t.Fatalf("alerts on %s: %+v, want one fork of %s at 2", a.Name, al, self)
		}
	}
	waitDossiers(t, union(shared, ofCopy), p, q, cp)
	if err := cp.Stop(); err != nil {
		t.Fatal(err)
	}

	// The original comes back, learns that its branch lost and writes its
	// dossiers again on the winning branch.
	startAgain(t, orig, p, q)
	waitDossiers(t, all, p, q, orig)
	if !strings.Contains(orig.Log(), "wrote again, on the winning branch") {
		t.Fatal("the original does not say it wrote its changes again")
	}
	if al := forkAlerts(t, c, orig); len(al) != 1 || al[0].Device != self || al[0].Seq != 2 {
		t.Fatalf("alerts on the original: %+v", al)
	}
	// Two laptops of one identity share one libp2p peer id: the mesh takes
	// them for one peer, so they come back one after the other.
	if err := orig.Stop(); err != nil {
		t.Fatal(err)
	}
	startAgain(t, cp, p, q)
	waitDossiers(t, all, p, q, cp)
	if err := cp.Stop(); err != nil {
		t.Fatal(err)
	}

	// New captures on the original continue the one log.
	startAgain(t, orig, p, q)
	capture(orig, 5, all)
	waitDossiers(t, all, p, q, orig)
	for _, a := range []*harness.Agent{p, q, orig} {
		if al := forkAlerts(t, c, a); len(al) != 1 || al[0].Device != self || al[0].Seq != 2 {
			t.Fatalf("alerts on %s at the end: %+v", a.Name, al)
		}
	}
	// 1 shared, 2 of the copy, the original's 2 written again, 1 new.
	if seq := status(t, p).VersionVector[self]; seq != 6 {
		t.Fatalf("the forked device's log on laptop-p ends at %d, want 6", seq)
	}
}

// A laptop lost after a day's work is replaced by one restored from the
// morning's backup. Its first capture waits until the team has handed back
// the day's log, and continues it: no fork, no alert.
func TestE2ERestoredLaptopContinuesItsLog(t *testing.T) {
	c := cluster(t)
	p := start(t, c, "laptop-p")
	orig := start(t, c, "laptop-l", p)
	all := []string{put(t, orig, dossier(0, "Sủng Máng"))}
	converge(t, all, p, orig)
	self := status(t, orig).DeviceID
	if err := orig.Stop(); err != nil {
		t.Fatal(err)
	}
	backup, err := c.Copy(orig, "laptop-l-restored")
	if err != nil {
		t.Fatal(err)
	}
	startAgain(t, orig, p)
	all = append(all, put(t, orig, dossier(1, "Sủng Máng")), put(t, orig, dossier(2, "Sủng Máng")))
	converge(t, all, p)
	orig.Kill() // lost

	startAgain(t, backup, p)
	all = append(all, put(t, backup, dossier(3, "Sủng Máng")))
	converge(t, all, p, backup)
	for _, a := range []*harness.Agent{p, backup} {
		if al := forkAlerts(t, c, a); len(al) != 0 {
			t.Fatalf("alerts on %s: %+v", a.Name, al)
		}
	}
	if seq := status(t, p).VersionVector[self]; seq != 4 {
		t.Fatalf("the restored laptop's log ends at %d on laptop-p, want 4", seq)
	}
	if !strings.Contains(backup.Log(), "a peer confirmed how far this device's own log goes") {
		t.Fatal("the restored laptop does not say it checked its log with a peer")
	}
}

// hasAlert reports whether a's status lists an alert of kind about device.
func hasAlert(t *testing.T, c *harness.Cluster, a *harness.Agent, kind, device string) bool {
	t.Helper()
	for _, al := range forkAlerts(t, c, a) {
		if al.Kind == kind && al.Device == device {
			return true
		}
	}
	return false
}

// One identity on two laptops at once: a data directory copied, both
// copies capture alone, then both come back to the team at the same time.
// The team sees one device at two addresses and says so (a "clone"
// alert), sees the two branches (a "fork" alert), and every acknowledged
// dossier of both branches reaches every laptop, while both copies stay
// online.
func TestE2ETwoCopiesOnlineAtOnce(t *testing.T) {
	c := cluster(t)
	p := start(t, c, "laptop-p")
	q := start(t, c, "laptop-q", p)
	orig := start(t, c, "laptop-l", p, q)
	all := map[string]string{}
	capture := func(a *harness.Agent, i int) {
		d := dossier(i, "Sín Cái")
		all[put(t, a, d)] = d["full_name"]
	}
	capture(orig, 0)
	waitDossiers(t, all, p, q, orig)
	self := status(t, orig).DeviceID
	if err := orig.Stop(); err != nil {
		t.Fatal(err)
	}
	cp, err := c.Copy(orig, "laptop-l-copy")
	if err != nil {
		t.Fatal(err)
	}
	// Each copy captures alone, the copy first.
	for _, step := range []struct {
		a  *harness.Agent
		is []int
	}{{cp, []int{1, 2}}, {orig, []int{3, 4}}} {
		startAgain(t, step.a)
		for _, i := range step.is {
			capture(step.a, i)
		}
		if err := step.a.Stop(); err != nil {
			t.Fatal(err)
		}
	}

	// Both come back at once.
	startAgain(t, orig, p, q)
	startAgain(t, cp, p, q)
	for _, a := range []*harness.Agent{p, q} {
		if err := harness.WaitFor(60*time.Second, func() (bool, error) {
			return hasAlert(t, c, a, api.AlertFork, self) && hasAlert(t, c, a, api.AlertClone, self), nil
		}); err != nil {
			t.Fatalf("%s: alerts %+v, want a fork and a clone alert about %s", a.Name, forkAlerts(t, c, a), self)
		}
	}
	waitDossiers(t, all, p, q, orig, cp)
}
