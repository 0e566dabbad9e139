package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"
	"syscall"
	"time"

	"github.com/fieldsync/fieldsync/agent/transport"
)

// rawProtocol is the bench's own protocol on the two hosts of rawStream.
const rawProtocol = "/fieldsync-bench/raw/1"

// rawStream is the limit the attachment transfer is measured against:
// two libp2p hosts built by agent/transport as the agent builds its own
// (TCP, Noise, yamux, the credential handshake), in this process, on
// 127.0.0.1; one opens a stream and writes n bytes in 64 KiB writes, the
// other reads them. It returns MB/s (10^6 bytes) from the first write to
// the last byte read, and the CPU time (user and system, every thread of
// this process) it took, in seconds.
func rawStream(ctx context.Context, n int64) (rate, cpu float64, err error) {
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
		return 0, 0, err
	}
	defer recv.Close()
	send, err := newHost("sender")
	if err != nil {
		return 0, 0, err
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
		return 0, 0, errors.New("raw stream: the receiving host listens nowhere")
	}
	if err := send.Connect(cctx, recv.PeerID(), addrs[0]); err != nil {
		return 0, 0, fmt.Errorf("raw stream: %w", err)
	}
	st, err := send.Open(cctx, recv.PeerID(), rawProtocol)
	if err != nil {
		return 0, 0, fmt.Errorf("raw stream: %w", err)
	}
	defer st.Reset()
	buf := make([]byte, 64<<10)
	rand.Read(buf)
	t0, cpu0 := time.Now(), processCPU()
	for sent := int64(0); sent < n; {
		k := min(int64(len(buf)), n-sent)
		if _, err := st.Write(buf[:k]); err != nil {
			return 0, 0, fmt.Errorf("raw stream: write: %w", err)
		}
		sent += k
	}
	select {
	case r := <-done:
		if r.err != nil && !errors.Is(r.err, io.EOF) {
			return 0, 0, fmt.Errorf("raw stream: read %d of %d bytes: %w", r.n, n, r.err)
		}
		return float64(n) / 1e6 / r.end.Sub(t0).Seconds(), processCPU() - cpu0, nil
	case <-time.After(5 * time.Minute):
		return 0, 0, errors.New("raw stream: the receiver did not finish")
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
}

// processCPU is the CPU time this process has used, user and system, in
// seconds.
func processCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// atRestCPU is the CPU time, in seconds, one core spends on what a transfer
// of n bytes in 64 KiB chunks must do beyond moving them over the stream,
// with nothing else in the way: the receiver checks each chunk against its
// SHA-256 and seals it for its store (AES-256-GCM), the sender opens it
// from its own.
func atRestCPU(n int64) (float64, error) {
	block, err := aes.NewCipher(make([]byte, 32))
	if err != nil {
		return 0, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return 0, err
	}
	chunk := make([]byte, 64<<10)
	rand.Read(chunk)
	nonce := make([]byte, aead.NonceSize())
	sealed := make([]byte, 0, len(chunk)+aead.Overhead())
	opened := make([]byte, 0, len(chunk))
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t := time.Now()
	for done := int64(0); done < n; done += int64(len(chunk)) {
		sum := sha256.Sum256(chunk)
		sealed = aead.Seal(sealed[:0], nonce, chunk, sum[:])
		if opened, err = aead.Open(opened[:0], nonce, sealed, sum[:]); err != nil {
			return 0, err
		}
	}
	return time.Since(t).Seconds(), nil
}
