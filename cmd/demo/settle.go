package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/cmd/internal/harness"
)

// Steps 8 and 9: the district admin's laptop joins the team, settles the
// conflict of step 7, then finds two pairs of possible duplicates, merges
// one (the same person captured twice) and keeps the other apart (two
// people whose names differ only by y and i).

// decided is the name the admin settles on: the commune's birth register
// agrees with the old ID card.
const decided = correctionB

// The duplicates of step 9: Giàng Thị Mỷ, captured in Pả Vi in step 3, is
// captured again at the Khâu Vai market, where she now lives; and two old
// women born the same year whose names differ only by y and i.
const (
	marketVillage = "Pắc Cạm"
	marketNotes   = "Thu nhận tại chợ phiên Khâu Vai / captured at the Khâu Vai market"
	elderMy       = "Lầu Thị Mỷ"
	elderMyHome   = "Sơn Vĩ"
	elderMi       = "Lầu Thị Mỉ"
	elderMiHome   = "Pả Vi"
	eldersBorn    = 1952
)

// settleConflict is step 8.
func (t *trip) settleConflict(ctx context.Context) error {
	admin, b, d := t.ag[adminName], t.ag["laptop-b"], t.ag["laptop-d"]
	t.n.explain(fmt.Sprintf("Tối đó %s bật máy quản trị ở trụ sở huyện; máy nối với laptop-d của đội trưởng, cũng ở trụ sở.", adminOfficer),
		fmt.Sprintf("That evening %s switches on the admin laptop at the district station; it joins the team leader's laptop-d, also at the station.", adminOfficer))
	if err := t.startAgent(ctx, admin, d); err != nil {
		return err
	}
	if _, err := t.converge(ctx, admin); err != nil {
		return err
	}
	if err := t.showWebPage(ctx, admin); err != nil {
		return err
	}

	// The conflict's values travel after the dossiers they change: wait
	// for both on the admin.
	want := []string{"laptop-b=" + correctionB, "laptop-c=" + correctionC}
	err := waitFor(ctx, t.o.WaitLimit, func(ctx context.Context) (bool, string, error) {
		cs, err := conflicts(ctx, admin)
		if err != nil {
			return false, "", err
		}
		if len(cs) != 1 {
			return false, fmt.Sprintf("%s lists %d conflicts", adminName, len(cs)), nil
		}
		got := valuesOf(cs[0].Values)
		return cs[0].Record == t.fixID && cs[0].Field == "full_name" && slices.Equal(got, want),
			fmt.Sprintf("%s shows %s %s %v", adminName, cs[0].Record, cs[0].Field, got), nil
	})
	if err != nil {
		return fmt.Errorf("the conflict did not reach the admin: %w", err)
	}
	cs, err := conflicts(ctx, admin)
	if err != nil {
		return err
	}
	for _, v := range cs[0].Values {
		if wantOfficer := t.teams[v.Device].Officer; v.Officer != wantOfficer {
			return fmt.Errorf("the conflict shows officer %q for %s, want %q", v.Officer, v.Device, wantOfficer)
		}
	}
	t.n.explain("Hàng xung đột trên máy quản trị: mỗi giá trị kèm máy, cán bộ và thời điểm sửa.",
		"The admin's conflict queue: each value with the laptop, officer and time of the change.")
	if _, err := t.show("conflicts", "--api", admin.API); err != nil {
		return err
	}

	t.n.explain("Trung úy Mến ở Khâu Vai thử tự chọn tên trên laptop-b; máy thực địa thấy xung đột nhưng không được giải quyết.",
		"Lieutenant Mến in Khâu Vai tries to pick the name on laptop-b herself; a field laptop sees the conflict but may not settle it.")
	if err := t.refused(ctx, b); err != nil {
		return err
	}

	t.n.explain(fmt.Sprintf("%s gọi Công an xã Pả Vi đối chiếu sổ đăng ký khai sinh gốc: tên đúng là %q (CMND cũ đúng, sổ hộ khẩu ghi nhầm y/i).", adminOfficer, decided),
		fmt.Sprintf("%s calls the Pả Vi commune police to check the original birth register: the name is %q (the old ID card was right; the household book swapped y and i).", adminOfficer, decided))
	// Timed from the command, as the admin would count.
	began := time.Now()
	if _, err := t.show("resolve", "--api", admin.API, t.fixID, "full_name", decided); err != nil {
		return err
	}
	fields := t.fieldLaptops()
	took, err := t.reach(ctx, began, fields, func(ctx context.Context, a *harness.Agent) (bool, string, error) {
		r, err := get(ctx, a, t.fixID)
		if err != nil {
			return false, "", err
		}
		return r.Fields["full_name"] == decided && len(r.Conflicts) == 0,
			fmt.Sprintf("%s shows %q with %d fields in conflict", a.Name, r.Fields["full_name"], len(r.Conflicts)), nil
	})
	if err != nil {
		return fmt.Errorf("the decision did not reach every laptop: %w", err)
	}
	for _, a := range fields {
		t.n.result("%s: %q, không còn xung đột, %s sau lệnh resolve / no conflict left, %s after the resolve command", a.Name, decided, seconds(took[a.Name]), seconds(took[a.Name]))
	}
	t.settled = 1
	c := t.ag["laptop-c"]
	if _, err := t.show("conflicts", "--api", c.API); err != nil {
		return err
	}
	t.n.explain("Quyết định là một thay đổi có chữ ký của máy quản trị, đi qua các máy như mọi thay đổi khác; máy nào cũng kiểm rằng người ký có vai trò admin.",
		"The decision is a change signed by the admin laptop, relayed like any other; every laptop checks that its signer holds the admin role.")
	return nil
}

