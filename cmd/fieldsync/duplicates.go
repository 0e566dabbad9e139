package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/fieldsync/fieldsync/agent/api"
)

const duplicatesUsage = `fieldsync duplicates [--api HOST:PORT] [--json]

Hồ sơ có thể trùng / Possible duplicate dossiers: the same personal ID number
("personal_id"), or the same name (ignoring case, spacing and diacritics) and
date of birth ("name_dob"); or two dossiers each merged into the other
("merged_both_ways": merge them again). --json prints [{"records":[ID,...],"reason",...}].
`

func runDuplicates(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("duplicates", duplicatesUsage, stdout)
	addr := apiFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	list, err := newClient(fs, *addr).Duplicates(ctx)
	if err != nil {
		return explain(err)
	}
	if *asJSON {
		if list == nil {
			list = []api.Duplicate{}
		}
		return writeJSON(stdout, list)
	}
	for _, d := range list {
		fmt.Fprintf(stdout, "%-12s %s\n", d.Reason, strings.Join(d.Records, " "))
	}
	_, err = fmt.Fprintf(stdout, "\nCó thể trùng / Possible duplicates: %d\n", len(list))
	return err
}

const mergeUsage = `fieldsync merge [--api HOST:PORT] [--json] SURVIVOR OTHER [--field NAME=VALUE]...

Gộp hai hồ sơ của một người / Merge two dossiers of one person: OTHER is
retired with a pointer to SURVIVOR (its later edits are kept); --field sets the
chosen value of a field on SURVIVOR. Only an admin device or the hub may merge.
`

func runMerge(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("merge", mergeUsage, stdout)
	addr := apiFlag(fs)
	asJSON := fs.Bool("json", false, "print the surviving record as JSON")
	var fields stringList
	fs.Var(&fields, "field", "NAME=VALUE chosen for the survivor (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usageError{errors.New("merge needs SURVIVOR OTHER")}
	}
	req := api.MergeRequest{Survivor: fs.Arg(0), Other: fs.Arg(1), Fields: map[string]string{}}
	for _, f := range fields {
		name, value, ok := strings.Cut(f, "=")
		if !ok || name == "" {
			return usageError{fmt.Errorf("--field %q: want NAME=VALUE", f)}
		}
		req.Fields[name] = value
	}
	rec, err := newClient(fs, *addr).Merge(ctx, req)
	if err != nil {
		return explain(err)
	}
	if *asJSON {
		return writeJSON(stdout, rec)
	}
	_, err = fmt.Fprintf(stdout, "Đã gộp / Merged %s into %s\n", clean(req.Other), clean(rec.ID))
	return err
}

const distinctUsage = `fieldsync distinct [--api HOST:PORT] ID ID

Không phải cùng một người / Not the same person: the two dossiers stop being
flagged as possible duplicates. Only an admin device or the hub may do this.
`

func runDistinct(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("distinct", distinctUsage, stdout)
	addr := apiFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usageError{errors.New("distinct needs two dossier IDs")}
	}
	if err := newClient(fs, *addr).Distinct(ctx, fs.Arg(0), fs.Arg(1)); err != nil {
		return explain(err)
	}
	_, err := fmt.Fprintf(stdout, "Đã ghi nhận hai người khác nhau / Marked as two different people: %s %s\n", clean(fs.Arg(0)), clean(fs.Arg(1)))
	return err
}
