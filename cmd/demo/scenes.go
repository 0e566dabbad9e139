package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/cmd/internal/harness"
)

// moreDossiers: how many each laptop still online captures while another
// is away (steps 5 and 6).
const moreDossiers = 5

// awayAndBack is step 5.
func (t *trip) awayAndBack(ctx context.Context) error {
	a, b, c := t.ag["laptop-a"], t.ag["laptop-b"], t.ag["laptop-c"]
	t.n.explain("laptop-c đi thăm nhà ở nơi không có sóng: tác tử của nó dừng (Ctrl-C, hay gập máy).",
		"laptop-c leaves for home visits where there is no signal: its agent stops (Ctrl-C, or the lid closes).")
	before, err := ids(ctx, c)
	if err != nil {
		return err
	}
	if err := t.stop(c); err != nil {
		return err
	}

	t.n.explain(fmt.Sprintf("Trong lúc đó, laptop-a và laptop-b mỗi máy nhập thêm %d hồ sơ.", moreDossiers),
		fmt.Sprintf("Meanwhile laptop-a and laptop-b capture %d more dossiers each.", moreDossiers))
	for _, x := range []*harness.Agent{a, b} {
		got, err := t.create(ctx, x, t.dossiers(x.Name, moreDossiers))
		if err != nil {
			return err
		}
		t.record(x.Name, got)
	}
	if _, err := t.converge(ctx, a, b); err != nil {
		return err
	}
	t.n.line("laptop-c: %d hồ sơ / dossiers (tắt máy, thiếu %d / switched off, missing %d)",
		len(before), len(t.all)-len(before), len(t.all)-len(before))

	t.n.explain("laptop-c quay lại và lần này chỉ biết địa chỉ của laptop-b.",
		"laptop-c comes back, this time knowing only laptop-b's address.")
	if err := t.startAgent(ctx, c, b); err != nil {
		return err
	}
	took, err := t.converge(ctx, c)
	if err != nil {
		return err
	}
	t.n.result("laptop-c bắt kịp: %d → %d hồ sơ trong %s / caught up: %d → %d dossiers in %s",
		len(before), len(t.all), seconds(took), len(before), len(t.all), seconds(took))
	t.n.explain("Chỉ phần còn thiếu được gửi, không gửi lại những gì laptop-c đã có.",
		"Only what was missing travelled; nothing laptop-c already held was sent again.")
	return nil
}

