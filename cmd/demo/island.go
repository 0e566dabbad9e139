package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/agent/export"
	"github.com/fieldsync/fieldsync/agent/export/pgtest"
	"github.com/fieldsync/fieldsync/cmd/internal/harness"
)

// The island trip (step 11): Vạn Thạnh commune in Khánh Hòa, where four of
// six villages are on islands and the one Internet link is at the
// border-guard post on the mainland. The province has a deployment of its
// own and a hub; two island laptops merge over Wi-Fi, one of them with a
// fisherman's photo and ten fingerprints (biometrics.go), one takes the
// boat to the post and delivers both laptops' dossiers and the files, and
// back on the island the other learns from it that its dossiers and files
// are stored upstream.

// islandDossiers is how many dossiers each island laptop captures.
const islandDossiers = 6

// Names of the province's devices; the hub's is what receipts carry.
const (
	islandA = "island-a"
	islandB = "island-b"
	hubName = "hub-khanh-hoa"
)

// islandVillages of Vạn Thạnh where the team works (illustrative).
var islandVillages = []string{"Điệp Sơn", "Hòn Ông", "Bãi Giếng", "Đầm Môn"}

// island is the province's side of the demo.
type island struct {
	c      *harness.Cluster
	hub    *harness.Agent
	a, b   *harness.Agent
	pgURL  string // "" when the hub runs without PostgreSQL
	stopPG func()
	// pgWhy says why there is no PostgreSQL, when there is none.
	pgWhy string
	ids   []string
	// delivered is what the laptop that never met the hub counts as
	// delivered at the end; pgOps and pgRecords are the rows exported.
	delivered         int
	pgOps, pgRecords  int64
	tookUp, tookState time.Duration
	// bio is the fisherman's photo and fingerprints, once captured.
	bio *biometrics
}

// agents lists the province's agents, the hub first.
func (is *island) agents() []*harness.Agent {
	var out []*harness.Agent
	for _, a := range []*harness.Agent{is.hub, is.a, is.b} {
		if a != nil {
			out = append(out, a)
		}
	}
	return out
}

// close kills the province's agents and stops PostgreSQL; for errors and
// interrupts, where cleanUp did not run.
func (is *island) close() {
	if is.c != nil {
		is.c.Close()
	}
	if is.stopPG != nil {
		is.stopPG()
	}
}

// islandTrip is step 11.
func (t *trip) islandTrip(ctx context.Context) error {
	t.n.explain("Cùng lúc, ở xã Vạn Thạnh (huyện Vạn Ninh, Khánh Hòa): 4 trong 6 thôn nằm trên đảo, và đường Internet duy nhất là ở đồn biên phòng trên đất liền. Công an tỉnh Khánh Hòa có đợt triển khai riêng, với máy chủ trung tâm (hub) của tỉnh.",
		"Meanwhile in Vạn Thạnh commune (Vạn Ninh district, Khánh Hòa): 4 of its 6 villages are on islands, and the one Internet link is at the border-guard post on the mainland. The Khánh Hòa provincial police have a deployment of their own, with the province's hub.")
	is := &island{}
	t.isl = is
	if err := t.provisionProvince(); err != nil {
		return err
	}
	if err := t.startHub(ctx); err != nil {
		return err
	}
	if err := t.onTheIsland(ctx); err != nil {
		return err
	}
	if err := t.toThePost(ctx); err != nil {
		return err
	}
	return t.backOnTheIsland(ctx)
}

