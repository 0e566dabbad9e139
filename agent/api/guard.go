package api

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"runtime/debug"
	"strings"
	"time"
)

// guard refuses, while the server is loopback-only, requests that a web page
// in a browser on this laptop could have sent: a Host that is not a loopback
// name (DNS rebinding) or an Origin that is not a loopback origin (a cross-site
// POST). Programs such as enrollment software and curl send neither.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.loopbackOnly.Load() {
			if !isLoopbackHost(r.Host) {
				s.fail(w, r, answerHost())
				return
			}
			if origin, ok := r.Header["Origin"]; ok && !loopbackOrigin(origin) {
				s.fail(w, r, answerOrigin())
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// isLoopbackHost reports whether a Host header ("name", "name:port",
// "[v6]:port") names this machine by a loopback name or address.
func isLoopbackHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		// No port: the whole header is the host, maybe a bracketed IPv6.
		host = strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
	}
	return isLoopbackName(host)
}

// isLoopbackName reports whether host is "localhost" or a loopback IP address.
// Names under .localhost are not accepted: whether they resolve to loopback
// depends on the resolver, and an attacker may control the resolver's answer.
func isLoopbackName(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// loopbackOrigin reports whether the Origin header values all name a page
// served from this machine. "null" (sandboxed frames, files) does not.
func loopbackOrigin(values []string) bool {
	for _, v := range values {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !isLoopbackHost(u.Host) {
			return false
		}
	}
	return true
}

// statusWriter remembers the status written, for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// observe logs one line per request (method, route pattern, status,
// duration: never the body or the query, which may carry personal data) and
// turns a panic in a handler into a logged 500 rather than a dropped
// connection.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				// The panic value is not logged: it may quote a value.
				s.log.Error("api handler panicked", "method", r.Method, "route", r.Pattern,
					"stack", string(debug.Stack()))
				if sw.status == 0 {
					a := answerFor(errPanic)
					a.cause = nil // already logged
					s.fail(sw, r, a)
				}
			}
			s.log.Debug("api request", "method", r.Method, "route", r.Pattern,
				"status", sw.status, "duration", time.Since(start))
		}()
		next.ServeHTTP(sw, r)
	})
}
