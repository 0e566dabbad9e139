package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/agent/identity"
	"github.com/fieldsync/fieldsync/agent/store"
	"github.com/fieldsync/fieldsync/agent/uplink"
	"github.com/fieldsync/fieldsync/agent/vault"
	"github.com/fieldsync/fieldsync/agent/wire"
	"github.com/fieldsync/fieldsync/cmd/internal/harness"
	"github.com/fieldsync/fieldsync/crdt"
)

// The checks of the kill -9 campaign. Each returns an error describing what
// is wrong; the campaign adds which kill it was and how to replay it.

// checkAcked checks that a laptop serves everything its API acknowledged
// before snap was taken: every dossier it created, the last acknowledged
// value of every dossier's notes (or a later one attempted since), and
// every attachment of files (a manifest listed, complete, and bytes whose
// SHA-256 is the acknowledged one). It returns how many dossiers it
// checked. The officers go on writing meanwhile, so a value read may be one
// attempted after snap: attempted says what has been attempted by now.
func checkAcked(a *harness.Agent, snap snapshot, files []ackedFile, attempted func(id string) []string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	recs, err := a.Client.ListAll(ctx)
	if err != nil {
		return 0, fmt.Errorf("list on %s: %w", a.Name, err)
	}
	byID := make(map[string]api.Record, len(recs))
	for _, r := range recs {
		byID[r.ID] = r
	}
	checked := 0
	for _, id := range snap.order {
		if snap.dossiers[id] != a.Name {
			continue
		}
		rec, ok := byID[id]
		if !ok {
			return checked, fmt.Errorf("LOST: dossier %s, acknowledged by %s, is not there (%d listed)", id, a.Name, len(recs))
		}
		checked++
		nl, ok := snap.notes[id]
		if !ok {
			continue
		}
		v := rec.Fields["notes"]
		at := slices.Index(attempted(id), v) // tokens only grow: snap's are a prefix
		switch {
		case v != "" && at < 0:
			return checked, fmt.Errorf("WRONG: dossier %s on %s has notes %q, which no call wrote", id, a.Name, v)
		case at < nl.acked:
			return checked, fmt.Errorf("LOST: dossier %s on %s has notes %q, but the update to %q was acknowledged after it", id, a.Name, v, nl.tokens[nl.acked])
		}
	}
	for _, f := range files {
		if err := checkFile(ctx, a, f, true); err != nil {
			return checked, err
		}
	}
	return checked, nil
}

