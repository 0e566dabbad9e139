package api

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Value is one live value of a field, with who wrote it and when. It is the
// unit of a field conflict: an admin sees every Value side by side.
type Value struct {
	Value    string    `json:"value"`
	Device   string    `json:"device"` // device name from its credential, e.g. "laptop-a"
	DeviceID string    `json:"device_id"`
	At       time.Time `json:"at"` // RFC 3339, UTC
	Op       string    `json:"op"` // "<origin>:<seq>"
	Officer  string    `json:"officer,omitempty"`
}

// Record is a dossier as the API shows it.
type Record struct {
	ID string `json:"id"`
	// Fields holds the shown value of each field (the deterministic winner
	// when a field is in conflict). Never null on the wire.
	Fields map[string]string `json:"fields"`
	// Conflicts maps each field with more than one live value to every live
	// value. {} when there are none, never null.
	Conflicts map[string][]Value `json:"conflicts"`
	CreatedBy string             `json:"created_by,omitempty"` // device name
	CreatedAt *time.Time         `json:"created_at,omitempty"`
	UpdatedAt time.Time          `json:"updated_at"`
	// RetiredInto is the surviving dossier this one was merged into; its
	// later edits are kept.
	RetiredInto string `json:"retired_into,omitempty"`
	// MergedFrom lists dossiers merged into this one.
	MergedFrom []string `json:"merged_from,omitempty"`
}

// Peer is another device of the deployment as this agent sees it.
type Peer struct {
	Name      string `json:"name"`
	DeviceID  string `json:"device_id"`
	Role      string `json:"role"`
	Addr      string `json:"addr,omitempty"`
	Connected bool   `json:"connected"`
	Syncing   bool   `json:"syncing"`
	// Session describes the live sync session with the peer, if any.
	Session *Session `json:"session,omitempty"`
}

// Session is a live sync session's counters, for operators and benchmarks.
type Session struct {
	// InSync: the peer holds everything this agent holds, nothing in flight.
	InSync      bool   `json:"in_sync"`
	OpsSent     uint64 `json:"ops_sent"`
	OpsReceived uint64 `json:"ops_received"`
	// BytesOut and BytesIn count the sync protocol's frames on the stream.
	BytesOut uint64 `json:"bytes_out"`
	BytesIn  uint64 `json:"bytes_in"`
	// RoundTrips: one for the hello exchange, plus one each time the sender
	// had to wait for an acknowledgement before sending more.
	RoundTrips uint64 `json:"round_trips"`
	// Messages counts frames both ways.
	Messages uint64    `json:"messages"`
	Started  time.Time `json:"started"`
	// ChunksSent and ChunksReceived count attachment chunks sent to the
	// peer and received from it and kept, in this session.
	ChunksSent     uint64 `json:"chunks_sent"`
	ChunksReceived uint64 `json:"chunks_received"`
}

// AttachmentStatus is the transfer of attachments to this agent.
type AttachmentStatus struct {
	// PendingBytes: bytes of attachments whose manifests are held here and
	// whose chunks are not yet, by kind (photo, fingerprint, document).
	PendingBytes map[string]int64 `json:"pending_bytes"`
	// Complete and Incomplete count the files named by manifests held here,
	// every chunk held or not.
	Complete   int `json:"complete"`
	Incomplete int `json:"incomplete"`
	// RefusedChunks counts chunks received and refused since start: not
	// asked of that peer, or bytes that do not match the hash.
	RefusedChunks uint64 `json:"refused_chunks"`
	// ReceivedChunks counts chunks received from peers and kept since start.
	ReceivedChunks uint64 `json:"received_chunks"`
	// InFlight counts chunks asked of peers and not answered yet.
	InFlight int `json:"in_flight"`
	// Storing counts chunks received and not stored yet: being checked
	// and written with others in one commit. They count in ReceivedChunks
	// once stored.
	Storing int `json:"storing"`
	// PrunedBytes: bytes of delivered attachments dropped here in all
	// (agent --prune-delivered).
	PrunedBytes int64 `json:"pruned_bytes"`
}

