package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/fieldsync/fieldsync/agent/identity"
	"github.com/fieldsync/fieldsync/agent/vault"
)

const deviceUsage = `fieldsync device init --authority DIR --name NAME --data DATADIR [--role field|hub|admin] [--officer NAME] [--valid-days N] [--passphrase-file FILE] [--json]

Cấp danh tính cho một máy / Provision a laptop (or the hub) into the deployment:
writes its key and credential into DATADIR, which then goes to that laptop.
The device key, the deployment secret and the store are encrypted under a
passphrase set here (at least 8 characters; from --passphrase-file, else
$FIELDSYNC_PASSPHRASE, else asked twice on the terminal).
Run it on the administrator's machine, where the authority directory is.
`

// runDevice dispatches `device init`.
func runDevice(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, rest := "", args
	if len(args) > 0 {
		sub, rest = args[0], args[1:]
	}
	switch sub {
	case "init":
		return runDeviceInit(ctx, rest, stdout, stderr)
	case "passphrase":
		return runDevicePassphrase(ctx, rest, stdout, stderr)
	case "encrypt":
		return runDeviceEncrypt(ctx, rest, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, deviceUsage+"\n"+devicePassphraseUsage+"\n"+deviceEncryptUsage)
		return nil
	case "":
		return usageError{errors.New("device needs a sub-command: init, passphrase or encrypt")}
	}
	return usageError{fmt.Errorf("unknown device sub-command %q: want init, passphrase or encrypt", sub)}
}

// deviceInfo is what `device init --json` prints.
type deviceInfo struct {
	DeviceID   string    `json:"device_id"`
	Name       string    `json:"name"`
	Role       string    `json:"role"`
	Officer    string    `json:"officer,omitempty"`
	Deployment string    `json:"deployment"`
	DataDir    string    `json:"data_dir"`
	IssuedAt   time.Time `json:"issued_at"`
	Expires    time.Time `json:"expires"`
}

func runDeviceInit(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("device init", deviceUsage, stdout)
	authDir := fs.String("authority", "", "the deployment's authority directory (required) (thư mục khóa gốc)")
	name := fs.String("name", "", "device name shown to officers, e.g. laptop-a (required) (tên máy)")
	dataDir := fs.String("data", "", "data directory to create for the device (required) (thư mục dữ liệu)")
	roleName := fs.String("role", "field", "field, hub or admin (vai trò)")
	officer := fs.String("officer", "", "the officer the device is issued to, shown beside each change it makes (cán bộ sử dụng)")
	validDays := fs.Int("valid-days", 365, "days the credential stays valid (số ngày hiệu lực)")
	authPassFile := fs.String("authority-passphrase-file", "", "file holding the authority's passphrase (default: $FIELDSYNC_AUTHORITY_PASSPHRASE, else asked on the terminal)")
	passFile := passphraseFlag(fs, "file holding the new device's passphrase (default: $FIELDSYNC_PASSPHRASE, else asked on the terminal) (tệp mật khẩu)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	switch {
	case *authDir == "":
		return usageError{errors.New("--authority DIR is required (cần thư mục khóa gốc)")}
	case *name == "":
		return usageError{errors.New("--name NAME is required (cần tên máy)")}
	case *dataDir == "":
		return usageError{errors.New("--data DATADIR is required (cần thư mục dữ liệu)")}
	case *validDays < 1 || *validDays > 100*365:
		return usageError{fmt.Errorf("--valid-days %d: want 1 to %d days (số ngày không hợp lệ)", *validDays, 100*365)}
	}
	role, err := identity.ParseRole(*roleName)
	if err != nil {
		return usageError{err}
	}
	a, err := unlockAuthority(*authDir, *authPassFile)
	if err != nil {
		return err
	}
	validity := time.Duration(*validDays) * 24 * time.Hour
	key, err := newVault(*dataDir, *passFile)
	if err != nil {
		return err
	}
	d, err := identity.InitDeviceSealed(key, a, *dataDir, *name, *officer, role, time.Now(), validity, rand.Reader)
	if err != nil {
		return err
	}
	// The register lets `authority revoke` find the device by name and seal
	// later gossip keys to it.
	if err := identity.RegisterDevice(*authDir, d.Credential); err != nil {
		return fmt.Errorf("device provisioned in %s, but not recorded in the authority's register: %w", *dataDir, err)
	}
	if err := a.HandOverRevocations(*authDir, *dataDir, d.Credential); err != nil {
		return fmt.Errorf("device provisioned in %s, but without the deployment's revocation list and gossip key: %w", *dataDir, err)
	}
	info := deviceInfo{
		DeviceID:   d.ID(),
		Name:       d.Credential.Name,
		Role:       string(d.Credential.Role),
		Officer:    d.Credential.Officer,
		Deployment: d.Credential.Deployment,
		DataDir:    *dataDir,
		IssuedAt:   time.Unix(d.Credential.IssuedAt, 0).UTC(),
		Expires:    time.Unix(d.Credential.Expires, 0).UTC(),
	}
	if *asJSON {
		return writeJSON(stdout, info)
	}
	daemon := "agent"
	if role == identity.RoleHub {
		daemon = "hub"
	}
	_, err = fmt.Fprintf(stdout, `Đã cấp danh tính / Device provisioned in %s
  Tên / Name:              %s
  Mã thiết bị / Device ID: %s
  Vai trò / Role:          %s
  Triển khai / Deployment: %s
  Hết hạn / Expires:       %s

Chép thư mục này sang máy đó rồi chạy / Copy this directory to that machine, then run:
  fieldsync %s --data %s
`, info.DataDir, clean(info.Name), info.DeviceID, info.Role, info.Deployment,
		info.Expires.Format("2006-01-02 15:04 UTC"), daemon, info.DataDir)
	return err
}

// newVault creates the vault of a device about to be provisioned in
// dataDir.
func newVault(dataDir, passFile string) (*vault.Key, error) {
	if _, err := os.Stat(filepath.Join(dataDir, identity.DeviceKeyFile)); err == nil {
		return nil, fmt.Errorf("%s already holds a device (%s): this laptop is already provisioned (%w)", dataDir, identity.DeviceKeyFile, identity.ErrExists)
	}
	p, err := newPassphrase(passFile)
	if err != nil {
		return nil, err
	}
	return createVault(dataDir, p)
}
