package export

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
	"time"
)

func testAttachment(data []byte) Attachment {
	sum := sha256.Sum256(data)
	return Attachment{RecordID: "019a9c10-0001-7000-8000-000000000001", Kind: "photo", SHA256: hex.EncodeToString(sum[:]),
		MediaType: "image/jpeg", Origin: "dev-a", Seq: 7, CapturedAt: time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC), Bytes: data}
}

// An attachment reaches PostgreSQL byte for byte, once however often it is
// exported, and one whose bytes do not match its hash never does.
func TestExportAttachment(t *testing.T) {
	e := open(t, freshDB(t))
	ctx := testCtx(t)
	photo := append([]byte{0xff, 0xd8, 0xff, 0xe0}, bytes.Repeat([]byte("Giàng Thị Mai "), 20000)...)
	a := testAttachment(photo)
	for range 2 {
		if err := e.ExportAttachment(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	fp := testAttachment(append([]byte("FMR\x00 20\x00"), bytes.Repeat([]byte{1, 2, 3}, 7000)...))
	fp.Kind, fp.Finger, fp.MediaType, fp.Seq = "fingerprint", "right_thumb", "application/x-iso19794-2", 8
	if err := e.ExportAttachment(ctx, fp); err != nil {
		t.Fatal(err)
	}
	if n, err := e.AttachmentCount(ctx); err != nil || n != 2 {
		t.Fatalf("%d attachment rows, %v; want 2", n, err)
	}
	var got []byte
	var size int64
	var kind, finger string
	if err := e.pool.QueryRow(ctx, `SELECT bytes, size, kind, finger FROM fieldsync_attachments WHERE sha256 = $1`, a.SHA256).
		Scan(&got, &size, &kind, &finger); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, photo) || size != int64(len(photo)) || kind != "photo" || finger != "" {
		t.Fatalf("stored %d bytes (equal %v), size %d, kind %q, finger %q", len(got), bytes.Equal(got, photo), size, kind, finger)
	}

	bad := map[string]Attachment{}
	tampered := testAttachment(photo)
	tampered.Bytes = append(bytes.Clone(photo[:len(photo)-1]), 'x')
	bad["bytes not matching the hash"] = tampered
	empty := testAttachment(nil)
	bad["no bytes"] = empty
	noFinger := fp
	noFinger.Finger = ""
	bad["a fingerprint without a finger"] = noFinger
	kindless := a
	kindless.Kind = "video"
	bad["unknown kind"] = kindless
	nul := a
	nul.Origin = "dev\x00a"
	bad["a NUL in a text"] = nul
	for name, b := range bad {
		if err := e.ExportAttachment(ctx, b); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if n, _ := e.AttachmentCount(ctx); n != 2 {
		t.Fatalf("%d attachment rows after the refusals, want 2", n)
	}
}
