package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"

	"github.com/fieldsync/fieldsync/agent/api"
)

const conflictsUsage = `fieldsync conflicts [--api HOST:PORT] [--json]

Liệt kê xung đột / List field conflicts: every field of a dossier with more
than one live value, each value with the device, officer and time that wrote
it. --json prints [{"record","field","values":[{"value","device","at",...}]}].
`

func runConflicts(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("conflicts", conflictsUsage, stdout)
	addr := apiFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	list, err := newClient(fs, *addr).Conflicts(ctx)
	if err != nil {
		return explain(err)
	}
	if *asJSON {
		if list == nil {
			list = []api.Conflict{}
		}
		return writeJSON(stdout, list)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, c := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", clean(c.Record), clean(c.Field), orDash(c.FullName))
		for _, v := range c.Values {
			fmt.Fprintf(tw, "\t  %q\t%s %s\t%s\top %s\n", v.Value, clean(v.Device), clean(v.Officer), showTime(v.At), clean(v.Op))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "\nXung đột / Conflicts: %d\n", len(list))
	return err
}

const resolveUsage = `fieldsync resolve [--api HOST:PORT] [--json] RECORD FIELD VALUE

Giải quyết một xung đột / Settle one field conflict: VALUE replaces exactly the
values the agent shows now for FIELD (a value arriving later stays, as a new
conflict). Only an admin device or the hub may settle.
`

func runResolve(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("resolve", resolveUsage, stdout)
	addr := apiFlag(fs)
	asJSON := fs.Bool("json", false, "print the settled record as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 3 {
		return usageError{errors.New("resolve needs RECORD FIELD VALUE")}
	}
	id, field, value := fs.Arg(0), fs.Arg(1), fs.Arg(2)
	c := newClient(fs, *addr)
	// Supersede exactly the values shown now, as the admin saw them.
	cur, err := c.Get(ctx, id)
	if err != nil {
		return explain(err)
	}
	var seen []string
	for _, v := range cur.Conflicts[field] {
		seen = append(seen, v.Op)
	}
	rec, err := c.Resolve(ctx, id, api.ResolveRequest{Field: field, Value: value, Seen: seen})
	if err != nil {
		return explain(err)
	}
	if *asJSON {
		return writeJSON(stdout, rec)
	}
	shown := rec.Fields[field]
	if field == "_retired_into" {
		shown = rec.RetiredInto
	}
	_, err = fmt.Fprintf(stdout, "Đã giải quyết / Settled %s %s = %q\n", clean(id), clean(field), shown)
	return err
}

const historyUsage = `fieldsync history [--api HOST:PORT] [--json] ID

Lịch sử hồ sơ / A dossier's history: every change, in causal order, with the
device, officer and time.
`

func runHistory(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("history", historyUsage, stdout)
	addr := apiFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{errors.New("history needs a dossier ID")}
	}
	list, err := newClient(fs, *addr).History(ctx, fs.Arg(0))
	if err != nil {
		return explain(err)
	}
	if *asJSON {
		if list == nil {
			list = []api.HistoryEntry{}
		}
		return writeJSON(stdout, list)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, h := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s %s\top %s\n", showTime(h.At), clean(h.Kind), clean(h.Device), clean(h.Officer), clean(h.Op))
		for _, name := range slices.Sorted(maps.Keys(h.Fields)) {
			fmt.Fprintf(tw, "\t  %s\t%q\n", clean(name), h.Fields[name])
		}
	}
	return tw.Flush()
}
