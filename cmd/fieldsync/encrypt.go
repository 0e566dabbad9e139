package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/fieldsync/fieldsync/agent/identity"
	"github.com/fieldsync/fieldsync/agent/store"
	"github.com/fieldsync/fieldsync/agent/vault"
)

const devicePassphraseUsage = `fieldsync device passphrase --data DATADIR [--passphrase-file FILE] [--new-passphrase-file FILE] [--json]

Đổi mật khẩu của máy / Change the device's passphrase. The store is not
rewritten: only the wrapping of its key changes, atomically. The current
passphrase comes from --passphrase-file, else $FIELDSYNC_PASSPHRASE, else the
terminal; the new one from --new-passphrase-file, else
$FIELDSYNC_NEW_PASSPHRASE, else the terminal (asked twice).
`

const deviceEncryptUsage = `fieldsync device encrypt --data DATADIR [--passphrase-file FILE] [--json]

Mã hóa thư mục dữ liệu cũ / Encrypt a data directory made before encryption at
rest: sets a passphrase, seals the device key and deployment secret, and
rewrites the store encrypted. Stop the agent first. Crash-safe: if the
command is interrupted (even by kill -9 or a power cut) the directory holds
either the old store or the new one; run the command again to finish, and
the agent finishes a conversion that had passed its commit point by itself.
`

// EnvNewPassphrase carries the new passphrase of `device passphrase`.
const EnvNewPassphrase = "FIELDSYNC_NEW_PASSPHRASE"

// Work directories of `device encrypt` inside the data directory: the new
// store and secrets are built in encryptBuilding, which becomes
// encryptReady in one rename (the commit point), and then move into place.
const (
	encryptBuilding = ".encrypt-building"
	encryptReady    = ".encrypt-ready"
	encryptOld      = ".encrypt-old"
)

// encryptInfo is what `device encrypt --json` prints.
type encryptInfo struct {
	DataDir string `json:"data_dir"`
	Keys    uint64 `json:"store_keys"`
	Resumed bool   `json:"resumed"`
}

func runDevicePassphrase(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("device passphrase", devicePassphraseUsage, stdout)
	dataDir := fs.String("data", "", "the device's data directory (required) (thư mục dữ liệu)")
	oldFile := passphraseFlag(fs, "file holding the current passphrase (tệp mật khẩu hiện tại)")
	newFile := fs.String("new-passphrase-file", "", "file holding the new passphrase (tệp mật khẩu mới)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *dataDir == "" {
		return usageError{errors.New("--data DATADIR is required (cần thư mục dữ liệu)")}
	}
	if !vault.Exists(*dataDir) {
		return lockedError{fmt.Errorf("%s is not encrypted (chưa được mã hóa): encrypt it with `fieldsync device encrypt --data %s`", *dataDir, *dataDir)}
	}
	oldPass, err := passphrase(*oldFile, "Mật khẩu hiện tại / Current passphrase: ", false)
	if err != nil {
		return err
	}
	var p []byte
	if *newFile == "" && os.Getenv(EnvNewPassphrase) != "" {
		p = []byte(os.Getenv(EnvNewPassphrase))
		if err := checkNewPassphrase(p); err != nil {
			return err
		}
	} else if p, err = newPassphrase(*newFile); err != nil {
		return err
	}
	k, err := vault.Rewrap(*dataDir, oldPass, p, vault.ParamsFromEnv())
	if err != nil {
		return lockedError{err}
	}
	if *asJSON {
		return writeJSON(stdout, map[string]string{"data_dir": *dataDir, "kdf": k.Params().String()})
	}
	_, err = fmt.Fprintf(stdout, "Đã đổi mật khẩu / Passphrase changed for %s (%s).\n", *dataDir, k.Params())
	return err
}

