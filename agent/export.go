package agent

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/agent/attach"
	"github.com/fieldsync/fieldsync/agent/export"
	"github.com/fieldsync/fieldsync/crdt"
)

// exporter is what the hub needs from the PostgreSQL export.
type exporter interface {
	Export(ctx context.Context, ops []export.Op, records []export.Record) error
	ExportAttachment(ctx context.Context, a export.Attachment) error
	Close()
}

var _ exporter = (*export.Exporter)(nil)

func openExporter(url string, log *slog.Logger) (exporter, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := export.Open(ctx, export.Config{URL: url, Logger: log, ConnectTimeout: 10 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open PostgreSQL export: %w", err)
	}
	return e, nil
}

// exportBatch bounds one PostgreSQL transaction: big enough to amortise the
// commit, small enough to retry cheaply.
const exportBatch = 1024

// exportPending exports every op held but not yet exported, with the
// current state of the records they touch, one transaction per batch, and
// returns how far each origin is now exported: what a receipt may cover.
func (a *Agent) exportPending() (crdt.VersionVector, error) {
	exported, err := a.store.Exported()
	if err != nil {
		return nil, err
	}
	local := a.store.VersionVector()
	for _, r := range local.Missing(exported) {
		from := r.From
		for from <= r.To {
			signed, err := a.store.ReadOps(r.Origin, from, exportBatch, 8<<20)
			if err != nil {
				return exported, err
			}
			if len(signed) == 0 {
				break
			}
			ops := make([]export.Op, 0, len(signed))
			seen := map[string]bool{}
			var records []export.Record
			for _, sg := range signed {
				o, err := crdt.Open(sg)
				if err != nil {
					return exported, fmt.Errorf("stored op of %s: %w", r.Origin, err)
				}
				env, err := crdt.Marshal(sg)
				if err != nil {
					return exported, err
				}
				ops = append(ops, export.Op{Origin: o.Op.Origin, Seq: o.Op.Seq, Signed: env, Record: o.Op.Record, At: hlcTime(o.Op.Time)})
				if seen[o.Op.Record] {
					continue
				}
				seen[o.Op.Record] = true
				rec, err := a.store.Record(o.Op.Record)
				if err != nil {
					return exported, err
				}
				records = append(records, a.exportRecord(rec))
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			err = a.exporter.Export(ctx, ops, records)
			cancel()
			if err != nil {
				return exported, err
			}
			last := ops[len(ops)-1].Seq
			if err := a.store.SetExported(crdt.VersionVector{r.Origin: last}); err != nil {
				return exported, err
			}
			exported[r.Origin] = last
			from = last + 1
		}
	}
	return exported, nil
}

func (a *Agent) exportRecord(r *crdt.Record) export.Record {
	v := a.view(r)
	out := export.Record{ID: r.ID, Fields: v.Fields, Conflicts: map[string][]export.Value{}, CreatedBy: v.CreatedBy,
		UpdatedAt: v.UpdatedAt, Version: r.Ops}
	if r.Created != (crdt.Dot{}) {
		out.Origin = r.Created.Origin
	}
	// A merged pair must not count as two people upstream: the retired
	// dossier's row carries its pointer, the survivor's what it absorbed.
	if v.RetiredInto != "" {
		out.Fields = maps.Clone(out.Fields)
		out.Fields[crdt.FieldRetiredInto] = v.RetiredInto
	}
	if len(v.MergedFrom) > 0 {
		out.Fields = maps.Clone(out.Fields)
		out.Fields["_merged_from"] = strings.Join(v.MergedFrom, ",")
	}
	// Attachment fields carry manifests, opaque to SQL: upstream they
	// become the file's SHA-256, which fieldsync_attachments is keyed by.
	for name, value := range r.Values() {
		if sha, ok := attachmentSHA(name, value); ok {
			out.Fields = maps.Clone(out.Fields)
			out.Fields[name] = sha
		}
	}
	for f, vals := range v.Conflicts {
		for _, x := range vals {
			if sha, ok := attachmentSHA(f, x.Value); ok {
				x.Value = sha
			}
			out.Conflicts[f] = append(out.Conflicts[f], export.Value{Value: x.Value, Device: x.Device, DeviceID: x.DeviceID, At: x.At, Op: x.Op})
		}
	}
	return out
}

// attachmentSHA is the SHA-256 (hex) of the file a manifest field names.
func attachmentSHA(field, value string) (string, bool) {
	if _, _, ok := attach.ParseField(field); !ok {
		return "", false
	}
	m, err := attach.DecodeFieldValue(value)
	if err != nil {
		return "", false
	}
	return m.SHA256Hex(), true
}
