// Package harness runs real fieldsync agent processes on this machine for
// the end-to-end tests, `make demo` and `make bench`: it provisions a
// deployment with the real binary, starts agents on 127.0.0.1 with free
// ports and mDNS off (multicast would leave through the real network card),
// talks to them through their HTTP API, and cleans every process up.
package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/fieldsync/fieldsync/agent/api"
)

// Build compiles the fieldsync binary into dir and returns its path.
func Build(dir string) (string, error) {
	bin := filepath.Join(dir, "fieldsync")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/fieldsync/fieldsync/cmd/fieldsync")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build fieldsync: %w\n%s", err, out)
	}
	return bin, nil
}

// Cluster is one deployment on this machine: an authority and agents.
type Cluster struct {
	Bin       string
	Dir       string
	Authority string
	// LogTo, if set, receives every agent's log lines, prefixed with its name.
	LogTo io.Writer

	mu     sync.Mutex
	agents []*Agent
}

// NewCluster creates a deployment (its authority) under dir.
func NewCluster(bin, dir string) (*Cluster, error) {
	c := &Cluster{Bin: bin, Dir: dir, Authority: filepath.Join(dir, "authority")}
	if out, err := c.Run("authority", "init", "--dir", c.Authority); err != nil {
		return nil, fmt.Errorf("authority init: %w\n%s", err, out)
	}
	return c, nil
}

// Run runs the binary with args and returns its combined output.
func (c *Cluster) Run(args ...string) ([]byte, error) {
	cmd := exec.Command(c.Bin, args...)
	cmd.Env = c.procEnv()
	return cmd.CombinedOutput()
}

// Agent is one agent process (possibly stopped).
type Agent struct {
	Name   string
	Data   string
	Listen string
	API    string
	Role   string
	Extra  []string
	Client *api.Client
	// Bin, when set, is the binary this agent runs instead of the
	// cluster's (the bench's measuring build).
	Bin string

	c    *Cluster
	cmd  *exec.Cmd
	log  *lockedBuffer
	done chan struct{}
}

// Provision creates a device of this deployment (not started).
func (c *Cluster) Provision(name, role string) (*Agent, error) {
	return c.ProvisionOfficer(name, role, "")
}

// Start starts the agent process with extra flags (e.g. --join) and waits
// until its API answers.
func (a *Agent) Start(extra ...string) error { return a.StartUntil(nil, extra...) }

// ErrStartStopped is StartUntil's answer when stop closed first.
var ErrStartStopped = errors.New("start stopped")

// StartUntil is Start, but gives up when stop closes first: it then kills
// the process and returns ErrStartStopped (the power-cut campaign stops
// waiting for an agent whose disk went away under it).
func (a *Agent) StartUntil(stop <-chan struct{}, extra ...string) error {
	if err := a.Launch(extra...); err != nil {
		return err
	}
	return a.waitReady(stop, 20*time.Second)
}

// Launch starts the agent process with extra flags and returns at once,
// without waiting for its API (so a test can kill it while it opens its
// store). WaitReady waits for it.
func (a *Agent) Launch(extra ...string) error {
	sub := "agent"
	if a.Role == "hub" {
		sub = "hub"
	}
	args := []string{sub, "--data", a.Data, "--listen", a.Listen, "--api", a.API, "--no-mdns", "--safety-interval", "2s"}
	args = append(args, a.Extra...)
	args = append(args, extra...)
	bin := a.c.Bin
	if a.Bin != "" {
		bin = a.Bin
	}
	a.cmd = exec.Command(bin, args...)
	a.cmd.Env = a.c.procEnv()
	var w io.Writer = a.log
	if a.c.LogTo != nil {
		w = io.MultiWriter(a.log, &prefixWriter{prefix: "    [" + a.Name + "] ", w: a.c.LogTo})
	}
	a.cmd.Stdout = w
	a.cmd.Stderr = w
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := a.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", a.Name, err)
	}
	a.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(a.cmd, a.done)
	return nil
}

