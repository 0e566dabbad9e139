package schema

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/fieldsync/fieldsync/agent/attach"
)

func manifestValue(t *testing.T, kind attach.Kind, finger string, head []byte) string {
	t.Helper()
	data := append(bytes.Clone(head), make([]byte, 3000)...)
	c := attach.NewChunker(bytes.NewReader(data), kind, finger, attach.DefaultMaxBytes)
	for {
		if _, _, err := c.Next(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	m, err := c.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	v, err := m.FieldValue()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestAttachmentFields(t *testing.T) {
	photo := manifestValue(t, attach.KindPhoto, "", []byte{0xFF, 0xD8, 0xFF})
	thumb := manifestValue(t, attach.KindFingerprint, "right_thumb", []byte("FMR\x00"))
	s := Dossier()
	// Exactly the attachment names are accepted, with a manifest of their kind.
	if err := s.ValidateAttachment("attachment.photo", photo); err != nil {
		t.Fatalf("photo: %v", err)
	}
	if err := s.ValidateAttachment("attachment.fingerprint.right_thumb", thumb); err != nil {
		t.Fatalf("thumb: %v", err)
	}
	for name, value := range map[string]string{
		"attachment.fingerprint.left_thumb": thumb, // another finger's manifest
		"attachment.document":               photo, // another kind's manifest
		"attachment.photo":                  "not a manifest",
		"attachment.selfie":                 photo,
		"attachment.fingerprint":            thumb,
		"attachment.photo.right_thumb":      photo,
		"full_name":                         photo,
	} {
		var fe *FieldError
		if err := s.ValidateAttachment(name, value); !errors.As(err, &fe) || fe.ProblemVI == "" {
			t.Errorf("ValidateAttachment(%q) = %v, want a field error", name, err)
		}
	}
	// Edits may not write them, and other attachment.* names are unknown.
	open := Dossier()
	open.AllowUnknown = true
	for name, want := range map[string]string{
		"attachment.photo":                   problemAttachmentField.en,
		"attachment.fingerprint.left_little": problemAttachmentField.en,
		"attachment.selfie":                  problemAttachmentUnknown.en,
		"attachment.fingerprint.toe":         problemAttachmentUnknown.en,
	} {
		for _, sc := range []Schema{s, open} {
			_, err := sc.ValidateUpdate(map[string]string{name: photo}, now)
			var errs Errors
			if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Problem != want {
				t.Errorf("update of %q: %v", name, err)
			}
		}
	}
	// The other fields validate as before.
	if _, err := s.ValidateNew(validDossier(), now); err != nil {
		t.Fatal(err)
	}
	if !IsAttachment("attachment.document") || IsAttachment("attachment.x") || IsAttachment("photo_ref") {
		t.Fatal("IsAttachment")
	}
}
