package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fieldsync/fieldsync/agent/attach"
	"github.com/fieldsync/fieldsync/agent/schema"
)

const (
	// DefaultAddr is where the agent's API listens unless configured: loopback
	// only, since the API has no authentication of its own. 7420 is unassigned
	// by IANA and easy to type.
	DefaultAddr = "127.0.0.1:7420"
	// DefaultListLimit is the page size of GET /v1/records without ?limit.
	DefaultListLimit = 500
	// MaxListLimit caps ?limit: 5000 dossiers of about 1 KB make a 5 MB
	// answer, which a laptop encodes in well under a second.
	MaxListLimit = 5000
	// maxBodyBytes bounds JSON request bodies: 1 MiB, the same bound as
	// schema.MaxInputBytes. Attachments have their own limit
	// (Config.AttachmentMaxBytes) and are streamed, not read whole.
	maxBodyBytes = 1 << 20
	// maxIDLen bounds record ids in paths and ?after. Ids made by the agent
	// (ULID, UUID) are 26 to 36 characters.
	maxIDLen = 128
)

// Config configures a Server.
type Config struct {
	// Addr is the address the agent listens on, "host:port". The server does
	// not listen itself (see [Server.Serve]); it uses Addr to decide whether
	// it serves loopback only, in which case it refuses requests whose Host
	// or Origin is not a loopback name (see the package documentation).
	// Default [DefaultAddr].
	Addr string
	// Schema validates every created and updated record. Default
	// schema.Dossier().
	Schema schema.Schema
	// UI, if set, serves the admin web page at GET / and GET /ui/….
	UI http.Handler
	// Logger receives one Debug line per request and an Error line per
	// internal error; never field values. nil discards.
	Logger *slog.Logger
	// Now is the clock used to refuse dates in the future. Its location
	// decides which calendar day "today" is, so the default, time.Now, uses
	// the laptop's local zone.
	Now func() time.Time
	// Token, if set, is the bearer token every request but GET /healthz
	// (and the static page) must carry; see auth.go.
	Token string
	// AdminToken, if set (a hub), is the only token that may make admin
	// actions (resolve, merge, distinct); it may also make every other call.
	AdminToken string
	// AttachmentMaxBytes is the largest file POST
	// /v1/records/{id}/attachments takes, in bytes: 1..attach.MaxSize.
	// Default attach.DefaultMaxBytes (20 MiB).
	AttachmentMaxBytes int64
}

// DefaultConfig returns the configuration of a stock agent.
func DefaultConfig() Config {
	return Config{
		Addr:   DefaultAddr,
		Schema: schema.Dossier(),
		Logger: slog.Default(),
		Now:    time.Now,

		AttachmentMaxBytes: attach.DefaultMaxBytes,
	}
}

func (c Config) validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("api address %q: %w", c.Addr, err)
	}
	if err := c.Schema.Check(); err != nil {
		return fmt.Errorf("api schema: %w", err)
	}
	if c.AttachmentMaxBytes < 0 || c.AttachmentMaxBytes > attach.MaxSize {
		return fmt.Errorf("attachment limit %d bytes: must be 1 to %d", c.AttachmentMaxBytes, attach.MaxSize)
	}
	return nil
}

// Server serves the API over a Backend.
type Server struct {
	cfg     Config
	backend Backend
	log     *slog.Logger
	// loopbackOnly turns on the Host and Origin checks. It is set from
	// Config.Addr, and by Serve when the listener is on loopback.
	loopbackOnly atomic.Bool
	handler      http.Handler
	srv          *http.Server
	web          sessions // one-time login tokens and web sessions
}

