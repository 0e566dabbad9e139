package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/agent/attach"
	"github.com/fieldsync/fieldsync/agent/export"
	"github.com/fieldsync/fieldsync/agent/export/pgtest"
)

// The island trip's biometrics (step 11, issue 9): on island-a the officer
// photographs one of the fishermen and scans his ten fingers with the real
// CLI (`fieldsync attach`); island-b merges the files over the village
// hall's Wi-Fi and carries them on the boat with the dossiers; the hub
// verifies each file whole and exports it to PostgreSQL, fingerprints before
// the photo and every file after its dossier's rows; back on the island,
// island-a learns from island-b's copy of the receipt that every file is
// delivered.

// Synthetic biometrics: seeded bytes behind real magic numbers, sized like
// the real thing (a face photo of about 300 KB, ISO/IEC 19794-2 templates
// of about 20 KB).
var (
	jpegHead = []byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0}
	fmrHead  = []byte("FMR\x00 20\x00")
)

// bioFile is one file the officer captured.
type bioFile struct {
	kind   attach.Kind
	finger string // fingerprints only
	path   string
	sha    string // hex
	size   int64
}

// biometrics is what the island scene captured and saw exported.
type biometrics struct {
	id, name string
	// files: the photo first, then the ten fingers in the order of a
	// ten-print card, as the officer captured them.
	files []bioFile
	// exported is how many files of the dossier PostgreSQL holds at the end
	// (0 without PostgreSQL); ordered: psql showed them written
	// fingerprints first, each after its dossier's rows.
	exported int
	ordered  bool
}

func (b *biometrics) photo() bioFile { return b.files[0] }

// bytesOf sums the sizes of the files of kind.
func (b *biometrics) bytesOf(kind attach.Kind) int64 {
	var n int64
	for _, f := range b.files {
		if f.kind == kind {
			n += f.size
		}
	}
	return n
}