// Status is the agent's state as shown by GET /v1/status.
type Status struct {
	Device        string            `json:"device"`
	DeviceID      string            `json:"device_id"`
	Role          string            `json:"role"`
	Deployment    string            `json:"deployment"`
	Listen        []string          `json:"listen"` // [] never null
	Peers         []Peer            `json:"peers"`  // [] never null
	Records       int               `json:"records"`
	VersionVector map[string]uint64 `json:"version_vector"` // {} never null
	// AtRisk counts this device's own dossiers held only here: lost if the
	// laptop is lost.
	AtRisk int `json:"at_risk"`
	// Held counts this device's own dossiers held by at least one other
	// device.
	Held      int `json:"held_elsewhere"`
	Conflicts int `json:"conflicts"`
	// Duplicates counts groups of possible duplicate dossiers.
	Duplicates int `json:"duplicates"`
	// CanSettle: this device may settle conflicts and duplicates (an admin
	// device or the hub).
	CanSettle bool   `json:"can_settle"`
	Version   string `json:"version"`
	// WireBytesIn and WireBytesOut count raw TCP bytes of data connections
	// (Noise and multiplexing included) since the agent started.
	WireBytesIn  uint64 `json:"wire_bytes_in"`
	WireBytesOut uint64 `json:"wire_bytes_out"`
	// RefusedOps counts ops received and refused (bad signature, broken
	// chain, unknown origin) since start; DuplicateOps counts ops received
	// that were already held (resent after a cut, or through two relays).
	RefusedOps   uint64 `json:"refused_ops"`
	DuplicateOps uint64 `json:"duplicate_ops"`
	// Upstream says what has reached a hub.
	Upstream Upstream `json:"upstream"`
	// Revocation is the revocation list in force here (number 0: none).
	Revocation *RevocationStatus `json:"revocation"`
	// Quarantined counts ops of revoked devices received after the list was
	// installed: kept apart, not merged (GET /v1/quarantine lists them).
	Quarantined int `json:"quarantined"`
	// Alerts lists what an operator must look at; [] never null.
	Alerts []Alert `json:"alerts"`
	// Attachments is the transfer of attachment chunks to this agent.
	Attachments AttachmentStatus `json:"attachments"`
}

// AlertFork: a device wrote two different changes under one number (a
// laptop restored from an old backup, or one identity on two laptops). The
// branch that lost is written again by the device on the winning one, so
// nothing is lost once that device syncs; the alert says which device to
// check.
const AlertFork = "fork"

// AlertClone: one device identity is online at two addresses at once (its
// data directory copied to a second laptop). Both copies keep working and
// nothing is lost (their branches show as a fork), but every write of one
// copy forks the log again until one copy is stopped and the other device
// provisioned anew. The alert lasts while the two are seen together, and a
// few minutes after.
const AlertClone = "clone"

// Alert is one thing an operator must look at.
type Alert struct {
	Kind string `json:"kind"`
	// Device is the device id the alert is about.
	Device string `json:"device"`
	// Seq is the number (in that device's log) where its log forked (fork
	// alerts).
	Seq uint64 `json:"seq"`
	// Addrs are the two gossip addresses the device was seen at (clone
	// alerts).
	Addrs []string `json:"addrs,omitempty"`
	// Since is when the alert was first raised (clone alerts).
	Since *time.Time `json:"since,omitempty"`
}

// Upstream is the agent's view of delivery to the hub.
type Upstream struct {
	// Hubs are the configured hub addresses (--hub).
	Hubs []string `json:"hubs"`
	// Reachable: a hub is connected now (always true on a hub).
	Reachable bool `json:"reachable"`
	// LastContact is the last time a hub was heard from directly.
	LastContact *time.Time `json:"last_contact"`
	// Delivered and Undelivered count dossiers held here whose creation is
	// (not) covered by a hub's receipt.
	Delivered   int `json:"delivered"`
	Undelivered int `json:"undelivered"`
	// Receipts: per origin (device id), the highest seq a hub has stored.
	Receipts map[string]uint64 `json:"receipts"`
	// Origins breaks the counts down per device.
	Origins map[string]OriginDelivery `json:"origins"`
	// Upload is the progress of the upload to a connected hub.
	Upload *Upload `json:"upload,omitempty"`
	// AttachmentsUndelivered counts attachments held here (manifest ops)
	// that no hub's receipt says it holds whole; AttachmentsPendingBytes
	// is their size by kind (photo, fingerprint, document): what is left
	// to upload.
	AttachmentsUndelivered  int              `json:"attachments_undelivered"`
	AttachmentsPendingBytes map[string]int64 `json:"attachments_pending_bytes"`
}

