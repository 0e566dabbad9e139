package api

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// authServer is a server with an API token, an admin token if admin is
// not empty, and a clock the test moves.
func authServer(t *testing.T, admin string) (*Server, *atomic.Int64) {
	t.Helper()
	var now atomic.Int64
	now.Store(fakeTime.UnixNano())
	cfg := DefaultConfig()
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.Now = func() time.Time { return time.Unix(0, now.Load()) }
	cfg.Token, cfg.AdminToken = "user-token", admin
	s, err := NewServer(cfg, newFakeBackend())
	if err != nil {
		t.Fatal(err)
	}
	return s, &now
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

// loginCookies spends a login link made with tok and returns the cookies
// it sets.
func loginCookies(t *testing.T, h http.Handler, tok string) (link string, session, csrf *http.Cookie) {
	t.Helper()
	w := call(t, h, "POST", "/v1/login-tokens", "", bearer(tok))
	if w.Code != http.StatusCreated {
		t.Fatalf("login-tokens: %d %s", w.Code, w.Body)
	}
	var lt LoginToken
	if err := json.Unmarshal(w.Body.Bytes(), &lt); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(lt.URL)
	if err != nil {
		t.Fatal(err)
	}
	w = call(t, h, "GET", u.RequestURI(), "", nil)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	for _, c := range w.Result().Cookies() {
		switch {
		case strings.HasPrefix(c.Name, "fieldsync_session_"):
			session = c
		case strings.HasPrefix(c.Name, "fieldsync_csrf_"):
			csrf = c
		}
	}
	if session == nil || csrf == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || csrf.HttpOnly {
		t.Fatalf("login cookies: session %+v, csrf %+v", session, csrf)
	}
	return u.RequestURI(), session, csrf
}

func withCookies(session, csrf *http.Cookie, sendCSRF bool) map[string]string {
	h := map[string]string{"Cookie": session.Name + "=" + session.Value + "; " + csrf.Name + "=" + csrf.Value}
	if sendCSRF {
		h[CSRFHeader] = csrf.Value
	}
	return h
}

func TestLoginLinksAreSingleUseAndExpire(t *testing.T) {
	s, now := authServer(t, "")
	h := s.Handler()
	link, session, csrf := loginCookies(t, h, "user-token")
	if w := call(t, h, "GET", link, "", nil); w.Code != http.StatusUnauthorized {
		t.Fatalf("a login link used twice: %d", w.Code)
	}
	if w := call(t, h, "GET", "/v1/status", "", withCookies(session, csrf, false)); w.Code != http.StatusOK {
		t.Fatalf("a read with the session cookie: %d %s", w.Code, w.Body)
	}
	body := `{"ids":["a","b"]}`
	if w := call(t, h, "POST", "/v1/distinct", body, withCookies(session, csrf, false)); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), CSRFHeader) {
		t.Fatalf("a cookie write without the CSRF header: %d %s", w.Code, w.Body)
	}
	if w := call(t, h, "POST", "/v1/distinct", body, withCookies(session, csrf, true)); w.Code == http.StatusForbidden || w.Code == http.StatusUnauthorized {
		t.Fatalf("a cookie write with the CSRF header: %d %s", w.Code, w.Body)
	}

	// An unspent link dies after LoginTTL; a session after SessionTTL.
	w := call(t, h, "POST", "/v1/login-tokens", "", bearer("user-token"))
	var lt LoginToken
	_ = json.Unmarshal(w.Body.Bytes(), &lt)
	u, _ := url.Parse(lt.URL)
	now.Add(int64(LoginTTL + time.Second))
	if w := call(t, h, "GET", u.RequestURI(), "", nil); w.Code != http.StatusUnauthorized {
		t.Fatalf("an expired login link: %d", w.Code)
	}
	now.Add(int64(SessionTTL))
	if w := call(t, h, "GET", "/v1/status", "", withCookies(session, csrf, false)); w.Code != http.StatusUnauthorized {
		t.Fatalf("an expired session: %d", w.Code)
	}
}

func TestHubAdminActionsNeedTheAdminToken(t *testing.T) {
	s, _ := authServer(t, "admin-token")
	h := s.Handler()
	body := `{"ids":["a","b"]}`
	for _, target := range []string{"/v1/merge", "/v1/distinct", "/v1/records/r1/resolve"} {
		w := call(t, h, "POST", target, body, bearer("user-token"))
		if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "admin token") || !strings.Contains(w.Body.String(), "mã quản trị") {
			t.Fatalf("%s with the user token: %d %s", target, w.Code, w.Body)
		}
		if w := call(t, h, "POST", target, body, bearer("admin-token")); w.Code == http.StatusForbidden || w.Code == http.StatusUnauthorized {
			t.Fatalf("%s with the admin token: %d %s", target, w.Code, w.Body)
		}
	}
	for _, tok := range []string{"user-token", "admin-token"} {
		if w := call(t, h, "GET", "/v1/status", "", bearer(tok)); w.Code != http.StatusOK {
			t.Fatalf("status with %s: %d", tok, w.Code)
		}
	}
	if w := call(t, h, "GET", "/v1/status", "", bearer("admin-tokenX")); w.Code != http.StatusUnauthorized {
		t.Fatalf("a wrong token: %d", w.Code)
	}
	// A page logged in through the user token may read, not settle; one
	// logged in through the admin token may settle.
	_, session, csrf := loginCookies(t, h, "user-token")
	if w := call(t, h, "POST", "/v1/merge", body, withCookies(session, csrf, true)); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "admin token") {
		t.Fatalf("a user session merging on a hub: %d %s", w.Code, w.Body)
	}
	_, session, csrf = loginCookies(t, h, "admin-token")
	if w := call(t, h, "POST", "/v1/merge", body, withCookies(session, csrf, true)); w.Code == http.StatusForbidden || w.Code == http.StatusUnauthorized {
		t.Fatalf("an admin session merging on a hub: %d %s", w.Code, w.Body)
	}
}

func TestWithoutAnAdminTokenTheAPITokenSettles(t *testing.T) {
	s, _ := authServer(t, "")
	if w := call(t, s.Handler(), "POST", "/v1/merge", `{"ids":["a","b"]}`, bearer("user-token")); w.Code == http.StatusForbidden || w.Code == http.StatusUnauthorized {
		t.Fatalf("merge on a laptop with its API token: %d %s", w.Code, w.Body)
	}
}
