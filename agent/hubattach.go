package agent

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/fieldsync/fieldsync/agent/attach"
	"github.com/fieldsync/fieldsync/agent/export"
	"github.com/fieldsync/fieldsync/agent/store"
	"github.com/fieldsync/fieldsync/agent/xfer"
	"github.com/fieldsync/fieldsync/crdt"
)

// A hub completes dossiers: it verifies each attachment's whole file against
// its manifest, exports it to PostgreSQL where it exports, and its receipts
// say, per origin, up to which op every attachment is whole (uplink.Receipt
// Attached). The watermark moves in log order, so a laptop reads one number
// per origin; files beyond it are exported as soon as they are whole, so
// the province's database gets fingerprints before photos, as they arrive.

// hubFiles is the receipt loop's state (that goroutine only).
type hubFiles struct {
	attached crdt.VersionVector // whole up to, per origin (persisted)
	done     map[crdt.Dot]bool  // manifest ops beyond the watermark already verified and exported
}

func (a *Agent) loadHubFiles() error {
	w, err := a.store.Attached()
	if err != nil {
		return fmt.Errorf("load attachment watermark: %w", err)
	}
	a.files = hubFiles{attached: w, done: map[crdt.Dot]bool{}}
	return nil
}

// completeAttachments verifies and exports the attachments that became
// whole and returns how far each origin's attachments are whole: never
// beyond stored (what the receipt covers of the ops). The files that became
// whole since the last pass are exported in the transfer's priority order
// (exportOrder), not in log order: one pass often finds a dossier's photo
// and its fingerprints whole together, and the photo, attached first, would
// otherwise reach PostgreSQL before them.
func (a *Agent) completeAttachments(stored crdt.VersionVector) (crdt.VersionVector, error) {
	f := &a.files
	var ready []store.ManifestOp
	firstIncomplete := map[string]uint64{}
	for _, origin := range stored.Origins() {
		upTo := stored[origin]
		err := a.store.ManifestOps(origin, min(f.attached[origin], upTo), func(mo store.ManifestOp) bool {
			if mo.Seq > upTo {
				return false
			}
			switch {
			case f.done[crdt.Dot{Origin: origin, Seq: mo.Seq}]:
			case a.xfer.Whole(mo.File):
				ready = append(ready, mo)
			case firstIncomplete[origin] == 0:
				firstIncomplete[origin] = mo.Seq
			}
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	for _, mo := range exportOrder(ready) {
		if err := a.finishFile(mo); err != nil {
			return nil, err
		}
		f.done[crdt.Dot{Origin: mo.Origin, Seq: mo.Seq}] = true
	}
	out := crdt.VersionVector{}
	for _, origin := range stored.Origins() {
		from := min(f.attached[origin], stored[origin])
		w := stored[origin]
		if n := firstIncomplete[origin]; n != 0 {
			w = n - 1
		}
		out[origin] = max(w, from)
	}
	if !out.Equal(f.attached) {
		if err := a.store.SetAttached(out); err != nil {
			return nil, err
		}
		for dot := range f.done {
			if dot.Seq <= out[dot.Origin] {
				delete(f.done, dot)
			}
		}
		f.attached = out
	}
	return out, nil
}

// exportOrder sorts manifest ops in the order the transfer asks for their
// chunks (agent/xfer): fingerprints, then photos, then documents; within a
// kind the oldest op first; ties by origin and seq, so the order is the same
// on every pass. It sorts mos in place and returns it.
func exportOrder(mos []store.ManifestOp) []store.ManifestOp {
	rank := func(mo store.ManifestOp) int {
		kind, _, _ := attach.ParseField(mo.Field)
		return xfer.Rank(kind)
	}
	slices.SortFunc(mos, func(x, y store.ManifestOp) int {
		return cmp.Or(cmp.Compare(rank(x), rank(y)), cmp.Compare(x.Wall, y.Wall),
			cmp.Compare(x.Origin, y.Origin), cmp.Compare(x.Seq, y.Seq))
	})
	return mos
}

// errBadFile: the chunks a manifest lists are each what they claim, but
// together are not the file its SHA-256 names; the capturing device made a
// manifest that cannot be completed.
var errBadFile = errors.New("chunks do not make up the manifest's file")

// finishFile reads a whole file, checks it against its manifest and
// exports it. A file that can never verify is logged as an error and passed
// over (nothing could ever complete it); an export failure is returned, so
// the receipt waits.
func (a *Agent) finishFile(mo store.ManifestOp) error {
	value, found, err := a.store.Manifest(mo.File)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("manifest op %s:%d names file %x, not indexed", mo.Origin, mo.Seq, mo.File[:6])
	}
	m, err := attach.DecodeFieldValue(value)
	if err != nil {
		return fmt.Errorf("indexed manifest %x: %w", mo.File[:6], err)
	}
	var buf bytes.Buffer
	buf.Grow(int(m.Size))
	for _, h := range m.Chunks {
		c, err := a.store.Chunk(h)
		if err != nil {
			return err
		}
		buf.Write(c)
	}
	if int64(buf.Len()) != m.Size || sha256.Sum256(buf.Bytes()) != m.SHA256 {
		a.log.Error("attachment cannot be completed: its chunks do not make up the file its manifest names",
			"record", mo.Record, "field", mo.Field, "op", fmt.Sprintf("%s:%d", mo.Origin, mo.Seq), "err", errBadFile)
		return nil
	}
	if a.exporter == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = a.exporter.ExportAttachment(ctx, export.Attachment{
		RecordID: mo.Record, Kind: string(m.Kind), Finger: m.Finger, SHA256: m.SHA256Hex(), MediaType: m.MediaType,
		Origin: mo.Origin, Seq: mo.Seq, CapturedAt: time.UnixMilli(mo.Wall).UTC(), Bytes: buf.Bytes(),
	})
	if err != nil {
		return fmt.Errorf("export attachment of %s: %w", mo.Record, err)
	}
	a.log.Info("attachment exported", "record", mo.Record, "kind", string(m.Kind), "finger", m.Finger, "bytes", m.Size)
	return nil
}