// biometricFiles writes the synthetic photo and ten templates into dir. The
// seed is the demo's: the same seed, the same bytes.
func biometricFiles(dir string, seed uint64) ([]bioFile, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("biometrics directory: %w", err)
	}
	r := rand.New(rand.NewPCG(seed, 0x09)) // issue 9
	write := func(kind attach.Kind, finger, name string, head []byte, size int) (bioFile, error) {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		copy(data, head)
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return bioFile{}, fmt.Errorf("write %s: %w", name, err)
		}
		sum := sha256.Sum256(data)
		return bioFile{kind: kind, finger: finger, path: path, sha: hex.EncodeToString(sum[:]), size: int64(size)}, nil
	}
	photo, err := write(attach.KindPhoto, "", "anh-chan-dung.jpg", jpegHead, 280_000+r.IntN(40_000))
	if err != nil {
		return nil, err
	}
	files := []bioFile{photo}
	for _, finger := range attach.Fingers {
		f, err := write(attach.KindFingerprint, finger, "vantay-"+finger+".fmr", fmrHead, 19_000+r.IntN(2_000))
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

// captureBiometrics: on the island, the officer attaches a photo and ten
// fingerprints to one of island-a's dossiers with `fieldsync attach`, and
// island-b, on the same Wi-Fi, merges them before it sails.
func (t *trip) captureBiometrics(ctx context.Context, id, name string) error {
	is := t.isl
	a, b := is.a, is.b
	t.n.explain(fmt.Sprintf("Tại nhà văn hóa thôn, cán bộ chụp ảnh chân dung ông %s và lấy vân tay mười ngón của ông, rồi đính kèm vào hồ sơ của ông trên island-a bằng lệnh fieldsync attach. (Ở đây là tệp tổng hợp: một ảnh JPEG khoảng 300 KB và mười mẫu vân tay ISO/IEC 19794-2 khoảng 20 KB.)", name),
		fmt.Sprintf("At the village hall the officer takes Mr %s's portrait photo and all ten fingerprints, and attaches them to his dossier on island-a with fieldsync attach. (Synthetic files here: a JPEG photo of about 300 KB and ten ISO/IEC 19794-2 templates of about 20 KB.)", name))
	files, err := biometricFiles(filepath.Join(t.dir, "khanh-hoa", "sinh-trac"), t.o.Seed)
	if err != nil {
		return err
	}
	is.bio = &biometrics{id: id, name: name, files: files}

	photo := files[0]
	args := []string{"attach", "--api", a.API, "--id", id, "--kind", string(photo.kind), photo.path}
	t.n.command(append([]string{t.o.Bin}, args...)...)
	out, err := is.c.Run(args...)
	if err != nil {
		return fmt.Errorf("fieldsync attach: %w\n%s", err, out)
	}
	t.n.block(string(out))
	if err := attachedAs(out, photo); err != nil {
		return err
	}

	dir := filepath.Dir(files[1].path)
	t.n.script(fmt.Sprintf("for f in %s; do", strings.Join(attach.Fingers, " ")),
		fmt.Sprintf(`  printf '%%-13s' "$f"; %s attach --api %s --id %s --kind fingerprint --finger "$f" %s/vantay-$f.fmr`,
			t.o.Bin, a.API, id, shellQuote(dir)),
		"done")
	var shown strings.Builder
	for _, f := range files[1:] {
		out, err := is.c.Run("attach", "--api", a.API, "--id", id, "--kind", string(f.kind), "--finger", f.finger, f.path)
		if err != nil {
			return fmt.Errorf("fieldsync attach --finger %s: %w\n%s", f.finger, err, out)
		}
		if err := attachedAs(out, f); err != nil {
			return err
		}
		fmt.Fprintf(&shown, "%-13s%s", f.finger, out)
	}
	t.n.block(shown.String())
	t.n.explain("Mỗi lệnh in SHA-256 và kích thước của tệp. Tác tử kiểm loại tệp theo mấy byte đầu, cắt tệp thành các khối 64 KiB, và ghi vào hồ sơ một thay đổi đã ký nêu SHA-256 của tệp và của từng khối.",
		"Each command prints the file's SHA-256 and size. The agent checks the type by the first bytes, cuts the file into 64 KiB chunks, and writes a signed change on the dossier naming the file's SHA-256 and each chunk's.")

	began := time.Now()
	var list []api.Attachment
	err = waitFor(ctx, t.o.WaitLimit, func(ctx context.Context) (bool, string, error) {
		var err error
		list, err = bounded(ctx, b, "attachments on", func(ctx context.Context) ([]api.Attachment, error) {
			return b.Client.Attachments(ctx, id)
		})
		if err != nil {
			return false, "", err
		}
		whole := 0
		for _, at := range list {
			if at.Complete {
				whole++
			}
		}
		return len(list) == len(files) && whole == len(files),
			fmt.Sprintf("island-b lists %d attachments of %s, %d whole", len(list), id, whole), nil
	})
	if err != nil {
		return fmt.Errorf("island-b did not merge the biometrics: %w", err)
	}
	t.n.result("island-b giữ đủ ảnh và 10 vân tay, %s sau lệnh attach cuối (qua Wi-Fi, cùng phiên đồng bộ với hồ sơ) / island-b holds the photo and all 10 fingerprints whole, %s after the last attach (over the Wi-Fi, in the same sync session as the dossiers)",
		seconds(time.Since(began)), seconds(time.Since(began)))
	return t.boatCargo(ctx)
}

// attachedAs checks the output of `fieldsync attach` ("SHA256  SIZE"): the
// agent stored exactly the file the officer captured.
func attachedAs(out []byte, f bioFile) error {
	want := fmt.Sprintf("%s  %d", f.sha, f.size)
	if got := strings.TrimSpace(string(out)); got != want {
		return fmt.Errorf("fieldsync attach %s %s printed %q, want %q", f.kind, f.finger, got, want)
	}
	return nil
}

// boatCargo shows what island-b carries before it sails: every file whole
// on board, and the bytes no hub holds yet, by kind.
func (t *trip) boatCargo(ctx context.Context) error {
	is := t.isl
	bio := is.bio
	st, err := status(ctx, is.b)
	if err != nil {
		return err
	}
	up := st.Upstream
	wantPhoto, wantPrints := bio.bytesOf(attach.KindPhoto), bio.bytesOf(attach.KindFingerprint)
	if up.AttachmentsUndelivered != len(bio.files) || up.AttachmentsPendingBytes[string(attach.KindPhoto)] != wantPhoto ||
		up.AttachmentsPendingBytes[string(attach.KindFingerprint)] != wantPrints {
		return fmt.Errorf("island-b before the trip: %d attachments undelivered, pending %v; want %d, photo %d and fingerprint %d bytes",
			up.AttachmentsUndelivered, up.AttachmentsPendingBytes, len(bio.files), wantPhoto, wantPrints)
	}
	if st.Attachments.Incomplete != 0 || st.Attachments.PendingBytes[string(attach.KindPhoto)] != 0 ||
		st.Attachments.PendingBytes[string(attach.KindFingerprint)] != 0 {
		return fmt.Errorf("island-b before the trip still lacks bytes: %+v", st.Attachments)
	}
	t.n.command(t.o.Bin, "status", "--api", is.b.API, "--json")
	out, err := is.c.Run("status", "--api", is.b.API, "--json")
	if err != nil {
		return fmt.Errorf("fieldsync status --json: %w\n%s", err, out)
	}
	part, err := jsonPart(out, map[string][]string{
		"attachments": {"complete", "incomplete", "pending_bytes"},
		"upstream":    {"undelivered", "attachments_undelivered", "attachments_pending_bytes"},
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(t.n.w, "%s(island-b, vài trường / a few fields)\n", resIndent)
	t.n.block(part)
	t.n.explain(fmt.Sprintf("\"attachments.pending_bytes\" là phần island-b còn thiếu: 0, nó đã có đủ. \"upstream.attachments_pending_bytes\" là phần chưa máy chủ nào giữ, theo loại: %d byte vân tay và %d byte ảnh sẽ theo thuyền lên tỉnh.", wantPrints, wantPhoto),
		fmt.Sprintf("\"attachments.pending_bytes\" is what island-b still lacks: 0, it holds everything. \"upstream.attachments_pending_bytes\" is what no hub holds yet, by kind: %d bytes of fingerprints and %d of photo go up on the boat.", wantPrints, wantPhoto))
	return nil
}

// jsonPart picks fields out of `fieldsync status --json`: for each object
// named in keep, the fields listed, indented as the command indents them.
func jsonPart(out []byte, keep map[string][]string) (string, error) {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(out, &all); err != nil {
		return "", fmt.Errorf("read status json: %w", err)
	}
	st := map[string]map[string]json.RawMessage{}
	for obj, fields := range keep {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(all[obj], &m); err != nil {
			return "", fmt.Errorf("read status %s: %w", obj, err)
		}
		st[obj] = map[string]json.RawMessage{}
		for _, f := range fields {
			v, ok := m[f]
			if !ok {
				return "", fmt.Errorf("status json has no %s.%s", obj, f)
			}
			st[obj][f] = v
		}
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return "", fmt.Errorf("format status: %w", err)
	}
	return string(b), nil
}

// biometricsAtTheHub shows, once the boat's upload is receipted, that the
// hub holds every file and, where it exports, the rows of
// fieldsync_attachments in the order they were written.
func (t *trip) biometricsAtTheHub(ctx context.Context) error {
	is := t.isl
	bio := is.bio
	hst, err := status(ctx, is.hub)
	if err != nil {
		return err
	}
	if hst.Attachments.Complete < len(bio.files) || hst.Attachments.Incomplete != 0 || hst.Attachments.RefusedChunks != 0 {
		return fmt.Errorf("the hub holds %d files whole, %d not, refused %d chunks; want %d whole",
			hst.Attachments.Complete, hst.Attachments.Incomplete, hst.Attachments.RefusedChunks, len(bio.files))
	}
	t.n.result("%s giữ đủ %d tệp, đã kiểm từng tệp trọn vẹn theo SHA-256 trong thay đổi đã ký / holds all %d files, each checked whole against the SHA-256 in its signed change",
		hubName, len(bio.files), len(bio.files))
	if is.pgURL == "" {
		t.n.explain("Không có PostgreSQL: máy chủ giữ các tệp trong kho của nó, và biên nhận nói chúng đã trọn vẹn ở đó.",
			"No PostgreSQL: the hub keeps the files in its store, and its receipt says they are whole there.")
		return nil
	}
	psql, err := pgtest.Psql()
	if err != nil {
		n, cerr := attachmentRows(ctx, is.pgURL)
		if cerr != nil {
			return cerr
		}
		t.n.line("(không có psql để xem từng dòng / no psql to show the rows: %v)", err)
		if n != int64(len(bio.files)) {
			return fmt.Errorf("fieldsync_attachments holds %d rows, want %d", n, len(bio.files))
		}
		bio.exported = int(n)
		t.n.result("fieldsync_attachments: %d dòng / rows", n)
		return nil
	}

	t.n.explain("Trong PostgreSQL của tỉnh, theo thứ tự ghi (exported_at): trước hết các dòng của hồ sơ, rồi mười vân tay, ảnh sau cùng. Máy chủ hỏi vân tay trước ảnh, và ghi mỗi tệp ngay khi nó trọn vẹn.",
		"In the province's PostgreSQL, in the order written (exported_at): the dossier's rows first, then the ten fingerprints, the photo last. The hub asks for fingerprints before photos, and writes each file as soon as it is whole.")
	q := []string{
		"SELECT 'fieldsync_records' AS tbl, count(*) AS n, to_char(max(exported_at), 'HH24:MI:SS.US') AS exported_at",
		"  FROM fieldsync_records WHERE id = '" + bio.id + "'",
		"UNION ALL SELECT 'fieldsync_ops', count(*), to_char(max(exported_at), 'HH24:MI:SS.US')",
		"  FROM fieldsync_ops WHERE record_id = '" + bio.id + "';",
		"SELECT to_char(exported_at, 'HH24:MI:SS.US') AS exported_at, kind, finger, size, sha256,",
		"       exported_at > ALL (SELECT exported_at FROM fieldsync_ops WHERE record_id = a.record_id",
		"         UNION ALL SELECT exported_at FROM fieldsync_records WHERE id = a.record_id) AS after_dossier",
		"  FROM fieldsync_attachments a WHERE record_id = '" + bio.id + "' ORDER BY a.exported_at;",
	}
	t.n.script(append(append([]string{"psql " + shellQuote(is.pgURL) + " <<'SQL'"}, q...), "SQL")...)
	out, err := runPsql(ctx, psql, is.pgURL, strings.Join(q, "\n")+"\n")
	if err != nil {
		return err
	}
	t.n.block(out)
	if err := checkExported(psqlTables(out), bio); err != nil {
		return fmt.Errorf("PostgreSQL: %w\n%s", err, out)
	}
	bio.exported, bio.ordered = len(bio.files), true
	t.n.result("SHA-256 của ảnh trên đảo (fieldsync attach) và trong PostgreSQL: %s, giống nhau / the photo's SHA-256 on the island and in PostgreSQL: the same", bio.photo().sha)
	t.n.explain("after_dossier = t: mỗi tệp được ghi sau mọi dòng của hồ sơ (thay đổi đã ký và trạng thái hồ sơ). Mỗi dòng giữ trọn byte của tệp (cột bytes, không hiện ở đây).",
		"after_dossier = t: each file was written after every row of its dossier (signed changes and the dossier's state). Each row holds the file's bytes whole (column bytes, not shown here).")
	return nil
}

// attachmentRows counts the rows of fieldsync_attachments.
func attachmentRows(ctx context.Context, url string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, apiCallLimit)
	defer cancel()
	e, err := export.Open(ctx, export.Config{URL: url})
	if err != nil {
		return 0, fmt.Errorf("open PostgreSQL: %w", err)
	}
	defer e.Close()
	return e.AttachmentCount(ctx)
}

// runPsql runs the psql client on sql, as an operator would, with no
// psqlrc of the caller's to change the output's format.
func runPsql(ctx context.Context, psql, url, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, apiCallLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, psql, url)
	cmd.Stdin = strings.NewReader(sql)
	cmd.Env = append(os.Environ(), "PSQLRC=/dev/null", "PGOPTIONS=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("psql: %w\n%s", err, out)
	}
	return string(out), nil
}

// psqlTable is one result psql printed: its header and rows, cells trimmed.
type psqlTable struct {
	header []string
	rows   [][]string
}

// psqlTables reads the tables of psql's aligned output: a header line, a
// line of dashes, rows, and "(n rows)".
func psqlTables(out string) []psqlTable {
	var tables []psqlTable
	lines := strings.Split(out, "\n")
	cells := func(l string) []string {
		var c []string
		for _, x := range strings.Split(l, "|") {
			c = append(c, strings.TrimSpace(x))
		}
		return c
	}
	for i := 1; i < len(lines); i++ {
		sep := strings.TrimSpace(lines[i])
		if sep == "" || strings.Trim(sep, "-+") != "" {
			continue
		}
		tb := psqlTable{header: cells(lines[i-1])}
		for i++; i < len(lines) && !strings.HasPrefix(lines[i], "("); i++ {
			tb.rows = append(tb.rows, cells(lines[i]))
		}
		tables = append(tables, tb)
	}
	return tables
}

// checkExported checks the two tables of biometricsAtTheHub's query: the
// dossier's rows, then its files in the order written, fingerprints before
// the photo, every one after the dossier's rows and byte for byte the file
// captured on the island (by SHA-256 and size).
func checkExported(tables []psqlTable, bio *biometrics) error {
	if len(tables) != 2 {
		return fmt.Errorf("psql printed %d tables, want 2", len(tables))
	}
	dossier, files := tables[0], tables[1]
	if len(dossier.rows) != 2 || dossier.rows[0][1] != "1" || dossier.rows[1][1] != strconv.Itoa(1+len(bio.files)) {
		return fmt.Errorf("the dossier's rows: %v, want 1 record and %d ops (its creation and one per file)", dossier.rows, 1+len(bio.files))
	}
	if len(files.rows) != len(bio.files) {
		return fmt.Errorf("%d files exported, want %d", len(files.rows), len(bio.files))
	}
	want := map[string]bioFile{}
	for _, f := range bio.files {
		want[string(f.kind)+"/"+f.finger] = f
	}
	prints := len(bio.files) - 1
	for i, r := range files.rows {
		if len(r) != 6 {
			return fmt.Errorf("row %d: %v", i, r)
		}
		kind, finger, size, sum, after := r[1], r[2], r[3], r[4], r[5]
		f, ok := want[kind+"/"+finger]
		switch {
		case !ok:
			return fmt.Errorf("row %d: unexpected %s %s", i, kind, finger)
		case i < prints && kind != string(attach.KindFingerprint), i == prints && kind != string(attach.KindPhoto):
			return fmt.Errorf("row %d is a %s: want the %d fingerprints first, then the photo", i, kind, prints)
		case sum != f.sha || size != strconv.FormatInt(f.size, 10):
			return fmt.Errorf("row %d (%s %s): %s bytes, SHA-256 %s; captured %d bytes, %s", i, kind, finger, size, sum, f.size, f.sha)
		case after != "t":
			return fmt.Errorf("row %d (%s %s) was written before its dossier's rows", i, kind, finger)
		}
		delete(want, kind+"/"+finger)
	}
	return nil
}

// biometricsDelivered: back on the island, island-a lists the dossier's
// files, each delivered, though it never met the hub.
func (t *trip) biometricsDelivered(ctx context.Context) error {
	is := t.isl
	bio := is.bio
	t.n.command(t.o.Bin, "attachments", "--api", is.a.API, bio.id)
	out, err := is.c.Run("attachments", "--api", is.a.API, bio.id)
	if err != nil {
		return fmt.Errorf("fieldsync attachments: %w\n%s", err, out)
	}
	t.n.block(string(out))
	list, err := bounded(ctx, is.a, "attachments on", func(ctx context.Context) ([]api.Attachment, error) {
		return is.a.Client.Attachments(ctx, bio.id)
	})
	if err != nil {
		return err
	}
	delivered := 0
	for _, at := range list {
		if at.Delivered && at.Complete && at.CapturedBy == islandA {
			delivered++
		}
	}
	if len(list) != len(bio.files) || delivered != len(bio.files) {
		return fmt.Errorf("island-a lists %d files of %s, %d delivered; want %d", len(list), bio.id, delivered, len(bio.files))
	}
	if !bytes.Contains(out, []byte(bio.photo().sha)) {
		return fmt.Errorf("fieldsync attachments does not show the photo's SHA-256 %s", bio.photo().sha)
	}
	t.n.result("island-a: cả %d tệp \"Đã gửi / Delivered: có / yes\": ảnh và vân tay của ông %s đã lưu trọn vẹn ở tỉnh / all %d files delivered: his photo and fingerprints are stored whole at the province",
		delivered, bio.name, delivered)
	return nil
}
