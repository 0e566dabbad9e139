package web_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/agent/web/webtest"
)

// End-to-end tests of the admin page in headless Chromium against the fake
// agent of fake_test.go. The browser runs in Vietnam's time zone, so the
// canned times (UTC) show seven hours later.

func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[webtest.Void]) {
	t.Helper()
	if err := webtest.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := webtest.Run(ctx, webtest.Eval[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	v, err := webtest.Run(ctx, webtest.Text(sel))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.Join(strings.Fields(v), " ")
}

// dumpOnFailure logs what the page shows and what it posted when t fails.
func dumpOnFailure(t *testing.T, ctx context.Context, f *fakeAgent) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		main, _ := webtest.Run(ctx, webtest.Text("main"))
		hash, _ := webtest.Run(ctx, webtest.Eval[string](`location.hash`))
		t.Logf("page at %s shows:\n%s", hash, main)
		t.Logf("posts: %v", f.Posts())
	})
}

func TestOverviewShowsDeviceTeamAndSafety(t *testing.T) {
	f := newFakeAgent(t, true)
	ctx := webtest.NewBrowser(t)
	dumpOnFailure(t, ctx, f)
	do(t, ctx, webtest.Open(f.URL()))
	for _, want := range []string{"admin-huyen", "Máy quản trị", "Công an huyện Mèo Vạc",
		"laptop-meovac-1", "laptop-pavi-3", "Không kết nối", "Đang đồng bộ",
		"Chỉ có trên máy này", "Đã có ở máy khác", "Đã gửi lên", "Chưa gửi lên", "Liên lạc lần cuối"} {
		do(t, ctx, webtest.WaitTextIn("main", want))
	}
	tiles := eval[map[string]string](t, ctx, `Object.fromEntries(Array.from(document.querySelectorAll('[data-tile]'))
		.map((el) => [el.dataset.tile, el.querySelector('.tile-value').textContent]))`)
	want := map[string]string{"records": "13", "conflicts": "3", "duplicates": "3", "at_risk": "3", "held_elsewhere": "41"}
	if !reflect.DeepEqual(tiles, want) {
		t.Errorf("tiles = %v, want %v", tiles, want)
	}
	// Last contact 2026-11-17 08:30 UTC is 15:30 in Vietnam.
	do(t, ctx, webtest.WaitTextIn("main", "17/11/2026 15:30"))
	if got := text(t, ctx, "#count-conflicts"); got != "3" {
		t.Errorf("conflicts badge %q, want 3", got)
	}
	// A tile leads to its queue.
	do(t, ctx, webtest.Click(`[data-tile="duplicates"]`), webtest.WaitTextIn("main h1", "Hồ sơ có thể trùng"))
}

// Alerts show in both languages whatever the switch says, naming the
// device; a clone alert gives both addresses and since when.
func TestOverviewShowsForkAndCloneAlerts(t *testing.T) {
	f := newFakeAgent(t, true)
	since := baseTime.Add(-2 * time.Hour) // 2026-11-17 23:30 UTC, 06:30 the next day in Vietnam
	f.mu.Lock()
	f.alerts = []api.Alert{
		{Kind: api.AlertFork, Device: devB.id, Seq: 7},
		{Kind: api.AlertClone, Device: devB.id, Addrs: []string{"192.168.1.20:7422", "192.168.1.31:7422"}, Since: &since},
	}
	f.mu.Unlock()
	ctx := webtest.NewBrowser(t)
	dumpOnFailure(t, ctx, f)
	do(t, ctx, webtest.Open(f.URL()), webtest.WaitTextIn(`[data-alert="clone"]`, "192.168.1.31:7422"))
	if n := eval[int](t, ctx, `document.querySelectorAll('.notice-alert [data-alert]').length`); n != 2 {
		t.Errorf("%d alerts shown, want 2", n)
	}
	clone := text(t, ctx, `[data-alert="clone"]`)
	for _, want := range []string{devB.name, "192.168.1.20:7422, 192.168.1.31:7422", "18/11/2026 06:30",
		"đang chạy cùng lúc ở hai địa chỉ", "online at two addresses at once", "fieldsync device init"} {
		if !strings.Contains(clone, want) {
			t.Errorf("clone alert %q lacks %q", clone, want)
		}
	}
	if vi, en := strings.Index(clone, "Cảnh báo"), strings.Index(clone, "Alert:"); vi < 0 || en < vi {
		t.Errorf("clone alert %q: want Vietnamese first, English beside it", clone)
	}
	if fork := text(t, ctx, `[data-alert="fork"]`); !strings.Contains(fork, "rẽ nhánh tại số 7") {
		t.Errorf("fork alert %q", fork)
	}
}