// NewServer returns a server for b. It checks cfg: an unparsable Addr or an
// unusable Schema is an error. A nil Logger discards and a nil Now is
// time.Now.
func NewServer(cfg Config, b Backend) (*Server, error) {
	if b == nil {
		return nil, errors.New("new api server: no backend")
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("new api server: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AttachmentMaxBytes == 0 {
		cfg.AttachmentMaxBytes = attach.DefaultMaxBytes
	}
	s := &Server{cfg: cfg, backend: b, log: cfg.Logger}
	host, _, _ := net.SplitHostPort(cfg.Addr)
	s.loopbackOnly.Store(isLoopbackName(host))
	s.handler = s.observe(s.guard(s.authorize(s.routes())))
	s.srv = &http.Server{
		Handler: s.handler,
		// Timeouts bound what a stuck or slow client can hold; the
		// write timeout leaves room for a page of MaxListLimit records.
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Handler returns the API's handler, with the Host and Origin checks, for
// tests and for mounting under another server.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves the API on l until Shutdown, then returns nil; any other
// failure is returned. The caller owns l's creation; Serve closes it when it
// returns. A loopback listener turns on the Host and Origin checks even if
// Config.Addr was not a loopback address.
func (s *Server) Serve(l net.Listener) error {
	if tcp, ok := l.Addr().(*net.TCPAddr); ok && tcp.IP.IsLoopback() {
		s.loopbackOnly.Store(true)
	}
	err := s.srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("serve api: %w", err)
}

// Shutdown stops accepting requests and waits for those in progress until
// ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("shut down api: %w", err)
	}
	return nil
}

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/records", s.create)
	mux.HandleFunc("GET /v1/records", s.list)
	mux.HandleFunc("/v1/records", s.notAllowed("GET, HEAD, POST"))
	mux.HandleFunc("PATCH /v1/records/{id}", s.update)
	mux.HandleFunc("GET /v1/records/{id}", s.get)
	mux.HandleFunc("/v1/records/{id}", s.notAllowed("GET, HEAD, PATCH"))
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("/v1/status", s.notAllowed("GET, HEAD"))
	s.adminRoutes(mux)
	s.revocationRoutes(mux)
	s.attachRoutes(mux)
	mux.HandleFunc("POST /v1/login-tokens", s.loginToken)
	mux.HandleFunc("/v1/login-tokens", s.notAllowed("POST"))
	mux.HandleFunc("GET /login", s.login)
	mux.HandleFunc("GET /healthz", s.health)
	mux.HandleFunc("/healthz", s.notAllowed("GET, HEAD"))
	if s.cfg.UI != nil {
		// The admin web page: GET / and its assets.
		mux.Handle("GET /{$}", s.cfg.UI)
		mux.Handle("GET /ui/", s.cfg.UI)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { s.fail(w, r, answerNoRoute()) })
	return mux
}

func (s *Server) notAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		s.fail(w, r, answerMethod())
	}
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	raw, a := s.input(w, r)
	if a != nil {
		s.fail(w, r, a)
		return
	}
	fields, err := s.cfg.Schema.ValidateNew(raw, s.cfg.Now())
	if err != nil {
		s.fail(w, r, answerFor(err))
		return
	}
	rec, err := s.backend.Create(r.Context(), fields)
	if err != nil {
		s.fail(w, r, answerFor(err))
		return
	}
	w.Header().Set("Location", "/v1/records/"+url.PathEscape(rec.ID))
	s.reply(w, r, http.StatusCreated, wireRecord(rec))
}

func (s *Server) update(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validID(id) {
		s.fail(w, r, answerNotFound())
		return
	}
	raw, a := s.input(w, r)
	if a != nil {
		s.fail(w, r, a)
		return
	}
	fields, err := s.cfg.Schema.ValidateUpdate(raw, s.cfg.Now())
	if err != nil {
		s.fail(w, r, answerFor(err))
		return
	}
	rec, err := s.backend.Update(r.Context(), id, fields)
	if err != nil {
		s.fail(w, r, answerFor(err))
		return
	}
	s.reply(w, r, http.StatusOK, wireRecord(rec))
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validID(id) {
		s.fail(w, r, answerNotFound())
		return
	}
	rec, err := s.backend.Get(r.Context(), id)
	if err != nil {
		s.fail(w, r, answerFor(err))
		return
	}
	s.reply(w, r, http.StatusOK, wireRecord(rec))
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after := q.Get("after")
	if after != "" && !validID(after) {
		s.fail(w, r, answerAfter())
		return
	}
	limit := DefaultListLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			s.fail(w, r, answerLimit())
			return
		}
		// A larger limit is capped rather than refused, so a client
		// asking for "everything" still pages correctly.
		limit = min(n, MaxListLimit)
	}
	list := s.backend.List
	if v := q.Get("undelivered"); v == "1" || v == "true" {
		u, ok := s.backend.(UndeliveredLister)
		if !ok {
			s.fail(w, r, newAnswer(http.StatusNotImplemented, "this agent cannot list undelivered dossiers", "tác tử này không liệt kê được hồ sơ chưa gửi lên"))
			return
		}
		list = u.Undelivered
	}
	if text := strings.TrimSpace(q.Get("q")); text != "" {
		if v := q.Get("undelivered"); v == "1" || v == "true" {
			s.fail(w, r, newAnswer(http.StatusBadRequest, "q and undelivered cannot be combined", "không dùng q cùng với undelivered"))
			return
		}
		sr, ok := s.backend.(Searcher)
		if !ok {
			s.fail(w, r, newAnswer(http.StatusNotImplemented, "this agent cannot search", "tác tử này không tìm kiếm được"))
			return
		}
		list = func(ctx context.Context, after string, limit int) ([]Record, string, error) {
			return sr.Search(ctx, text, after, limit)
		}
	}
	recs, next, err := list(r.Context(), after, limit)
	if err != nil {
		s.fail(w, r, answerFor(err))
		return
	}
	body := listBody{Records: make([]Record, len(recs)), Next: next}
	for i, rec := range recs {
		body.Records[i] = wireRecord(rec)
	}
	s.reply(w, r, http.StatusOK, body)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st, err := s.backend.Status(r.Context())
	if err != nil {
		s.fail(w, r, answerFor(err))
		return
	}
	s.reply(w, r, http.StatusOK, wireStatus(st))
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	s.reply(w, r, http.StatusOK, map[string]string{"status": "ok"})
}

