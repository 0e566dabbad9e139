package harness

import (
	"fmt"
	"net"
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