// provisionProvince creates the province's deployment: its authority, the
// hub and two island laptops.
func (t *trip) provisionProvince() error {
	is := t.isl
	dir := filepath.Join(t.dir, "khanh-hoa")
	t.n.command(t.o.Bin, "authority", "init", "--dir", filepath.Join(dir, "authority"))
	c, err := harness.NewCluster(t.c.Bin, dir)
	if err != nil {
		return err
	}
	is.c = c
	if t.o.Logs {
		c.LogTo = t.n.w
	}
	if t.o.onCluster != nil {
		t.o.onCluster(c)
	}
	for _, d := range []struct{ name, role, vi, en string }{
		{hubName, "hub", "máy chủ trung tâm của tỉnh", "the province's hub"},
		{islandA, "field", "máy của tổ công tác trên đảo Điệp Sơn", "the Điệp Sơn island team's laptop"},
		{islandB, "field", "máy thứ hai của tổ, đi theo thuyền", "the team's second laptop, which takes the boat"},
	} {
		t.n.command(t.o.Bin, "device", "init", "--authority", c.Authority, "--name", d.name,
			"--data", filepath.Join(dir, d.name), "--role", d.role)
		a, err := c.Provision(d.name, d.role)
		if err != nil {
			return err
		}
		if err := freshPorts(a); err != nil {
			return err
		}
		switch d.name {
		case hubName:
			is.hub = a
		case islandA:
			is.a = a
		default:
			is.b = a
		}
		t.n.result("%s: %s / %s", d.name, d.vi, d.en)
	}
	return nil
}

// startHub starts the hub, exporting into a throwaway PostgreSQL when this
// machine has one.
func (t *trip) startHub(ctx context.Context) error {
	is := t.isl
	t.n.explain("Máy chủ kiểm chữ ký của từng thay đổi, lưu lại, ghi vào PostgreSQL của tỉnh, rồi mới ký biên nhận: \"hồ sơ của máy X đã lưu đến số thứ tự S\".",
		"The hub checks every change's signature, stores it, writes it into the province's PostgreSQL, and only then signs a receipt: \"device X is stored up to sequence S\".")
	url, stop, err := pgtest.Start()
	switch {
	case err == nil:
		is.pgURL, is.stopPG = url, stop
		t.n.result("PostgreSQL tạm trên 127.0.0.1 (thay cho máy chủ CSDL của tỉnh) / a throwaway PostgreSQL on 127.0.0.1 (standing in for the province's database)")
	case errors.Is(err, pgtest.ErrNoPostgres):
		is.pgWhy = "không có PostgreSQL trên máy này / no PostgreSQL on this machine (make deps installs it)"
	default:
		is.pgWhy = fmt.Sprintf("PostgreSQL không khởi động được / PostgreSQL did not start: %v", err)
	}
	var extra []string
	how := "xuất vào PostgreSQL / exporting into PostgreSQL"
	if is.pgURL != "" {
		extra = []string{"--postgres", is.pgURL}
	} else {
		how = "không có PostgreSQL / without PostgreSQL"
		t.n.line("(%s)", is.pgWhy)
		t.n.explain("Máy chủ chạy không xuất dữ liệu; khi đó biên nhận nghĩa là đã lưu bền trong kho của máy chủ.",
			"The hub runs without export; a receipt then means durably stored in the hub's own store.")
	}
	return t.startWith(ctx, is.hub, extra, how)
}

// onTheIsland: both island laptops capture and merge over the village
// hall's Wi-Fi; nothing is delivered yet.
func (t *trip) onTheIsland(ctx context.Context) error {
	is := t.isl
	t.n.explain("Trên đảo Điệp Sơn, hai máy của tổ nhập hồ sơ ngư dân và gặp nhau qua điểm phát Wi-Fi ở nhà văn hóa thôn.",
		"On Điệp Sơn island the team's two laptops capture fishermen's dossiers and meet over the village hall's Wi-Fi hotspot.")
	if err := t.startAgent(ctx, is.a); err != nil {
		return err
	}
	if err := t.startAgent(ctx, is.b, is.a); err != nil {
		return err
	}
	var bioID, bioName string
	for _, x := range []*harness.Agent{is.a, is.b} {
		var ds []map[string]string
		for range islandDossiers {
			ds = append(ds, t.gen.islandDossier(x.Name))
		}
		got, err := t.create(ctx, x, ds)
		if err != nil {
			return err
		}
		is.ids = append(is.ids, got...)
		t.n.result("%s nhập %d hồ sơ, ví dụ %q / captures %d dossiers, e.g. %q", x.Name, len(got), ds[0]["full_name"], len(got), ds[0]["full_name"])
		for i, d := range ds {
			if x == is.a && bioID == "" && d["sex"] == "nam" {
				bioID, bioName = got[i], d["full_name"]
			}
		}
	}
	if bioID == "" {
		return fmt.Errorf("island-a captured no man's dossier to take a fisherman's biometrics for (seed %d)", t.o.Seed)
	}
	if _, err := t.convergeTo(ctx, is.ids, is.a, is.b); err != nil {
		return err
	}
	st, err := status(ctx, is.a)
	if err != nil {
		return err
	}
	if st.Upstream.Undelivered != len(is.ids) || st.Upstream.Delivered != 0 {
		return fmt.Errorf("before the trip island-a counts %d delivered and %d undelivered, want 0 and %d",
			st.Upstream.Delivered, st.Upstream.Undelivered, len(is.ids))
	}
	t.n.result("%s: %d hồ sơ chưa lên tỉnh (undelivered), 0 đã lên (delivered) / %d dossiers not yet upstream, 0 delivered",
		islandA, st.Upstream.Undelivered, st.Upstream.Undelivered)
	return t.captureBiometrics(ctx, bioID, bioName)
}

