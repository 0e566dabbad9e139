package harness

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/agent/identity"
	"github.com/fieldsync/fieldsync/agent/store"
	"github.com/fieldsync/fieldsync/crdt"
)

var (
	surnames = []string{"Giàng", "Vừ", "Thò", "Lò", "Sùng", "Nguyễn", "Hoàng", "Lý", "Triệu", "Mùa", "Cầm", "Lương"}
	middles  = []string{"Thị", "Văn", "Mí", "Seo", "A", "Thị Hồng", "Đức"}
	givens   = []string{"Mỷ", "Chứ", "Súng", "Páo", "Dính", "Nhung", "Thào", "Pà", "Sính", "Lềnh", "Dế", "Chơ"}
	communes = []string{"Pả Vi", "Khâu Vai", "Vạn Thạnh", "Tủa Chùa", "Thường Xuân", "Ngọc Lâm"}
	ethnic   = []string{"Mông", "Thái", "Dao", "Kinh", "Tày", "Giáy"}
)

// SignedDossiers writes n create ops of a device, signed and chained by hash
// as the device itself would, with realistic dossier fields padded to about
// 1 KB. It returns them and their total size in bytes (bodies and
// signatures). Deterministic for a seed, but for the record ids.
func SignedDossiers(dev *identity.Device, n int, seed uint64) ([]crdt.Signed, int64, error) {
	r := rand.New(rand.NewPCG(seed, 2025))
	out := make([]crdt.Signed, 0, n)
	var total int64
	var prev []byte
	wall := time.Date(2026, 11, 1, 7, 0, 0, 0, time.UTC).UnixMilli()
	var clock crdt.Clock
	note := []rune(strings.Repeat("Hộ gia đình ở điểm trường, đi bộ 2 giờ; đã chụp ảnh, lấy vân tay 10 ngón. ", 9))
	for i := 1; i <= n; i++ {
		id, err := uuid.NewV7()
		if err != nil {
			return nil, 0, err
		}
		values := map[string]string{
			"full_name":         surnames[r.IntN(len(surnames))] + " " + middles[r.IntN(len(middles))] + " " + givens[r.IntN(len(givens))],
			"date_of_birth":     fmt.Sprintf("%d-%02d-%02d", 1930+r.IntN(90), 1+r.IntN(12), 1+r.IntN(28)),
			"sex":               []string{"nam", "nữ"}[r.IntN(2)],
			"personal_id":       fmt.Sprintf("0020%02d%06d", r.IntN(100), r.IntN(1_000_000)),
			"ethnicity":         ethnic[r.IntN(len(ethnic))],
			"commune":           communes[r.IntN(len(communes))],
			"permanent_address": fmt.Sprintf("Thôn %d, xã %s", 1+r.IntN(20), communes[r.IntN(len(communes))]),
			"hometown":          "xã " + communes[r.IntN(len(communes))],
			"phone":             fmt.Sprintf("09%08d", r.IntN(100_000_000)),
			"notes":             string(note[:330+r.IntN(160)]),
		}
		op := &crdt.Op{Origin: dev.ID(), Seq: uint64(i), Prev: prev, Time: clock.Now(wall + int64(i)*50),
			Record: id.String(), Kind: crdt.KindCreate, Fields: crdt.Writes(nil, values)}
		s, err := crdt.Sign(op, dev.Private)
		if err != nil {
			return nil, 0, err
		}
		h := crdt.Hash(s.Body)
		prev = h[:]
		total += int64(len(s.Body) + len(s.Sig))
		out = append(out, s)
	}
	return out, total, nil
}

// Preload ingests a device's own signed ops into its store while its agent
// is stopped, as a peer's batches would arrive, and returns the rate in ops
// per second. It is how benchmarks and tests give an agent a large log
// quickly.
func Preload(a *Agent, ops []crdt.Signed) (float64, error) {
	return preload(a, ops, true)
}

// PreloadInClear is Preload for an agent of the measuring build, whose
// store is in clear (agent/storeinclear.go).
func PreloadInClear(a *Agent, ops []crdt.Signed) (float64, error) {
	return preload(a, ops, false)
}

func preload(a *Agent, ops []crdt.Signed, encrypted bool) (float64, error) {
	key, err := Unlock(a.Data)
	if err != nil {
		return 0, err
	}
	dev, err := identity.LoadDeviceSealed(a.Data, key)
	if err != nil {
		return 0, err
	}
	opts := store.DefaultOptions(filepath.Join(a.Data, "store"))
	if encrypted {
		opts.EncryptionKey = key.StoreKey()
	}
	return Ingest(opts, dev, ops)
}

// Ingest opens the store of opts as dev's own (in clear unless
// opts.EncryptionKey is set), ingests ops in batches as a peer's would
// arrive, closes it, and returns the rate in ops per second.
func Ingest(opts store.Options, dev *identity.Device, ops []crdt.Signed) (float64, error) {
	opts.Self = dev.ID()
	st, err := store.Open(opts)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	raw, err := dev.Credential.Marshal()
	if err != nil {
		return 0, err
	}
	if err := st.PutCredential(dev.ID(), dev.Public(), raw); err != nil {
		return 0, err
	}
	const batch = 512
	t := time.Now()
	for i := 0; i < len(ops); i += batch {
		res, err := st.Ingest(ops[i:min(i+batch, len(ops))], time.Now().UnixMilli())
		if err != nil {
			return 0, err
		}
		if len(res.Refused) > 0 {
			return 0, fmt.Errorf("store refused op: %v", res.Refused[0].Err)
		}
	}
	rate := float64(len(ops)) / time.Since(t).Seconds()
	return rate, st.Close()
}

// OwnOps reads every op of a stopped agent's own log from its store, as a
// peer would be sent them.
func OwnOps(a *Agent) ([]crdt.Signed, error) {
	key, err := Unlock(a.Data)
	if err != nil {
		return nil, err
	}
	dev, err := identity.LoadDeviceSealed(a.Data, key)
	if err != nil {
		return nil, err
	}
	opts := store.DefaultOptions(filepath.Join(a.Data, "store"))
	opts.EncryptionKey = key.StoreKey()
	s, err := store.Open(opts)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return s.ReadOps(dev.ID(), 1, 1<<20, 1<<30)
}