// showWebPage names the admin page of a and checks that it answers.
func (t *trip) showWebPage(ctx context.Context, a *harness.Agent) error {
	url := "http://" + a.API + "/"
	t.n.explain("Máy quản trị có trang web quản trị; mở bằng trình duyệt trên chính máy đó, không cần Internet. Trang bằng tiếng Việt, nút English ở góc trên bên phải chuyển sang tiếng Anh. Mọi việc dưới đây cũng làm được bằng nút bấm trên trang (#/conflicts, #/duplicates).",
		"The admin laptop serves an admin web page; open it in a browser on that laptop itself, no Internet needed. It is in Vietnamese; the English button, top right, switches to English. Everything below can also be done with the page's buttons (#/conflicts, #/duplicates).")
	t.n.line("→ %s", url)
	ctx, cancel := context.WithTimeout(ctx, apiCallLimit)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("web page request: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("web page of %s: %w", a.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("web page of %s: %w", a.Name, err)
	}
	ctype := resp.Header.Get("Content-Type")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(ctype, "text/html") || !strings.Contains(string(body), `lang="vi"`) {
		return fmt.Errorf("web page of %s answered %d %q, want 200 text/html in Vietnamese", a.Name, resp.StatusCode, ctype)
	}
	t.n.result("trang trả lời %d (%s, tiếng Việt) / the page answers %d", resp.StatusCode, ctype, resp.StatusCode)
	return nil
}

// refused shows that a field laptop's `fieldsync resolve` is refused, in
// both languages, and that the conflict is still there.
func (t *trip) refused(ctx context.Context, a *harness.Agent) error {
	args := []string{"resolve", "--api", a.API, t.fixID, "full_name", correctionB}
	t.n.command(append([]string{t.o.Bin}, args...)...)
	out, err := t.c.Run(args...)
	t.n.block(string(out))
	var exit *exec.ExitError
	switch {
	case err == nil:
		return fmt.Errorf("a field laptop settled a conflict:\n%s", out)
	case !errors.As(err, &exit):
		return fmt.Errorf("fieldsync resolve: %w", err)
	case !strings.Contains(string(out), "only an admin device") || !strings.Contains(string(out), "chỉ máy quản trị"):
		return fmt.Errorf("refusal does not say why in both languages:\n%s", out)
	}
	r, err := get(ctx, a, t.fixID)
	if err != nil {
		return err
	}
	if len(r.Conflicts["full_name"]) != 2 {
		return fmt.Errorf("after the refusal %s shows %d values of full_name, want 2", a.Name, len(r.Conflicts["full_name"]))
	}
	t.n.result("bị từ chối (HTTP 403, mã thoát %d); xung đột vẫn còn nguyên / refused (HTTP 403, exit code %d); the conflict is untouched",
		exit.ExitCode(), exit.ExitCode())
	return nil
}

