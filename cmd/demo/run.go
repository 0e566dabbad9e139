package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/cmd/internal/harness"
)

// The teams of the trip: one deployment, the Mèo Vạc district police, whose
// laptops meet in the evening at the commune or district station.
var teams = []team{
	{Laptop: "laptop-a", Commune: "Pả Vi", Officer: "Thượng úy Sùng Mí Lử",
		TeamVI: "Tổ công tác 06 xã Pả Vi", TeamEN: "Project 06 team of Pả Vi commune"},
	{Laptop: "laptop-b", Commune: "Khâu Vai", Officer: "Trung úy Hoàng Thị Mến",
		TeamVI: "Tổ công tác 06 xã Khâu Vai", TeamEN: "Project 06 team of Khâu Vai commune"},
	{Laptop: "laptop-c", HomeVisits: true, Officer: "Đại úy Triệu Tiến Chài",
		TeamVI: "Đội lưu động huyện: thăm nhà người già, người khuyết tật",
		TeamEN: "district mobile team: home visits to the elderly and disabled"},
	{Laptop: "laptop-d", Commune: townCommune, Officer: "Thiếu tá Nguyễn Đức Long",
		TeamVI: "Máy của đội trưởng tại trụ sở Công an huyện",
		TeamEN: "the team leader's laptop at the district police station"},
}

// featured people open each laptop's capture, so the names a newcomer reads
// first are the familiar ones. The first is the dossier two officers later
// correct: captured from a paper record without its tone marks.
var featured = map[string][]person{
	"laptop-a": {
		{Name: "Vừ Mi Chứ", Ethnicity: "Mông", Sex: "nam"},
		{Name: "Giàng Thị Mỷ", Ethnicity: "Mông", Sex: "nữ"},
		{Name: "Sùng Seo Dính", Ethnicity: "Mông", Sex: "nam"},
	},
	"laptop-b": {
		{Name: "Thò Thị Súng", Ethnicity: "Mông", Sex: "nữ"},
		{Name: "Hoàng Văn Thào", Ethnicity: "Tày", Sex: "nam"},
	},
	"laptop-c": {
		{Name: "Lò Văn Páo", Ethnicity: "Thái", Sex: "nam", Origin: &elsewhere[0]},
		{Name: "Nguyễn Thị Hồng Nhung", Ethnicity: "Kinh", Sex: "nữ", Origin: &elsewhere[2]},
	},
}

// The district admin's laptop: at the district police station, issued to
// the officer who settles conflicts and duplicates for the district.
const (
	adminName    = "admin-huyen"
	adminOfficer = "Trung tá Giàng Xuân Thắng"
)

// The two corrections of step 7.
const (
	correctionB = "Vừ Mí Chứ" // from the person's old ID card
	correctionC = "Vừ Mý Chứ" // from the household registration book
	phoneC      = "0357 218 946"
)

// apiCallLimit bounds one call to an agent's API: the agent is on this
// machine, so anything slower is a fault.
const apiCallLimit = 10 * time.Second

// trip is one run of the demo.
type trip struct {
	o     options
	n     *narrator
	dir   string
	c     *harness.Cluster
	gen   *generator
	teams map[string]team
	ag    map[string]*harness.Agent
	// all holds every dossier id captured so far; by counts them per
	// laptop that created them.
	all   []string
	by    map[string]int
	fixID string // the dossier corrected twice in step 7
	// twiceID is Giàng Thị Mỷ's dossier, captured again in step 9.
	twiceID string
	// conflicts is how many dossiers are in conflict after step 7;
	// settled, merged and distinct what the admin settled in steps 8-9.
	conflicts, settled, merged, distinct int
	// revokedBy is how many district agents refused the lost laptop in
	// step 10, revokedAfter how long after the revoke command the last did.
	revokedBy    int
	revokedAfter time.Duration
	// isl is the province of the island trip (step 11), once it exists.
	isl *island
}

// stepTime is how long one step took, for the closing summary.
type stepTime struct {
	vi, en string
	took   time.Duration
}