func TestDossierListSearchesAndOpensADossier(t *testing.T) {
	f := newFakeAgent(t, true)
	ctx := webtest.NewBrowser(t)
	dumpOnFailure(t, ctx, f)
	do(t, ctx, webtest.Open(f.URL()+"#/records"), webtest.WaitText("Giàng Thị Mai"))
	rows := func() int { return eval[int](t, ctx, `document.querySelectorAll('table.records tbody tr').length`) }
	if n := rows(); n != 13 {
		t.Fatalf("%d rows, want 13", n)
	}
	row := text(t, ctx, `tr[data-id="`+idCha+`"]`)
	for _, want := range []string{"Sùng Mí Chá", "1978", "Pả Vi", "2", idCha[:20]} {
		if !strings.Contains(row, want) {
			t.Errorf("row of %s %q lacks %q", idCha, row, want)
		}
	}
	if !strings.Contains(text(t, ctx, `tr[data-id="`+idHung1+`"]`), "Đã gộp") {
		t.Error("the merged dossier's row is not marked merged")
	}

	// Without diacritics or case, by name: đ matches d.
	do(t, ctx, webtest.Type("#search", "do thi hang"), webtest.WaitNoText("Giàng Thị Mai"), webtest.WaitText("Đỗ Thị Hằng"))
	if n := rows(); n != 1 {
		t.Errorf("search by name: %d rows, want 1", n)
	}
	if h := eval[string](t, ctx, `location.hash`); h != "#/records?q=do%20thi%20hang" {
		t.Errorf("hash after search %q", h)
	}
	// By commune, with diacritics.
	do(t, ctx, webtest.Clear("#search"), webtest.Type("#search", "Pả Vi"), webtest.WaitText("Sùng Mí Chá"),
		webtest.WaitNoText("Đỗ Thị Hằng"))
	if n := rows(); n != 2 {
		t.Errorf("search by commune: %d rows, want 2", n)
	}
	// By personal ID, with Enter.
	do(t, ctx, webtest.Clear("#search"), webtest.Type("#search", "002190005678"), webtest.PressEnter(), webtest.WaitText("Hoàng Thi Lan"),
		webtest.WaitNoText("Sùng Mí Chá"))
	if n := rows(); n != 2 {
		t.Errorf("search by personal ID: %d rows, want 2", n)
	}
	do(t, ctx, webtest.Clear("#search"), webtest.Type("#search", "không có ai"),
		webtest.WaitText("Không có hồ sơ nào khớp với “không có ai”."))

	// Open a dossier from the list, then Back returns to the search.
	do(t, ctx, webtest.Clear("#search"), webtest.Type("#search", "do thi hang"), webtest.WaitText("Đỗ Thị Hằng"),
		webtest.ClickText("Đỗ Thị Hằng"), webtest.WaitText("Giàng Chu Phìn"))
	if h := eval[string](t, ctx, `location.hash`); h != "#/records/"+idHang {
		t.Errorf("hash on the dossier %q", h)
	}
	do(t, ctx, webtest.Eval[webtest.Void](`history.back()`), webtest.WaitTextIn("main h1", "Danh sách hồ sơ"),
		webtest.WaitText("Đỗ Thị Hằng"))
	if v := eval[string](t, ctx, `document.getElementById('search').value`); v != "do thi hang" {
		t.Errorf("search box after Back %q", v)
	}
}

