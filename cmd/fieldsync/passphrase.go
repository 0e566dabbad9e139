package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/term"

	"github.com/fieldsync/fieldsync/agent/identity"
	"github.com/fieldsync/fieldsync/agent/vault"
)

// EnvPassphrase is the environment variable a service or a test passes the
// passphrase in. It is visible to the user's own processes (and root)
// through /proc/PID/environ while the agent runs; --passphrase-file with a
// 0600 file (or a systemd credential) keeps it out of the environment.
const EnvPassphrase = "FIELDSYNC_PASSPHRASE"

// exitLocked: no passphrase, a wrong one, or a data directory that must be
// converted first. Nothing on disk was changed.
const exitLocked = 3

// lockedError marks errors that exit with exitLocked.
type lockedError struct{ error }

func (e lockedError) Unwrap() error { return e.error }

// lockedHint follows every locked error.
const lockedHint = `(mật khẩu lấy từ --passphrase-file TỆP, biến FIELDSYNC_PASSPHRASE, hoặc được hỏi trên màn hình /
 the passphrase comes from --passphrase-file FILE, from FIELDSYNC_PASSPHRASE, or is asked for on a terminal)`

// maxPassphraseFile bounds what is read from a passphrase file.
const maxPassphraseFile = 4096

// passphraseFlag registers --passphrase-file on fs.
func passphraseFlag(fs *flag.FlagSet, usage string) *string {
	return fs.String("passphrase-file", "", usage)
}

// passphrase returns the passphrase from file, else $FIELDSYNC_PASSPHRASE,
// else a prompt on the terminal (twice when confirm), else ErrNoPassphrase.
// A file's trailing newline is not part of the passphrase.
func passphrase(file, prompt string, confirm bool) ([]byte, error) {
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, lockedError{fmt.Errorf("passphrase file: %w", err)}
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxPassphraseFile+1))
		if err != nil {
			return nil, lockedError{fmt.Errorf("passphrase file %s: %w", file, err)}
		}
		if len(b) > maxPassphraseFile {
			return nil, lockedError{fmt.Errorf("passphrase file %s is larger than %d bytes", file, maxPassphraseFile)}
		}
		b = bytes.TrimRight(b, "\r\n")
		if len(b) == 0 {
			return nil, lockedError{fmt.Errorf("passphrase file %s is empty: %w", file, vault.ErrNoPassphrase)}
		}
		return b, nil
	}
	if p := os.Getenv(EnvPassphrase); p != "" {
		return []byte(p), nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil, lockedError{vault.ErrNoPassphrase}
	}
	fmt.Fprint(os.Stderr, prompt)
	p, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return nil, lockedError{fmt.Errorf("read passphrase: %w", err)}
	}
	if len(p) == 0 {
		return nil, lockedError{vault.ErrNoPassphrase}
	}
	if confirm {
		fmt.Fprint(os.Stderr, "Nhập lại / Again: ")
		again, err := term.ReadPassword(fd)
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return nil, lockedError{fmt.Errorf("read passphrase: %w", err)}
		}
		if !bytes.Equal(p, again) {
			return nil, lockedError{errors.New("the two passphrases differ (hai mật khẩu không khớp)")}
		}
	}
	return p, nil
}

// minPassphrase is the shortest passphrase a new vault accepts: a laptop's
// disk is only as safe as this is hard to guess.
const minPassphrase = 8

// newPassphrase asks for the passphrase of a new vault.
func newPassphrase(file string) ([]byte, error) {
	p, err := passphrase(file, "Mật khẩu mới cho máy này / New passphrase for this device: ", true)
	if err != nil {
		return nil, err
	}
	if err := checkNewPassphrase(p); err != nil {
		return nil, err
	}
	return p, nil
}

// checkNewPassphrase refuses a new passphrase shorter than minPassphrase.
func checkNewPassphrase(p []byte) error {
	if len([]rune(string(p))) < minPassphrase {
		return usageError{fmt.Errorf("the passphrase must be at least %d characters (mật khẩu tối thiểu %d ký tự)", minPassphrase, minPassphrase)}
	}
	return nil
}

