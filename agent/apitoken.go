package agent

import (
	"fmt"
	"os"

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
