package crdt

import (
	"crypto/ed25519"
	"errors"
	"math/rand/v2"
	"testing"
)

func testKey(seed byte) ed25519.PrivateKey {
	var s [32]byte
	s[0] = seed
	return ed25519.NewKeyFromSeed(s[:])
}

// chain writes n signed ops of one origin, linked by hash.
func chain(t *testing.T, key ed25519.PrivateKey, origin string, n int) []Opened {
	t.Helper()
	var out []Opened
	var head Head
	for i := 1; i <= n; i++ {
		op := &Op{Origin: origin, Seq: uint64(i), Time: Timestamp{Wall: int64(1000 + i)}, Record: "r1", Kind: KindUpdate,
			Fields: map[string]FieldWrite{"full_name": {Value: "Lò Văn Páo"}}}
		if i > 1 {
			op.Prev = head.Hash[:]
		}
		s, err := Sign(op, key)
		if err != nil {
			t.Fatal(err)
		}
		o, err := Open(s)
		if err != nil {
			t.Fatal(err)
		}
		head = Head{Seq: op.Seq, Hash: o.Hash}
		out = append(out, o)
	}
	return out
}

func TestVerifyRunChecksChainAndLastSignature(t *testing.T) {
	key := testKey(1)
	pub := key.Public().(ed25519.PublicKey)
	run := chain(t, key, "a", 5)
	if n, err := VerifyRun(Head{}, run, pub); n != 5 || err != nil {
		t.Fatalf("good run: %d %v", n, err)
	}
	// A run that continues from a held head.
	if n, err := VerifyRun(Head{Seq: 2, Hash: run[1].Hash}, run[2:], pub); n != 3 || err != nil {
		t.Fatalf("continued run: %d %v", n, err)
	}
	// Starting anywhere else is a chain error.
	if _, err := VerifyRun(Head{Seq: 1, Hash: run[0].Hash}, run[2:], pub); !errors.Is(err, ErrChain) {
		t.Fatalf("gap: %v", err)
	}
	if _, err := VerifyRun(Head{Seq: 2, Hash: run[0].Hash}, run[2:], pub); !errors.Is(err, ErrChain) {
		t.Fatalf("fork: %v", err)
	}
	// Another key's signature.
	if _, err := VerifyRun(Head{}, run, testKey(2).Public().(ed25519.PublicKey)); !errors.Is(err, ErrSignature) {
		t.Fatalf("wrong key: %v", err)
	}
	// A damaged last signature: the prefix up to the last good signature is kept.
	bad := append([]Opened(nil), run...)
	bad[4].Sig = append([]byte(nil), bad[4].Sig...)
	bad[4].Sig[0] ^= 1
	if n, err := VerifyRun(Head{}, bad, pub); n != 4 || !errors.Is(err, ErrSignature) {
		t.Fatalf("damaged signature: %d %v", n, err)
	}
}

func TestAlteredOpBreaksTheChain(t *testing.T) {
	key := testKey(1)
	pub := key.Public().(ed25519.PublicKey)
	run := chain(t, key, "a", 3)
	// A relay changes the value of op 2 and re-encodes it: its hash changes,
	// so op 3 no longer links to it.
	op := *run[1].Op
	op.Fields = map[string]FieldWrite{"full_name": {Value: "forged"}}
	body, err := EncodeOp(&op)
	if err != nil {
		t.Fatal(err)
	}
	altered, err := Open(Signed{Body: body, Sig: run[1].Sig})
	if err != nil {
		t.Fatal(err)
	}
	forged := []Opened{run[0], altered, run[2]}
	if _, err := VerifyRun(Head{}, forged, pub); !errors.Is(err, ErrChain) {
		t.Fatalf("altered middle op: %v", err)
	}
	// Altered as the last op of a run: its own signature fails.
	if n, err := VerifyRun(Head{}, forged[:2], pub); n != 1 || !errors.Is(err, ErrSignature) {
		t.Fatalf("altered last op: %d %v", n, err)
	}
}

