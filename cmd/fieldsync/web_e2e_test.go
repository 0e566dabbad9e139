package main

import (
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/agent/web/webtest"
	"github.com/fieldsync/fieldsync/cmd/internal/harness"
)

// The admin settles a conflict in the web page of a real admin agent, in a
// real headless browser; the item leaves the queue and the value changes on
// a field laptop.
func TestE2EWebPageSettlesAConflictSeenOnAnotherAgent(t *testing.T) {
	c := cluster(t)
	admin := startRole(t, c, "admin-huyen", "admin")
	a := start(t, c, "laptop-a", admin)
	b := start(t, c, "laptop-b", admin)
	id := put(t, a, dossier(2, "Khâu Vai"))
	converge(t, []string{id}, admin, a, b)
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Client.Update(ctx, id, map[string]string{"full_name": "Sùng Seo Dính"}); err != nil {
		t.Fatal(err)
	}
	startAgain(t, b)
	if _, err := b.Client.Update(ctx, id, map[string]string{"full_name": "Sùng Xeo Dính"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	startAgain(t, b, admin)
	if err := harness.WaitFor(30*time.Second, func() (bool, error) {
		cs, err := admin.Client.Conflicts(ctx)
		return err == nil && len(cs) == 1 && len(cs[0].Values) == 2, err
	}); err != nil {
		t.Fatalf("no conflict on the admin: %v", err)
	}

	browser := webtest.NewBrowser(t)
	// The page is reached as an officer does: `fieldsync open` prints a
	// one-time link that logs the browser in.
	if err := webtest.Do(browser,
		webtest.Navigate(loginLink(t, c, admin)),
		webtest.Open("http://"+admin.API+"/#/conflicts"),
		webtest.SettleConflict(id, "full_name", "Sùng Seo Dính"),
	); err != nil {
		t.Fatalf("settle in the page: %v", err)
	}
	// The decision reaches the field laptop like any other change.
	if err := harness.WaitFor(30*time.Second, func() (bool, error) {
		rec, err := b.Client.Get(ctx, id)
		return err == nil && rec.Fields["full_name"] == "Sùng Seo Dính" && len(rec.Conflicts) == 0, err
	}); err != nil {
		rec, _ := b.Client.Get(ctx, id)
		t.Fatalf("laptop-b after the decision: %+v", rec)
	}
	// And the field laptop's own page shows it.
	if err := webtest.Do(browser,
		webtest.Navigate(loginLink(t, c, b)),
		webtest.Open("http://"+b.API+"/#/records/"+id),
		webtest.WaitTextIn(`.field[data-field="full_name"]`, "Sùng Seo Dính"),
	); err != nil {
		t.Fatalf("laptop-b's page: %v", err)
	}
}