// relay is step 6.
func (t *trip) relay(ctx context.Context) error {
	a, b, c := t.ag["laptop-a"], t.ag["laptop-b"], t.ag["laptop-c"]
	t.n.explain("laptop-a ở lại Pả Vi và tắt máy. Đội trưởng mang một máy mới (laptop-d) ở trụ sở huyện, chỉ gặp laptop-b.",
		"laptop-a stays in Pả Vi, switched off. The team leader's new laptop (laptop-d) at the district station meets only laptop-b.")
	if err := t.stop(a); err != nil {
		return err
	}
	if err := t.provisionOne("laptop-d"); err != nil {
		return err
	}
	d := t.ag["laptop-d"]
	if err := t.startAgent(ctx, d, b); err != nil {
		return err
	}
	got, err := t.create(ctx, d, t.dossiers("laptop-d", 3))
	if err != nil {
		return err
	}
	t.record("laptop-d", got)
	t.n.result("laptop-d nhập %d hồ sơ người dân đến trụ sở / captures %d walk-in dossiers", len(got), len(got))
	if _, err := t.converge(ctx, b, c, d); err != nil {
		return err
	}

	recs, err := list(ctx, d)
	if err != nil {
		return err
	}
	byAuthor := map[string]int{}
	var fromA api.Record
	for _, r := range recs {
		byAuthor[r.CreatedBy]++
		if r.CreatedBy == "laptop-a" && fromA.ID == "" {
			fromA = r
		}
	}
	if byAuthor["laptop-a"] != t.by["laptop-a"] {
		return fmt.Errorf("laptop-d holds %d dossiers created by laptop-a, want %d", byAuthor["laptop-a"], t.by["laptop-a"])
	}
	fmt.Fprintf(t.n.w, "\n%sHồ sơ trên laptop-d theo máy tạo / dossiers on laptop-d by the laptop that created them:\n", indent)
	tw := tabwriter.NewWriter(t.n.w, 0, 4, 2, ' ', 0)
	for _, name := range slices.Sorted(maps.Keys(byAuthor)) {
		fmt.Fprintf(tw, "%s%s\t%d\n", resIndent, name, byAuthor[name])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	st, err := status(ctx, d)
	if err != nil {
		return err
	}
	peers := connectedPeers(st)
	if slices.Contains(peers, "laptop-a") {
		return fmt.Errorf("laptop-d is connected to laptop-a, which is switched off")
	}
	t.n.result("laptop-d giữ cả %d hồ sơ của laptop-a (ví dụ %s, %q) mà chưa từng gặp laptop-a; máy nó đã gặp: %s",
		byAuthor["laptop-a"], fromA.ID, fromA.Fields["full_name"], strings.Join(peers, ", "))
	fmt.Fprintf(t.n.w, "%s  holds all %d of laptop-a's dossiers without ever meeting it; it met: %s\n",
		resIndent, byAuthor["laptop-a"], strings.Join(peers, ", "))
	t.n.explain("Mỗi thay đổi mang chữ ký của máy tạo ra nó; laptop-d kiểm chữ ký của laptop-a, nên máy trung gian không thể sửa lén.",
		"Every change carries its author's signature; laptop-d checks laptop-a's, so a relaying laptop cannot alter it unnoticed.")

	t.n.explain("laptop-a quay lại, chỉ biết laptop-c, và nhận các hồ sơ của laptop-d.",
		"laptop-a comes back, knowing only laptop-c, and receives laptop-d's dossiers.")
	if err := t.startAgent(ctx, a, c); err != nil {
		return err
	}
	_, err = t.converge(ctx, a)
	return err
}

// conflict is step 7; the admin settles it in step 8.
func (t *trip) conflict(ctx context.Context) error {
	b, c := t.ag["laptop-b"], t.ag["laptop-c"]
	rec, err := get(ctx, b, t.fixID)
	if err != nil {
		return err
	}
	t.n.explain(fmt.Sprintf("Hồ sơ %s được nhập từ giấy tờ cũ, thiếu dấu: %q.", t.fixID, rec.Fields["full_name"]),
		fmt.Sprintf("Dossier %s was captured from an old paper record, tone marks missing: %q.", t.fixID, rec.Fields["full_name"]))
	t.n.explain("laptop-c lại đi vắng. Hai cán bộ cùng sửa họ tên, mỗi người theo một giấy tờ khác.",
		"laptop-c goes away again. Two officers correct the name, each from a different document.")
	if err := t.stop(c); err != nil {
		return err
	}

	// On laptop-b, from the person's old ID card.
	fixB := filepath.Join(t.dir, "sua-ten-b.json")
	if err := t.update(ctx, b, fixB, map[string]string{"full_name": correctionB}); err != nil {
		return err
	}
	t.n.result("laptop-b sửa theo CMND cũ / corrects from the old ID card: %q", correctionB)

	// laptop-c, alone in a village: no --join and no mDNS.
	t.n.explain("laptop-c, một mình ở bản (không --join), sửa theo sổ hộ khẩu, và ghi thêm số điện thoại gia đình cho.",
		"laptop-c, alone in a village (no --join), corrects from the household book, and adds the family's phone number.")
	if err := t.startAgent(ctx, c); err != nil {
		return err
	}
	fixC := filepath.Join(t.dir, "sua-ten-c.json")
	if err := t.update(ctx, c, fixC, map[string]string{"full_name": correctionC, "phone": phoneC}); err != nil {
		return err
	}
	t.n.result("laptop-c sửa theo sổ hộ khẩu / corrects from the household book: %q, phone %s", correctionC, phoneC)
	if err := t.stop(c); err != nil {
		return err
	}

	t.n.explain("laptop-c về lại trụ sở và gặp laptop-b.", "laptop-c is back at the station and meets laptop-b.")
	if err := t.startAgent(ctx, c, b); err != nil {
		return err
	}
	agents := t.running()
	began := time.Now()
	want := []string{"laptop-b=" + correctionB, "laptop-c=" + correctionC}
	wantPhone := strings.ReplaceAll(phoneC, " ", "") // stored as digits
	err = waitFor(ctx, t.o.WaitLimit, func(ctx context.Context) (bool, string, error) {
		var state []string
		for _, a := range agents {
			r, err := get(ctx, a, t.fixID)
			if err != nil {
				return false, "", err
			}
			if got := conflictValues(r, "full_name"); !slices.Equal(got, want) || r.Fields["phone"] != wantPhone {
				state = append(state, fmt.Sprintf("%s shows full_name %v, phone %q", a.Name, got, r.Fields["phone"]))
			}
		}
		return len(state) == 0, strings.Join(state, "; "), nil
	})
	if err != nil {
		return fmt.Errorf("conflict did not reach every laptop: %w", err)
	}
	st, err := status(ctx, b)
	if err != nil {
		return err
	}
	if st.Conflicts != 1 {
		return fmt.Errorf("laptop-b counts %d dossiers in conflict, want 1", st.Conflicts)
	}
	t.conflicts = st.Conflicts
	t.n.result("cả %d máy thấy cùng một xung đột sau %s / all %d laptops show the same conflict after %s",
		len(agents), seconds(time.Since(began)), len(agents), seconds(time.Since(began)))

	t.n.command(t.o.Bin, "get", "--api", c.API, t.fixID)
	out, err := t.c.Run("get", "--api", c.API, t.fixID)
	if err != nil {
		return fmt.Errorf("fieldsync get: %w\n%s", err, out)
	}
	t.n.block(string(out))
	t.n.explain("Không giá trị nào bị âm thầm bỏ đi: cả hai được giữ, kèm máy và thời điểm sửa. Quản trị viên sẽ đối chiếu và chọn.",
		"Nothing was silently dropped: both values are kept, with the laptop and time of each. An admin will check and settle it.")
	t.n.explain("Số điện thoại chỉ một người sửa nên được nhận ngay, không xung đột.",
		"The phone number, changed by one officer only, merged cleanly: no conflict.")
	return nil
}

// conflictValues lists the live values of field in rec as "device=value",
// sorted.
func conflictValues(rec api.Record, field string) []string {
	var out []string
	for _, v := range rec.Conflicts[field] {
		out = append(out, v.Device+"="+v.Value)
	}
	slices.Sort(out)
	return out
}

// update writes fields to file and applies them to dossier t.fixID on a,
// as `fieldsync put --id` would.
func (t *trip) update(ctx context.Context, a *harness.Agent, file string, fields map[string]string) error {
	data, err := jsonText(fields)
	if err != nil {
		return err
	}
	if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
		return fmt.Errorf("write correction: %w", err)
	}
	t.n.command(t.o.Bin, "put", "--api", a.API, "--id", t.fixID, file)
	t.n.block(data)
	cctx, cancel := context.WithTimeout(ctx, apiCallLimit)
	defer cancel()
	if _, err := a.Client.Update(cctx, t.fixID, fields); err != nil {
		return fmt.Errorf("update on %s: %w", a.Name, err)
	}
	return nil
}