// duplicates is step 9.
func (t *trip) duplicates(ctx context.Context) error {
	a, b, c := t.ag["laptop-a"], t.ag["laptop-b"], t.ag["laptop-c"]
	admin := t.ag[adminName]
	first, err := get(ctx, b, t.twiceID)
	if err != nil {
		return err
	}
	name := first.Fields["full_name"]
	t.n.explain(fmt.Sprintf("Ở chợ phiên Khâu Vai, tổ Khâu Vai (laptop-b) nhập hồ sơ cho chị %s mà không biết tổ Pả Vi đã nhập chị ở bước 3: chị lấy chồng về Khâu Vai, có số điện thoại mới.", name),
		fmt.Sprintf("At the Khâu Vai market, the Khâu Vai team (laptop-b) captures %s, not knowing the Pả Vi team captured her in step 3: she married into Khâu Vai and has a new phone.", name))
	t.n.explain(fmt.Sprintf("Cùng ngày, hai cụ bà khác nhau, cùng sinh năm %d và chỉ nhớ năm sinh: laptop-c thăm nhà cụ %q ở %s, còn ở %s laptop-a nhập cụ %q. Hai tên chỉ khác nhau chữ y và i.", eldersBorn, elderMy, elderMyHome, elderMiHome, elderMi),
		fmt.Sprintf("The same day two different old women, both born in %d and remembering only the year: laptop-c visits %q at home in %s, and in %s laptop-a captures %q. The names differ only by y and i.", eldersBorn, elderMy, elderMyHome, elderMiHome, elderMi))
	captures := []struct {
		a *harness.Agent
		d map[string]string
	}{
		{b, t.gen.recapture(t.teams["laptop-b"], first.Fields, marketVillage, marketNotes)},
		{c, t.gen.elder(t.teams["laptop-c"], person{Name: elderMy, Ethnicity: "Mông", Sex: "nữ"}, elderMyHome, eldersBorn)},
		{a, t.gen.elder(t.teams["laptop-a"], person{Name: elderMi, Ethnicity: "Mông", Sex: "nữ"}, elderMiHome, eldersBorn)},
	}
	var made []string
	for _, x := range captures {
		got, err := t.create(ctx, x.a, []map[string]string{x.d})
		if err != nil {
			return err
		}
		t.record(x.a.Name, got)
		made = append(made, got[0])
		t.n.result("%s nhập / captures %q, sinh / born %s, số định danh / ID %s", x.a.Name, x.d["full_name"], x.d["date_of_birth"], x.d["personal_id"])
	}
	againID, myID, miID := made[0], made[1], made[2] // Giàng Thị Mỷ again; Lầu Thị Mỷ; Lầu Thị Mỉ
	if _, err := t.converge(ctx, t.running()...); err != nil {
		return err
	}

	t.n.explain("Máy nào cũng tự tìm hồ sơ có thể trùng: cùng số định danh (personal_id), hoặc cùng họ tên và ngày sinh (name_dob), bỏ qua dấu và coi y, i là một.",
		"Every laptop looks for possible duplicates itself: the same personal ID (personal_id), or the same name and date of birth (name_dob), ignoring diacritics, with y and i as one letter.")
	want := []api.Duplicate{
		{Reason: "personal_id", Records: sortedIDs(t.twiceID, againID)},
		{Reason: "name_dob", Records: sortedIDs(myID, miID)},
	}
	err = waitFor(ctx, t.o.WaitLimit, func(ctx context.Context) (bool, string, error) {
		ds, err := dups(ctx, admin)
		if err != nil {
			return false, "", err
		}
		return sameGroups(ds, want), fmt.Sprintf("%s lists %s", adminName, groupsText(ds)), nil
	})
	if err != nil {
		return fmt.Errorf("the admin did not find both pairs: %w", err)
	}
	if _, err := t.show("duplicates", "--api", admin.API); err != nil {
		return err
	}
	if err := t.dossierTable(ctx, admin, []string{t.twiceID, againID, myID, miID}); err != nil {
		return err
	}

	chosen, err := get(ctx, admin, againID)
	if err != nil {
		return err
	}
	t.n.explain(fmt.Sprintf("Cặp thứ nhất cùng số định danh: một người. %s gộp, giữ hồ sơ nhập trước (ảnh, vân tay ở Pả Vi) và chọn xã, địa chỉ, số điện thoại mới từ hồ sơ ở chợ.", adminOfficer),
		fmt.Sprintf("The first pair shares a personal ID: one person. %s merges them, keeping the first dossier (photo and fingerprints from Pả Vi) and choosing the commune, address and new phone from the market's.", adminOfficer))
	picks := []string{"commune", "permanent_address", "phone"}
	began := time.Now() // timed from the merge command
	args := []string{"merge", "--api", admin.API, t.twiceID, againID}
	for _, f := range picks {
		args = append(args, "--field", f+"="+chosen.Fields[f])
	}
	if _, err := t.show(args...); err != nil {
		return err
	}
	t.merged = 1
	t.n.explain("Cặp thứ hai khác số định danh, khác xã: hai người. Quản trị viên ghi nhận để máy không báo trùng nữa.",
		"The second pair has two personal IDs and two communes: two people. The admin records that, so no laptop flags them again.")
	if _, err := t.show("distinct", "--api", admin.API, myID, miID); err != nil {
		return err
	}
	t.distinct = 1

	laptops := t.fieldLaptops()
	took, err := t.reach(ctx, began, laptops, func(ctx context.Context, x *harness.Agent) (bool, string, error) {
		sv, err := get(ctx, x, t.twiceID)
		if err != nil {
			return false, "", err
		}
		rt, err := get(ctx, x, againID)
		if err != nil {
			return false, "", err
		}
		ds, err := dups(ctx, x)
		if err != nil {
			return false, "", err
		}
		ok := rt.RetiredInto == t.twiceID && slices.Equal(sv.MergedFrom, []string{againID}) && len(ds) == 0
		for _, f := range picks {
			ok = ok && sv.Fields[f] == chosen.Fields[f]
		}
		return ok, fmt.Sprintf("%s: retired_into %q, merged_from %v, %s", x.Name, rt.RetiredInto, sv.MergedFrom, groupsText(ds)), nil
	})
	if err != nil {
		return fmt.Errorf("the merge did not reach every laptop: %w", err)
	}
	for _, x := range laptops {
		t.n.result("%s: đã gộp, không còn hồ sơ trùng, %s sau lệnh merge / merged, no duplicates left, %s after the merge command", x.Name, seconds(took[x.Name]), seconds(took[x.Name]))
	}

	t.n.explain("Hồ sơ bị gộp không bị xóa: nó mang con trỏ retired_into đến hồ sơ còn lại, và sửa đổi đến sau vẫn được giữ.",
		"The merged-away dossier is not deleted: it carries a retired_into pointer to the survivor, and edits arriving later are kept.")
	if err := t.showJSON(c, againID, "id", "retired_into"); err != nil {
		return err
	}
	if err := t.showJSON(c, t.twiceID, "id", "merged_from"); err != nil {
		return err
	}
	if _, err := t.show("duplicates", "--api", c.API); err != nil {
		return err
	}
	return t.showHistory(ctx, admin, t.twiceID)
}

