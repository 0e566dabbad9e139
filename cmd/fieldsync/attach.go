package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/agent/attach"
)

// Exit codes of the attachment commands.
const (
	// exitRefused: the agent refused the file (empty, over the limit, not
	// of a type the kind accepts, repeating a block).
	exitRefused = 5
	// exitNotFound: no such dossier, or no attachment with that SHA-256.
	exitNotFound = 6
)

// refusedError is an attachment the agent refused, or a dossier or file it
// does not know; main maps it to its exit code.
type refusedError struct {
	code int
	err  error
}

func (e *refusedError) Error() string { return e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }

// explainAttach is explain, with the exit code of an attachment refusal.
func explainAttach(err error) error {
	var ae *api.APIError
	if errors.As(err, &ae) {
		switch {
		case ae.Status == 404:
			return &refusedError{code: exitNotFound, err: explain(err)}
		case ae.Status == 400 || ae.Status == 413 || ae.Status == 415 || ae.Status == 422:
			return &refusedError{code: exitRefused, err: explain(err)}
		}
	}
	return explain(err)
}

const attachUsage = `fieldsync attach [--api HOST:PORT] --id DOSSIER --kind photo|fingerprint|document [--finger FINGER] [--json] FILE

Đính kèm tệp vào hồ sơ / Attach a file to a dossier: the citizen's photo
(JPEG, PNG or JPEG 2000), one fingerprint (an ISO/IEC 19794-2 or ANSI 378
template, a WSQ image, PNG or JPEG) or a document (PDF, JPEG or PNG). The agent
checks the type by the file's first bytes, stores it in 64 KiB chunks and
records it on the dossier as a signed change; a later file of the same kind
(and finger) replaces it. Prints the file's SHA-256 and size.

Fingers / Ngón tay: right_thumb right_index right_middle right_ring right_little
left_thumb left_index left_middle left_ring left_little

Exit codes: 0 stored, 2 wrong usage (unknown kind or finger), 5 the agent
refused the file (empty, too large, wrong type), 6 no such dossier.
`

func runAttach(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("attach", attachUsage, stdout)
	addr := apiFlag(fs)
	id := fs.String("id", "", "the dossier's id (mã hồ sơ) (required)")
	kind := fs.String("kind", "", "photo, fingerprint or document (loại tệp) (required)")
	finger := fs.String("finger", "", "for a fingerprint: which finger (ngón tay)")
	asJSON := fs.Bool("json", false, "print the answer as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{fmt.Errorf("want one FILE; got %d arguments", fs.NArg())}
	}
	if *id == "" {
		return usageError{errors.New("--id DOSSIER is required (cần mã hồ sơ)")}
	}
	if err := attach.CheckKind(attach.Kind(*kind), *finger); err != nil {
		e := attach.Refusal(err)
		return usageError{fmt.Errorf("%s / %s", e.Vi, e.En)}
	}
	res, err := newClient(fs, *addr).Attach(ctx, *id, attach.Kind(*kind), *finger, fs.Arg(0))
	if err != nil {
		return explainAttach(err)
	}
	if *asJSON {
		return writeJSON(stdout, res)
	}
	_, err = fmt.Fprintf(stdout, "%s  %d\n", res.SHA256, res.Size)
	return err
}

const attachmentsUsage = `fieldsync attachments [--api HOST:PORT] [--json] DOSSIER

Liệt kê tệp đính kèm của hồ sơ / List a dossier's attachments: kind, finger,
size, SHA-256, which laptop captured it, whether all its bytes are here and
whether a hub has confirmed the change that attached it. A field attached on
two laptops at once shows both files, marked (!).
`

func runAttachments(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("attachments", attachmentsUsage, stdout)
	addr := apiFlag(fs)
	asJSON := fs.Bool("json", false, "print the list as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{fmt.Errorf("want one DOSSIER id; got %d arguments", fs.NArg())}
	}
	list, err := newClient(fs, *addr).Attachments(ctx, fs.Arg(0))
	if err != nil {
		return explainAttach(err)
	}
	if *asJSON {
		if list == nil {
			list = []api.Attachment{}
		}
		return writeJSON(stdout, list)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "Loại/Kind\tNgón/Finger\tByte/Size\tSHA-256\tMáy chụp/Captured by\tLúc/At\tĐủ/Complete\tĐã gửi/Delivered")
	for _, at := range list {
		mark := ""
		if at.Conflict {
			mark = " (!)"
		}
		complete := yesNo(at.Complete)
		if at.Pruned {
			complete = "đã xoá/pruned"
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", clean(at.Kind), mark, orDash(at.Finger), at.Size,
			clean(at.SHA256), orDash(at.CapturedBy), showTime(at.CapturedAt), complete, yesNo(at.Delivered))
	}
	return tw.Flush()
}

const attachmentUsage = `fieldsync attachment [--api HOST:PORT] --sha256 HASH --out FILE

Lấy tệp đính kèm / Write an attachment's bytes to FILE. The bytes are checked
against the SHA-256 while they are written; FILE appears only when they match
(a temporary file is renamed into place).
`

func runAttachment(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("attachment", attachmentUsage, stdout)
	addr := apiFlag(fs)
	sum := fs.String("sha256", "", "the file's SHA-256, 64 hex digits (required)")
	out := fs.String("out", "", "where to write the file (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	want, err := hex.DecodeString(strings.ToLower(*sum))
	if err != nil || len(want) != sha256.Size {
		return usageError{errors.New("--sha256 must be 64 hex digits (SHA-256 gồm 64 chữ số hex)")}
	}
	if *out == "" {
		return usageError{errors.New("--out FILE is required (cần tệp đích)")}
	}
	body, _, size, err := newClient(fs, *addr).AttachmentFile(ctx, strings.ToLower(*sum))
	if err != nil {
		return explainAttach(err)
	}
	defer body.Close()
	return writeVerified(*out, body, want, size)
}

// writeVerified writes r to path through a temporary file in the same
// directory, hashing as it goes, and renames it into place only when the
// bytes match want (and size, when known).
func writeVerified(path string, r io.Reader, want []byte, size int64) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".part-*")
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), r)
	if err != nil {
		return fmt.Errorf("read attachment: %w (tải tệp bị gián đoạn)", err)
	}
	if (size >= 0 && n != size) || !bytes.Equal(h.Sum(nil), want) {
		return errors.New("the bytes received do not match the SHA-256: nothing written (dữ liệu nhận được không khớp SHA-256: không ghi tệp)")
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	done = true
	return nil
}