func TestDossierListPages(t *testing.T) {
	f := newFakeAgent(t, true)
	f.CapPageSize(5)
	ctx := webtest.NewBrowser(t)
	dumpOnFailure(t, ctx, f)
	do(t, ctx, webtest.Open(f.URL()+"#/records"), webtest.WaitText("Đang hiển thị 5 hồ sơ"),
		webtest.ClickText("Xem thêm"), webtest.WaitText("Đang hiển thị 10 hồ sơ"),
		webtest.ClickText("Xem thêm"), webtest.WaitText("Đang hiển thị 13 hồ sơ"),
		webtest.WaitNoText("Xem thêm"))
	ids := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('table.records tbody tr')).map((r) => r.dataset.id)`)
	if len(ids) != 13 || ids[0] != idMai || ids[12] != idSu2 {
		t.Errorf("rows after paging: %v", ids)
	}
}

func TestDossierPageShowsConflictsHistoryAndMerge(t *testing.T) {
	f := newFakeAgent(t, true)
	ctx := webtest.NewBrowser(t)
	dumpOnFailure(t, ctx, f)
	do(t, ctx, webtest.Open(f.URL()+"#/records/"+idMai), webtest.WaitTextIn("main h1", "Giàng Thị Mai"))
	conflict := text(t, ctx, `.field-conflict[data-field="date_of_birth"]`)
	for _, want := range []string{"Ngày sinh", "Xung đột: 2 giá trị", "12/03/1994", "21/03/1994",
		"laptop-meovac-2", "Đại úy Nguyễn Thị Hoa", "18/11/2026 10:05"} {
		if !strings.Contains(conflict, want) {
			t.Errorf("conflicted field %q lacks %q", conflict, want)
		}
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('.field-conflict').length`); n != 1 {
		t.Errorf("%d conflicted fields shown, want 1", n)
	}
	hist := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('table.history tbody tr'))
		.map((r) => r.innerText.replace(/\s+/g, ' ').trim())`)
	if len(hist) != 2 {
		t.Fatalf("history rows %q, want 2", hist)
	}
	for i, want := range [][]string{
		{"18/11/2026 08:30", "laptop-meovac-1", "Thượng úy Lò Văn Sính", "Tạo mới", "Họ và tên: Giàng Thị Mai", "Ngày sinh: 12/03/1994"},
		{"18/11/2026 10:05", "laptop-meovac-2", "Đại úy Nguyễn Thị Hoa", "Sửa", "Ngày sinh: 21/03/1994"},
	} {
		for _, w := range want {
			if !strings.Contains(hist[i], w) {
				t.Errorf("history row %d %q lacks %q", i, hist[i], w)
			}
		}
	}

	// A merged dossier links to the one kept; its history says so.
	do(t, ctx, webtest.Open(f.URL()+"#/records/"+idHung1),
		webtest.WaitText("Hồ sơ này đã được gộp vào một hồ sơ khác."),
		webtest.WaitTextIn("table.history", "Gộp vào hồ sơ: "+idHung2),
		webtest.ClickText("Mở hồ sơ được giữ lại"),
		webtest.WaitText("002069001111"),
		webtest.WaitTextIn("table.history", "Gộp từ hồ sơ: "+idHung1),
		webtest.WaitTextIn(".notice-merged", "Các hồ sơ đã gộp vào hồ sơ này: "+idHung1))
	if h := eval[string](t, ctx, `location.hash`); h != "#/records/"+idHung2 {
		t.Errorf("survivor link went to %q", h)
	}

	// An unknown dossier: the agent's error, in both languages.
	do(t, ctx, webtest.Open(f.URL()+"#/records/"+idMissig),
		webtest.WaitTextIn(".error .error-main", "không tìm thấy hồ sơ"),
		webtest.WaitTextIn(".error .error-other", "record not found"))
}

func TestSettleConflictByPickingAValue(t *testing.T) {
	f := newFakeAgent(t, true)
	ctx := webtest.NewBrowser(t)
	dumpOnFailure(t, ctx, f)
	before := f.Record(idMai).Conflicts["date_of_birth"]
	card := `article.conflict[data-record="` + idMai + `"][data-field="date_of_birth"]`
	do(t, ctx, webtest.Open(f.URL()+"#/conflicts"), webtest.WaitVisible(card))
	for _, want := range []string{"Giàng Thị Mai", "Ngày sinh", "12/03/1994", "laptop-meovac-1", "Thượng úy Lò Văn Sính",
		"18/11/2026 08:30", "21/03/1994", "laptop-meovac-2", "Đại úy Nguyễn Thị Hoa", "18/11/2026 10:05"} {
		do(t, ctx, webtest.WaitTextIn(card, want))
	}
	if !eval[bool](t, ctx, `document.querySelector('`+card+` .actions button').disabled`) {
		t.Error("settle button enabled before a choice")
	}
	do(t, ctx, webtest.ClickTextIn(card, "21/03/1994"), webtest.ClickTextIn(card, "Giải quyết"),
		webtest.WaitGone(card), webtest.WaitText("Đã giải quyết xung đột của Giàng Thị Mai."),
		webtest.WaitTextIn("#count-conflicts", "2"))

	posts := f.Posts()
	if len(posts) != 1 {
		t.Fatalf("posts %v, want one", posts)
	}
	want := post{Path: "/v1/records/" + idMai + "/resolve", Body: map[string]any{
		"field": "date_of_birth", "value": "1994-03-21", "seen": []any{before[0].Op, before[1].Op}}}
	if !reflect.DeepEqual(posts[0], want) {
		t.Errorf("posted %v, want %v", posts[0], want)
	}
	// The other conflicts stay; the dossier shows the value, no conflict,
	// and the settling in its history.
	do(t, ctx, webtest.WaitTextIn("#conflict-queue", "Sùng Mí Chá"),
		webtest.Go("#/records/"+idMai), webtest.WaitTextIn("main h1", "Giàng Thị Mai"),
		webtest.WaitTextIn(`.field[data-field="date_of_birth"]`, "21/03/1994"),
		webtest.WaitTextIn("table.history", "Giải quyết xung đột"))
	if n := eval[int](t, ctx, `document.querySelectorAll('.field-conflict').length`); n != 0 {
		t.Errorf("%d conflicts still shown on the dossier", n)
	}
}

func TestSettleConflictWithATypedValueAndShowRefusal(t *testing.T) {
	f := newFakeAgent(t, true)
	ctx := webtest.NewBrowser(t)
	dumpOnFailure(t, ctx, f)
	name := `article.conflict[data-record="` + idCha + `"][data-field="full_name"]`
	addr := `article.conflict[data-record="` + idCha + `"][data-field="permanent_address"]`
	mai := `article.conflict[data-record="` + idMai + `"][data-field="date_of_birth"]`
	// A typed value the agent's schema refuses: its reasons, per field.
	do(t, ctx, webtest.Open(f.URL()+"#/conflicts"), webtest.WaitVisible(mai),
		webtest.Type(mai+" .custom-input", "1994-02-31"), webtest.ClickTextIn(mai, "Giải quyết"),
		webtest.WaitTextIn(mai+" .error-main", "1 trường không hợp lệ"),
		webtest.WaitTextIn(mai+" .error-fields", "Ngày sinh: "))
	if len(f.Posts()) != 0 {
		t.Fatalf("a refused value reached the backend: %v", f.Posts())
	}
	do(t, ctx, webtest.WaitVisible(name),
		webtest.Type(name+" .custom-input", "Sùng Mí Chả"), webtest.ClickTextIn(name, "Giải quyết"),
		webtest.WaitGone(name), webtest.WaitVisible(addr))
	posts := f.Posts()
	if len(posts) != 1 || posts[0].Body["value"] != "Sùng Mí Chả" || posts[0].Body["field"] != "full_name" {
		t.Fatalf("posts %v", posts)
	}
	if got := f.Record(idCha).Fields["full_name"]; got != "Sùng Mí Chả" {
		t.Errorf("full name now %q", got)
	}

	// The agent refuses: its words in both languages, and the item stays.
	f.RefuseNext(fmt.Errorf("%w: the dossier changed since it was shown, reload the page", api.ErrConflict))
	do(t, ctx, webtest.ClickTextIn(addr, "Thôn Sủng Pả B, xã Pả Vi"), webtest.ClickTextIn(addr, "Giải quyết"),
		webtest.WaitTextIn(addr+" .error-main", "xung đột với trạng thái hiện tại của hồ sơ"),
		webtest.WaitTextIn(addr+" .error-other", "the dossier changed since it was shown, reload the page"))
	if eval[bool](t, ctx, `document.querySelector('`+addr+` .actions button').disabled`) {
		t.Error("settle button stays disabled after a refusal")
	}
	if len(f.Record(idCha).Conflicts["permanent_address"]) != 2 {
		t.Error("a refused resolve changed the dossier")
	}
	// Trying again works.
	do(t, ctx, webtest.ClickTextIn(addr, "Giải quyết"), webtest.WaitGone(addr),
		webtest.WaitTextIn("#count-conflicts", "1"), webtest.WaitVisible(mai))
	if got := f.Record(idCha).Fields["permanent_address"]; got != "Thôn Sủng Pả B, xã Pả Vi" {
		t.Errorf("address now %q", got)
	}
}

func TestMergeAndDistinctDuplicates(t *testing.T) {
	f := newFakeAgent(t, true)
	ctx := webtest.NewBrowser(t)
	dumpOnFailure(t, ctx, f)
	pao := `article.duplicate[data-records="` + idPao1 + " " + idPao2 + `"]`
	lan := `article.duplicate[data-records="` + idLan1 + " " + idLan2 + `"]`
	su := `article.duplicate[data-records="` + idSu + " " + idSu2 + `"]`
	do(t, ctx, webtest.Open(f.URL()+"#/duplicates"), webtest.WaitVisible(pao), webtest.WaitVisible(lan), webtest.WaitVisible(su),
		webtest.WaitTextIn(pao+" h2", "Trùng họ tên và ngày sinh: Lò Văn Páo, 05/07/1987"),
		webtest.WaitTextIn(lan+" h2", "Trùng số định danh cá nhân: 002190005678"))

	// Keep the second Páo: fields it lacks come from the first.
	do(t, ctx, webtest.ClickTextIn(pao+" th.dup-col:last-child", "Giữ lại hồ sơ này"),
		webtest.WaitTextIn(pao+" .summary", "Giữ lại Lò Văn Páo ("+idPao2+"); gộp vào đó: Lò Văn Páo ("+idPao1+")."),
		webtest.ClickTextIn(pao, "Gộp hồ sơ"), webtest.WaitGone(pao),
		webtest.WaitTextIn("#count-duplicates", "2"))
	// Keep the first Lan, with the second one's date of birth, chosen by hand.
	do(t, ctx, webtest.ClickTextIn(lan+` tr[data-field="date_of_birth"]`, "20/11/1990"),
		webtest.ClickTextIn(lan, "Gộp hồ sơ"), webtest.WaitGone(lan))
	// The two Sú are different people.
	do(t, ctx, webtest.ClickTextIn(su, "Không phải cùng một người"), webtest.WaitGone(su),
		webtest.WaitText("Không có hồ sơ nào có thể trùng."))

	want := []post{
		{Path: "/v1/merge", Body: map[string]any{"survivor": idPao2, "other": idPao1,
			"fields": map[string]any{"phone": "0977111222"}}},
		{Path: "/v1/merge", Body: map[string]any{"survivor": idLan1, "other": idLan2,
			"fields": map[string]any{"date_of_birth": "1990-11-20", "phone": "0366000111"}}},
		{Path: "/v1/distinct", Body: map[string]any{"records": []any{idSu, idSu2}}},
	}
	if got := f.Posts(); !reflect.DeepEqual(got, want) {
		t.Errorf("posts:\n got %v\nwant %v", got, want)
	}
	if r := f.Record(idPao1); r.RetiredInto != idPao2 {
		t.Errorf("first Páo retired into %q", r.RetiredInto)
	}
	// The merged-away dossier now says where it went.
	do(t, ctx, webtest.Go("#/records/"+idLan2), webtest.WaitText("Hồ sơ này đã được gộp vào một hồ sơ khác."))
}

func TestFieldLaptopShowsQueuesReadOnly(t *testing.T) {
	f := newFakeAgent(t, false)
	ctx := webtest.NewBrowser(t)
	dumpOnFailure(t, ctx, f)
	controls := func() int {
		return eval[int](t, ctx, `document.querySelectorAll('main input, main button, main label.pick').length`)
	}
	do(t, ctx, webtest.Open(f.URL()+"#/conflicts"),
		webtest.WaitText("Chỉ máy quản trị mới giải quyết được"), webtest.WaitText("21/03/1994"),
		webtest.WaitText("Đại úy Nguyễn Thị Hoa"))
	if n := controls(); n != 0 {
		t.Errorf("read-only conflict queue has %d controls", n)
	}
	do(t, ctx, webtest.Go("#/duplicates"), webtest.WaitText("Chỉ máy quản trị mới giải quyết được"),
		webtest.WaitText("Thôn Xín Cái, xã Xín Cái"))
	if n := controls(); n != 0 {
		t.Errorf("read-only duplicate queue has %d controls", n)
	}
	do(t, ctx, webtest.ClickText("English"), webtest.WaitText("Only an admin device can settle"))
	if len(f.Posts()) != 0 {
		t.Errorf("a read-only page posted %v", f.Posts())
	}
}

func TestLanguageSwitchIsRemembered(t *testing.T) {
	f := newFakeAgent(t, true)
	ctx := webtest.NewBrowser(t)
	dumpOnFailure(t, ctx, f)
	do(t, ctx, webtest.Open(f.URL()), webtest.WaitTextIn("#nav", "Tổng quan"), webtest.WaitText("Các máy trong đội"))
	if l := eval[string](t, ctx, `document.documentElement.lang`); l != "vi" {
		t.Errorf("lang %q, want vi by default", l)
	}
	do(t, ctx, webtest.ClickText("English"),
		webtest.WaitTextIn("#nav", "Overview"), webtest.WaitTextIn("#nav", "Dossiers"),
		webtest.WaitTextIn("#nav", "Conflicts"), webtest.WaitTextIn("#nav", "Possible duplicates"),
		webtest.WaitText("Team devices"), webtest.WaitText("Admin device"), webtest.WaitNoText("Các máy trong đội"))
	if l := eval[string](t, ctx, `document.documentElement.lang`); l != "en" {
		t.Errorf("lang %q after the switch", l)
	}
	// Remembered across a reload; every view speaks English.
	do(t, ctx, webtest.Open(f.URL()+"#/conflicts"), webtest.WaitText("Conflict queue"),
		webtest.WaitText("Choose this value"), webtest.WaitText("Type a corrected value"),
		webtest.Go("#/duplicates"), webtest.WaitText("Same name and date of birth"), webtest.WaitText("Keep this dossier"),
		webtest.Go("#/records/"+idMai), webtest.WaitText("Date of birth"), webtest.WaitText("History"),
		webtest.Go("#/records"), webtest.WaitText("Search by name, personal ID or commune"))
	// Errors: English first, Vietnamese beside it.
	do(t, ctx, webtest.Go("#/records/"+idMissig),
		webtest.WaitTextIn(".error .error-main", "record not found"),
		webtest.WaitTextIn(".error .error-other", "không tìm thấy hồ sơ"))
	do(t, ctx, webtest.ClickText("Tiếng Việt"), webtest.WaitTextIn("#nav", "Tổng quan"),
		webtest.WaitTextIn(".error .error-main", "không tìm thấy hồ sơ"))
	if v := eval[string](t, ctx, `localStorage.getItem('fieldsync.lang')`); v != "vi" {
		t.Errorf("stored language %q", v)
	}
}

func TestSmallScreensNeedNoSidewaysScroll(t *testing.T) {
	f := newFakeAgent(t, true)
	ctx := webtest.NewBrowser(t)
	dumpOnFailure(t, ctx, f)
	views := []string{"#/", "#/records", "#/records/" + idCha, "#/conflicts", "#/duplicates", "#/records/" + idHung1}
	do(t, ctx, webtest.Open(f.URL()))
	for _, size := range [][2]int64{{webtest.SmallWidth, webtest.SmallHeight}, {webtest.LaptopWidth, webtest.LaptopHeight}} {
		for _, lang := range []string{"Tiếng Việt", "English"} {
			do(t, ctx, webtest.Viewport(size[0], size[1]))
			if eval[string](t, ctx, `document.getElementById('lang').textContent`) != lang {
				do(t, ctx, webtest.Click("#lang"))
			}
			for _, v := range views {
				do(t, ctx, webtest.Go(v), webtest.WaitVisible("main h1"))
				if err := webtest.Do(ctx, webtest.NoHorizontalScroll()); err != nil {
					t.Errorf("%dx%d %s %s: %v", size[0], size[1], lang, v, err)
				}
				// Targets a finger or a shaky touchpad can hit.
				small := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('button, .nav a, label.pick, .btn'))
					.filter((el) => el.offsetParent !== null && el.getBoundingClientRect().height < 40)
					.map((el) => el.textContent.trim() + ' ' + Math.round(el.getBoundingClientRect().height) + 'px')`)
				if len(small) > 0 {
					t.Errorf("%dx%d %s: targets under 40 px tall: %q", size[0], size[1], v, small)
				}
			}
		}
	}
}

