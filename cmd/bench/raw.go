package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/fieldsync/fieldsync/agent/transport"
)

// rawProtocol is the bench's own protocol on the two hosts of rawStreamRate.
const rawProtocol = "/fieldsync-bench/raw/1"

// rawStreamRate is the limit the attachment transfer is measured against:
// two libp2p hosts built by agent/transport as the agent builds its own
// (TCP, Noise, yamux, the credential handshake), in this process, on
// 127.0.0.1; one opens a stream and writes n bytes in 64 KiB writes, the
// other reads them. It returns MB/s (10^6 bytes) from the first write to
// the last byte read.
func rawStreamRate(ctx context.Context, n int64) (float64, error) {
	newHost := func(name string) (*transport.Host, error) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		cfg := transport.DefaultConfig()
		cfg.Listen = "127.0.0.1:0"
		cfg.Key = priv
		cfg.Credential = []byte("bench " + name)
		cfg.Admit = func(pub ed25519.PublicKey, cred []byte) (transport.Peer, error) {
			return transport.Peer{DeviceID: string(cred), Name: string(cred)}, nil
		}
		return transport.New(cfg)
	}
	recv, err := newHost("receiver")
	if err != nil {
		return 0, err
	}
	defer recv.Close()
	send, err := newHost("sender")
	if err != nil {
		return 0, err
	}
	defer send.Close()
	type result struct {
		n   int64
		end time.Time
		err error
	}
	done := make(chan result, 1)
	recv.Handle(rawProtocol, func(_ transport.Peer, st transport.Stream) {
		buf := make([]byte, 64<<10)
		var got int64
		var err error
		for got < n && err == nil {
			var k int
			k, err = st.Read(buf)
			got += int64(k)
		}
		end := time.Now()
		if got >= n {
			err = nil
		}
		st.Close()
		done <- result{got, end, err}
	})
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	addrs := recv.ListenAddrs()
	if len(addrs) == 0 {
		return 0, errors.New("raw stream: the receiving host listens nowhere")
	}
	if err := send.Connect(cctx, recv.PeerID(), addrs[0]); err != nil {
		return 0, fmt.Errorf("raw stream: %w", err)
	}
	st, err := send.Open(cctx, recv.PeerID(), rawProtocol)
	if err != nil {
		return 0, fmt.Errorf("raw stream: %w", err)
	}
	defer st.Reset()
	buf := make([]byte, 64<<10)
	rand.Read(buf)
	t0 := time.Now()
	for sent := int64(0); sent < n; {
		k := min(int64(len(buf)), n-sent)
		if _, err := st.Write(buf[:k]); err != nil {
			return 0, fmt.Errorf("raw stream: write: %w", err)
		}
		sent += k
	}
	select {
	case r := <-done:
		if r.err != nil && !errors.Is(r.err, io.EOF) {
			return 0, fmt.Errorf("raw stream: read %d of %d bytes: %w", r.n, n, r.err)
		}
		return float64(n) / 1e6 / r.end.Sub(t0).Seconds(), nil
	case <-time.After(5 * time.Minute):
		return 0, errors.New("raw stream: the receiver did not finish")
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}