// fieldLaptops lists the field laptops now running.
func (t *trip) fieldLaptops() []*harness.Agent {
	var out []*harness.Agent
	for _, a := range t.running() {
		if a.Role == "field" {
			out = append(out, a)
		}
	}
	return out
}

// reach waits until cond holds on every agent and returns, per agent, how
// long after began it first held.
func (t *trip) reach(ctx context.Context, began time.Time, agents []*harness.Agent, cond func(context.Context, *harness.Agent) (bool, string, error)) (map[string]time.Duration, error) {
	took := map[string]time.Duration{}
	err := waitFor(ctx, t.o.WaitLimit, func(ctx context.Context) (bool, string, error) {
		var state []string
		for _, a := range agents {
			if _, ok := took[a.Name]; ok {
				continue
			}
			ok, s, err := cond(ctx, a)
			if err != nil {
				return false, "", err
			}
			if ok {
				took[a.Name] = time.Since(began)
				continue
			}
			state = append(state, s)
		}
		return len(state) == 0, strings.Join(state, "; "), nil
	})
	return took, err
}

// show prints a fieldsync command, runs it and prints its output.
func (t *trip) show(args ...string) ([]byte, error) {
	t.n.command(append([]string{t.o.Bin}, args...)...)
	out, err := t.c.Run(args...)
	if err != nil {
		return out, fmt.Errorf("fieldsync %s: %w\n%s", args[0], err, out)
	}
	t.n.block(string(out))
	return out, nil
}

