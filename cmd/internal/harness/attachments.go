package harness

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/agent/attach"
	"github.com/fieldsync/fieldsync/agent/identity"
	"github.com/fieldsync/fieldsync/agent/store"
	"github.com/fieldsync/fieldsync/crdt"
)

// AttachmentSet describes synthetic attachments: Dossiers dossiers, each
// with a face photo of PhotoBytes and ten fingerprint templates of about
// FingerprintBytes (random bytes behind a JPEG or FMR header: incompressible,
// like the real files), deterministic for Seed.
type AttachmentSet struct {
	Dossiers         int
	PhotoBytes       int
	FingerprintBytes int
	Seed             uint64
}

// Attachments is what PreloadAttachments wrote.
type Attachments struct {
	Files  int   // distinct files
	Chunks int   // distinct chunks
	Bytes  int64 // bytes of the files
	Ops    int   // signed ops: one create and one manifest op per file, per dossier
	// StoreTime is the time spent in store.PutChunks: the store's own
	// rate of durable chunk writes, in batches, with no network.
	StoreTime time.Duration
}

var (
	jpegHead = []byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0}
	fmrHead  = []byte("FMR\x00 20\x00")
)

// PreloadAttachments writes set into the store of a stopped agent as its own
// officer would through `fieldsync attach`, only faster: each dossier's
// create op and then one manifest op per file, signed and chained by the
// agent's device, and every chunk, written in batches (store.PutChunks)
// before the ops that name them. `fieldsync attach` of 500 MB through the
// API costs one commit per chunk and per op; this costs one per 4 MiB of
// chunks and per 512 ops. It never holds more than a dossier's files in
// memory.
func PreloadAttachments(a *Agent, set AttachmentSet) (Attachments, error) {
	var out Attachments
	key, err := Unlock(a.Data)
	if err != nil {
		return out, err
	}
	dev, err := identity.LoadDeviceSealed(a.Data, key)
	if err != nil {
		return out, err
	}
	opts := store.DefaultOptions(filepath.Join(a.Data, "store"))
	opts.EncryptionKey = key.StoreKey()
	opts.Self = dev.ID()
	opts.AttachmentFile = attachmentFile
	st, err := store.Open(opts)
	if err != nil {
		return out, err
	}
	defer st.Close()
	raw, err := dev.Credential.Marshal()
	if err != nil {
		return out, err
	}
	if err := st.PutCredential(dev.ID(), dev.Public(), raw); err != nil {
		return out, err
	}
	head := st.Head(dev.ID())
	g := &opSigner{dev: dev, seq: head.Seq, prev: head.Hash[:], wall: time.Now().UnixMilli()}
	if head.Seq == 0 {
		g.prev = nil
	}
	w := &chunkWriter{st: st}
	r := rand.New(rand.NewPCG(set.Seed, 9))
	var chacha [32]byte
	binary.LittleEndian.PutUint64(chacha[:], set.Seed)
	fill := rand.NewChaCha8(chacha)
	var ops []crdt.Signed
	for i := range set.Dossiers {
		id, err := uuid.NewV7()
		if err != nil {
			return out, err
		}
		s, err := g.sign(id.String(), crdt.KindCreate, map[string]string{
			"full_name":     surnames[r.IntN(len(surnames))] + " " + middles[r.IntN(len(middles))] + " " + givens[r.IntN(len(givens))],
			"date_of_birth": fmt.Sprintf("%d-%02d-%02d", 1930+r.IntN(90), 1+r.IntN(12), 1+r.IntN(28)),
			"sex":           []string{"nam", "nữ"}[r.IntN(2)],
			"personal_id":   fmt.Sprintf("0021%02d%06d", r.IntN(100), i),
			"commune":       communes[r.IntN(len(communes))],
		})
		if err != nil {
			return out, err
		}
		ops = append(ops, s)
		files := []synthFile{{attach.KindPhoto, "", jpegHead, set.PhotoBytes}}
		for f, finger := range attach.Fingers {
			files = append(files, synthFile{attach.KindFingerprint, finger, fmrHead, set.FingerprintBytes + 37*f})
		}
		for _, f := range files {
			data := make([]byte, f.size)
			fill.Read(data)
			copy(data, f.head)
			m, err := w.put(data, f.kind, f.finger)
			if err != nil {
				return out, err
			}
			value, err := m.FieldValue()
			if err != nil {
				return out, err
			}
			s, err := g.sign(id.String(), crdt.KindUpdate, map[string]string{m.Field(): value})
			if err != nil {
				return out, err
			}
			ops = append(ops, s)
			out.Files++
			out.Chunks += len(m.Chunks)
			out.Bytes += m.Size
		}
	}
	if err := w.flush(); err != nil {
		return out, err
	}
	out.StoreTime = w.took
	const batch = 512
	for i := 0; i < len(ops); i += batch {
		res, err := st.Ingest(ops[i:min(i+batch, len(ops))], time.Now().UnixMilli())
		if err != nil {
			return out, err
		}
		if len(res.Refused) > 0 {
			return out, fmt.Errorf("store refused op: %w", res.Refused[0].Err)
		}
	}
	out.Ops = len(ops)
	return out, st.Close()
}