// unlock opens dataDir's vault. A directory from before encryption at rest
// (a plain device key, no vault) is refused with the command that converts
// it; nothing on disk changes in any case.
func unlock(dataDir, file string) (*vault.Key, error) {
	// A `device encrypt` killed past its commit point is finished here, so
	// the agent never starts on half-moved files.
	if _, err := finishEncrypt(dataDir); err != nil {
		return nil, fmt.Errorf("finish the interrupted encryption of %s: %w", dataDir, err)
	}
	if !vault.Exists(dataDir) {
		if _, err := os.Stat(filepath.Join(dataDir, identity.DeviceKeyFile)); err == nil {
			return nil, lockedError{fmt.Errorf("%s is not encrypted yet (thư mục dữ liệu chưa được mã hóa): convert it once with `fieldsync device encrypt --data %s`", dataDir, dataDir)}
		}
		return nil, fmt.Errorf("no device in %s: provision it with `fieldsync device init` first (chưa cấp danh tính cho máy)", dataDir)
	}
	p, err := passphrase(file, "Mật khẩu / Passphrase: ", false)
	if err != nil {
		return nil, err
	}
	k, err := vault.Open(dataDir, p)
	if errors.Is(err, vault.ErrWrongPassphrase) || errors.Is(err, vault.ErrNoPassphrase) {
		return nil, lockedError{err}
	}
	if err != nil {
		return nil, err
	}
	return k, nil
}

// EnvAuthorityPassphrase carries the authority directory's passphrase,
// which is not a device's: `device init` needs both.
const EnvAuthorityPassphrase = "FIELDSYNC_AUTHORITY_PASSPHRASE"

// authorityPassphrase is passphrase for the authority directory.
func authorityPassphrase(file string, confirm bool) ([]byte, error) {
	if file == "" {
		if p := os.Getenv(EnvAuthorityPassphrase); p != "" {
			return []byte(p), nil
		}
	}
	prompt := "Mật khẩu khóa gốc / Authority passphrase: "
	if file != "" {
		return passphrase(file, prompt, confirm)
	}
	// Not FIELDSYNC_PASSPHRASE: that one is the device's.
	saved, had := os.LookupEnv(EnvPassphrase)
	os.Unsetenv(EnvPassphrase)
	defer func() {
		if had {
			os.Setenv(EnvPassphrase, saved)
		}
	}()
	return passphrase("", prompt, confirm)
}

// unlockAuthority loads the authority of dir, opening its vault.
func unlockAuthority(dir, file string) (*identity.Authority, error) {
	if !vault.Exists(dir) {
		if _, err := os.Stat(filepath.Join(dir, identity.AuthorityKeyFile)); err == nil {
			return nil, lockedError{fmt.Errorf("the authority key in %s is not encrypted yet (khóa gốc chưa được mã hóa): encrypt it once with `fieldsync authority encrypt --dir %s`", dir, dir)}
		}
		return identity.LoadAuthority(dir) // says how to create one
	}
	p, err := authorityPassphrase(file, false)
	if err != nil {
		return nil, err
	}
	k, err := vault.Open(dir, p)
	if errors.Is(err, vault.ErrWrongPassphrase) || errors.Is(err, vault.ErrNoPassphrase) {
		return nil, lockedError{err}
	}
	if err != nil {
		return nil, err
	}
	return identity.LoadAuthoritySealed(dir, k)
}

// createVault makes the vault of a directory about to get its first
// secrets. A vault left by an init that failed before any secret was
// written protects nothing yet and is replaced.
func createVault(dir string, pass []byte) (*vault.Key, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if vault.Exists(dir) {
		if err := os.Remove(filepath.Join(dir, vault.FileName)); err != nil {
			return nil, err
		}
	}
	return vault.Create(dir, pass, vault.ParamsFromEnv())
}