// checkFile checks that a holds the acknowledged file f: listed among its
// dossier's attachments (when listed is set) and served whole, with the
// acknowledged SHA-256 and size.
func checkFile(ctx context.Context, a *harness.Agent, f ackedFile, listed bool) error {
	if listed {
		list, err := a.Client.Attachments(ctx, f.record)
		if err != nil {
			return fmt.Errorf("attachments of %s on %s: %w", f.record, a.Name, err)
		}
		found := false
		for _, at := range list {
			if at.SHA256 == f.sha {
				found = true
				if !at.Complete || at.Size != f.size {
					return fmt.Errorf("LOST: attachment %s of %s on %s is listed but not whole: %+v", f.sha[:12], f.record, a.Name, at)
				}
			}
		}
		if !found {
			return fmt.Errorf("LOST: attachment %s (%s) of %s, acknowledged by %s, is not listed on %s: %+v", f.sha[:12], f.field, f.record, f.laptop, a.Name, list)
		}
	}
	body, _, _, err := a.Client.AttachmentFile(ctx, f.sha)
	if err != nil {
		return fmt.Errorf("LOST: file %s on %s: %w", f.sha[:12], a.Name, err)
	}
	defer body.Close()
	h := sha256.New()
	n, err := io.Copy(h, body)
	if err != nil {
		return fmt.Errorf("read file %s on %s: %w", f.sha[:12], a.Name, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.sha || n != f.size {
		return fmt.Errorf("WRONG DATA: file %s on %s came back as %d bytes hashing to %s", f.sha[:12], a.Name, n, got[:12])
	}
	return nil
}

// pgState is what PostgreSQL holds, read after every claim it is checked
// against was read (PostgreSQL only grows, so a claim true of an earlier
// state is true of this one).
type pgState struct {
	conn    *pgx.Conn
	records map[string]bool
	files   map[string]bool // record_id|sha256
}

func readPG(ctx context.Context, conn *pgx.Conn) (*pgState, error) {
	s := &pgState{conn: conn, records: map[string]bool{}, files: map[string]bool{}}
	rows, err := conn.Query(ctx, `SELECT id FROM fieldsync_records`)
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		s.records[id] = true
	}
	rows, err = conn.Query(ctx, `SELECT record_id || '|' || sha256 FROM fieldsync_attachments`)
	if err != nil {
		return nil, err
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		s.files[k] = true
	}
	return s, nil
}

// opsCovered checks that PostgreSQL holds every op of origin up to n.
func (s *pgState) opsCovered(ctx context.Context, origin string, n uint64) error {
	var have int64
	if err := s.conn.QueryRow(ctx, `SELECT count(*) FROM fieldsync_ops WHERE origin = $1 AND seq BETWEEN 1 AND $2`, origin, int64(n)).Scan(&have); err != nil {
		return err
	}
	if uint64(have) != n {
		return fmt.Errorf("PostgreSQL holds %d of ops 1..%d of %s", have, n, origin)
	}
	return nil
}

// checkReceiptsOnline checks, for every agent, that the receipts it shows
// in status are true: PostgreSQL holds every op they cover. It returns how
// many origin claims it checked.
func checkReceiptsOnline(ctx context.Context, conn *pgx.Conn, agents ...*harness.Agent) (int, error) {
	claims := map[string]map[string]uint64{}
	for _, a := range agents {
		st, err := a.Client.Status(ctx)
		if err != nil {
			return 0, fmt.Errorf("status of %s: %w", a.Name, err)
		}
		claims[a.Name] = st.Upstream.Receipts
	}
	pg, err := readPG(ctx, conn)
	if err != nil {
		return 0, err
	}
	n := 0
	for name, rs := range claims {
		for origin, seq := range rs {
			if err := pg.opsCovered(ctx, origin, seq); err != nil {
				return n, fmt.Errorf("RECEIPT LIES: %s shows a receipt for %s up to %d, but %w", name, origin, seq, err)
			}
			n++
		}
	}
	return n, nil
}

// checkDelivered checks what a shows as delivered: every dossier it holds
// that `list --undelivered` leaves out is in PostgreSQL, with every
// acknowledged attachment of it whose manifest op a held when asked.
func checkDelivered(ctx context.Context, conn *pgx.Conn, a *harness.Agent, files []ackedFile, ids map[string]string) error {
	st, err := a.Client.Status(ctx)
	if err != nil {
		return err
	}
	all, err := a.Client.ListAll(ctx)
	if err != nil {
		return err
	}
	und, err := a.Client.ListUndelivered(ctx)
	if err != nil {
		return err
	}
	pg, err := readPG(ctx, conn)
	if err != nil {
		return err
	}
	undelivered := map[string]bool{}
	for _, r := range und {
		undelivered[r.ID] = true
	}
	for _, r := range all {
		if !undelivered[r.ID] && !pg.records[r.ID] {
			return fmt.Errorf("DELIVERED LIES: %s shows dossier %s delivered, but PostgreSQL has no row for it", a.Name, r.ID)
		}
	}
	for _, f := range files {
		if held := st.VersionVector[ids[f.laptop]] >= f.seq; held && !undelivered[f.record] && !pg.files[f.record+"|"+f.sha] {
			return fmt.Errorf("DELIVERED LIES: %s shows dossier %s delivered, but its %s %s (op %d of %s) is not in fieldsync_attachments", a.Name, f.record, f.field, f.sha[:12], f.seq, f.laptop)
		}
	}
	return nil
}

// offlineCheck is what verifyStore found.
type offlineCheck struct {
	ops, receipts, sigs int
}

// verifyStore opens the store in dataDir/store (not running) with the real
// store code and checks it whole: every origin's log is gapless from 1 to
// its head, each op naming the hash of the one before, the last op's
// signature vouching for the chain (every op's signature too when allSigs
// is set); every receipt kept is validly signed by its hub and true of
// PostgreSQL: the ops it covers are in fieldsync_ops, and the attachments
// it says are whole (every manifest op up to its attachment watermark that
// this store, or the ledger, knows of) are in fieldsync_attachments. A hub
// store's export watermark must be true of PostgreSQL the same way.
func verifyStore(ctx context.Context, dataDir string, key *vault.Key, conn *pgx.Conn, files []ackedFile, ids map[string]string, allSigs bool) (offlineCheck, error) {
	var res offlineCheck
	opts := store.DefaultOptions(filepath.Join(dataDir, "store"))
	opts.EncryptionKey = key.StoreKey()
	opts.Logger = quietLog()
	s, err := store.Open(opts)
	if err != nil {
		return res, fmt.Errorf("REFUSED: the store does not open: %w", err)
	}
	defer s.Close()
	creds, err := s.Credentials()
	if err != nil {
		return res, err
	}
	pubOf := func(origin string) (ed25519.PublicKey, error) {
		c, err := identity.UnmarshalCredential(creds[origin])
		if err != nil {
			return nil, fmt.Errorf("credential of %s: %w", origin, err)
		}
		return c.PublicKey, nil
	}
	for origin, head := range s.Heads() {
		pub, err := pubOf(origin)
		if err != nil {
			return res, err
		}
		prev := crdt.Head{}
		for prev.Seq < head.Seq {
			batch, err := s.ReadOps(origin, prev.Seq+1, 4096, 32<<20)
			if err != nil {
				return res, fmt.Errorf("read ops of %s from %d: %w", origin, prev.Seq+1, err)
			}
			if len(batch) == 0 {
				return res, fmt.Errorf("BROKEN CHAIN: log of %s ends at %d, its head is %d", origin, prev.Seq, head.Seq)
			}
			run := make([]crdt.Opened, len(batch))
			for i, sg := range batch {
				if run[i], err = crdt.Open(sg); err != nil {
					return res, fmt.Errorf("BROKEN CHAIN: op %d of %s: %w", prev.Seq+1+uint64(i), origin, err)
				}
				if allSigs {
					res.sigs++
					if !ed25519.Verify(pub, sg.Body, sg.Sig) {
						return res, fmt.Errorf("BAD SIGNATURE: op %d of %s", run[i].Op.Seq, origin)
					}
				}
			}
			if n, err := crdt.VerifyRun(prev, run, pub); n != len(run) || err != nil {
				return res, fmt.Errorf("BROKEN CHAIN: log of %s after %d: %d of %d ops verify: %w", origin, prev.Seq, n, len(run), err)
			}
			res.ops += len(run)
			last := run[len(run)-1]
			prev = crdt.Head{Seq: last.Op.Seq, Hash: last.Hash}
		}
		if prev != head {
			return res, fmt.Errorf("BROKEN CHAIN: log of %s ends at %d %x, its head is %d %x", origin, prev.Seq, prev.Hash[:6], head.Seq, head.Hash[:6])
		}
	}
	pg, err := readPG(ctx, conn)
	if err != nil {
		return res, err
	}
	// claim checks a watermark pair (ops stored, attachments whole) against
	// PostgreSQL.
	claim := func(who string, stored, whole crdt.VersionVector) error {
		for origin, n := range stored {
			if err := pg.opsCovered(ctx, origin, n); err != nil {
				return fmt.Errorf("RECEIPT LIES: %s covers ops of %s up to %d, but %w", who, origin, n, err)
			}
		}
		for origin, m := range whole {
			var missing error
			err := s.ManifestOps(origin, 0, func(mo store.ManifestOp) bool {
				if mo.Seq > m {
					return false
				}
				if k := mo.Record + "|" + hex.EncodeToString(mo.File[:]); !pg.files[k] {
					missing = fmt.Errorf("RECEIPT LIES: %s says attachments of %s are whole up to op %d, but op %d's file %x of %s is not in fieldsync_attachments", who, origin, m, mo.Seq, mo.File[:6], mo.Record)
					return false
				}
				return true
			})
			if err != nil {
				return err
			}
			if missing != nil {
				return missing
			}
			for _, f := range files {
				if ids[f.laptop] == origin && f.seq <= m && !pg.files[f.record+"|"+f.sha] {
					return fmt.Errorf("RECEIPT LIES: %s says attachments of %s are whole up to op %d, but acknowledged op %d's file %s of %s is not in fieldsync_attachments", who, f.laptop, m, f.seq, f.sha[:12], f.record)
				}
			}
		}
		return nil
	}
	raws, err := s.Receipts()
	if err != nil {
		return res, err
	}
	for hub, raw := range raws {
		var wr wire.Receipt
		if err := crdt.Unmarshal(raw, &wr); err != nil {
			return res, fmt.Errorf("stored receipt of %s: %w", hub, err)
		}
		cred, err := identity.UnmarshalCredential(wr.Credential)
		if err != nil {
			return res, fmt.Errorf("stored receipt of %s: credential: %w", hub, err)
		}
		r, err := uplink.Verify(uplink.Signed{Body: wr.Body, Sig: wr.Sig}, cred.PublicKey)
		if err != nil {
			return res, fmt.Errorf("stored receipt of %s: %w", hub, err)
		}
		if err := claim("a receipt kept by "+filepath.Base(dataDir), r.Stored, r.Attached()); err != nil {
			return res, err
		}
		res.receipts++
	}
	exported, err := s.Exported()
	if err != nil {
		return res, err
	}
	attached, err := s.Attached()
	if err != nil {
		return res, err
	}
	if err := claim("the export watermark of "+filepath.Base(dataDir), exported, nil); err != nil {
		return res, err
	}
	if err := claim("the attachment watermark of "+filepath.Base(dataDir), nil, attached); err != nil {
		return res, err
	}
	return res, nil
}

// copyStore copies a stopped agent's store directory as it is (sparse
// files stay sparse: badger's value log is 128 MB of mostly holes), so it
// can be verified offline while the agent restarts on the original.
func copyStore(dataDir, to string) error {
	if err := os.MkdirAll(to, 0o700); err != nil {
		return err
	}
	out, err := exec.Command("cp", "-a", "--sparse=always", filepath.Join(dataDir, "store"), to).CombinedOutput()
	if err != nil {
		return fmt.Errorf("copy store: %w: %s", err, out)
	}
	return nil
}

// quietLog drops the store's log lines (badger's warnings about the crash
// it recovers from) when the campaign opens a copy.
func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