func runDeviceEncrypt(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("device encrypt", deviceEncryptUsage, stdout)
	dataDir := fs.String("data", "", "the data directory to encrypt (required) (thư mục dữ liệu)")
	passFile := passphraseFlag(fs, "file holding the new passphrase (default: $FIELDSYNC_PASSPHRASE, else asked twice on the terminal)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *dataDir == "" {
		return usageError{errors.New("--data DATADIR is required (cần thư mục dữ liệu)")}
	}
	info := encryptInfo{DataDir: *dataDir}
	resumed, err := finishEncrypt(*dataDir)
	if err != nil {
		return err
	}
	if resumed {
		info.Resumed = true
	} else {
		if vault.Exists(*dataDir) {
			return fmt.Errorf("%s is already encrypted (đã được mã hóa); change its passphrase with `fieldsync device passphrase`", *dataDir)
		}
		dev, err := identity.LoadDevice(*dataDir)
		if err != nil {
			return err
		}
		p, err := newPassphrase(*passFile)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "Đang mã hóa kho dữ liệu / Encrypting the store of %s…\n", dev.Name())
		if info.Keys, err = buildEncrypted(*dataDir, dev, p); err != nil {
			return err
		}
		if _, err := finishEncrypt(*dataDir); err != nil {
			return err
		}
	}
	if *asJSON {
		return writeJSON(stdout, info)
	}
	_, err = fmt.Fprintf(stdout, "Đã mã hóa / Encrypted: %s (store, device key and deployment secret). Start the agent as before; it will need the passphrase.\n", *dataDir)
	return err
}

// buildEncrypted writes the encrypted store and secrets of dataDir into
// encryptBuilding, then renames it to encryptReady: the commit point.
func buildEncrypted(dataDir string, dev *identity.Device, pass []byte) (uint64, error) {
	build := filepath.Join(dataDir, encryptBuilding)
	if err := os.RemoveAll(build); err != nil { // an attempt cut short before its commit point
		return 0, err
	}
	if err := os.Mkdir(build, 0o700); err != nil {
		return 0, err
	}
	k, err := vault.Create(build, pass, vault.ParamsFromEnv())
	if err != nil {
		return 0, err
	}
	if err := dev.SaveSecrets(build, k); err != nil {
		return 0, err
	}
	var keys uint64
	if _, err := os.Stat(filepath.Join(dataDir, "store")); err == nil {
		dst := store.DefaultOptions(filepath.Join(build, "store"))
		dst.EncryptionKey = k.StoreKey()
		if keys, err = store.Copy(store.DefaultOptions(filepath.Join(dataDir, "store")), dst); err != nil {
			return 0, err
		}
	}
	if err := vault.SyncDir(build); err != nil {
		return 0, err
	}
	if err := os.Rename(build, filepath.Join(dataDir, encryptReady)); err != nil {
		return 0, err
	}
	return keys, vault.SyncDir(dataDir)
}

// finishEncrypt moves a committed conversion (encryptReady) into place and
// removes the old plain files. Every step can be repeated, so a crash at
// any point is finished by calling it again; the vault moves last, so a
// directory with vault.cbor is fully converted. It reports whether there
// was a conversion to finish.
func finishEncrypt(dataDir string) (bool, error) {
	ready := filepath.Join(dataDir, encryptReady)
	if _, err := os.Stat(ready); errors.Is(err, os.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	old := filepath.Join(dataDir, encryptOld)
	if err := os.MkdirAll(old, 0o700); err != nil {
		return true, err
	}
	for _, name := range []string{"store", identity.DeviceKeyFile, identity.DeploymentFile, vault.FileName} {
		from := filepath.Join(ready, name)
		if _, err := os.Stat(from); errors.Is(err, os.ErrNotExist) {
			continue // moved already
		}
		to := filepath.Join(dataDir, name)
		if _, err := os.Stat(to); err == nil {
			if err := os.Rename(to, filepath.Join(old, name)); err != nil {
				return true, fmt.Errorf("finish encryption: %w", err)
			}
		}
		if err := os.Rename(from, to); err != nil {
			return true, fmt.Errorf("finish encryption: %w", err)
		}
		if err := vault.SyncDir(dataDir); err != nil {
			return true, err
		}
	}
	// The plain store and key files are unlinked; on an SSD their blocks
	// may survive until the drive reuses them (docs/threat-model.md).
	if err := os.RemoveAll(old); err != nil {
		return true, err
	}
	if err := os.RemoveAll(ready); err != nil {
		return true, err
	}
	return true, vault.SyncDir(dataDir)
}