// toThePost: island-b takes the boat to the border-guard post, reaches the
// hub and delivers both laptops' dossiers.
func (t *trip) toThePost(ctx context.Context) error {
	is := t.isl
	t.n.explain("island-a ở lại đảo, tắt máy qua đêm. island-b theo thuyền vào đất liền, mượn đường Internet của đồn biên phòng: tác tử chạy lại với --hub, địa chỉ máy chủ của tỉnh.",
		"island-a stays on the island, switched off for the night. island-b takes the boat to the mainland and borrows the border-guard post's Internet link: its agent runs again with --hub, the province hub's address.")
	if err := t.stop(is.a); err != nil {
		return err
	}
	if err := t.stop(is.b); err != nil {
		return err
	}
	began := time.Now()
	if err := t.startWith(ctx, is.b, []string{"--hub", is.hub.Listen}, "ở đồn biên phòng / at the border-guard post"); err != nil {
		return err
	}
	if _, err := t.convergeTo(ctx, is.ids, is.hub); err != nil {
		return err
	}
	var st api.Status
	err := waitFor(ctx, t.o.WaitLimit, func(ctx context.Context) (bool, string, error) {
		var err error
		if st, err = status(ctx, is.b); err != nil {
			return false, "", err
		}
		up := st.Upstream
		return up.Delivered == len(is.ids) && up.Undelivered == 0 && up.AttachmentsUndelivered == 0 && up.Reachable,
			fmt.Sprintf("island-b: delivered %d, undelivered %d, attachments undelivered %d, reachable %v",
				up.Delivered, up.Undelivered, up.AttachmentsUndelivered, up.Reachable), nil
	})
	if err != nil {
		return fmt.Errorf("island-b's dossiers were not receipted: %w", err)
	}
	is.tookUp = time.Since(began)
	t.n.result("island-b nhận biên nhận của %s sau %s: cả %d hồ sơ, ảnh và vân tay đã lên tỉnh / holds %s's receipt after %s: all %d dossiers, the photo and the fingerprints are upstream",
		hubName, seconds(is.tookUp), st.Upstream.Delivered, hubName, seconds(is.tookUp), st.Upstream.Delivered)

	hst, err := status(ctx, is.hub)
	if err != nil {
		return err
	}
	t.n.command(t.o.Bin, "status", "--api", is.hub.API)
	out, err := is.c.Run("status", "--api", is.hub.API)
	if err != nil {
		return fmt.Errorf("fieldsync status: %w\n%s", err, out)
	}
	t.n.block(statusHead(string(out)))
	if hst.Records != len(is.ids) || hst.RefusedOps != 0 {
		return fmt.Errorf("the hub holds %d dossiers and refused %d ops, want %d and 0", hst.Records, hst.RefusedOps, len(is.ids))
	}
	if is.pgURL != "" {
		if is.pgOps, is.pgRecords, err = pgCounts(ctx, is.pgURL); err != nil {
			return err
		}
		if is.pgRecords != int64(len(is.ids)) {
			return fmt.Errorf("PostgreSQL holds %d records, want %d", is.pgRecords, len(is.ids))
		}
		t.n.result("PostgreSQL của tỉnh: %d hồ sơ (fieldsync_records), %d thay đổi đã ký (fieldsync_ops) / the province's PostgreSQL: %d records, %d signed changes",
			is.pgRecords, is.pgOps, is.pgRecords, is.pgOps)
	}

	fmt.Fprintf(t.n.w, "\n%sisland-b, \"upstream.origins\" trong / in `fieldsync status --json`:\n", indent)
	if err := originsTable(t.n, st.Upstream); err != nil {
		return err
	}
	if o := st.Upstream.Origins[idOf(st.Upstream, islandA)]; o.Delivered != islandDossiers {
		return fmt.Errorf("island-b counts %d of island-a's dossiers delivered, want %d", o.Delivered, islandDossiers)
	}
	t.n.explain("island-b mang lên cả hồ sơ của island-a: máy nào gặp đường truyền thì mang hộ cả tổ. Máy chủ kiểm chữ ký của island-a, nên island-b không thể sửa lén.",
		"island-b carried island-a's dossiers up too: whoever reaches a link carries everyone. The hub checks island-a's own signatures, so island-b could not alter them.")
	return t.biometricsAtTheHub(ctx)
}