// input reads the request body, bounded and of a JSON media type, and parses
// it with schema.ParseInput: the raw bytes, not a struct, so that duplicate
// keys, numbers for digit fields and invalid UTF-8 are refused rather than
// silently changed.
func (s *Server) input(w http.ResponseWriter, r *http.Request) (map[string]string, *answer) {
	if !jsonMediaType(r.Header.Get("Content-Type")) {
		return nil, answerMediaType()
	}
	if r.ContentLength > maxBodyBytes {
		return nil, answerTooLarge()
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return nil, answerTooLarge()
		}
		// The client went away or sent a broken body: nobody reads the
		// answer, but say so anyway.
		return nil, newAnswer(http.StatusBadRequest, "could not read the request body", "không đọc được nội dung yêu cầu")
	}
	fields, err := schema.ParseInput(data)
	if err != nil {
		return nil, answerFor(err)
	}
	return fields, nil
}

// jsonMediaType reports whether a Content-Type header allows the body to be
// read as JSON: absent, application/json or application/*+json, and UTF-8
// if a charset is named.
func jsonMediaType(ct string) bool {
	if ct == "" {
		return true
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	if mt != "application/json" && !(strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return false
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return false
	}
	return true
}

// validID reports whether id can be a record id: 1 to maxIDLen URL-unreserved
// ASCII characters. Anything else cannot name a record, so the backend is not
// asked.
func validID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '-', c == '_', c == '.', c == '~':
		default:
			return false
		}
	}
	return true
}

// reply writes v as the JSON answer.
func (s *Server) reply(w http.ResponseWriter, r *http.Request, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		s.fail(w, r, answerFor(fmt.Errorf("encode answer: %w", err)))
		return
	}
	writeJSON(w, status, data)
}

// fail writes an error answer, logging the cause of internal errors.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, a *answer) {
	if a.cause != nil {
		level := slog.LevelError
		if r.Context().Err() != nil {
			// The client gave up; the cause is most likely that.
			level = slog.LevelDebug
		}
		s.log.Log(r.Context(), level, "api request failed",
			"method", r.Method, "route", r.Pattern, "err", a.cause)
	}
	data, err := json.Marshal(a.body)
	if err != nil {
		// Unreachable: errorBody holds only strings.
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	writeJSON(w, a.status, data)
}

func writeJSON(w http.ResponseWriter, status int, data []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	// Answers carry personal data: no cache may keep them.
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(data)+1))
	w.WriteHeader(status)
	_, _ = w.Write(data)
	_, _ = w.Write([]byte{'\n'})
}

// wireRecord converts a Backend's record to its wire form: no null maps, all
// times in UTC. It copies what it changes, so the Backend's values are left
// alone.
func wireRecord(rec Record) Record {
	if rec.Fields == nil {
		rec.Fields = map[string]string{}
	}
	conflicts := make(map[string][]Value, len(rec.Conflicts))
	for f, vals := range rec.Conflicts {
		out := make([]Value, len(vals))
		for i, v := range vals {
			v.At = v.At.UTC()
			out[i] = v
		}
		conflicts[f] = out
	}
	rec.Conflicts = conflicts
	if rec.CreatedAt != nil {
		t := rec.CreatedAt.UTC()
		rec.CreatedAt = &t
	}
	rec.UpdatedAt = rec.UpdatedAt.UTC()
	return rec
}

// wireStatus converts a Backend's status to its wire form: no null lists or
// maps.
func wireStatus(st Status) Status {
	if st.Listen == nil {
		st.Listen = []string{}
	}
	if st.Peers == nil {
		st.Peers = []Peer{}
	}
	if st.VersionVector == nil {
		st.VersionVector = map[string]uint64{}
	}
	if st.Upstream.Hubs == nil {
		st.Upstream.Hubs = []string{}
	}
	if st.Upstream.Receipts == nil {
		st.Upstream.Receipts = map[string]uint64{}
	}
	if st.Upstream.Origins == nil {
		st.Upstream.Origins = map[string]OriginDelivery{}
	}
	if st.Revocation != nil && st.Revocation.Devices == nil {
		r := *st.Revocation
		r.Devices = []RevokedDevice{}
		st.Revocation = &r
	}
	return st
}
