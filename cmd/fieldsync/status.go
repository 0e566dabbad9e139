package main

import (
	"context"
	"fmt"
	"github.com/fieldsync/fieldsync/agent/attach"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/fieldsync/fieldsync/agent/api"
)

const statusUsage = `fieldsync status [--api HOST:PORT] [--json]

Trạng thái của tác tử / The agent's status: this device, its peers, how many
dossiers it holds, and how many of its own dossiers exist only on this laptop.
`

func runStatus(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("status", statusUsage, stdout)
	addr := apiFlag(fs)
	asJSON := fs.Bool("json", false, "print the status as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	st, err := newClient(fs, *addr).Status(ctx)
	if err != nil {
		return explain(err)
	}
	if *asJSON {
		if st.Peers == nil {
			st.Peers = []api.Peer{}
		}
		if st.Listen == nil {
			st.Listen = []string{}
		}
		if st.VersionVector == nil {
			st.VersionVector = map[string]uint64{}
		}
		return writeJSON(stdout, st)
	}
	return printStatus(stdout, st)
}

func printStatus(w io.Writer, st api.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Thiết bị / Device:\t%s (%s)\n", orDash(st.Device), orDash(st.DeviceID))
	fmt.Fprintf(tw, "Vai trò / Role:\t%s\n", orDash(st.Role))
	fmt.Fprintf(tw, "Triển khai / Deployment:\t%s\n", orDash(st.Deployment))
	fmt.Fprintf(tw, "Lắng nghe / Listening:\t%s\n", orDash(clean(strings.Join(st.Listen, ", "))))
	fmt.Fprintf(tw, "Phiên bản / Version:\t%s\n", orDash(st.Version))
	fmt.Fprintf(tw, "Hồ sơ / Dossiers:\t%d\n", st.Records)
	fmt.Fprintf(tw, "Xung đột / Conflicts:\t%d\n", st.Conflicts)
	fmt.Fprintf(tw, "Có thể trùng / Possible duplicates:\t%d\n", st.Duplicates)
	fmt.Fprintf(tw, "Chỉ có trên máy này / Only on this laptop:\t%d\n", st.AtRisk)
	fmt.Fprintf(tw, "Đã có ở máy khác / Held elsewhere:\t%d\n", st.Held)
	at := st.Attachments
	fmt.Fprintf(tw, "Ảnh, vân tay / Attachments:\t%d đủ / complete, %d đang về / incomplete (%s)\n",
		at.Complete, at.Incomplete, kindBytes(at.PendingBytes))
	if at.RefusedChunks > 0 {
		fmt.Fprintf(tw, "Khối bị từ chối / Refused chunks:\t%d\n", at.RefusedChunks)
	}
	if at.PrunedBytes > 0 {
		fmt.Fprintf(tw, "Đã xoá sau khi gửi / Pruned after delivery:\t%d bytes\n", at.PrunedBytes)
	}
	if r := st.Revocation; r != nil && r.Number > 0 {
		fmt.Fprintf(tw, "Danh sách thu hồi / Revocation list:\t%d (%d thiết bị / devices)\n", r.Number, len(r.Devices))
	}
	if st.Quarantined > 0 {
		fmt.Fprintf(tw, "Cách ly / Quarantined ops:\t%d (of revoked devices, not merged)\n", st.Quarantined)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if st.AtRisk > 0 {
		fmt.Fprintf(w, "  (%d hồ sơ của máy này sẽ mất nếu mất máy; hãy đồng bộ / %d of this laptop's dossiers would be lost with it: sync them)\n",
			st.AtRisk, st.AtRisk)
	}
	if len(st.Alerts) > 0 {
		fmt.Fprintf(w, "\nCẢNH BÁO / ALERTS (%d):\n", len(st.Alerts))
		for _, al := range st.Alerts {
			fmt.Fprintf(w, "  %s\n", alertLine(al))
		}
	}

	fmt.Fprintf(w, "\nMáy ngang hàng / Peers (%d):\n", len(st.Peers))
	if len(st.Peers) > 0 {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  TÊN / NAME\tVAI TRÒ / ROLE\tĐỊA CHỈ / ADDRESS\tKẾT NỐI / CONNECTED\tĐỒNG BỘ / SYNCING")
		for _, p := range st.Peers {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", orDash(p.Name), orDash(p.Role), orDash(p.Addr), yesNo(p.Connected), yesNo(p.Syncing))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	up := st.Upstream
	fmt.Fprintf(w, "\nLên tỉnh / Upstream:\n")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  Máy chủ / Hubs:\t%s\n", orDash(clean(strings.Join(up.Hubs, ", "))))
	fmt.Fprintf(tw, "  Kết nối được / Reachable:\t%s\n", yesNo(up.Reachable))
	last := "-"
	if up.LastContact != nil {
		last = showTime(*up.LastContact)
	}
	fmt.Fprintf(tw, "  Liên lạc gần nhất / Last contact:\t%s\n", last)
	fmt.Fprintf(tw, "  Đã lên tỉnh / Delivered:\t%d\n", up.Delivered)
	fmt.Fprintf(tw, "  Chưa lên tỉnh / Undelivered:\t%d\n", up.Undelivered)
	fmt.Fprintf(tw, "  Tệp chưa lên tỉnh / Attachments undelivered:\t%d (%s)\n", up.AttachmentsUndelivered, kindBytes(up.AttachmentsPendingBytes))
	if up.Upload != nil {
		fmt.Fprintf(tw, "  Đang gửi lên / Uploading to %s:\t%d sent, %d pending\n", clean(up.Upload.Hub), up.Upload.SentOps, up.Upload.PendingOps)
	}
	for _, id := range slices.Sorted(maps.Keys(up.Origins)) {
		o := up.Origins[id]
		fmt.Fprintf(tw, "  %s\t%d / %d đã lên / delivered\n", orDash(clean(o.Device)), o.Delivered, o.Captured)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nVéc-tơ phiên bản / Version vector (%d):\n", len(st.VersionVector))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, origin := range slices.Sorted(maps.Keys(st.VersionVector)) {
		fmt.Fprintf(tw, "  %s\t%d\n", clean(origin), st.VersionVector[origin])
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "có / yes"
	}
	return "không / no"
}

// alertLine says one alert for an officer, Vietnamese first.
func alertLine(al api.Alert) string {
	switch al.Kind {
	case api.AlertFork:
		return fmt.Sprintf("lịch sử của thiết bị %s bị tách đôi tại số %d / device %s forked its log at %d: check which laptops carry its identity",
			clean(al.Device), al.Seq, clean(al.Device), al.Seq)
	case api.AlertClone:
		return fmt.Sprintf("thiết bị %s đang chạy ở hai địa chỉ (%s) / device %s is online at two addresses at once: a copied data directory",
			clean(al.Device), clean(strings.Join(al.Addrs, ", ")), clean(al.Device))
	}
	return fmt.Sprintf("%s: %s", clean(al.Kind), clean(al.Device))
}

// kindBytes shows pending bytes by kind, in the upload order.
func kindBytes(m map[string]int64) string {
	parts := make([]string, 0, len(attach.Kinds))
	for _, k := range []attach.Kind{attach.KindFingerprint, attach.KindPhoto, attach.KindDocument} {
		parts = append(parts, fmt.Sprintf("%s %d B", k, m[string(k)]))
	}
	return strings.Join(parts, ", ")
}