// backOnTheIsland: island-b returns and meets island-a, which learns that
// its dossiers are stored upstream though it never met the hub.
func (t *trip) backOnTheIsland(ctx context.Context) error {
	is := t.isl
	t.n.explain("island-b theo thuyền về đảo. Sáng hôm sau hai máy gặp lại nhau qua Wi-Fi; island-a chưa bao giờ gặp máy chủ.",
		"island-b takes the boat back. Next morning the two laptops meet again over Wi-Fi; island-a has never met the hub.")
	if err := t.stop(is.b); err != nil {
		return err
	}
	if err := t.startAgent(ctx, is.a); err != nil {
		return err
	}
	began := time.Now()
	if err := t.startAgent(ctx, is.b, is.a); err != nil {
		return err
	}
	var st api.Status
	err := waitFor(ctx, t.o.WaitLimit, func(ctx context.Context) (bool, string, error) {
		var err error
		if st, err = status(ctx, is.a); err != nil {
			return false, "", err
		}
		up := st.Upstream
		return up.Delivered == len(is.ids) && up.Undelivered == 0 && up.AttachmentsUndelivered == 0,
			fmt.Sprintf("island-a: delivered %d, undelivered %d, attachments undelivered %d",
				up.Delivered, up.Undelivered, up.AttachmentsUndelivered), nil
	})
	if err != nil {
		return fmt.Errorf("island-a never learned of the delivery: %w", err)
	}
	is.tookState = time.Since(began)
	if st.Upstream.Reachable || st.Upstream.LastContact != nil {
		return fmt.Errorf("island-a never met the hub, yet its status says reachable %v, last contact %v",
			st.Upstream.Reachable, st.Upstream.LastContact)
	}
	is.delivered = st.Upstream.Delivered
	t.n.result("island-a biết sau %s: hồ sơ của cả hai máy đã lưu ở tỉnh / knows after %s: both laptops' dossiers are stored at the province",
		seconds(is.tookState), seconds(is.tookState))

	t.n.command(t.o.Bin, "status", "--api", is.a.API, "--json")
	out, err := is.c.Run("status", "--api", is.a.API, "--json")
	if err != nil {
		return fmt.Errorf("fieldsync status --json: %w\n%s", err, out)
	}
	up, err := upstreamJSON(out)
	if err != nil {
		return err
	}
	fmt.Fprintf(t.n.w, "%s(phần \"upstream\" / the \"upstream\" part)\n", resIndent)
	t.n.block(up)
	t.n.explain("\"reachable\": false và \"last_contact\": null: island-a chưa từng nối với máy chủ. Biên nhận do máy chủ ký đi theo island-b về đảo, và island-a kiểm chữ ký của máy chủ trước khi tin.",
		"\"reachable\": false and \"last_contact\": null: island-a never connected to the hub. The receipt the hub signed came back with island-b, and island-a checks the hub's signature before trusting it.")

	t.n.command(t.o.Bin, "list", "--api", is.a.API, "--undelivered")
	out, err = is.c.Run("list", "--api", is.a.API, "--undelivered")
	if err != nil {
		return fmt.Errorf("fieldsync list --undelivered: %w\n%s", err, out)
	}
	t.n.block(string(out))
	left, err := is.a.Client.ListUndelivered(ctx)
	if err != nil {
		return fmt.Errorf("list undelivered on island-a: %w", err)
	}
	if len(left) != 0 {
		return fmt.Errorf("island-a still lists %d dossiers as undelivered", len(left))
	}
	t.n.explain("Không còn hồ sơ nào chỉ nằm trên đảo: cán bộ biết hồ sơ đã an toàn ở tỉnh, dù máy của mình chưa từng có Internet.",
		"No dossier is left only on the island: the officer knows they are safe at the province, though this laptop never had Internet.")
	return t.biometricsDelivered(ctx)
}