// WaitReady waits until the launched agent's API answers. If the process
// exits first, or does not answer within timeout (then it is killed), the
// error holds its log.
func (a *Agent) WaitReady(timeout time.Duration) error { return a.waitReady(nil, timeout) }

func (a *Agent) waitReady(stop <-chan struct{}, timeout time.Duration) error {
	if a.done == nil {
		return fmt.Errorf("agent %s was never launched", a.Name)
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := a.Client.Status(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-a.done:
			return fmt.Errorf("agent %s exited at start:\n%s", a.Name, a.log.String())
		case <-stop:
			a.Kill()
			return fmt.Errorf("agent %s: %w", a.Name, ErrStartStopped)
		case <-time.After(50 * time.Millisecond):
		}
	}
	a.Kill()
	return fmt.Errorf("agent %s did not answer within %s:\n%s", a.Name, timeout, a.log.String())
}

// Running reports whether the process is alive.
func (a *Agent) Running() bool {
	if a.done == nil {
		return false
	}
	select {
	case <-a.done:
		return false
	default:
		return true
	}
}

// Stop ends the agent gracefully (SIGTERM) and waits.
func (a *Agent) Stop() error {
	if !a.Running() {
		return nil
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
		return nil
	case <-time.After(15 * time.Second):
		a.Kill()
		return fmt.Errorf("agent %s did not stop within 15s", a.Name)
	}
}

// Kill ends the agent at once (SIGKILL: a power cut as far as the store can
// tell) and waits.
func (a *Agent) Kill() {
	if !a.Running() {
		return
	}
	a.cmd.Process.Kill()
	<-a.done
}

// ExitCode is the exit status of the agent's last process: -1 while it
// runs, never launched, or when it was killed by a signal.
func (a *Agent) ExitCode() int {
	if a.Running() || a.cmd == nil || a.cmd.ProcessState == nil {
		return -1
	}
	return a.cmd.ProcessState.ExitCode()
}

// Pid is the process id of the running agent.
func (a *Agent) Pid() int { return a.cmd.Process.Pid }

// Log returns everything the agent logged so far.
func (a *Agent) Log() string { return a.log.String() }

// Close kills every agent of the cluster.
func (c *Cluster) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range c.agents {
		a.Kill()
	}
}

// WaitFor polls cond every 50 ms until it returns true or the timeout ends.
func WaitFor(timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			if last != nil {
				return fmt.Errorf("timed out after %s: %w", timeout, last)
			}
			return fmt.Errorf("timed out after %s", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// FreePort returns a TCP port free on 127.0.0.1 now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreePortPair returns a port P such that P and P+1 are free for TCP and UDP
// on 127.0.0.1 (the data port and the derived gossip port). P comes from the
// kernel, so test processes running side by side do not pick the same ports.
func FreePortPair() (int, error) {
	for tries := 0; tries < 200; tries++ {
		p, err := FreePort()
		if err != nil {
			return 0, err
		}
		if p < 65535 && portFree(p) && portFree(p+1) {
			return p, nil
		}
	}
	return 0, errors.New("no free port pair on 127.0.0.1")
}

func portFree(p int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	u.Close()
	return true
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// prefixWriter prefixes every line written through it.
type prefixWriter struct {
	mu     sync.Mutex
	prefix string
	w      io.Writer
	rest   []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rest = append(p.rest, b...)
	for {
		i := bytes.IndexByte(p.rest, '\n')
		if i < 0 {
			return len(b), nil
		}
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.rest[:i])
		p.rest = p.rest[i+1:]
	}
}

// Agents returns the cluster's agents.
func (c *Cluster) Agents() []*Agent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.agents)
}

// CommandLine is the command line the agent was last started with, the
// binary first, so `make demo` can show what a person would type to start
// it by hand. It is nil before the first Start.
func (a *Agent) CommandLine() []string {
	if a.cmd == nil {
		return nil
	}
	return slices.Clone(a.cmd.Args)
}