// run plays the whole demo. Whatever happens, every agent it started is
// stopped and, unless o.Keep, the temporary directory is removed before it
// returns.
func run(ctx context.Context, o options) (err error) {
	if err := o.validate(); err != nil {
		return err
	}
	bin, err := filepath.Abs(o.Bin)
	if err != nil {
		return fmt.Errorf("binary path: %w", err)
	}
	out := &syncWriter{w: o.Out}
	dir, err := os.MkdirTemp(o.TempRoot, "fieldsync-demo-")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	t := &trip{
		o:   o,
		dir: dir,
		gen: newGenerator(o.Seed),
		n: &narrator{w: out, shown: strings.NewReplacer(
			bin, "fieldsync", dir, "$DEMO", o.Bin, "fieldsync")},
		teams: map[string]team{},
		ag:    map[string]*harness.Agent{},
		by:    map[string]int{},
	}
	for _, tm := range teams {
		t.teams[tm.Laptop] = tm
	}
	// Deferred in this order so the agents stop before their directories
	// go: defers run last-in first-out.
	defer func() {
		if o.Keep {
			fmt.Fprintf(out, "\nThư mục được giữ lại / kept: DEMO=%s\n", dir)
			return
		}
		if rmErr := os.RemoveAll(dir); rmErr != nil && err == nil {
			err = fmt.Errorf("remove temporary directory: %w", rmErr)
		}
	}()
	defer func() {
		if t.c == nil {
			return
		}
		if err != nil && !o.Logs && !errors.Is(err, context.Canceled) {
			t.dumpLogs(out)
		}
		t.c.Close()
		if t.isl != nil {
			t.isl.close()
		}
	}()

	fmt.Fprintf(out, "%s\n", rule)
	fmt.Fprintln(out, "fieldsync: một chuyến công tác, chạy thật trên máy này")
	fmt.Fprintln(out, "fieldsync: a field trip, played out on this machine with real agent processes")
	fmt.Fprintln(out, "\nCông an huyện Mèo Vạc (Hà Giang), Đề án 06. Mọi người trong các hồ sơ đều là hư cấu.")
	fmt.Fprintln(out, "Mèo Vạc district police (Hà Giang), Project 06. Every person in these dossiers is invented.")
	fmt.Fprintf(out, "\nĐể tự gõ lại các lệnh / to repeat the commands by hand:\n%sexport DEMO=%s   # fieldsync = %s\n", indent, dir, o.Bin)

	steps := []struct {
		vi, en string
		do     func(context.Context) error
	}{
		{"Cán bộ CNTT huyện tạo đợt triển khai, cấp danh tính cho ba máy và máy quản trị",
			"The district IT officer creates the deployment, provisions three field laptops and the admin's laptop", t.provision},
		{"Khởi động ba tác tử", "Start three agents", t.start},
		{"Cán bộ thu nhận hồ sơ trên cả ba máy", "Officers capture dossiers on all three laptops", t.capture},
		{"Hội tụ: ba máy giữ cùng một bộ hồ sơ", "Convergence: the three laptops hold the same dossiers", t.converged},
		{"Một máy đi vắng rồi quay lại", "One laptop goes away and comes back", t.awayAndBack},
		{"Chuyển tiếp: hồ sơ đến tay một máy chưa từng gặp máy tạo ra nó",
			"Relay: dossiers reach a laptop that never met their author", t.relay},
		{"Xung đột: hai cán bộ sửa cùng một trường khi không kết nối",
			"A conflict: two officers correct the same field apart", t.conflict},
		{"Quản trị viên huyện giải quyết xung đột", "The district admin settles the conflict", t.settleConflict},
		{"Hồ sơ trùng: một người nhập hai lần, hai người tên gần giống",
			"Duplicates: one person captured twice, two people with near names", t.duplicates},
		{"Mất máy: thu hồi laptop-c, cả đội từ chối nó", "A laptop is lost: laptop-c is revoked and the team refuses it", t.lostLaptopScene},
		{"Đảo Vạn Thạnh: hồ sơ, ảnh và vân tay lên đến tỉnh, biên nhận quay về đảo",
			"Vạn Thạnh's islands: dossiers, a photo and fingerprints reach the province, receipts come back", t.islandTrip},
		{"Dọn dẹp", "Clean up", t.cleanUp},
	}
	start := time.Now()
	var times []stepTime
	for i, s := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		t.n.step(i+1, s.vi, s.en)
		began := time.Now()
		err := s.do(ctx)
		times = append(times, stepTime{s.vi, s.en, time.Since(began)})
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return ctxErr
			}
			return fmt.Errorf("step %d (%s): %w", i+1, s.en, err)
		}
	}
	t.summary(times, time.Since(start))
	return nil
}

