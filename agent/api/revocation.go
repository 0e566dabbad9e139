package api

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"time"
)

// maxRevocationBody bounds POST /v1/revocations: the largest list an agent
// accepts (identity.MaxRevocationSize) with room to spare.
const maxRevocationBody = 1 << 20

// RevocationStatus is the revocation list an agent holds, in status.
type RevocationStatus struct {
	// Number is the list's number; 0 when the agent holds none.
	Number uint64 `json:"number"`
	// Issued is when the authority signed the list.
	Issued *time.Time `json:"issued,omitempty"`
	// Devices are the revoked devices. [] never null.
	Devices []RevokedDevice `json:"devices"`
	// Refused counts lists refused since the agent started: a bad
	// signature, another deployment, an older number, the same number with
	// other content, or a list dropping an earlier revocation.
	Refused uint64 `json:"refused"`
	// GossipEpoch is the list number whose gossip key this agent uses; 0
	// for the key derived from the deployment secret.
	GossipEpoch uint64 `json:"gossip_epoch"`
}

// RevokedDevice is one device of the list.
type RevokedDevice struct {
	DeviceID  string    `json:"device_id"`
	Name      string    `json:"name,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	RevokedAt time.Time `json:"revoked_at"`
}

// RevocationResult answers POST /v1/revocations.
type RevocationResult struct {
	// Installed: the list was newer than the one held and is now in force;
	// false when the agent already held it.
	Installed  bool             `json:"installed"`
	Revocation RevocationStatus `json:"revocation"`
}

// QuarantinedOp is an op of a revoked device received after the agent
// installed the list: kept, not merged, for the admin to review.
type QuarantinedOp struct {
	Origin string    `json:"origin"`
	Device string    `json:"device"`
	Seq    uint64    `json:"seq"`
	Record string    `json:"record"`
	Kind   string    `json:"kind"`
	At     time.Time `json:"at"`
}

// Revoker is implemented by backends that take revocation lists.
// InstallRevocation verifies and installs a signed list (the bytes of
// `fieldsync authority revoke --out`); a list refused returns an error
// wrapping [ErrListRefused] whose text says why.
type Revoker interface {
	InstallRevocation(ctx context.Context, raw []byte) (RevocationResult, error)
	Quarantine(ctx context.Context) ([]QuarantinedOp, error)
}

// ErrListRefused: the revocation list is not valid for this deployment, or
// older than the one held. The server answers 422 with the reason.
var ErrListRefused = errors.New("revocation list refused")

func (s *Server) revocationRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/revocations", s.revocation)
	mux.HandleFunc("/v1/revocations", s.notAllowed("POST"))
	mux.HandleFunc("GET /v1/quarantine", s.quarantine)
	mux.HandleFunc("/v1/quarantine", s.notAllowed("GET, HEAD"))
}

func (s *Server) revoker(w http.ResponseWriter, r *http.Request) Revoker {
	rv, ok := s.backend.(Revoker)
	if !ok {
		s.fail(w, r, newAnswer(http.StatusNotImplemented, "this agent takes no revocation lists", "tác tử này không nhận danh sách thu hồi"))
		return nil
	}
	return rv
}

// revocation takes a signed list as the raw request body
// (application/cbor, application/octet-stream or no Content-Type).
func (s *Server) revocation(w http.ResponseWriter, r *http.Request) {
	rv := s.revoker(w, r)
	if rv == nil {
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/cbor" && mt != "application/octet-stream") {
			s.fail(w, r, newAnswer(http.StatusUnsupportedMediaType,
				"Content-Type must be application/cbor: the body is the list file as written by `fieldsync authority revoke`",
				"Content-Type phải là application/cbor: nội dung là tệp danh sách thu hồi"))
			return
		}
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRevocationBody))
	if err != nil {
		s.fail(w, r, answerFor(err))
		return
	}
	if len(data) == 0 {
		s.fail(w, r, newAnswer(http.StatusBadRequest, "empty body: send the revocation list file", "nội dung rỗng: hãy gửi tệp danh sách thu hồi"))
		return
	}
	res, err := rv.InstallRevocation(r.Context(), data)
	if errors.Is(err, ErrListRefused) {
		s.fail(w, r, newAnswer(http.StatusUnprocessableEntity, err.Error(), "danh sách thu hồi bị từ chối (chữ ký sai, của đợt triển khai khác, hoặc cũ hơn danh sách đang giữ)"))
		return
	}
	if err != nil {
		s.fail(w, r, answerFor(err))
		return
	}
	if res.Revocation.Devices == nil {
		res.Revocation.Devices = []RevokedDevice{}
	}
	s.reply(w, r, http.StatusOK, res)
}

func (s *Server) quarantine(w http.ResponseWriter, r *http.Request) {
	rv := s.revoker(w, r)
	if rv == nil {
		return
	}
	out, err := rv.Quarantine(r.Context())
	if err != nil {
		s.fail(w, r, answerFor(err))
		return
	}
	if out == nil {
		out = []QuarantinedOp{}
	}
	s.reply(w, r, http.StatusOK, out)
}

// rawBody is a request body sent as is, not as JSON.
type rawBody struct {
	data        []byte
	contentType string
}

// Revoke hands a signed revocation list to the agent.
func (c *Client) Revoke(ctx context.Context, list []byte) (RevocationResult, error) {
	var res RevocationResult
	err := c.do(ctx, http.MethodPost, "/v1/revocations", rawBody{data: list, contentType: "application/cbor"}, &res)
	return res, err
}

// Quarantine lists the ops of revoked devices the agent keeps apart.
func (c *Client) Quarantine(ctx context.Context) ([]QuarantinedOp, error) {
	var out []QuarantinedOp
	return out, c.do(ctx, http.MethodGet, "/v1/quarantine", nil, &out)
}