type synthFile struct {
	kind   attach.Kind
	finger string
	head   []byte
	size   int
}

// attachmentFile is the agent's Options.AttachmentFile (agent/attachments.go),
// which the harness cannot import: a field write that is a well-formed
// manifest of its own field names the manifest's file.
func attachmentFile(field, value string) ([32]byte, bool) {
	if !strings.HasPrefix(field, attach.FieldPrefix) {
		return [32]byte{}, false
	}
	m, err := attach.DecodeFieldValue(value)
	if err != nil || m.Field() != field {
		return [32]byte{}, false
	}
	return m.SHA256, true
}

// opSigner makes a device's next ops, chained by hash, as Store.Write would.
type opSigner struct {
	dev   *identity.Device
	seq   uint64
	prev  []byte
	clock crdt.Clock
	wall  int64
}

func (g *opSigner) sign(record string, kind crdt.Kind, values map[string]string) (crdt.Signed, error) {
	g.seq++
	g.wall++
	op := &crdt.Op{Origin: g.dev.ID(), Seq: g.seq, Prev: g.prev, Time: g.clock.Now(g.wall),
		Record: record, Kind: kind, Fields: crdt.Writes(nil, values)}
	s, err := crdt.Sign(op, g.dev.Private)
	if err != nil {
		return crdt.Signed{}, err
	}
	h := crdt.Hash(s.Body)
	g.prev = h[:]
	return s, nil
}

// chunkWriter cuts files into chunks and writes them in batches.
type chunkWriter struct {
	st      *store.Store
	pending []store.ChunkData
	bytes   int
	took    time.Duration // in PutChunks
}

func (w *chunkWriter) put(data []byte, kind attach.Kind, finger string) (attach.Manifest, error) {
	c := attach.NewChunker(bytes.NewReader(data), kind, finger, attach.MaxSize)
	for {
		chunk, h, err := c.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return attach.Manifest{}, err
		}
		w.pending = append(w.pending, store.ChunkData{Hash: h, Data: bytes.Clone(chunk)})
		w.bytes += len(chunk)
		if w.bytes >= store.MaxChunkBatch {
			if err := w.flush(); err != nil {
				return attach.Manifest{}, err
			}
		}
	}
	return c.Manifest()
}

func (w *chunkWriter) flush() error {
	if len(w.pending) == 0 {
		return nil
	}
	t := time.Now()
	bad, err := w.st.PutChunks(w.pending)
	w.took += time.Since(t)
	if err != nil {
		return err
	}
	if len(bad) > 0 {
		return errors.New("a chunk of the harness's own making does not match its hash")
	}
	w.pending, w.bytes = w.pending[:0], 0
	return nil
}
