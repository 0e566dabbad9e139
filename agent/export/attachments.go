package export

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// Attachment is one file a dossier's manifest names, with its bytes, as the
// hub holds it once every chunk is verified.
type Attachment struct {
	RecordID  string
	Kind      string // photo, fingerprint or document
	Finger    string // fingerprints only
	SHA256    string // hex of the whole file
	MediaType string
	// Origin and Seq are the manifest op: the device that captured the file.
	Origin     string
	Seq        uint64
	CapturedAt time.Time
	Bytes      []byte
}

const insertAttachment = `INSERT INTO fieldsync_attachments
	(record_id, kind, finger, sha256, size, media_type, origin, seq, captured_at, bytes)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (record_id, kind, finger, sha256) DO NOTHING`

// ExportAttachment writes one attachment, once: the same file of the same
// dossier field exported again (by a second hub, or after a crash) is left
// as it is, since its bytes are named by their hash. The bytes are checked
// against SHA256 first: nothing unverified reaches the province's
// database. It returns nil only after the row is committed.
func (e *Exporter) ExportAttachment(ctx context.Context, a Attachment) error {
	if e.closed() {
		return ErrClosed
	}
	if err := checkAttachment(a); err != nil {
		return err
	}
	var at any
	if !a.CapturedAt.IsZero() {
		at = timestamptz(a.CapturedAt)
	}
	for attempt := 0; ; attempt++ {
		_, err := e.pool.Exec(ctx, insertAttachment, a.RecordID, a.Kind, a.Finger, a.SHA256,
			int64(len(a.Bytes)), a.MediaType, a.Origin, int64(a.Seq), at, a.Bytes)
		if err == nil {
			return nil
		}
		if attempt >= e.retries || !retryable(err) || ctx.Err() != nil {
			return fmt.Errorf("export attachment %s of %s: %w", a.SHA256, a.RecordID, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("export attachment: %w", ctx.Err())
		case <-time.After(time.Duration(attempt+1) * 20 * time.Millisecond):
		}
	}
}

func checkAttachment(a Attachment) error {
	sum := sha256.Sum256(a.Bytes)
	switch {
	case len(a.Bytes) == 0:
		return fmt.Errorf("%w: attachment %s of %s: no bytes", ErrInvalid, a.SHA256, a.RecordID)
	case hex.EncodeToString(sum[:]) != a.SHA256:
		return fmt.Errorf("%w: attachment of %s: its bytes do not match SHA-256 %s", ErrInvalid, a.RecordID, a.SHA256)
	case a.Kind != "photo" && a.Kind != "fingerprint" && a.Kind != "document":
		return fmt.Errorf("%w: attachment %s: kind %q", ErrInvalid, a.SHA256, a.Kind)
	case (a.Kind == "fingerprint") != (a.Finger != ""):
		return fmt.Errorf("%w: attachment %s: finger %q for kind %s", ErrInvalid, a.SHA256, a.Finger, a.Kind)
	case a.Seq == 0 || a.Seq > 1<<63-1:
		return fmt.Errorf("%w: attachment %s: op seq %d", ErrInvalid, a.SHA256, a.Seq)
	}
	if err := checkTexts(a.RecordID, a.Finger, a.MediaType, a.Origin); err != nil {
		return fmt.Errorf("%w: attachment %s: %w", ErrInvalid, a.SHA256, err)
	}
	return nil
}

// AttachmentCount is how many attachment rows the database holds.
func (e *Exporter) AttachmentCount(ctx context.Context) (int64, error) {
	var n int64
	err := e.pool.QueryRow(ctx, `SELECT count(*) FROM fieldsync_attachments`).Scan(&n)
	return n, err
}
