package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/agent/schema"
)

const listUsage = `fieldsync list [--api HOST:PORT] [--json] [--undelivered]

Liệt kê mọi hồ sơ / List every dossier: id, full name, date of birth, commune
and the number of fields in conflict. --json prints a JSON array of dossiers.
--undelivered lists only dossiers no hub has confirmed storing yet (chưa an toàn
/ not yet safe upstream).
`

func runList(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("list", listUsage, stdout)
	addr := apiFlag(fs)
	asJSON := fs.Bool("json", false, "print a JSON array of dossiers ([] when there are none)")
	undelivered := fs.Bool("undelivered", false, "only dossiers not yet receipted by a hub")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	client := newClient(fs, *addr)
	list := client.ListAll
	if *undelivered {
		list = client.ListUndelivered
	}
	recs, err := list(ctx)
	if err != nil {
		return explain(err)
	}
	if *asJSON {
		if recs == nil {
			recs = []api.Record{}
		}
		return writeJSON(stdout, recs)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MÃ / ID\tHỌ TÊN / FULL NAME\tNGÀY SINH / BORN\tXÃ / COMMUNE\tXUNG ĐỘT / CONFLICTS")
	for _, r := range recs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", clean(r.ID),
			orDash(r.Fields[schema.FieldFullName]), orDash(r.Fields[schema.FieldDateOfBirth]),
			orDash(r.Fields[schema.FieldCommune]), len(r.Conflicts))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "\nTổng / Total: %d\n", len(recs))
	return err
}