func TestDecodeOpRefusesNonCanonicalAndMalformed(t *testing.T) {
	run := chain(t, testKey(1), "a", 2)
	if _, err := DecodeOp(run[1].Body); err != nil {
		t.Fatal(err)
	}
	// Same op with its map in non-canonical key order.
	var generic map[int]any
	if err := Unmarshal(run[1].Body, &generic); err != nil {
		t.Fatal(err)
	}
	cases := map[string]*Op{
		"seq zero":        {Origin: "a", Seq: 0, Time: Timestamp{Wall: 1}, Record: "r", Kind: KindCreate, Fields: map[string]FieldWrite{"x": {}}},
		"no fields":       {Origin: "a", Seq: 1, Time: Timestamp{Wall: 1}, Record: "r", Kind: KindCreate},
		"bad kind":        {Origin: "a", Seq: 1, Time: Timestamp{Wall: 1}, Record: "r", Kind: 9, Fields: map[string]FieldWrite{"x": {}}},
		"missing prev":    {Origin: "a", Seq: 2, Time: Timestamp{Wall: 1}, Record: "r", Kind: KindCreate, Fields: map[string]FieldWrite{"x": {}}},
		"sees own future": {Origin: "a", Seq: 1, Time: Timestamp{Wall: 1}, Record: "r", Kind: KindCreate, Fields: map[string]FieldWrite{"x": {Seen: []Dot{{"a", 1}}}}},
	}
	for name, op := range cases {
		if _, err := EncodeOp(op); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
		body, _ := Marshal(op)
		if _, err := DecodeOp(body); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s decode: %v", name, err)
		}
	}
	// Indefinite-length encoding of a valid op is refused: one op, one byte string.
	noncanon := append([]byte{0xbf}, run[0].Body[1:]...)
	noncanon = append(noncanon, 0xff)
	if _, err := DecodeOp(noncanon); !errors.Is(err, ErrMalformed) {
		t.Fatalf("non-canonical: %v", err)
	}
}

func TestClockNeverGoesBackwards(t *testing.T) {
	var c Clock
	a := c.Now(1000)
	b := c.Now(1000)
	if b.Compare(a) <= 0 {
		t.Fatalf("%v then %v", a, b)
	}
	d := c.Now(900) // the wall clock stepped back
	if d.Compare(b) <= 0 {
		t.Fatalf("%v after %v", d, b)
	}
	c.Observe(Timestamp{Wall: 5000, Logical: 3}, 1000, 10_000)
	if e := c.Now(1000); e.Compare(Timestamp{Wall: 5000, Logical: 3}) <= 0 {
		t.Fatalf("observe ignored: %v", e)
	}
	c.Observe(Timestamp{Wall: 1 << 50}, 1000, 10_000) // a peer's clock years ahead
	if c.Last.Wall >= 1<<50 {
		t.Fatalf("clock dragged to the far future: %v", c.Last)
	}
}

func TestVersionVectorMissingAndDigest(t *testing.T) {
	v := VersionVector{"a": 5, "b": 3, "c": 0}
	have := VersionVector{"a": 2, "b": 3, "d": 7}
	got := v.Missing(have)
	if len(got) != 1 || got[0] != (Range{Origin: "a", From: 3, To: 5}) {
		t.Fatalf("missing %v", got)
	}
	if (VersionVector{}).Digest() != 0 || v.Digest() == 0 {
		t.Fatal("digest of empty must be 0, of non-empty non-zero")
	}
	if v.Digest() != (VersionVector{"a": 5, "b": 3}).Digest() {
		t.Fatal("zero entries change the digest")
	}
	if v.Digest() == (VersionVector{"a": 5, "b": 4}).Digest() {
		t.Fatal("digest ignores a difference")
	}
	if !v.Equal(VersionVector{"a": 5, "b": 3}) || v.Equal(have) {
		t.Fatal("equal")
	}
}

func FuzzDecodeOp(f *testing.F) {
	key := testKey(3)
	op := &Op{Origin: "a", Seq: 1, Time: Timestamp{Wall: 1}, Record: "r", Kind: KindCreate, Fields: map[string]FieldWrite{"full_name": {Value: "Giàng Xuân Thắng"}}}
	s, _ := Sign(op, key)
	f.Add(s.Body)
	f.Add([]byte{0xa0})
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 4; i++ {
		b := append([]byte(nil), s.Body...)
		b[r.IntN(len(b))] ^= byte(r.IntN(255) + 1)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		op, err := DecodeOp(body)
		if err != nil {
			return
		}
		again, err := EncodeOp(op)
		if err != nil {
			t.Fatalf("decoded op does not re-encode: %v", err)
		}
		if string(again) != string(body) {
			t.Fatal("decoded op re-encodes to other bytes")
		}
	})
}
