package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fieldsync/fieldsync/agent/api"
)

// apiToken returns the API's bearer token: the operator's (Config.APITokenFile,
// for services and scripts) or 32 random bytes, base64url, made at each start.
func apiToken(cfg Config) (string, error) {
	if cfg.APITokenFile != "" {
		t, err := api.ReadTokenFile(cfg.APITokenFile)
		if err != nil {
			return "", fmt.Errorf("api token: %w", err)
		}
		return t, nil
	}
	return api.NewToken(), nil
}

// writeRuntime writes the runtime file through which a program of the same
// OS user finds the token (see api.RuntimeDir). A file left by an agent that
// died at the same address is overwritten. Failing to write it is logged,
// not fatal: --token and FIELDSYNC_API_TOKEN still work.
func (a *Agent) writeRuntime(token string) {
	dir, err := api.RuntimeDir()
	if err != nil {
		a.log.Warn("no runtime directory for the API token", "err", err)
		return
	}
	addr := a.apiLn.Addr().String()
	path := api.RuntimePath(dir, addr)
	if err := api.WriteRuntime(path, api.Runtime{Addr: addr, Token: token, PID: os.Getpid()}); err != nil {
		a.log.Warn("could not write the API runtime file", "path", path, "err", err)
		return
	}
	a.runtimePath = path
}

// removeRuntime removes the runtime file at a clean shutdown.
func (a *Agent) removeRuntime() {
	if a.runtimePath != "" {
		os.Remove(a.runtimePath)
	}
}

// AdminTokenFile is where a hub keeps its admin token when no
// --admin-token-file is given: made at its first start (0600) and kept, so
// that the IT officer can read it once and hand it to the admins who settle.
const AdminTokenFile = "admin-token"

// adminToken returns a hub's admin token (Config.AdminTokenFile, else
// DATADIR/admin-token, made if missing). Other devices have none: their
// one token allows everything their role allows.
func (a *Agent) adminToken() (string, error) {
	if !a.isHub {
		return "", nil
	}
	path := a.cfg.AdminTokenFile
	if path == "" {
		path = filepath.Join(a.cfg.DataDir, AdminTokenFile)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			if err := os.WriteFile(path, []byte(api.NewToken()+"\n"), 0o600); err != nil {
				return "", fmt.Errorf("admin token: %w", err)
			}
			a.log.Info("made the hub's admin token; admins pass it with --admin-token or FIELDSYNC_ADMIN_TOKEN", "file", path)
		}
	}
	t, err := api.ReadTokenFile(path)
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	return t, nil
}
