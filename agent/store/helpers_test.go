package store

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fieldsync/fieldsync/crdt"
)

const baseWall = int64(1_750_000_000_000) // a fixed "now" in Unix milliseconds

func testKey(seed byte) ed25519.PrivateKey {
	var s [32]byte
	s[0] = seed
	s[31] = 0x5a
	return ed25519.NewKeyFromSeed(s[:])
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// quietLogger drops badger's lines below Error so test output stays readable.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

func testOptions(dir string) Options {
	o := DefaultOptions(dir)
	o.Logger = quietLogger()
	// Test devices may settle unless a test says otherwise.
	o.MaySettle = func(string) bool { return true }
	return o
}

// openTest opens a store in a fresh directory and closes it at the end.
func openTest(t testing.TB, mod func(*Options)) (*Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	o := testOptions(dir)
	if mod != nil {
		mod(&o)
	}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, dir
}

func reopen(t testing.TB, s *Store, dir string, mod func(*Options)) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	o := testOptions(dir)
	if mod != nil {
		mod(&o)
	}
	s2, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s2.Close() })
	return s2
}

// signer writes one origin's log without a store: the ops a remote device
// would send.
type signer struct {
	origin string
	key    ed25519.PrivateKey
	head   crdt.Head
	clock  crdt.Clock
}

func newSigner(origin string, seed byte) *signer {
	return &signer{origin: origin, key: testKey(seed)}
}

func (g *signer) pub() ed25519.PublicKey { return pubOf(g.key) }

func (g *signer) next(t testing.TB, rec string, kind crdt.Kind, fields map[string]crdt.FieldWrite, wall int64) crdt.Signed {
	t.Helper()
	op := &crdt.Op{Origin: g.origin, Seq: g.head.Seq + 1, Time: g.clock.Now(wall), Record: rec, Kind: kind, Fields: fields}
	if op.Seq > 1 {
		op.Prev = g.head.Hash[:]
	}
	sg, err := crdt.Sign(op, g.key)
	if err != nil {
		t.Fatal(err)
	}
	g.head = crdt.Head{Seq: op.Seq, Hash: crdt.Hash(sg.Body)}
	return sg
}

func plain(values map[string]string) map[string]crdt.FieldWrite {
	return crdt.Writes(nil, values)
}

// Realistic dossier values: Vietnamese names with diacritics, communes of the
// districts in domain.md, long addresses and notes, to make ops of ~1 KB.
var (
	surnames  = []string{"Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vừ", "Giàng", "Lò", "Sùng", "Mùa", "Hà", "Lầu"}
	middles   = []string{"Văn", "Thị", "Mí", "Seo", "Đức", "Ngọc", "Thu", "Xuân", "A"}
	givens    = []string{"Páo", "Chứ", "Mỷ", "Dế", "Sính", "Lan", "Hùng", "Thảo", "Dũng", "Hoa", "Vàng", "Chúng"}
	ethnics   = []string{"Kinh", "Hmông", "Tày", "Thái", "Mường", "Dao", "Lô Lô", "Giáy", "Nùng"}
	communes  = []string{"Pả Vi", "Sủng Máng", "Lũng Pù", "Vạn Thạnh", "Xuân Chinh", "Sín Chải", "Mường Báng", "Ngọc Lâm", "Giang Ly"}
	districts = []string{"Mèo Vạc, Hà Giang", "Vạn Ninh, Khánh Hòa", "Thường Xuân, Thanh Hóa", "Tủa Chùa, Điện Biên", "Thanh Chương, Nghệ An"}
	notes     = []string{
		"Công dân đi làm nương xa, tổ công tác đến tận nhà để thu nhận hồ sơ cấp căn cước và tài khoản định danh điện tử mức độ 2.",
		"Người cao tuổi, không đọc được tiếng Việt; con trai phiên dịch tiếng Hmông. Cần đối chiếu lại ngày sinh với sổ hộ khẩu cũ.",
		"Ngư dân đi biển dài ngày, thu nhận hồ sơ trên thuyền thúng tại bến Vạn Thạnh; ảnh chân dung chụp lại lần hai do thiếu sáng.",
		"Hồ sơ hộ tịch bị thất lạc, họ tên trên giấy khai sinh khác với giấy tờ tùy thân; đề nghị cán bộ tư pháp xã xác minh.",
	}
)

