package api

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The web page cannot hold the bearer token (a page's script would then
// expose it to anything injected into the page), so it logs in the way
// Jupyter's and Syncthing's pages do: `fieldsync open`, run by the agent's
// own OS user with the token, asks for a one-time login token; the browser
// exchanges it at GET /login for a session cookie (HttpOnly, SameSite=Strict)
// and a CSRF value (a cookie the page's script reads and echoes in the
// X-CSRF-Token header of every write). A cross-site page can neither read
// that cookie nor set the header, and SameSite=Strict keeps the browser from
// sending the session cookie on a cross-site request at all.

const (
	// LoginTTL is how long a one-time login token is valid: long enough to
	// click the printed link, short enough that a token seen on a screen or
	// in a shell history is worthless soon after.
	LoginTTL = 2 * time.Minute
	// SessionTTL is how long a web session lasts: a working day in the field.
	SessionTTL = 12 * time.Hour
	// CSRFHeader carries the session's CSRF value on writes.
	CSRFHeader = "X-CSRF-Token"
	// maxSessions bounds the sessions kept in memory; the oldest go first.
	maxSessions = 64
)

type webSession struct {
	csrf    string
	expires time.Time
	admin   bool // opened with a login token the admin token asked for
}

// login is a one-time login token not yet spent.
type login struct {
	expires time.Time
	admin   bool
}

// sessions are the one-time login tokens and web sessions of one server,
// in memory only: an agent restart logs every page out.
type sessions struct {
	mu       sync.Mutex
	logins   map[string]login // one-time token -> expiry and rights
	sessions map[string]webSession
}

// NewToken returns 32 random bytes in base64url: API tokens, one-time login
// tokens, session ids and CSRF values.
func NewToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

// newLogin makes a one-time login token valid until now+LoginTTL.
func (ss *sessions) newLogin(now time.Time, admin bool) (string, time.Time) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.logins == nil {
		ss.logins = map[string]login{}
	}
	for t, l := range ss.logins {
		if !now.Before(l.expires) {
			delete(ss.logins, t)
		}
	}
	t, exp := NewToken(), now.Add(LoginTTL)
	ss.logins[t] = login{expires: exp, admin: admin}
	return t, exp
}

// redeem spends a one-time token and opens a session; ok is false for a
// token unknown, used or expired.
func (ss *sessions) redeem(token string, now time.Time) (id string, s webSession, ok bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	l, found := ss.logins[token]
	if !found {
		return "", webSession{}, false
	}
	delete(ss.logins, token)
	if !now.Before(l.expires) {
		return "", webSession{}, false
	}
	if ss.sessions == nil {
		ss.sessions = map[string]webSession{}
	}
	for len(ss.sessions) >= maxSessions {
		oldest, at := "", time.Time{}
		for k, v := range ss.sessions {
			if oldest == "" || v.expires.Before(at) {
				oldest, at = k, v.expires
			}
		}
		delete(ss.sessions, oldest)
	}
	id = NewToken()
	s = webSession{csrf: NewToken(), expires: now.Add(SessionTTL), admin: l.admin}
	ss.sessions[id] = s
	return id, s, true
}

// lookup returns the live session named id.
func (ss *sessions) lookup(id string, now time.Time) (webSession, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.sessions[id]
	if ok && !now.Before(s.expires) {
		delete(ss.sessions, id)
		return webSession{}, false
	}
	return s, ok
}

// cookieNames are the session and CSRF cookie names of the API at addr.
// Cookies are scoped by host, not port, so two agents on one machine (a
// demo, an admin laptop running a hub) must not overwrite each other's.
func cookieNames(addr string) (session, csrf string) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		port = "0"
	}
	return "fieldsync_session_" + port, "fieldsync_csrf_" + port
}

// sessionAuth reports whether r carries a live session cookie, and for a
// write whether it also carries the session's CSRF value.
func (s *Server) sessionAuth(r *http.Request) (authed, csrfOK, admin bool) {
	name, _ := cookieNames(s.cookieAddr(r))
	c, err := r.Cookie(name)
	if err != nil || c.Value == "" {
		return false, false, false
	}
	ws, ok := s.web.lookup(c.Value, s.cfg.Now())
	if !ok {
		return false, false, false
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true, true, ws.admin
	}
	got := r.Header.Get(CSRFHeader)
	return true, got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(ws.csrf)) == 1, ws.admin
}

// cookieAddr is the address the cookies are named after: the Host the
// browser used (the listener's address when Config.Addr has port 0).
func (s *Server) cookieAddr(r *http.Request) string {
	if r.Host != "" {
		return r.Host
	}
	return s.cfg.Addr
}

// LoginToken is the answer of POST /v1/login-tokens.
type LoginToken struct {
	// URL opens the web page logged in, once, before Expires.
	URL     string    `json:"url"`
	Expires time.Time `json:"expires"`
}

// loginToken makes a one-time login link (bearer token required).
func (s *Server) loginToken(w http.ResponseWriter, r *http.Request) {
	t, exp := s.web.newLogin(s.cfg.Now(), s.hasAdminToken(r))
	s.reply(w, r, http.StatusCreated, LoginToken{URL: "http://" + s.cookieAddr(r) + "/login?t=" + t, Expires: exp.UTC()})
}

// login spends a one-time token from the query and sets the session
// cookies, then sends the browser to the page.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	id, ws, ok := s.web.redeem(r.URL.Query().Get("t"), s.cfg.Now())
	if !ok {
		s.fail(w, r, newAnswer(http.StatusUnauthorized,
			"this login link is unknown, used or expired: run `fieldsync open` again",
			"liên kết đăng nhập không hợp lệ, đã dùng hoặc hết hạn: chạy lại `fieldsync open`"))
		return
	}
	sessName, csrfName := cookieNames(s.cookieAddr(r))
	maxAge := int(SessionTTL / time.Second)
	http.SetCookie(w, &http.Cookie{Name: sessName, Value: id, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode})
	// Readable by the page's script, which echoes it in X-CSRF-Token.
	http.SetCookie(w, &http.Cookie{Name: csrfName, Value: ws.csrf, Path: "/", MaxAge: maxAge,
		SameSite: http.SameSiteStrictMode})
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// isLoginPath: GET /login is served without a token (it takes a one-time one).
func isLoginPath(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.TrimSuffix(r.URL.Path, "/") == "/login"
}
