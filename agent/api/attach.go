package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/fieldsync/fieldsync/agent/attach"
)

// Attached answers POST /v1/records/{id}/attachments: the file as stored.
type Attached struct {
	Record    string `json:"record"`
	SHA256    string `json:"sha256"`
	Size      int64  `json:"size"`
	Kind      string `json:"kind"`
	Finger    string `json:"finger,omitempty"`
	Chunks    int    `json:"chunks"`
	MediaType string `json:"media_type"`
	// Seq is the number of the manifest op in this device's log.
	Seq uint64 `json:"seq"`
}

// Attachment is one attachment of a dossier, as GET
// /v1/records/{id}/attachments lists it: one per live manifest, so both
// manifests of a concurrent replacement are listed (Conflict true).
type Attachment struct {
	Kind      string `json:"kind"`
	Finger    string `json:"finger,omitempty"`
	SHA256    string `json:"sha256"`
	Size      int64  `json:"size"`
	MediaType string `json:"media_type"`
	Chunks    int    `json:"chunks"`
	// CapturedBy and CapturedByID name the device whose op attached it.
	CapturedBy   string    `json:"captured_by"`
	CapturedByID string    `json:"captured_by_id"`
	CapturedAt   time.Time `json:"captured_at"`
	Op           string    `json:"op"` // "<origin>:<seq>", the manifest op
	// Complete: every chunk of the file is held on this agent.
	Complete bool `json:"complete"`
	// Delivered: a hub's receipt says it holds the file whole, verified
	// against this manifest (and exported, where it exports).
	Delivered bool `json:"delivered"`
	// Pruned: delivered, and its bytes dropped here (--prune-delivered);
	// the hub holds them.
	Pruned bool `json:"pruned,omitempty"`
	// Conflict: the field has another live manifest (a concurrent
	// replacement on another laptop), listed beside this one.
	Conflict bool `json:"conflict"`
}

// AttachRequest is one file to attach, streamed from Body.
type AttachRequest struct {
	Record string
	Kind   attach.Kind
	Finger string
	Body   io.Reader
	// MaxBytes is the agent's limit on one file.
	MaxBytes int64
}

// Attacher is implemented by backends that keep attachments.
//
// Attach stores the file read from req.Body (never all of it in memory) and
// writes its manifest op; a file refused returns an error wrapping an
// *attach.Error, an unknown dossier one wrapping ErrNotFound, and nothing is
// kept in either case. Attachments lists a dossier's attachments (ErrNotFound
// for an unknown dossier). AttachmentFile returns the manifest of the file
// with this SHA-256 and a function reading its chunk i (ErrNotFound when no
// manifest names it, ErrIncomplete when some chunk is not held here).
type Attacher interface {
	Attach(ctx context.Context, req AttachRequest) (Attached, error)
	Attachments(ctx context.Context, id string) ([]Attachment, error)
	AttachmentFile(ctx context.Context, sha [32]byte) (attach.Manifest, func(i int) ([]byte, error), error)
}

// ErrIncomplete: the agent holds the attachment's manifest but not all its
// bytes yet (they are on their way from the laptop that captured it). The
// server answers 409.
var ErrIncomplete = errors.New("not all of the attachment's bytes are held here yet")

// ErrPruned: the attachment was delivered to a hub and its bytes dropped
// here (agent --prune-delivered). The server answers 410.
var ErrPruned = errors.New("the attachment's bytes were delivered to the hub and dropped here")

// ErrAttachmentNotFound: no manifest held names a file with this SHA-256.
// The server answers 404; [APIError] matches [ErrNotFound] for it.
var ErrAttachmentNotFound = errors.New("attachment not found")

func (s *Server) attachRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/records/{id}/attachments", s.attach)
	mux.HandleFunc("GET /v1/records/{id}/attachments", s.attachments)
	mux.HandleFunc("/v1/records/{id}/attachments", s.notAllowed("GET, HEAD, POST"))
	mux.HandleFunc("GET /v1/attachments/{sha256}", s.attachmentFile)
	mux.HandleFunc("/v1/attachments/{sha256}", s.notAllowed("GET, HEAD"))
}

func (s *Server) attacher(w http.ResponseWriter, r *http.Request) Attacher {
	at, ok := s.backend.(Attacher)
	if !ok {
		s.fail(w, r, newAnswer(http.StatusNotImplemented, "this agent keeps no attachments", "tác tử này không lưu tệp đính kèm"))
		return nil
	}
	return at
}

