package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/agent/schema"
)

// Conflict is one field with more than one live value, for the admin's queue.
type Conflict struct {
	Record   string  `json:"record"`
	Field    string  `json:"field"`
	FullName string  `json:"full_name"`
	Values   []Value `json:"values"`
}

// Duplicate is a group of live dossiers that may be the same person.
type Duplicate struct {
	Records []string `json:"records"`
	// Reason is "personal_id" (same personal ID number) or "name_dob" (same
	// normalised name, with or without diacritics, and date of birth).
	Reason string `json:"reason"`
	Key    string `json:"key"`
}

// HistoryEntry is one op that touched a dossier.
type HistoryEntry struct {
	Op       string            `json:"op"`
	Kind     string            `json:"kind"`
	Device   string            `json:"device"`
	DeviceID string            `json:"device_id"`
	Officer  string            `json:"officer,omitempty"`
	At       time.Time         `json:"at"`
	Fields   map[string]string `json:"fields"`
}

// ResolveRequest settles one field: Value supersedes exactly the values
// named in Seen ("origin:seq" ops, as the admin saw them); empty Seen means
// the values live now.
type ResolveRequest struct {
	Field string   `json:"field"`
	Value string   `json:"value"`
	Seen  []string `json:"seen,omitempty"`
}

// MergeRequest merges Other into Survivor, with the chosen value of each
// field given in Fields (fields not given keep the survivor's value).
type MergeRequest struct {
	Survivor string            `json:"survivor"`
	Other    string            `json:"other"`
	Fields   map[string]string `json:"fields,omitempty"`
}

// DistinctRequest marks two dossiers as two different people.
type DistinctRequest struct {
	Records []string `json:"records"`
}

// Admin is what the server needs from an agent for conflict inspection and
// settling. Settling methods return an error wrapping ErrForbidden on a
// device that may not settle.
type Admin interface {
	Conflicts(ctx context.Context) ([]Conflict, error)
	Resolve(ctx context.Context, id string, req ResolveRequest) (Record, error)
	Duplicates(ctx context.Context) ([]Duplicate, error)
	Merge(ctx context.Context, req MergeRequest) (Record, error)
	Distinct(ctx context.Context, a, b string) error
	History(ctx context.Context, id string) ([]HistoryEntry, error)
}

// ErrForbidden: this device may not settle conflicts or duplicates (only an
// admin device or the hub may). The server answers 403.
var ErrForbidden = errors.New("only an admin device or the hub may settle")

func (s *Server) adminRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/conflicts", s.conflicts)
	mux.HandleFunc("POST /v1/records/{id}/resolve", s.resolve)
	mux.HandleFunc("GET /v1/records/{id}/history", s.history)
	mux.HandleFunc("GET /v1/duplicates", s.duplicates)
	mux.HandleFunc("POST /v1/merge", s.merge)
	mux.HandleFunc("POST /v1/distinct", s.distinct)
}

func (s *Server) admin(w http.ResponseWriter, r *http.Request) Admin {
	a, ok := s.backend.(Admin)
	if !ok {
		s.fail(w, r, newAnswer(http.StatusNotImplemented, "this agent has no conflict inspection", "tác tử này không có chức năng xử lý xung đột"))
		return nil
	}
	return a
}

// decodeJSON reads a small JSON request body strictly.
func (s *Server) decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		s.fail(w, r, answerFor(err))
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		s.fail(w, r, newAnswer(http.StatusBadRequest, "bad request body: "+err.Error(), "nội dung yêu cầu không hợp lệ"))
		return false
	}
	return true
}

func (s *Server) conflicts(w http.ResponseWriter, r *http.Request) {
	serveAdminList(s, w, r, func(a Admin, _ string) ([]Conflict, error) { return a.Conflicts(r.Context()) })
}

// serveAdminList answers a GET that lists something of the admin's: a JSON
// array, [] rather than null when empty. For a route with {id}, the id is
// checked and passed on.
func serveAdminList[T any](s *Server, w http.ResponseWriter, r *http.Request, list func(a Admin, id string) ([]T, error)) {
	a := s.admin(w, r)
	if a == nil {
		return
	}
	id := r.PathValue("id")
	if r.Pattern != "" && strings.Contains(r.Pattern, "{id}") && !validID(id) {
		s.fail(w, r, answerNotFound())
		return
	}
	out, err := list(a, id)
	if err != nil {
		s.fail(w, r, answerFor(err))
		return
	}
	if out == nil {
		out = []T{}
	}
	s.reply(w, r, http.StatusOK, out)
}