// OriginDelivery counts one device's dossiers.
type OriginDelivery struct {
	Device    string `json:"device"`
	Captured  int    `json:"captured"`
	Delivered int    `json:"delivered"`
}

// Upload is a running upload to a hub.
type Upload struct {
	Hub        string `json:"hub"`
	SentOps    uint64 `json:"sent_ops"`
	PendingOps uint64 `json:"pending_ops"`
}

// Backend is what the server needs from the agent.
//
// Fields passed to Create and Update are already validated and normalised by
// the server, and the map is the Backend's to keep. Update receives only the
// fields the client sent; an empty value clears an optional field. A Backend
// reports an unknown record with an error wrapping [ErrNotFound] and a refused
// change with one wrapping [ErrConflict]; any other error is shown to the
// client as an internal error and logged, so a Backend's error text must not
// quote field values.
//
// List returns up to limit records with ids greater than after (all records
// when after is ""), in id order, and next: the id to pass as after for the
// following page, or "" when there are no more. Methods may be called
// concurrently.
type Backend interface {
	Create(ctx context.Context, fields map[string]string) (Record, error)
	Update(ctx context.Context, id string, fields map[string]string) (Record, error)
	Get(ctx context.Context, id string) (Record, error)
	List(ctx context.Context, after string, limit int) (records []Record, next string, err error)
	Status(ctx context.Context) (Status, error)
}

// UndeliveredLister is implemented by backends that know what has reached a
// hub: GET /v1/records?undelivered=true lists, in the same pages as List, the
// records whose creation is not yet covered by a hub's receipt.
type UndeliveredLister interface {
	Undelivered(ctx context.Context, after string, limit int) (records []Record, next string, err error)
}

// Searcher is implemented by backends that can filter the list:
// GET /v1/records?q=TEXT lists the records whose name, personal ID number or
// commune contain TEXT (case and diacritics ignored).
type Searcher interface {
	Search(ctx context.Context, q, after string, limit int) (records []Record, next string, err error)
}

// ErrNotFound: no record has the given id. Backends return or wrap it; the
// server answers 404. [APIError] matches it for a 404 answer.
var ErrNotFound = errors.New("record not found")

// ErrConflict: the backend refuses the change because of the record's state
// (for instance a record merged into another). The server answers 409 with the
// error's text, so a Backend should say what the client can do. [APIError]
// matches it for a 409 answer.
var ErrConflict = errors.New("conflict")

// ErrNoAgent: nothing answers at the client's address. Errors from [Client]
// wrap it (and the network error) when the connection is refused or times out.
var ErrNoAgent = errors.New("no agent answering")

// FieldProblem is what is wrong with one field of a refused input, in English
// and Vietnamese.
type FieldProblem struct {
	Field     string `json:"field"`
	Problem   string `json:"problem"`
	ProblemVI string `json:"problem_vi"`
}

// APIError is an error answer from the server, as the [Client] returns it.
// Fields lists every bad field when the input failed validation.
type APIError struct {
	Status    int
	Message   string
	MessageVI string
	Fields    []FieldProblem
}

// Error renders the English message, then each bad field.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("agent answered ")
	b.WriteString(strconv.Itoa(e.Status))
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	for i, f := range e.Fields {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(f.Field)
		b.WriteString(" ")
		b.WriteString(f.Problem)
	}
	return b.String()
}

// Unwrap lets errors.Is match [ErrNotFound] for a 404 and [ErrConflict] for a
// 409.
func (e *APIError) Unwrap() error {
	switch e.Status {
	case 404:
		return ErrNotFound
	case 409:
		return ErrConflict
	case 401:
		return ErrUnauthorized
	}
	return nil
}

// errorBody is the JSON shape of every error answer.
type errorBody struct {
	Error   string         `json:"error"`
	ErrorVI string         `json:"error_vi"`
	Fields  []FieldProblem `json:"fields,omitempty"`
}

// listBody is the JSON shape of GET /v1/records.
type listBody struct {
	Records []Record `json:"records"`
	Next    string   `json:"next"`
}
