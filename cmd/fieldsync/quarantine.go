package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/fieldsync/fieldsync/agent/api"
)

const quarantineUsage = `fieldsync quarantine [--api HOST:PORT] [--json]

Liệt kê thay đổi bị cách ly / List the quarantine: the changes of revoked
devices that reached the agent after its revocation list did. They are kept
and checked but not merged: no dossier, list or count shows them, and they are
never uploaded. The time shown is the one the revoked device's own clock wrote:
do not trust it. Field values are not shown. --json prints
[{"origin","device","seq","record","kind","at"}].
`

func runQuarantine(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("quarantine", quarantineUsage, stdout)
	addr := apiFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	list, err := newClient(fs, *addr).Quarantine(ctx)
	if err != nil {
		return explain(err)
	}
	if *asJSON {
		if list == nil {
			list = []api.QuarantinedOp{}
		}
		return writeJSON(stdout, list)
	}
	if len(list) > 0 {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "THIẾT BỊ / DEVICE\tSỐ / SEQ\tLOẠI / KIND\tHỒ SƠ / DOSSIER\tLÚC / AT (đồng hồ của máy bị thu hồi / its own clock)")
		for _, q := range list {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", orDash(q.Device), q.Seq, orDash(q.Kind), orDash(q.Record), showTime(q.At))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(stdout)
	}
	_, err = fmt.Fprintf(stdout, "Cách ly / Quarantined: %d (thay đổi của máy bị thu hồi, không được gộp / changes of revoked devices, not merged)\n", len(list))
	return err
}