// provision is step 1.
func (t *trip) provision(context.Context) error {
	t.n.explain("Khóa gốc (authority) của đợt triển khai chỉ nằm trên máy quản trị; nó ký danh tính của từng máy.",
		"The deployment's authority key stays on the admin machine; it signs each laptop's identity.")
	t.n.command(t.o.Bin, "authority", "init", "--dir", filepath.Join(t.dir, "authority"))
	c, err := harness.NewCluster(t.o.Bin, t.dir)
	if err != nil {
		return err
	}
	t.c = c
	if t.o.Logs {
		c.LogTo = t.n.w
	}
	if t.o.onCluster != nil {
		t.o.onCluster(c)
	}
	t.n.result("đợt triển khai đã tạo / deployment created")
	t.n.explain("Mỗi máy được cấp cho một cán bộ (--officer); tên cán bộ đi kèm mọi thay đổi máy đó tạo ra.",
		"Each laptop is issued to an officer (--officer), whose name goes with every change it makes.")
	for _, name := range []string{"laptop-a", "laptop-b", "laptop-c"} {
		if err := t.provisionOne(name); err != nil {
			return err
		}
	}
	t.n.explain("Máy quản trị của huyện (--role admin) là máy duy nhất được giải quyết xung đột và hồ sơ trùng; máy thực địa chỉ xem được.",
		"The district's admin laptop (--role admin) is the only one that may settle conflicts and duplicates; field laptops can only look.")
	if err := t.provisionDevice(adminName, "admin", adminOfficer); err != nil {
		return err
	}
	t.n.result("%s: máy quản trị tại trụ sở Công an huyện (%s) / the district admin's laptop at the police station",
		adminName, adminOfficer)
	t.n.explain("Thư mục dữ liệu của mỗi máy (khóa riêng và chứng nhận) được chép sang đúng laptop đó.",
		"Each data directory (private key and credential) is copied onto its laptop.")
	return nil
}

// provisionDevice provisions a device of the district's deployment issued
// to officer, showing the command.
func (t *trip) provisionDevice(name, role, officer string) error {
	t.n.command(t.o.Bin, "device", "init", "--authority", t.c.Authority, "--name", name,
		"--data", filepath.Join(t.dir, name), "--role", role, "--officer", officer)
	a, err := t.c.ProvisionOfficer(name, role, officer)
	if err != nil {
		return err
	}
	if err := freshPorts(a); err != nil {
		return err
	}
	t.ag[name] = a
	return nil
}

func (t *trip) provisionOne(name string) error {
	tm := t.teams[name]
	if err := t.provisionDevice(name, "field", tm.Officer); err != nil {
		return err
	}
	t.n.result("%s: %s (%s) / %s", name, tm.TeamVI, tm.Officer, tm.TeamEN)
	return nil
}

