package api

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
)

// authorize refuses every request but GET /healthz that does not carry
// "Authorization: Bearer <token>" with the server's token (compared in
// constant time), or a web session cookie (session.go). The static web page
// (GET / and /ui/…) holds no data and is served without a token; every call
// it makes to /v1/ needs one, and GET /login takes a one-time token. An empty
// Config.Token turns the check off (unit tests of other concerns); the agent
// always sets one. The token is never logged.
func (s *Server) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Token == "" || openPath(r) || isLoginPath(r) {
			next.ServeHTTP(w, r)
			return
		}
		if s.hasToken(r) || s.hasAdminToken(r) {
			if s.needsAdmin(r) && !s.hasAdminToken(r) {
				s.fail(w, r, answerAdminOnly())
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if authed, csrfOK, admin := s.sessionAuth(r); authed {
			if csrfOK && s.needsAdmin(r) && !admin {
				s.fail(w, r, answerAdminOnly())
				return
			}
			if csrfOK {
				next.ServeHTTP(w, r)
				return
			}
			s.fail(w, r, newAnswer(http.StatusForbidden,
				"missing or wrong "+CSRFHeader+" header: reload the page",
				"thiếu hoặc sai tiêu đề "+CSRFHeader+": tải lại trang"))
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="fieldsync"`)
		s.fail(w, r, answerUnauthorized())
	})
}

// openPath reports whether r may be served without a token.
func openPath(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	return r.URL.Path == "/healthz" || r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/ui/")
}

func (s *Server) hasToken(r *http.Request) bool { return bearerIs(r, s.cfg.Token) }

// hasAdminToken reports whether r carries the admin token (a hub's).
func (s *Server) hasAdminToken(r *http.Request) bool {
	return s.cfg.AdminToken != "" && bearerIs(r, s.cfg.AdminToken)
}

func bearerIs(r *http.Request, token string) bool {
	h := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if token == "" || len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return false
	}
	got := []byte(strings.TrimSpace(h[len(prefix):]))
	return subtle.ConstantTimeCompare(got, []byte(token)) == 1
}

// needsAdmin reports whether r is an admin action that, on a server with
// an admin token (a hub), only the admin token may make: settling a
// conflict, merging duplicates or marking them distinct.
func (s *Server) needsAdmin(r *http.Request) bool {
	if s.cfg.AdminToken == "" || r.Method != http.MethodPost {
		return false
	}
	p := r.URL.Path
	return p == "/v1/merge" || p == "/v1/distinct" || (strings.HasPrefix(p, "/v1/records/") && strings.HasSuffix(p, "/resolve"))
}

func answerAdminOnly() *answer {
	return newAnswer(http.StatusForbidden,
		"on a hub, settling conflicts and duplicates needs the hub's admin token: pass --admin-token or FIELDSYNC_ADMIN_TOKEN (the hub keeps it in DATADIR/admin-token); for the web page run `fieldsync open --admin-token …`",
		"trên máy chủ trung tâm, xử lý xung đột và hồ sơ trùng cần mã quản trị: dùng --admin-token hoặc FIELDSYNC_ADMIN_TOKEN (lưu ở DATADIR/admin-token)")
}

func answerUnauthorized() *answer {
	return newAnswer(http.StatusUnauthorized,
		"this API needs a token: run the command as the same user as the agent, or pass --token / FIELDSYNC_API_TOKEN; for the web page run `fieldsync open`",
		"API này cần mã truy cập (token): chạy lệnh bằng cùng người dùng với tác tử, hoặc dùng --token / FIELDSYNC_API_TOKEN; để mở trang web hãy chạy `fieldsync open`")
}

// ErrUnauthorized: the agent refused the request's token (401). [APIError]
// matches it for a 401 answer.
var ErrUnauthorized = errors.New("the agent refused the API token")
