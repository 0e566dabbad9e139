package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The runtime file lets a program run by the same OS user as the agent find
// the agent's API token by itself, as Jupyter does with its server tokens:
// the agent writes {"addr","token","pid"} to a file only that user can read
// (0600 in a 0700 directory), named after the API address, and removes it at
// a clean shutdown.

const (
	// EnvToken names the environment variable that carries an API token to
	// the CLI and to scripts.
	EnvToken = "FIELDSYNC_API_TOKEN"
	// EnvRuntimeDir overrides the directory of runtime files (tests use it
	// to stay apart from each other and from the officer's agent).
	EnvRuntimeDir = "FIELDSYNC_RUNTIME_DIR"
)

// Runtime is the content of a runtime file.
type Runtime struct {
	Addr  string `json:"addr"`
	Token string `json:"token"`
	PID   int    `json:"pid"`
}

// RuntimeDir returns the directory of runtime files: $FIELDSYNC_RUNTIME_DIR,
// else $XDG_RUNTIME_DIR/fieldsync, else os.UserConfigDir()/fieldsync/run.
func RuntimeDir() (string, error) {
	if d := os.Getenv(EnvRuntimeDir); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "fieldsync"), nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("runtime directory: %w", err)
	}
	return filepath.Join(d, "fieldsync", "run"), nil
}

// RuntimePath returns the path of the runtime file of the API at addr in
// dir.
func RuntimePath(dir, addr string) string {
	name := "api-" + strings.NewReplacer(":", "-", "[", "", "]", "", "/", "-").Replace(normAddr(addr))
	return filepath.Join(dir, name+".json")
}

// WriteRuntime writes rt to path, readable by this user only. The file is
// written beside and renamed, so a reader never sees half a token.
func WriteRuntime(path string, rt Runtime) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write runtime file: %w", err)
	}
	if err := os.Chmod(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write runtime file: %w", err)
	}
	data, err := json.Marshal(rt)
	if err != nil {
		return fmt.Errorf("write runtime file: %w", err)
	}
	tmp := path + ".tmp"
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write runtime file: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write runtime file: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write runtime file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write runtime file: %w", err)
	}
	return nil
}

// ReadRuntimeToken returns the token in the runtime file of addr in dir, or
// "" if there is none.
func ReadRuntimeToken(dir, addr string) string {
	data, err := os.ReadFile(RuntimePath(dir, addr))
	if err != nil {
		return ""
	}
	var rt Runtime
	if json.Unmarshal(data, &rt) != nil {
		return ""
	}
	return rt.Token
}

// FindToken returns the token to use for the API at addr when none was
// given: $FIELDSYNC_API_TOKEN, else the runtime file of addr. "" means none
// was found (the agent will answer 401).
func FindToken(addr string) string {
	if t := os.Getenv(EnvToken); t != "" {
		return t
	}
	dir, err := RuntimeDir()
	if err != nil {
		return ""
	}
	return ReadRuntimeToken(dir, addr)
}

// ReadTokenFile reads a token an operator fixed in a file (one line).
func ReadTokenFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	t := strings.TrimSpace(string(data))
	if len(t) < 16 {
		return "", errors.New("read token file: the token must be at least 16 characters")
	}
	return t, nil
}

func normAddr(addr string) string {
	return strings.TrimSuffix(strings.TrimPrefix(addr, "http://"), "/")
}