// start is step 2.
func (t *trip) start(ctx context.Context) error {
	t.n.explain("Trên mạng LAN thật (điểm phát Wi-Fi ở nhà văn hóa thôn), các máy tự tìm thấy nhau bằng mDNS, không cần tùy chọn nào.",
		"On a real LAN (a Wi-Fi hotspot in the village hall) the laptops find each other by mDNS, with no flags at all.")
	t.n.explain("Ở đây cả ba chạy trên cùng một máy tính, nên tắt mDNS (--no-mdns) và chỉ cho máy sau --join địa chỉ của laptop-a.",
		"Here all three run on one computer, so mDNS is off (--no-mdns) and the others --join laptop-a's address.")
	a := t.ag["laptop-a"]
	if err := t.startAgent(ctx, a); err != nil {
		return err
	}
	for _, name := range []string{"laptop-b", "laptop-c"} {
		if err := t.startAgent(ctx, t.ag[name], a); err != nil {
			return err
		}
	}
	agents := t.running()
	began := time.Now()
	err := waitFor(ctx, t.o.WaitLimit, func(ctx context.Context) (bool, string, error) {
		var state []string
		ok := true
		for _, x := range agents {
			st, err := status(ctx, x)
			if err != nil {
				return false, "", err
			}
			peers := connectedPeers(st)
			state = append(state, fmt.Sprintf("%s sees %v", x.Name, peers))
			ok = ok && len(peers) == len(agents)-1
		}
		return ok, strings.Join(state, "; "), nil
	})
	if err != nil {
		return fmt.Errorf("laptops did not find each other: %w", err)
	}
	t.n.result("mỗi máy đã kết nối với hai máy kia sau %s / each laptop is connected to the other two after %s",
		seconds(time.Since(began)), seconds(time.Since(began)))
	t.n.explain("laptop-b và laptop-c chỉ biết địa chỉ của laptop-a; chúng biết nhau qua laptop-a (gossip).",
		"laptop-b and laptop-c only knew laptop-a's address; they learned of each other through it (gossip).")
	return nil
}

// startAttempts bounds how often an agent is started before giving up.
// Ports are probed free and then bound by the agent process; on a shared
// machine another process can take one in between, so a failed start is
// tried again on fresh ports.
const startAttempts = 3

// startAgent starts a, joined to join, and shows the command line.
func (t *trip) startAgent(ctx context.Context, a *harness.Agent, join ...*harness.Agent) error {
	var extra []string
	for _, j := range join {
		extra = append(extra, "--join", j.Listen)
	}
	how := "một mình / alone"
	if len(join) > 0 {
		var names []string
		for _, j := range join {
			names = append(names, j.Name)
		}
		how = "nối với / joined to " + strings.Join(names, ", ")
	}
	return t.startWith(ctx, a, extra, how)
}

// startWith starts a with extra flags, shows the command line, and says how
// it runs (how: "vi / en").
func (t *trip) startWith(ctx context.Context, a *harness.Agent, extra []string, how string) error {
	began := time.Now()
	for attempt := 1; ; attempt++ {
		err := a.Start(extra...)
		if err == nil {
			break
		}
		if attempt == startAttempts || ctx.Err() != nil {
			return fmt.Errorf("start %s (%d attempts): %w", a.Name, attempt, err)
		}
		if err := freshPorts(a); err != nil {
			return err
		}
		t.n.line("(%s không khởi động được, có thể một cổng vừa bị chiếm; thử lại với cổng khác / did not start, perhaps a port was just taken; retrying on other ports)", a.Name)
	}
	t.n.command(a.CommandLine()...)
	t.n.result("%s chạy, API trả lời sau %s (%s) / running, API answered after %s",
		a.Name, seconds(time.Since(began)), how, seconds(time.Since(began)))
	return nil
}

