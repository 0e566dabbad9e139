package schema

import (
	"strings"

	"github.com/fieldsync/fieldsync/agent/attach"
)

// Attachment fields. A dossier's photo, fingerprints and documents are
// fields too (attach.FieldName: attachment.photo, attachment.document,
// attachment.fingerprint.<finger>), whose value is the file's manifest. They
// are written only by attaching a file, so ValidateNew and ValidateUpdate
// refuse them with a problem that says so, and refuse every other name under
// "attachment." as unknown; ValidateAttachment accepts exactly these names,
// with a well-formed manifest of the field's kind and finger. Every other
// field is validated as before: a schema's own names cannot contain a dot.

var (
	problemAttachmentField = problem{
		"is set by attaching a file (POST /v1/records/{id}/attachments, `fieldsync attach`), not by editing",
		"chỉ được đặt bằng cách đính kèm tệp (POST /v1/records/{id}/attachments, `fieldsync attach`), không sửa trực tiếp",
	}
	problemAttachmentUnknown = problem{
		"is not an attachment field: attachment.photo, attachment.document or attachment.fingerprint.<finger>",
		"không phải là trường đính kèm: attachment.photo, attachment.document hoặc attachment.fingerprint.<ngón>",
	}
	problemManifest = problem{
		"is not a well-formed attachment manifest of this field's kind",
		"không phải là bản kê tệp đính kèm hợp lệ cho loại của trường này",
	}
)

// attachmentProblem is the problem of an input field named under
// attach.FieldPrefix, or nil for any other name.
func attachmentProblem(name string) *problem {
	if !strings.HasPrefix(name, attach.FieldPrefix) {
		return nil
	}
	if _, _, ok := attach.ParseField(name); ok {
		return &problemAttachmentField
	}
	return &problemAttachmentUnknown
}

// ValidateAttachment checks the write of an attachment field: name must be
// exactly one of the attachment fields and value a manifest (as
// attach.Manifest.FieldValue encodes it) of that field's kind and finger. It
// returns a *FieldError. Any schema accepts attachments: they are not among
// its Fields.
func (s Schema) ValidateAttachment(name, value string) error {
	kind, finger, ok := attach.ParseField(name)
	if !ok {
		return &FieldError{Field: displayName(name), Problem: problemAttachmentUnknown.en, ProblemVI: problemAttachmentUnknown.vi}
	}
	m, err := attach.DecodeFieldValue(value)
	if err != nil || m.Kind != kind || m.Finger != finger {
		return &FieldError{Field: name, Problem: problemManifest.en, ProblemVI: problemManifest.vi}
	}
	return nil
}

// IsAttachment reports whether name is one of the attachment fields.
func IsAttachment(name string) bool {
	_, _, ok := attach.ParseField(name)
	return ok
}