// The helpers other packages' tests use to drive the queues, in English to
// show they do not depend on the words.
func TestWebtestHelpersSettleInEitherLanguage(t *testing.T) {
	f := newFakeAgent(t, true)
	ctx := webtest.NewBrowser(t)
	dumpOnFailure(t, ctx, f)
	do(t, ctx, webtest.Open(f.URL()), webtest.Click("#lang"), webtest.WaitTextIn("#nav", "Overview"),
		webtest.Go("#/conflicts"),
		webtest.SettleConflict(idMai, "date_of_birth", "1994-03-21"),
		webtest.SettleConflictTyped(idCha, "full_name", "Sùng Mí Chả"),
		webtest.WaitVisible(webtest.ConflictCard(idCha, "permanent_address")),
		webtest.Go("#/duplicates"), webtest.WaitVisible(webtest.DuplicateCard(idPao1, idPao2)))
	if got := f.Record(idMai).Fields["date_of_birth"]; got != "1994-03-21" {
		t.Errorf("date of birth %q", got)
	}
	if got := f.Record(idCha).Fields["full_name"]; got != "Sùng Mí Chả" {
		t.Errorf("full name %q", got)
	}
}

// A dossier's page shows its face photo, drawn from the agent's bytes, and
// which of the ten fingerprints exist, which are still on their way and
// which are missing.
func TestDossierPageShowsPhotoAndFingerprints(t *testing.T) {
	f := newFakeAgent(t, false)
	ctx := webtest.NewBrowser(t)
	dumpOnFailure(t, ctx, f)
	do(t, ctx, webtest.Open(f.URL()+"#/records/"+idMai), webtest.WaitTextIn("section.biometrics", "Ảnh và vân tay"))
	if err := harnessWait(t, ctx, `(() => { const i = document.querySelector('.photo img'); return !!i && i.complete && i.naturalWidth === 24 })()`); err != nil {
		t.Fatalf("the photo is not drawn: %v", err)
	}
	states := eval[map[string]string](t, ctx, `Object.fromEntries(Array.from(document.querySelectorAll('.finger'))
		.map((li) => [li.dataset.finger, li.dataset.state]))`)
	want := map[string]string{"right_thumb": "present", "right_index": "present", "left_thumb": "incomplete"}
	if len(states) != 10 {
		t.Fatalf("%d fingers shown, want 10: %v", len(states), states)
	}
	for finger, state := range states {
		if w := want[finger]; (w == "" && state != "missing") || (w != "" && state != w) {
			t.Errorf("finger %s shown %s, want %s", finger, state, cmp.Or(w, "missing"))
		}
	}
	bio := text(t, ctx, "section.biometrics")
	for _, w := range []string{"3/10 ngón", "Ngón cái phải", "laptop-meovac-1", "đang về", "chưa có"} {
		if !strings.Contains(bio, w) {
			t.Errorf("the photo and fingerprints card lacks %q:\n%s", w, bio)
		}
	}
	// A dossier without attachments says so.
	do(t, ctx, webtest.Open(f.URL()+"#/records/"+idDo), webtest.WaitTextIn("section.biometrics", "Chưa có ảnh."),
		webtest.WaitTextIn("section.biometrics", "0/10 ngón"))
}

// harnessWait polls a JavaScript condition for up to 10 s.
func harnessWait(t *testing.T, ctx context.Context, cond string) error {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if eval[bool](t, ctx, cond) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("timed out")
}