// capture is step 3.
func (t *trip) capture(ctx context.Context) error {
	t.n.explain("Mỗi tổ nhập hồ sơ trên máy của mình, như khi ở bản không có sóng: mỗi máy tự lưu, không chờ máy nào.",
		"Each team captures on its own laptop as if in a village with no signal: each laptop stores alone, waiting for none.")
	names := []string{"laptop-a", "laptop-b", "laptop-c"}
	batches := map[string][]map[string]string{}
	for _, name := range names {
		batches[name] = t.dossiers(name, t.o.PerLaptop)
	}

	// The first dossier, written to a file: the same as `fieldsync put`.
	sample := filepath.Join(t.dir, "ho-so-mau.json")
	data, err := jsonText(batches["laptop-a"][0])
	if err != nil {
		return err
	}
	if err := os.WriteFile(sample, []byte(data), 0o600); err != nil {
		return fmt.Errorf("write sample dossier: %w", err)
	}
	a := t.ag["laptop-a"]
	t.n.command("cat", sample)
	t.n.block(data)
	t.n.command(t.o.Bin, "put", "--api", a.API, sample)
	fmt.Fprintf(t.n.w, "%s(chương trình demo gửi %d hồ sơ mỗi máy qua cùng API đó / the demo sends %d dossiers per laptop through that same API)\n",
		resIndent, t.o.PerLaptop, t.o.PerLaptop)

	type res struct {
		name string
		ids  []string
		took time.Duration
		err  error
	}
	results := make(chan res, len(names))
	for _, name := range names {
		go func(name string) {
			began := time.Now()
			ids, err := t.create(ctx, t.ag[name], batches[name])
			results <- res{name, ids, time.Since(began), err}
		}(name)
	}
	got := map[string]res{}
	for range names {
		r := <-results
		got[r.name] = r
	}
	for _, name := range names {
		r := got[name]
		if r.err != nil {
			return r.err
		}
		t.record(name, r.ids)
		t.n.result("%s: %d hồ sơ trong %s / %d dossiers in %s (%s)", name, len(r.ids), seconds(r.took), len(r.ids), seconds(r.took), t.teams[name].TeamEN)
	}
	t.fixID = got["laptop-a"].ids[0]
	t.twiceID = got["laptop-a"].ids[1]

	fmt.Fprintf(t.n.w, "\n%sMột vài hồ sơ / a few dossiers:\n", indent)
	tw := tabwriter.NewWriter(t.n.w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%sMÁY/LAPTOP\tHỌ TÊN/NAME\tDÂN TỘC\tGIỚI\tSINH/BORN\tSỐ ĐỊNH DANH/ID\tXÃ/COMMUNE\n", resIndent)
	for _, name := range names {
		for _, d := range batches[name][:3] {
			fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\t%s\t%s\n", resIndent, name, d["full_name"], d["ethnicity"], d["sex"], d["date_of_birth"], d["personal_id"], d["commune"])
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	t.n.explain("Số định danh: 3 số mã tỉnh nơi đăng ký khai sinh (002 Hà Giang, 011 Điện Biên, 038 Thanh Hóa, 040 Nghệ An, 056 Khánh Hòa), 1 số giới tính và thế kỷ, 2 số năm sinh, 6 số ngẫu nhiên.",
		"Personal ID: 3 digits of the birth province, 1 for sex and century, 2 for the year of birth, 6 random digits.")
	return nil
}

// dossiers makes n dossiers captured by laptop, featured people first.
func (t *trip) dossiers(laptop string, n int) []map[string]string {
	tm := t.teams[laptop]
	var out []map[string]string
	for i := 0; i < n; i++ {
		var p person
		if f := featured[laptop]; i < len(f) && t.by[laptop] == 0 {
			p = f[i]
		}
		out = append(out, t.gen.dossier(tm, p))
	}
	return out
}

// create sends dossiers to a, in order, as `fieldsync put` would.
func (t *trip) create(ctx context.Context, a *harness.Agent, ds []map[string]string) ([]string, error) {
	var ids []string
	for _, d := range ds {
		cctx, cancel := context.WithTimeout(ctx, apiCallLimit)
		rec, err := a.Client.Create(cctx, d)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("put on %s: %w", a.Name, err)
		}
		ids = append(ids, rec.ID)
	}
	return ids, nil
}

// record notes dossiers created by laptop.
func (t *trip) record(laptop string, ids []string) {
	t.all = append(t.all, ids...)
	t.by[laptop] += len(ids)
}

// converged is step 4.
func (t *trip) converged(ctx context.Context) error {
	t.n.explain("Khi các máy gặp nhau, mỗi máy gửi cho máy kia đúng những gì máy kia còn thiếu (theo véc-tơ phiên bản). Ba máy này đang nối với nhau nên hồ sơ đi ngay khi vừa nhập.",
		"When laptops meet, each sends the other exactly what it is missing (by version vector). These three are connected, so dossiers travel as soon as they are captured.")
	agents := t.running()
	if _, err := t.converge(ctx, agents...); err != nil {
		return err
	}

	t.n.explain("Máy nhận báo lại đã lưu; nhờ đó mỗi máy biết hồ sơ của mình đã an toàn ở máy khác.",
		"Receivers acknowledge what they stored, so each laptop learns its own dossiers are safe elsewhere.")
	began := time.Now()
	err := waitFor(ctx, t.o.WaitLimit, func(ctx context.Context) (bool, string, error) {
		var state []string
		ok := true
		for _, a := range agents {
			st, err := status(ctx, a)
			if err != nil {
				return false, "", err
			}
			state = append(state, fmt.Sprintf("%s at_risk %d held %d", a.Name, st.AtRisk, st.Held))
			ok = ok && st.AtRisk == 0 && st.Held == t.by[a.Name]
		}
		return ok, strings.Join(state, "; "), nil
	})
	if err != nil {
		return fmt.Errorf("dossiers not acknowledged: %w", err)
	}
	t.n.result("không còn hồ sơ nào chỉ nằm trên một máy, sau %s / no dossier is held by one laptop only, after %s",
		seconds(time.Since(began)), seconds(time.Since(began)))

	a := t.ag["laptop-a"]
	t.n.command(t.o.Bin, "status", "--api", a.API)
	out, err := t.c.Run("status", "--api", a.API)
	if err != nil {
		return fmt.Errorf("fieldsync status: %w\n%s", err, out)
	}
	t.n.block(string(out))
	t.n.explain("\"Chỉ có trên máy này\" (at_risk) là số hồ sơ của máy sẽ mất nếu mất máy; \"Đã có ở máy khác\" (held_elsewhere) là số đã an toàn.",
		"\"Only on this laptop\" (at_risk) counts its dossiers lost with the laptop; \"Held elsewhere\" (held_elsewhere) those already safe.")
	return nil
}

// converge waits until every agent lists exactly t.all, printing each
// laptop's count and how long it took to get there.
func (t *trip) converge(ctx context.Context, agents ...*harness.Agent) (time.Duration, error) {
	return t.convergeTo(ctx, t.all, agents...)
}

// convergeTo waits until every agent lists exactly the dossiers all, and
// prints each one's count and how long it took to get there.
func (t *trip) convergeTo(ctx context.Context, all []string, agents ...*harness.Agent) (time.Duration, error) {
	want := slices.Sorted(slices.Values(all))
	began := time.Now()
	took := map[string]time.Duration{}
	err := waitFor(ctx, t.o.WaitLimit, func(ctx context.Context) (bool, string, error) {
		var state []string
		for _, a := range agents {
			if _, ok := took[a.Name]; ok {
				continue
			}
			have, err := ids(ctx, a)
			if err != nil {
				return false, "", err
			}
			if slices.Equal(have, want) {
				took[a.Name] = time.Since(began)
				continue
			}
			state = append(state, fmt.Sprintf("%s holds %d of %d dossiers", a.Name, len(have), len(want)))
		}
		return len(state) == 0, strings.Join(state, "; "), nil
	})
	if err != nil {
		return 0, fmt.Errorf("laptops did not converge: %w", err)
	}
	var last time.Duration
	for _, a := range agents {
		t.n.result("%s: %d hồ sơ / dossiers (khớp sau / matched after %s)", a.Name, len(want), seconds(took[a.Name]))
		last = max(last, took[a.Name])
	}
	return last, nil
}

// freshPorts gives a a new data port pair and API port on 127.0.0.1.
func freshPorts(a *harness.Agent) error {
	listen, err := harness.FreePortPair()
	if err != nil {
		return err
	}
	apiPort, err := harness.FreePort()
	if err != nil {
		return err
	}
	a.Listen = net.JoinHostPort("127.0.0.1", strconv.Itoa(listen))
	a.API = net.JoinHostPort("127.0.0.1", strconv.Itoa(apiPort))
	a.Client = a.NewClient()
	return nil
}

// running lists the district's agents now running: the field laptops by
// name, then the admin's.
func (t *trip) running() []*harness.Agent {
	var out []*harness.Agent
	for _, name := range t.laptops() {
		if a := t.ag[name]; a != nil && a.Running() {
			out = append(out, a)
		}
	}
	return out
}

// laptops names the district's devices: the field laptops, then the admin's.
func (t *trip) laptops() []string {
	var out []string
	for _, tm := range teams {
		out = append(out, tm.Laptop)
	}
	return append(out, adminName)
}

// dumpLogs prints the end of every agent's log after a failure.
func (t *trip) dumpLogs(w *syncWriter) {
	agents := t.c.Agents()
	if t.isl != nil && t.isl.c != nil {
		agents = append(agents, t.isl.c.Agents()...)
	}
	for _, a := range agents {
		lines := strings.Split(strings.TrimRight(a.Log(), "\n"), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		fmt.Fprintf(w, "\n--- nhật ký / log of %s (cuối / last %d lines):\n%s\n", a.Name, len(lines), strings.Join(lines, "\n"))
	}
}

// status asks a for its status, bounded.
func status(ctx context.Context, a *harness.Agent) (api.Status, error) {
	return bounded(ctx, a, "status of", a.Client.Status)
}

// get reads dossier id on a, bounded.
func get(ctx context.Context, a *harness.Agent, id string) (api.Record, error) {
	return bounded(ctx, a, "get on", func(ctx context.Context) (api.Record, error) { return a.Client.Get(ctx, id) })
}

// ids lists the dossier ids a holds, sorted.
func ids(ctx context.Context, a *harness.Agent) ([]string, error) {
	recs, err := list(ctx, a)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	slices.Sort(out)
	return out, nil
}

// list lists every dossier a holds, bounded.
func list(ctx context.Context, a *harness.Agent) ([]api.Record, error) {
	return bounded(ctx, a, "list on", a.Client.ListAll)
}

// bounded makes one API call to a within apiCallLimit, naming a in its
// error.
func bounded[T any](ctx context.Context, a *harness.Agent, what string, call func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, apiCallLimit)
	defer cancel()
	v, err := call(ctx)
	if err != nil {
		return v, fmt.Errorf("%s %s: %w", what, a.Name, err)
	}
	return v, nil
}

// connectedPeers names the peers st is connected to, sorted.
func connectedPeers(st api.Status) []string {
	var out []string
	for _, p := range st.Peers {
		if p.Connected {
			out = append(out, p.Name)
		}
	}
	slices.Sort(out)
	return out
}

// errWaitTimeout: a wait ran out of time.
var errWaitTimeout = errors.New("timed out")

// waitFor polls cond every 50 ms until it reports done, ctx ends, or limit
// passes; then the error says what state things were last seen in.
func waitFor(ctx context.Context, limit time.Duration, cond func(context.Context) (done bool, state string, err error)) error {
	deadline := time.Now().Add(limit)
	var state string
	var last error
	for {
		done, s, err := cond(ctx)
		if done {
			return nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		if err != nil {
			last = err
		} else {
			state, last = s, nil
		}
		if time.Now().After(deadline) {
			switch {
			case last != nil:
				return fmt.Errorf("%w after %s: %w", errWaitTimeout, limit, last)
			case state != "":
				return fmt.Errorf("%w after %s: %s", errWaitTimeout, limit, state)
			}
			return fmt.Errorf("%w after %s", errWaitTimeout, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
