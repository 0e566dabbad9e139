package harness

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"golang.org/x/time/rate"
)

// Proxy is a TCP proxy on 127.0.0.1 that counts the bytes it carries and can
// cut every connection once a number of bytes has passed: a link dropping
// mid-transfer. New connections are accepted again after the cut.
type Proxy struct {
	Addr   string
	target string
	ln     net.Listener

	bytes   atomic.Int64
	cutAt   atomic.Int64 // 0: never
	cuts    atomic.Int64
	mu      sync.Mutex
	conns   map[net.Conn]bool
	closed  bool
	cutOnce sync.Once

	// Throttle: one limiter per direction, shared by every connection,
	// like one thin link.
	up, down atomic.Pointer[rate.Limiter]
}

// Throttle limits the link to bytesPerSecond in each direction, from now
// on (a 3G link at a border post: about 125,000, 1 Mbit/s).
func (p *Proxy) Throttle(bytesPerSecond int) {
	burst := min(bytesPerSecond/10, 16<<10)
	p.up.Store(rate.NewLimiter(rate.Limit(bytesPerSecond), burst))
	p.down.Store(rate.NewLimiter(rate.Limit(bytesPerSecond), burst))
}

// NewProxy forwards connections on a free 127.0.0.1 port to target.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]bool{}}
	go p.accept()
	return p, nil
}

// CutAfter makes the proxy cut every connection once n more bytes (both
// directions) have passed. Once only.
func (p *Proxy) CutAfter(n int64) { p.cutAt.Store(p.bytes.Load() + n) }

// Bytes is the number of bytes carried so far, both directions.
func (p *Proxy) Bytes() int64 { return p.bytes.Load() }

// Cuts is how many times the proxy cut the link.
func (p *Proxy) Cuts() int64 { return p.cuts.Load() }

// Close stops the proxy and its connections.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.serve(c)
	}
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = true
	return true
}

func (p *Proxy) serve(in net.Conn) {
	out, err := net.Dial("tcp", p.target)
	if err != nil {
		in.Close()
		return
	}
	if !p.track(in) || !p.track(out) {
		in.Close()
		out.Close()
		return
	}
	done := make(chan struct{}, 2)
	go p.pipe(out, in, &p.up, done)
	go p.pipe(in, out, &p.down, done)
	<-done
	in.Close()
	out.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, in)
	delete(p.conns, out)
	p.mu.Unlock()
}

func (p *Proxy) pipe(dst, src net.Conn, limit *atomic.Pointer[rate.Limiter], done chan<- struct{}) {
	buf := make([]byte, 32<<10)
	for {
		b := buf
		lim := limit.Load()
		if lim != nil {
			b = buf[:lim.Burst()]
		}
		n, err := src.Read(b)
		if n > 0 && lim != nil {
			_ = lim.WaitN(context.Background(), n)
		}
		if n > 0 {
			total := p.bytes.Add(int64(n))
			if at := p.cutAt.Load(); at > 0 && total >= at && p.cutAt.CompareAndSwap(at, 0) {
				p.cutOnce.Do(func() {
					p.cuts.Add(1)
					p.mu.Lock()
					for c := range p.conns {
						c.Close()
					}
					p.mu.Unlock()
				})
				break
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			if err != io.EOF {
				break
			}
			break
		}
	}
	done <- struct{}{}
}