// attach takes the raw file as the body. Everything that can be refused
// without reading it (the kind and finger, a declared length over the
// limit, an unknown dossier) is refused first: a client that sent
// "Expect: 100-continue" then never sends the body. A file refused while it
// is read (empty, not of an accepted type, over the limit) is drained up to
// the limit before the answer, so the client reads the answer rather than
// a reset connection.
func (s *Server) attach(w http.ResponseWriter, r *http.Request) {
	at := s.attacher(w, r)
	if at == nil {
		return
	}
	id := r.PathValue("id")
	if !validID(id) {
		s.fail(w, r, answerNotFound())
		return
	}
	q := r.URL.Query()
	kind, finger := attach.Kind(q.Get("kind")), q.Get("finger")
	if err := attach.CheckKind(kind, finger); err != nil {
		s.fail(w, r, answerFor(err))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		// HTML forms send only these three; the agent reads the type
		// from the file's own bytes, whatever else is declared.
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt == "application/x-www-form-urlencoded" || mt == "multipart/form-data" || mt == "text/plain" {
			s.fail(w, r, newAnswer(http.StatusUnsupportedMediaType,
				"send the file itself as the body (Content-Type application/octet-stream or its own type), not a form",
				"gửi chính tệp làm nội dung (Content-Type application/octet-stream hoặc loại của tệp), không gửi biểu mẫu"))
			return
		}
	}
	limit := s.cfg.AttachmentMaxBytes
	if r.ContentLength > limit {
		s.fail(w, r, answerFor(attach.TooLarge(limit)))
		return
	}
	if r.ContentLength == 0 {
		s.fail(w, r, answerFor(attach.Empty()))
		return
	}
	body := http.MaxBytesReader(w, r.Body, limit+1)
	res, err := at.Attach(r.Context(), AttachRequest{Record: id, Kind: kind, Finger: finger, Body: body, MaxBytes: limit})
	if err != nil {
		if attach.Refusal(err) != nil {
			_, _ = io.Copy(io.Discard, body)
		}
		s.fail(w, r, answerFor(err))
		return
	}
	w.Header().Set("Location", "/v1/attachments/"+res.SHA256)
	s.reply(w, r, http.StatusCreated, res)
}

func (s *Server) attachments(w http.ResponseWriter, r *http.Request) {
	at := s.attacher(w, r)
	if at == nil {
		return
	}
	id := r.PathValue("id")
	if !validID(id) {
		s.fail(w, r, answerNotFound())
		return
	}
	list, err := at.Attachments(r.Context(), id)
	if err != nil {
		s.fail(w, r, answerFor(err))
		return
	}
	if list == nil {
		list = []Attachment{}
	}
	for i := range list {
		list[i].CapturedAt = list[i].CapturedAt.UTC()
	}
	s.reply(w, r, http.StatusOK, list)
}

// attachmentFile streams the bytes, chunk by chunk, each checked against the
// manifest before it is sent.
func (s *Server) attachmentFile(w http.ResponseWriter, r *http.Request) {
	at := s.attacher(w, r)
	if at == nil {
		return
	}
	sha, ok := parseSHA256(r.PathValue("sha256"))
	if !ok {
		s.fail(w, r, newAnswer(http.StatusBadRequest, "the path must end in the file's SHA-256, 64 hex digits",
			"đường dẫn phải kết thúc bằng SHA-256 của tệp, 64 chữ số hex"))
		return
	}
	m, chunk, err := at.AttachmentFile(r.Context(), sha)
	if err != nil {
		s.fail(w, r, answerFor(err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", m.MediaType)
	h.Set("Content-Length", strconv.FormatInt(m.Size, 10))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Disposition", "attachment")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	for i, want := range m.Chunks {
		data, err := chunk(i)
		if err == nil && sha256.Sum256(data) != want {
			err = fmt.Errorf("chunk %d of %x does not match its manifest", i, sha[:6])
		}
		if err != nil {
			// The status is sent: cut the connection, so the client
			// sees a short body rather than a file that looks whole.
			s.log.Error("serve attachment", "err", err)
			panic(http.ErrAbortHandler)
		}
		if _, err := w.Write(data); err != nil {
			return
		}
	}
}

func parseSHA256(s string) ([32]byte, bool) {
	var h [32]byte
	if len(s) != 64 {
		return h, false
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, false
	}
	return h, true
}

// Attach sends the file at path as an attachment of dossier id, streaming
// it with "Expect: 100-continue", so a refusal the agent can make from the
// request alone (an unknown dossier, a file over the limit) costs no upload.
func (c *Client) Attach(ctx context.Context, id string, kind attach.Kind, finger, path string) (Attached, error) {
	f, err := os.Open(path)
	if err != nil {
		return Attached{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Attached{}, err
	}
	q := url.Values{"kind": {string(kind)}}
	if finger != "" {
		q.Set("finger", finger)
	}
	var res Attached
	err = c.doStream(ctx, http.MethodPost, "/v1/records/"+url.PathEscape(id)+"/attachments?"+q.Encode(), f, fi.Size(), &res)
	return res, err
}

// Attachments lists a dossier's attachments.
func (c *Client) Attachments(ctx context.Context, id string) ([]Attachment, error) {
	var out []Attachment
	return out, c.do(ctx, http.MethodGet, "/v1/records/"+url.PathEscape(id)+"/attachments", nil, &out)
}

// AttachmentFile asks for the bytes of the file with this SHA-256 (hex). The
// caller reads and closes the body; size is the length the agent announced.
func (c *Client) AttachmentFile(ctx context.Context, sha string) (body io.ReadCloser, mediaType string, size int64, err error) {
	resp, err := c.send(ctx, http.MethodGet, "/v1/attachments/"+url.PathEscape(sha), nil, -1, "")
	if err != nil {
		return nil, "", 0, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, "", 0, apiError(resp.StatusCode, data)
	}
	return resp.Body, resp.Header.Get("Content-Type"), resp.ContentLength, nil
}
