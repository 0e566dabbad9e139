package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/fieldsync/fieldsync/agent/identity"
	"github.com/fieldsync/fieldsync/agent/vault"
)

const authorityUsage = `fieldsync authority init --dir DIR [--passphrase-file FILE]
fieldsync authority encrypt --dir DIR [--passphrase-file FILE]
fieldsync authority revoke --authority DIR --device NAME_OR_ID [--reason TEXT] --out FILE [--json]

Tạo khóa gốc của một đợt triển khai mới trong DIR / Create a new deployment's authority in DIR.
The authority signs every device's credential. Keep DIR offline, with the
administrator: never copy it to a field laptop.
The authority key (with the deployment secret) is encrypted under a
passphrase (from --passphrase-file, $FIELDSYNC_AUTHORITY_PASSPHRASE, or asked
twice on the terminal); ` + "`authority encrypt`" + ` encrypts a directory made before
encryption at rest (run it again if it was interrupted).
Thu hồi một máy / revoke: see fieldsync authority revoke --help.
`

// runAuthority dispatches `authority init`.
func runAuthority(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, rest := "", args
	if len(args) > 0 {
		sub, rest = args[0], args[1:]
	}
	switch sub {
	case "init":
		return runAuthorityInit(ctx, rest, stdout, stderr)
	case "encrypt":
		return runAuthorityEncrypt(ctx, rest, stdout, stderr)
	case "revoke":
		return runAuthorityRevoke(ctx, rest, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, authorityUsage)
		return nil
	case "":
		return usageError{errors.New("authority needs a sub-command: init or revoke")}
	}
	return usageError{fmt.Errorf("unknown authority sub-command %q: want init, encrypt or revoke", sub)}
}

func runAuthorityInit(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("authority init", authorityUsage, stdout)
	dir := fs.String("dir", "", "directory for the authority key, created if missing (required) (thư mục chứa khóa gốc)")
	passFile := fs.String("passphrase-file", "", "file holding the authority's new passphrase (default: $FIELDSYNC_AUTHORITY_PASSPHRASE, else asked twice on the terminal)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *dir == "" {
		return usageError{errors.New("--dir DIR is required (cần chỉ định thư mục)")}
	}
	if _, err := os.Stat(filepath.Join(*dir, identity.AuthorityKeyFile)); err == nil {
		_, err := identity.InitAuthority(*dir, rand.Reader) // the "already exists" error, nothing written
		return err
	}
	p, err := authorityPassphrase(*passFile, true)
	if err != nil {
		return err
	}
	if err := checkNewPassphrase(p); err != nil {
		return err
	}
	k, err := createVault(*dir, p)
	if err != nil {
		return err
	}
	a, err := identity.InitAuthoritySealed(*dir, rand.Reader, k)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		abs = *dir
	}
	_, err = fmt.Fprintf(stdout, `Đã tạo khóa gốc / Authority created: %s
Mã triển khai / Deployment: %s

CẢNH BÁO: giữ thư mục này ngoại tuyến, chỉ quản trị viên giữ; KHÔNG BAO GIỜ sao chép
sang máy tính xách tay hiện trường. Ai có nó có thể cấp danh tính cho máy lạ.
WARNING: keep this directory offline, with the administrator; NEVER copy it to a
field laptop. Whoever holds it can provision devices into this deployment.

Tiếp theo / Next, for each laptop:
  fieldsync device init --authority %s --name laptop-a --data DATADIR
`, abs, a.Deployment(), *dir)
	return err
}

func runAuthorityEncrypt(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("authority encrypt", authorityUsage, stdout)
	dir := fs.String("dir", "", "the authority directory (required) (thư mục khóa gốc)")
	passFile := fs.String("passphrase-file", "", "file holding the authority's passphrase (default: $FIELDSYNC_AUTHORITY_PASSPHRASE, else asked on the terminal)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *dir == "" {
		return usageError{errors.New("--dir DIR is required (cần chỉ định thư mục)")}
	}
	if _, err := identity.LoadAuthority(*dir); err != nil && !errors.Is(err, identity.ErrSealedSecrets) {
		return err // no authority, or a damaged one
	}
	var k *vault.Key
	if vault.Exists(*dir) { // a run cut short: same passphrase
		p, err := authorityPassphrase(*passFile, false)
		if err != nil {
			return err
		}
		if k, err = vault.Open(*dir, p); err != nil {
			return lockedError{err}
		}
	} else {
		p, err := authorityPassphrase(*passFile, true)
		if err != nil {
			return err
		}
		if err := checkNewPassphrase(p); err != nil {
			return err
		}
		if k, err = vault.Create(*dir, p, vault.ParamsFromEnv()); err != nil {
			return err
		}
	}
	n, err := identity.SealAuthorityFiles(*dir, k)
	if err != nil {
		return err
	}
	if _, err := identity.LoadAuthoritySealed(*dir, k); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "Đã mã hóa khóa gốc / Authority encrypted: %s (%d files sealed).\n", *dir, n)
	return err
}
