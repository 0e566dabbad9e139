package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fieldsync/fieldsync/agent/api"
)

const getUsage = `fieldsync get [--api HOST:PORT] [--json] ID

Xem một hồ sơ / Show one dossier: its fields, then each field in conflict with
every value, the device that wrote it and when.
`

func runGet(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("get", getUsage, stdout)
	addr := apiFlag(fs)
	asJSON := fs.Bool("json", false, "print the dossier as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{fmt.Errorf("want one dossier ID; got %d arguments", fs.NArg())}
	}
	rec, err := newClient(fs, *addr).Get(ctx, fs.Arg(0))
	if err != nil {
		return explain(err)
	}
	if *asJSON {
		return writeJSON(stdout, rec)
	}
	return printRecord(stdout, rec)
}

// printRecord shows a dossier for an officer.
func printRecord(w io.Writer, rec api.Record) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Hồ sơ / Dossier:\t%s\n", clean(rec.ID))
	if rec.CreatedBy != "" || rec.CreatedAt != nil {
		created := orDash(rec.CreatedBy)
		if rec.CreatedAt != nil {
			created += ", " + showTime(*rec.CreatedAt)
		}
		fmt.Fprintf(tw, "Tạo bởi / Created by:\t%s\n", created)
	}
	fmt.Fprintf(tw, "Cập nhật / Updated:\t%s\n", showTime(rec.UpdatedAt))
	if rec.RetiredInto != "" {
		fmt.Fprintf(tw, "Đã gộp vào / Merged into:\t%s\n", clean(rec.RetiredInto))
	}
	if len(rec.MergedFrom) > 0 {
		fmt.Fprintf(tw, "Gộp từ / Merged from:\t%s\n", clean(strings.Join(rec.MergedFrom, ", ")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nTrường / Fields:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, name := range slices.Sorted(maps.Keys(rec.Fields)) {
		mark := ""
		if len(rec.Conflicts[name]) > 1 {
			mark = "  (!)"
		}
		fmt.Fprintf(tw, "  %s\t%s%s\n", clean(name), clean(rec.Fields[name]), mark)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rec.Conflicts) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nXung đột / Conflicts (%d):\n", len(rec.Conflicts))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, name := range slices.Sorted(maps.Keys(rec.Conflicts)) {
		fmt.Fprintf(tw, "  %s:\t\t\t\n", clean(name))
		for _, v := range rec.Conflicts[name] {
			fmt.Fprintf(tw, "    %q\t%s %s\t%s\top %s\n", clean(v.Value), orDash(v.Device), clean(v.Officer), showTime(v.At), clean(v.Op))
		}
	}
	return tw.Flush()
}

// showTime prints a time in the laptop's zone, which is the one the officer
// lives in.
func showTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05 MST")
}