// stop stops a gracefully, as Ctrl-C in its window would.
func (t *trip) stop(a *harness.Agent) error {
	t.n.command("kill", "-TERM", strconv.Itoa(a.Pid()))
	began := time.Now()
	if err := a.Stop(); err != nil {
		return err
	}
	t.n.result("%s đã dừng sau %s / stopped after %s", a.Name, seconds(time.Since(began)), seconds(time.Since(began)))
	return nil
}

// cleanUp is step 12.
func (t *trip) cleanUp(context.Context) error {
	t.n.explain("Dừng mọi tác tử; dữ liệu đã nằm an toàn trong kho của từng máy.",
		"Stop every agent; the data is safe in each laptop's store.")
	agents := t.running()
	if t.isl != nil {
		for _, a := range t.isl.agents() {
			if a.Running() {
				agents = append(agents, a)
			}
		}
	}
	var restart []string
	if len(agents) > 0 {
		restart = agents[0].CommandLine()
	}
	// Stopped together: each takes most of a second to leave its peers.
	for _, a := range agents {
		t.n.command("kill", "-TERM", strconv.Itoa(a.Pid()))
	}
	began := time.Now()
	errs := make([]error, len(agents))
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = a.Stop()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var names []string
	for _, a := range agents {
		names = append(names, a.Name)
	}
	t.n.result("%s đã dừng sau %s / stopped after %s", strings.Join(names, ", "), seconds(time.Since(began)), seconds(time.Since(began)))
	if t.isl != nil && t.isl.stopPG != nil {
		t.isl.stopPG()
		t.n.result("PostgreSQL tạm đã dừng và xóa / the throwaway PostgreSQL is stopped and removed")
	}
	if t.o.Keep {
		t.n.explain("Thư mục tạm được giữ lại (--keep). Chạy lại một máy bằng:",
			"The temporary directory is kept (--keep). Start a laptop again with:")
		if restart != nil {
			t.n.command(restart...)
		}
		return nil
	}
	if err := os.RemoveAll(t.dir); err != nil {
		return fmt.Errorf("remove temporary directory: %w", err)
	}
	t.n.result("đã xóa thư mục tạm / temporary directory removed")
	return nil
}