// originsTable prints upstream.origins: per laptop, captured and delivered.
func originsTable(n *narrator, up api.Upstream) error {
	tw := tabwriter.NewWriter(n.w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%sMÁY/LAPTOP\tĐÃ NHẬP/CAPTURED\tĐÃ LÊN TỈNH/DELIVERED\n", resIndent)
	byName := map[string]api.OriginDelivery{}
	for _, o := range up.Origins {
		byName[o.Device] = o
	}
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		o := byName[name]
		fmt.Fprintf(tw, "%s%s\t%d\t%d\n", resIndent, name, o.Captured, o.Delivered)
	}
	return tw.Flush()
}

// idOf returns the device id of the origin named name in up, or "".
func idOf(up api.Upstream, name string) string {
	for id, o := range up.Origins {
		if o.Device == name {
			return id
		}
	}
	return ""
}

// upstreamJSON picks the "upstream" object out of `fieldsync status --json`,
// indented as the command indents it.
func upstreamJSON(out []byte) (string, error) {
	var st map[string]json.RawMessage
	if err := json.Unmarshal(out, &st); err != nil {
		return "", fmt.Errorf("read status json: %w", err)
	}
	raw, ok := st["upstream"]
	if !ok {
		return "", errors.New("status json has no upstream")
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", fmt.Errorf("read status upstream: %w", err)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", fmt.Errorf("format status upstream: %w", err)
	}
	return string(b), nil
}

// statusHead is the first part of `fieldsync status`: the device and its
// counts, before the peers and the version vector.
func statusHead(out string) string {
	head, _, _ := strings.Cut(out, "\n\n")
	return head
}

// pgCounts counts the rows the hub exported.
func pgCounts(ctx context.Context, url string) (ops, records int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, apiCallLimit)
	defer cancel()
	e, err := export.Open(ctx, export.Config{URL: url})
	if err != nil {
		return 0, 0, fmt.Errorf("open PostgreSQL: %w", err)
	}
	defer e.Close()
	return e.Counts(ctx)
}

// islandDossier returns a dossier captured on a Vạn Thạnh island: mostly
// Kinh fishing families born in Khánh Hòa (province code 056).
func (g *generator) islandDossier(laptop string) map[string]string {
	g.n++
	sex := g.pick([]string{"nam", "nữ"})
	year := 1945 + g.r.IntN(62)
	month := 1 + g.r.IntN(12)
	day := 1 + g.r.IntN(daysIn(year, month))
	village := g.pick(islandVillages)
	d := map[string]string{
		"full_name":         g.name("Kinh", sex),
		"date_of_birth":     fmt.Sprintf("%04d-%02d-%02d", year, month, day),
		"sex":               sex,
		"ethnicity":         "Kinh",
		"personal_id":       personalID("056", sex, year, g.r),
		"commune":           "Vạn Thạnh",
		"hometown":          "xã Vạn Thạnh, huyện Vạn Ninh, tỉnh Khánh Hòa",
		"permanent_address": "Thôn " + village + ", xã Vạn Thạnh, huyện Vạn Ninh, tỉnh Khánh Hòa",
		"photo_ref":         fmt.Sprintf("anh/%s/%04d.jpg", laptop, g.n),
		"fingerprint_ref":   fmt.Sprintf("vantay/%s/%04d.wsq", laptop, g.n),
	}
	if g.r.IntN(100) < 70 {
		d["phone"] = g.phone()
	}
	if sex == "nam" && year < 1995 && g.r.IntN(100) < 50 {
		d["notes"] = "Ngư dân, thu nhận trên thuyền (thúng chai ra tận thuyền) / fisherman, captured aboard (reached by basket boat)"
	}
	return d
}
