package harness

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
)

// ProvisionOfficer creates a device of this deployment issued to officer
// (`device init --officer`), not started. The officer's name travels in the
// device's credential and shows beside every change the device makes, in
// conflicts and histories. An empty officer gives a device issued to no one.
func (c *Cluster) ProvisionOfficer(name, role, officer string) (*Agent, error) {
	data := filepath.Join(c.Dir, name)
	args := []string{"device", "init", "--authority", c.Authority, "--name", name, "--data", data, "--role", role}
	if officer != "" {
		args = append(args, "--officer", officer)
	}
	if out, err := c.Run(args...); err != nil {
		return nil, fmt.Errorf("device init %s: %w\n%s", name, err, out)
	}
	listen, err := FreePortPair()
	if err != nil {
		return nil, err
	}
	apiPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	a := &Agent{Name: name, Data: data, Role: role, c: c,
		Listen: net.JoinHostPort("127.0.0.1", strconv.Itoa(listen)),
		API:    net.JoinHostPort("127.0.0.1", strconv.Itoa(apiPort)),
		log:    &lockedBuffer{}}
	a.Client = c.NewClient(a.API)
	c.mu.Lock()
	c.agents = append(c.agents, a)
	c.mu.Unlock()
	return a, nil
}

// Copy copies the data directory of a (which must be
// stopped) into a new agent with its own ports, as a laptop restored from a
// backup, or one identity copied to a second laptop, would be. The copy
// holds the same device identity and store as a held when copied.
func (c *Cluster) Copy(a *Agent, name string) (*Agent, error) {
	if a.Running() {
		return nil, fmt.Errorf("copy %s: stop it first", a.Name)
	}
	data := filepath.Join(c.Dir, name)
	err := filepath.WalkDir(a.Data, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(a.Data, path)
		if err != nil {
			return err
		}
		dst := filepath.Join(data, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(dst, info.Mode().Perm())
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, info.Mode().Perm())
	})
	if err != nil {
		return nil, fmt.Errorf("copy %s: %w", a.Name, err)
	}
	listen, err := FreePortPair()
	if err != nil {
		return nil, err
	}
	apiPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	cp := &Agent{Name: name, Data: data, Role: a.Role, c: c,
		Listen: net.JoinHostPort("127.0.0.1", strconv.Itoa(listen)),
		API:    net.JoinHostPort("127.0.0.1", strconv.Itoa(apiPort)),
		log:    &lockedBuffer{}}
	cp.Client = c.NewClient(cp.API)
	c.mu.Lock()
	c.agents = append(c.agents, cp)
	c.mu.Unlock()
	return cp, nil
}