// summary closes the demo.
func (t *trip) summary(times []stepTime, total time.Duration) {
	fmt.Fprintf(t.n.w, "\n%s\nTóm tắt / Summary\n", rule)
	tw := tabwriter.NewWriter(t.n.w, 0, 4, 2, ' ', tabwriter.AlignRight)
	for i, s := range times {
		fmt.Fprintf(tw, "%s%d.\t%s\t %s / %s\n", indent, i+1, seconds(s.took), s.vi, s.en)
	}
	fmt.Fprintf(tw, "%s\t%s\t Tổng / Total\n", indent, seconds(total))
	tw.Flush()
	var parts []string
	for _, tm := range teams {
		parts = append(parts, fmt.Sprintf("%s %d", tm.Laptop, t.by[tm.Laptop]))
	}
	fmt.Fprintf(t.n.w, "\n%s%d hồ sơ trên mọi máy / dossiers on every laptop (%s);\n", indent, len(t.all), strings.Join(parts, ", "))
	fmt.Fprintf(t.n.w, "%s%s giải quyết %d/%d xung đột, gộp %d cặp hồ sơ trùng, tách %d cặp là hai người /\n%ssettled %d of %d conflict(s), merged %d duplicate pair(s), kept %d pair(s) apart as two people.\n",
		indent, adminName, t.settled, t.conflicts, t.merged, t.distinct, indent, t.settled, t.conflicts, t.merged, t.distinct)
	if t.revokedBy > 0 {
		fmt.Fprintf(t.n.w, "%s%s bị thu hồi: %d máy của huyện từ chối nó sau %s, danh sách chỉ trao cho một máy /\n%s%s revoked: %d district devices refuse it after %s, the list handed to one of them.\n",
			indent, lostLaptop, t.revokedBy, seconds(t.revokedAfter), indent, lostLaptop, t.revokedBy, seconds(t.revokedAfter))
	}
	if is := t.isl; is != nil {
		whereVI, whereEN := "trong kho của máy chủ", "in the hub's store"
		if is.pgURL != "" {
			whereVI = fmt.Sprintf("%d hồ sơ trong PostgreSQL", is.pgRecords)
			whereEN = fmt.Sprintf("%d records in PostgreSQL", is.pgRecords)
		}
		fmt.Fprintf(t.n.w, "%sVạn Thạnh: %d hồ sơ của 2 máy trên đảo đã lên tỉnh (%s); island-a biết điều đó mà chưa từng gặp máy chủ /\n%s%d dossiers of 2 island laptops reached the province (%s); island-a knows without ever meeting the hub.\n",
			indent, is.delivered, whereVI, indent, is.delivered, whereEN)
		if b := is.bio; b != nil {
			whereVI, whereEN = "trong kho của máy chủ", "in the hub's store"
			switch {
			case b.ordered:
				whereVI = fmt.Sprintf("%d dòng fieldsync_attachments, vân tay trước ảnh", b.exported)
				whereEN = fmt.Sprintf("%d rows of fieldsync_attachments, fingerprints before the photo", b.exported)
			case b.exported > 0:
				whereVI = fmt.Sprintf("%d dòng fieldsync_attachments", b.exported)
				whereEN = fmt.Sprintf("%d rows of fieldsync_attachments", b.exported)
			}
			fmt.Fprintf(t.n.w, "%sẢnh và 10 vân tay của ông %s theo thuyền lên tỉnh (%s) /\n%sMr %s's photo and 10 fingerprints went up on the boat (%s).\n",
				indent, b.name, whereVI, indent, b.name, whereEN)
		}
	}
}

// jsonText renders fields as the JSON file an officer would pass to
// `fieldsync put`, keys sorted, diacritics as they are.
func jsonText(fields map[string]string) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(fields); err != nil {
		return "", fmt.Errorf("encode dossier: %w", err)
	}
	return buf.String(), nil
}
