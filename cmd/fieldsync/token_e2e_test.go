package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/fieldsync/fieldsync/cmd/internal/harness"
)

// loginLink runs `fieldsync open --no-browser --json` against a, as the
// officer would, and returns the one-time link.
func loginLink(t *testing.T, c *harness.Cluster, a *harness.Agent) string {
	t.Helper()
	out, err := c.Run("open", "--api", a.API, "--no-browser", "--json")
	if err != nil {
		t.Fatalf("fieldsync open: %v\n%s", err, out)
	}
	var lt struct {
		URL string `json:"url"`
	}
	if err := json.Unmarshal(out, &lt); err != nil || !strings.Contains(lt.URL, "/login?t=") {
		t.Fatalf("fieldsync open printed %q (%v)", out, err)
	}
	return lt.URL
}

// The API refuses every call without the token with a clear JSON error,
// except /healthz; the CLI run by the same user finds the token by itself;
// a wrong --token exits 4; a login link works once.
func TestE2EAPIRequiresAToken(t *testing.T) {
	c := cluster(t)
	a := start(t, c, "laptop-a")
	id := put(t, a, dossier(1, "Pả Vi"))

	resp, err := http.Get("http://" + a.API + "/v1/records/" + id)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var e struct {
		Error   string `json:"error"`
		ErrorVI string `json:"error_vi"`
	}
	if resp.StatusCode != http.StatusUnauthorized || json.Unmarshal(body, &e) != nil ||
		!strings.Contains(e.Error, "token") || e.ErrorVI == "" || resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("no token: %d %s", resp.StatusCode, body)
	}
	if strings.Contains(string(body), id) {
		t.Fatal("the 401 answer names the dossier")
	}
	resp, err = http.Get("http://" + a.API + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}

	out, err := c.Run("list", "--api", a.API)
	if err != nil || !strings.Contains(string(out), id) {
		t.Fatalf("list as the same user: %v\n%s", err, out)
	}
	out, err = c.Run("list", "--api", a.API, "--token", "not-the-agents-token-at-all")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitToken || !strings.Contains(string(out), "FIELDSYNC_API_TOKEN") {
		t.Fatalf("wrong token: %v\n%s", err, out)
	}

	link := loginLink(t, c, a)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noRedirect.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if strings.HasPrefix(ck.Name, "fieldsync_session_") {
			session = ck
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie: %+v", resp.Cookies())
	}
	req, _ := http.NewRequest("GET", "http://"+a.API+"/v1/records/"+id, nil)
	req.AddCookie(session)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("read with the session cookie: %d", resp.StatusCode)
	}
	// A write with the cookie but without the CSRF header is refused.
	req, _ = http.NewRequest("PATCH", "http://"+a.API+"/v1/records/"+id, strings.NewReader(`{"village":"Lũng Vài"}`))
	req.Header.Set("Content-Type", "application/json")
	req.AddCookie(session)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cookie write without CSRF header: %d", resp.StatusCode)
	}
	// The link works once.
	if resp, err = noRedirect.Get(link); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("login link used twice: %d", resp.StatusCode)
	}
}