// showJSON prints `fieldsync get --json id` on a, only the keys given.
func (t *trip) showJSON(a *harness.Agent, id string, keys ...string) error {
	args := []string{"get", "--api", a.API, "--json", id}
	t.n.command(append([]string{t.o.Bin}, args...)...)
	out, err := t.c.Run(args...)
	if err != nil {
		return fmt.Errorf("fieldsync get --json: %w\n%s", err, out)
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(out, &all); err != nil {
		return fmt.Errorf("read get json: %w", err)
	}
	part := map[string]json.RawMessage{}
	for _, k := range keys {
		v, ok := all[k]
		if !ok {
			return fmt.Errorf("get json of %s has no %q", id, k)
		}
		part[k] = v
	}
	text, err := json.MarshalIndent(part, "", "  ")
	if err != nil {
		return fmt.Errorf("format get json: %w", err)
	}
	t.n.line("(chỉ %s / only %s)", strings.Join(keys, ", "), strings.Join(keys, ", "))
	t.n.block(string(text))
	return nil
}

// showHistory prints `fieldsync history` of id: every change with its
// laptop and officer, the creation's fields left out.
func (t *trip) showHistory(ctx context.Context, a *harness.Agent, id string) error {
	t.n.explain("Lịch sử hồ sơ còn lại: ai đã làm gì, trên máy nào, lúc nào.",
		"The survivor's history: who did what, on which laptop, when.")
	args := []string{"history", "--api", a.API, id}
	t.n.command(append([]string{t.o.Bin}, args...)...)
	out, err := t.c.Run(args...)
	if err != nil {
		return fmt.Errorf("fieldsync history: %w\n%s", err, out)
	}
	cctx, cancel := context.WithTimeout(ctx, apiCallLimit)
	defer cancel()
	hist, err := a.Client.History(cctx, id)
	if err != nil {
		return fmt.Errorf("history on %s: %w", a.Name, err)
	}
	// One entry is a line starting at the margin, then its fields,
	// indented; the same order as the API's.
	var entries [][]string
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if len(entries) == 0 || !strings.HasPrefix(l, " ") {
			entries = append(entries, nil)
		}
		entries[len(entries)-1] = append(entries[len(entries)-1], l)
	}
	if len(entries) != len(hist) {
		return fmt.Errorf("history shows %d entries, the API %d", len(entries), len(hist))
	}
	var shown []string
	for i, e := range entries {
		if hist[i].Kind == "create" {
			shown = append(shown, e[0], fmt.Sprintf("  … (%d trường / fields)", len(e)-1))
			continue
		}
		shown = append(shown, e...)
	}
	t.n.block(strings.Join(shown, "\n"))
	var kinds []string
	for _, h := range hist {
		kinds = append(kinds, h.Kind+"@"+h.Device)
	}
	if len(hist) < 2 || kinds[0] != "create@laptop-a" || kinds[len(kinds)-1] != "merge@"+adminName || hist[len(hist)-1].Officer != adminOfficer {
		return fmt.Errorf("history of %s: %v", id, kinds)
	}
	return nil
}

// dossierTable prints who the dossiers ids are, as a held them.
func (t *trip) dossierTable(ctx context.Context, a *harness.Agent, ids []string) error {
	tw := tabwriter.NewWriter(t.n.w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%sHỒ SƠ/DOSSIER\tMÁY/LAPTOP\tHỌ TÊN/NAME\tSINH/BORN\tSỐ ĐỊNH DANH/ID\tĐỊA CHỈ/ADDRESS\n", resIndent)
	for _, id := range ids {
		r, err := get(ctx, a, id)
		if err != nil {
			return err
		}
		addr, _, _ := strings.Cut(r.Fields["permanent_address"], ", huyện")
		short := id
		if len(short) > 13 {
			short = short[:13] + "…"
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\t%s\n", resIndent, short, r.CreatedBy, r.Fields["full_name"],
			r.Fields["date_of_birth"], r.Fields["personal_id"], addr)
	}
	return tw.Flush()
}

// conflicts lists a's conflicts, bounded.
func conflicts(ctx context.Context, a *harness.Agent) ([]api.Conflict, error) {
	return bounded(ctx, a, "conflicts on", a.Client.Conflicts)
}

// dups lists a's possible duplicates, bounded.
func dups(ctx context.Context, a *harness.Agent) ([]api.Duplicate, error) {
	return bounded(ctx, a, "duplicates on", a.Client.Duplicates)
}

// valuesOf lists values as "device=value", sorted.
func valuesOf(vs []api.Value) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Device+"="+v.Value)
	}
	slices.Sort(out)
	return out
}

// sameGroups reports whether got holds exactly the groups of want (each
// reason with its records), in any order.
func sameGroups(got, want []api.Duplicate) bool {
	if len(got) != len(want) {
		return false
	}
	key := func(d api.Duplicate) string {
		return d.Reason + ":" + strings.Join(sortedIDs(d.Records...), ",")
	}
	have := map[string]bool{}
	for _, d := range got {
		have[key(d)] = true
	}
	for _, d := range want {
		if !have[key(d)] {
			return false
		}
	}
	return true
}

// groupsText shows duplicate groups for a wait's state.
func groupsText(ds []api.Duplicate) string {
	if len(ds) == 0 {
		return "no duplicates"
	}
	var parts []string
	for _, d := range ds {
		parts = append(parts, d.Reason+" "+strings.Join(d.Records, "+"))
	}
	return fmt.Sprintf("%d duplicate groups: %s", len(ds), strings.Join(parts, ", "))
}

// sortedIDs returns ids sorted, leaving ids alone.
func sortedIDs(ids ...string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}