// dossier returns the values of one realistic dossier, about 1 KB encoded.
func dossier(r *rand.Rand, i int) map[string]string {
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	commune := pick(communes)
	return map[string]string{
		"full_name":         fmt.Sprintf("%s %s %s", pick(surnames), pick(middles), pick(givens)),
		"date_of_birth":     fmt.Sprintf("%04d-%02d-%02d", 1930+r.IntN(90), 1+r.IntN(12), 1+r.IntN(28)),
		"sex":               pick([]string{"nam", "nữ"}),
		"personal_id":       fmt.Sprintf("%03d%09d", 2+r.IntN(95), r.IntN(1_000_000_000)),
		"ethnicity":         pick(ethnics),
		"commune":           commune,
		"permanent_address": fmt.Sprintf("Thôn %s %d, xã %s, huyện %s", pick(givens), 1+r.IntN(12), commune, pick(districts)),
		"hometown":          fmt.Sprintf("Xã %s, huyện %s", pick(communes), pick(districts)),
		"phone":             fmt.Sprintf("09%08d", r.IntN(100_000_000)),
		"notes":             pick(notes) + " " + pick(notes) + " " + pick(notes),
		"photo_ref":         fmt.Sprintf("photo/%08d-%04x.jpg", i, r.IntN(1<<16)),
		"fingerprint_ref":   fmt.Sprintf("fp/%08d-%04x.wsq", i, r.IntN(1<<16)),
	}
}

func recordID(origin string, i int) string { return fmt.Sprintf("%s-%08d", origin, i) }

// sameRecord reports whether two records hold the same merged state
// (treating nil and empty slices alike).
func sameRecord(a, b *crdt.Record) error {
	if a.ID != b.ID || a.Created != b.Created || a.CreatedAt != b.CreatedAt || a.Updated != b.Updated {
		return fmt.Errorf("record %s: header %+v %+v %+v vs %s %+v %+v %+v", a.ID, a.Created, a.CreatedAt, a.Updated, b.ID, b.Created, b.CreatedAt, b.Updated)
	}
	names := func(r *crdt.Record) []string {
		var out []string
		for n, reg := range r.Fields {
			if len(reg.Live) > 0 || len(reg.Pending) > 0 {
				out = append(out, n)
			}
		}
		slices.Sort(out)
		return out
	}
	if an, bn := names(a), names(b); !slices.Equal(an, bn) {
		return fmt.Errorf("record %s: fields %v vs %v", a.ID, an, bn)
	}
	for n, ra := range a.Fields {
		rb := b.Fields[n]
		if !slices.Equal(ra.Live, rb.Live) || !slices.Equal(ra.Pending, rb.Pending) {
			return fmt.Errorf("record %s field %s: %+v vs %+v", a.ID, n, ra, rb)
		}
	}
	return nil
}

func allRecords(t testing.TB, s *Store) map[string]*crdt.Record {
	t.Helper()
	out := map[string]*crdt.Record{}
	if err := s.Records("", func(r *crdt.Record) bool { out[r.ID] = r; return true }); err != nil {
		t.Fatal(err)
	}
	return out
}

func mustIngest(t testing.TB, s *Store, batch []crdt.Signed) IngestResult {
	t.Helper()
	res, err := s.Ingest(batch, baseWall)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func refusalsString(rs []Refusal) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "[%s %d ×%d: %v] ", r.Origin, r.Seq, r.Count, r.Err)
	}
	return b.String()
}