func (s *Server) resolve(w http.ResponseWriter, r *http.Request) {
	a := s.admin(w, r)
	if a == nil {
		return
	}
	id := r.PathValue("id")
	if !validID(id) {
		s.fail(w, r, answerNotFound())
		return
	}
	var req ResolveRequest
	if !s.decodeJSON(w, r, &req) {
		return
	}
	if req.Field == "" {
		s.fail(w, r, newAnswer(http.StatusBadRequest, "resolve needs a field", "cần tên trường"))
		return
	}
	for _, op := range req.Seen {
		if i := strings.LastIndexByte(op, ':'); i <= 0 || i == len(op)-1 {
			s.fail(w, r, newAnswer(http.StatusBadRequest, "seen: each entry is an op \"origin:seq\" as shown in the conflict", "seen: mỗi mục là một thay đổi dạng \"origin:seq\""))
			return
		}
	}
	switch {
	case schema.IsAttachment(req.Field):
		// Settling a concurrent replacement: the value is the manifest kept.
		if err := s.cfg.Schema.ValidateAttachment(req.Field, req.Value); err != nil {
			s.fail(w, r, answerFor(err))
			return
		}
	case req.Field[0] != '_':
		fields, err := s.cfg.Schema.ValidateUpdate(map[string]string{req.Field: req.Value}, s.cfg.Now())
		if err != nil {
			s.fail(w, r, answerFor(err))
			return
		}
		req.Value = fields[req.Field]
	}
	rec, err := a.Resolve(r.Context(), id, req)
	if err != nil {
		s.fail(w, r, answerFor(err))
		return
	}
	s.reply(w, r, http.StatusOK, wireRecord(rec))
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	serveAdminList(s, w, r, func(a Admin, id string) ([]HistoryEntry, error) { return a.History(r.Context(), id) })
}

func (s *Server) duplicates(w http.ResponseWriter, r *http.Request) {
	serveAdminList(s, w, r, func(a Admin, _ string) ([]Duplicate, error) { return a.Duplicates(r.Context()) })
}

func (s *Server) merge(w http.ResponseWriter, r *http.Request) {
	a := s.admin(w, r)
	if a == nil {
		return
	}
	var req MergeRequest
	if !s.decodeJSON(w, r, &req) {
		return
	}
	if !validID(req.Survivor) || !validID(req.Other) || req.Survivor == req.Other {
		s.fail(w, r, newAnswer(http.StatusBadRequest, "merge needs two different dossier ids: survivor and other", "cần hai mã hồ sơ khác nhau"))
		return
	}
	if len(req.Fields) > 0 {
		fields, err := s.cfg.Schema.ValidateUpdate(req.Fields, s.cfg.Now())
		if err != nil {
			s.fail(w, r, answerFor(err))
			return
		}
		req.Fields = fields
	}
	rec, err := a.Merge(r.Context(), req)
	if err != nil {
		s.fail(w, r, answerFor(err))
		return
	}
	s.reply(w, r, http.StatusOK, wireRecord(rec))
}

func (s *Server) distinct(w http.ResponseWriter, r *http.Request) {
	a := s.admin(w, r)
	if a == nil {
		return
	}
	var req DistinctRequest
	if !s.decodeJSON(w, r, &req) {
		return
	}
	if len(req.Records) != 2 || !validID(req.Records[0]) || !validID(req.Records[1]) || req.Records[0] == req.Records[1] {
		s.fail(w, r, newAnswer(http.StatusBadRequest, "distinct needs two different dossier ids", "cần hai mã hồ sơ khác nhau"))
		return
	}
	if err := a.Distinct(r.Context(), req.Records[0], req.Records[1]); err != nil {
		s.fail(w, r, answerFor(err))
		return
	}
	s.reply(w, r, http.StatusOK, map[string]any{})
}

// Client side.

// Conflicts lists every field conflict.
func (c *Client) Conflicts(ctx context.Context) ([]Conflict, error) {
	var out []Conflict
	return out, c.do(ctx, http.MethodGet, "/v1/conflicts", nil, &out)
}

// Resolve settles one field of a dossier.
func (c *Client) Resolve(ctx context.Context, id string, req ResolveRequest) (Record, error) {
	var rec Record
	return rec, c.do(ctx, http.MethodPost, "/v1/records/"+url.PathEscape(id)+"/resolve", req, &rec)
}

// Duplicates lists possible duplicate dossiers.
func (c *Client) Duplicates(ctx context.Context) ([]Duplicate, error) {
	var out []Duplicate
	return out, c.do(ctx, http.MethodGet, "/v1/duplicates", nil, &out)
}

// Merge merges two dossiers of one person.
func (c *Client) Merge(ctx context.Context, req MergeRequest) (Record, error) {
	var rec Record
	return rec, c.do(ctx, http.MethodPost, "/v1/merge", req, &rec)
}

// Distinct marks two dossiers as two different people.
func (c *Client) Distinct(ctx context.Context, a, b string) error {
	var out map[string]any
	return c.do(ctx, http.MethodPost, "/v1/distinct", DistinctRequest{Records: []string{a, b}}, &out)
}

// History lists every op that touched a dossier, in causal order.
func (c *Client) History(ctx context.Context, id string) ([]HistoryEntry, error) {
	var out []HistoryEntry
	return out, c.do(ctx, http.MethodGet, "/v1/records/"+url.PathEscape(id)+"/history", nil, &out)
}
