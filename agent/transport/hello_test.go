package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	if err := writeFrame(&buf, []byte("cred")); err != nil {
		t.Fatal(err)
	}
	if got := buf.Bytes(); !bytes.Equal(got, []byte{0, 4, 'c', 'r', 'e', 'd'}) {
		t.Fatalf("frame bytes %v", got)
	}
	b, err := readFrame(&buf, 4)
	if err != nil || string(b) != "cred" {
		t.Fatalf("readFrame = %q, %v", b, err)
	}
	if err := writeFrame(&buf, make([]byte, 5)); err != nil {
		t.Fatal(err)
	}
	if _, err := readFrame(&buf, 4); !errors.Is(err, errFrameTooLarge) {
		t.Fatalf("oversized frame: %v", err)
	}
	if _, err := readFrame(bytes.NewReader([]byte{0, 9, 'x'}), 100); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short frame: %v", err)
	}

	buf.Reset()
	long := strings.Repeat("é", maxReasonLen) // 2 bytes each
	if err := writeVerdict(&buf, verdictRefused, long); err != nil {
		t.Fatal(err)
	}
	v, reason, err := readVerdict(&buf)
	if err != nil || v != verdictRefused {
		t.Fatalf("readVerdict = %d, %v", v, err)
	}
	if len(reason) > maxReasonLen || !utf8.ValidString(reason) || !strings.HasPrefix(long, reason) {
		t.Fatalf("reason not cut on a rune boundary: %d bytes", len(reason))
	}
	if _, _, err := readVerdict(bytes.NewReader([]byte{7, 0, 0})); err == nil {
		t.Fatal("unknown verdict accepted")
	}
	_, reason, err = readVerdict(bytes.NewReader([]byte{1, 0, 2, 0xff, 0xfe}))
	if err != nil || reason != "(reason not UTF-8)" {
		t.Fatalf("non-UTF-8 reason: %q, %v", reason, err)
	}
}

// helloRaw connects a plain libp2p host with identity priv to b, sends cred
// on a hello stream and returns b's verdict. The raw host accepts b's hello
// but never answers it, so b's outcome is decided by its inbound half.
func helloRaw(t *testing.T, priv crypto.PrivKey, b *testHost, cred []byte) (byte, string, peer.ID) {
	t.Helper()
	raw := rawHostWithKey(t, priv)
	raw.SetStreamHandler(helloProtocol, func(s network.Stream) { _, _ = io.Copy(io.Discard, s) })
	bp := dialRaw(t, raw, b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := raw.NewStream(network.WithNoDial(ctx, "test"), bp, helloProtocol)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	hdr := []byte{byte(len(cred) >> 8), byte(len(cred))}
	if _, err := s.Write(append(hdr, cred...)); err != nil {
		t.Fatal(err)
	}
	v, reason, err := readVerdict(s)
	if err != nil {
		t.Fatalf("read verdict: %v", err)
	}
	_ = s.Close()
	return v, reason, raw.ID()
}

func TestRefusesOddPeers(t *testing.T) {
	// A fixed "random" source: the test needs some secp256k1 key, the
	// same one every run.
	secp, _, err := crypto.GenerateSecp256k1Key(bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	edKey, err := crypto.UnmarshalEd25519PrivateKey(testKey(41))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		priv   crypto.PrivKey
		cred   []byte
		reason string
	}{
		{"oversized credential", edKey, make([]byte, MaxCredentialSize+1), "credential larger than 4096 bytes"},
		{"key not ed25519", secp, testCredential("d", "dev-x", "x"), "peer key is Secp256k1, not ed25519"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestHost(t, hostOpts{key: 40, deployment: "d", accepts: "d", name: "bob"})
			v, reason, id := helloRaw(t, tc.priv, b, tc.cred)
			if v != verdictRefused || reason != tc.reason {
				t.Fatalf("verdict %d %q, want refused %q", v, reason, tc.reason)
			}
			if l := b.logs.lines("level=WARN", `msg="refused peer"`, "peer="+id.String(), tc.reason); len(l) != 1 {
				t.Fatal("no refusal log line")
			}
			if b.admit.calls.Load() != 0 {
				t.Fatal("Admit ran for a credential refused before it")
			}
			if _, denied := b.deny.get(id, time.Now()); !denied {
				t.Fatal("refused peer not on the deny list")
			}
		})
	}
}
