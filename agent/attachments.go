package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/agent/attach"
	"github.com/fieldsync/fieldsync/agent/store"
	"github.com/fieldsync/fieldsync/crdt"
)

var _ api.Attacher = backend{}

// attachmentFile is the store's Options.AttachmentFile: a field write that is
// a well-formed manifest of its own field, and the SHA-256 of its file.
func attachmentFile(field, value string) ([32]byte, bool) {
	if !strings.HasPrefix(field, attach.FieldPrefix) {
		return [32]byte{}, false
	}
	m, err := attach.DecodeFieldValue(value)
	if err != nil || m.Field() != field {
		return [32]byte{}, false
	}
	return m.SHA256, true
}

// Attach stores a file read from req.Body as chunks, then its manifest op,
// which replaces the dossier's earlier attachment of the same kind and
// finger like any field change. A refused or cut upload removes what it
// wrote (store.Upload). The log has the dossier, kind, finger and size,
// never a byte of the file.
func (b backend) Attach(ctx context.Context, req api.AttachRequest) (api.Attached, error) {
	a := b.a
	if err := attach.CheckKind(req.Kind, req.Finger); err != nil {
		return api.Attached{}, err
	}
	if _, err := a.store.Record(req.Record); errors.Is(err, store.ErrNotFound) {
		return api.Attached{}, fmt.Errorf("%w: %s", api.ErrNotFound, req.Record)
	} else if err != nil {
		return api.Attached{}, err
	}
	if err := a.own.wait(ctx); err != nil {
		return api.Attached{}, err
	}
	limit := min(req.MaxBytes, a.cfg.AttachmentMaxBytes)
	chunker := attach.NewChunker(req.Body, req.Kind, req.Finger, limit)
	up := a.store.BeginUpload()
	defer up.Abort() // does nothing once committed
	for {
		data, h, err := chunker.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return api.Attached{}, err
		}
		if err := up.Put(h, data); err != nil {
			return api.Attached{}, err
		}
	}
	m, err := chunker.Manifest()
	if err != nil {
		return api.Attached{}, err
	}
	value, err := m.FieldValue()
	if err != nil {
		return api.Attached{}, err
	}
	field := m.Field()
	if err := a.cfg.Schema.ValidateAttachment(field, value); err != nil {
		return api.Attached{}, fmt.Errorf("manifest of the agent's own making refused: %w", err)
	}
	op, err := up.Commit(a.dev.ID(), a.dev.Private, req.Record, map[string]string{field: value}, a.cfg.Now().UnixMilli())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return api.Attached{}, fmt.Errorf("%w: %s", api.ErrNotFound, req.Record)
	case err != nil:
		return api.Attached{}, err
	}
	a.log.Info("attachment stored", "record", req.Record, "kind", string(m.Kind), "finger", m.Finger,
		"bytes", m.Size, "chunks", len(m.Chunks), "seq", op.Op.Seq)
	a.changed()
	return api.Attached{Record: req.Record, SHA256: m.SHA256Hex(), Size: m.Size, Kind: string(m.Kind), Finger: m.Finger,
		Chunks: len(m.Chunks), MediaType: m.MediaType, Seq: op.Op.Seq}, nil
}

// Attachments lists every live manifest of a dossier's attachment fields,
// kinds in attach.Kinds order and fingers in attach.Fingers order, the
// latest first within a field.
func (b backend) Attachments(_ context.Context, id string) ([]api.Attachment, error) {
	a := b.a
	rec, err := a.store.Record(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", api.ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	safe := a.safeAttached()
	out := []api.Attachment{}
	for _, field := range attachmentFields(rec) {
		reg := rec.Fields[field]
		for i := len(reg.Live) - 1; i >= 0; i-- {
			sib := reg.Live[i]
			m, err := attach.DecodeFieldValue(sib.Value)
			if err != nil || m.Field() != field {
				// Every replica refuses to index it; it stays in the
				// dossier's conflicts and history.
				a.log.Warn("attachment manifest unreadable", "record", id, "field", field, "op", dotString(sib.Dot))
				continue
			}
			missing, err := a.store.MissingChunks(m.Chunks)
			if err != nil {
				return nil, err
			}
			pruned, err := a.store.IsPruned(m.SHA256)
			if err != nil {
				return nil, err
			}
			out = append(out, api.Attachment{
				Kind: string(m.Kind), Finger: m.Finger, SHA256: m.SHA256Hex(), Size: m.Size,
				MediaType: m.MediaType, Chunks: len(m.Chunks),
				CapturedBy: a.deviceName(sib.Dot.Origin), CapturedByID: sib.Dot.Origin, CapturedAt: hlcTime(sib.Time),
				Op: dotString(sib.Dot), Complete: len(missing) == 0, Delivered: safe[sib.Dot.Origin] >= sib.Dot.Seq,
				Conflict: reg.Conflict(), Pruned: pruned && len(missing) > 0,
			})
		}
	}
	return out, nil
}

// attachmentFields returns the record's attachment fields in display order.
func attachmentFields(rec *crdt.Record) []string {
	order := func(name string) int {
		kind, finger, _ := attach.ParseField(name)
		return slices.Index(attach.Kinds, kind)*100 + slices.Index(attach.Fingers, finger)
	}
	var out []string
	for name := range rec.Fields {
		if _, _, ok := attach.ParseField(name); ok {
			out = append(out, name)
		}
	}
	slices.SortFunc(out, func(x, y string) int { return order(x) - order(y) })
	return out
}

// AttachmentFile finds a manifest of the file and reads its chunks.
func (b backend) AttachmentFile(_ context.Context, sha [32]byte) (attach.Manifest, func(int) ([]byte, error), error) {
	st := b.a.store
	value, found, err := st.Manifest(sha)
	if err != nil {
		return attach.Manifest{}, nil, err
	}
	if !found {
		return attach.Manifest{}, nil, api.ErrAttachmentNotFound
	}
	m, err := attach.DecodeFieldValue(value)
	if err != nil {
		return attach.Manifest{}, nil, fmt.Errorf("indexed manifest: %w", err)
	}
	missing, err := st.MissingChunks(m.Chunks)
	if err != nil {
		return attach.Manifest{}, nil, err
	}
	if pruned, err := st.IsPruned(sha); err != nil {
		return attach.Manifest{}, nil, err
	} else if pruned && len(missing) > 0 {
		return attach.Manifest{}, nil, api.ErrPruned
	}
	if len(missing) > 0 {
		return attach.Manifest{}, nil, fmt.Errorf("%w (%d of %d chunks missing)", api.ErrIncomplete, len(missing), len(m.Chunks))
	}
	return m, func(i int) ([]byte, error) { return st.Chunk(m.Chunks[i]) }, nil
}

func dotString(d crdt.Dot) string { return fmt.Sprintf("%s:%d", d.Origin, d.Seq) }

// attachmentsUpstream counts the attachments no hub's receipt says it holds
// whole, and their bytes by kind. The count reads every manifest op above
// the receipts' watermark, 11,000 on a laptop holding a team's week: a third
// of a receiver's CPU while status was polled during a transfer. It depends
// only on the ops held and on the watermark, so it is kept until either
// moves.
func (a *Agent) attachmentsUpstream() (map[string]int64, int) {
	held, safe := a.store.VersionVector(), a.safeAttached()
	c := &a.upAttach
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == nil || !c.held.Equal(held) || !c.safe.Equal(safe) {
		pending, n, err := a.countAttachmentsUpstream(safe)
		if err != nil {
			return pending, n // not kept: the next call reads again
		}
		c.held, c.safe, c.pending, c.n = held, safe, pending, n
	}
	return maps.Clone(c.pending), c.n
}

// upstreamAttachments is what attachmentsUpstream last counted, and what
// for.
type upstreamAttachments struct {
	mu         sync.Mutex
	held, safe crdt.VersionVector
	pending    map[string]int64
	n          int
}

func (a *Agent) countAttachmentsUpstream(safe crdt.VersionVector) (map[string]int64, int, error) {
	pending := map[string]int64{}
	for _, k := range attach.Kinds {
		pending[string(k)] = 0
	}
	n := 0
	var readErr error
	err := a.store.ManifestOpsAfter(safe, func(mo store.ManifestOp) bool {
		m, ok, err := a.indexedManifest(mo.File)
		if !ok {
			readErr = err
			return err == nil
		}
		pending[string(m.Kind)] += m.Size
		n++
		return true
	})
	err = errors.Join(err, readErr)
	if err != nil && !errors.Is(err, store.ErrClosed) {
		a.log.Warn("count attachments not delivered", "err", err)
	}
	return pending, n, err
}

// indexedManifest reads and decodes the manifest the x/a/ index holds for
// file. ok is false when none is indexed or it does not decode; err is the
// store's.
func (a *Agent) indexedManifest(file [32]byte) (m attach.Manifest, ok bool, err error) {
	value, found, err := a.store.Manifest(file)
	if err != nil || !found {
		return attach.Manifest{}, false, err
	}
	m, err = attach.DecodeFieldValue(value)
	return m, err == nil, nil
}
