package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/fieldsync/fieldsync/agent/identity"
)

const authorityUsage = `fieldsync authority init --dir DIR
fieldsync authority revoke --authority DIR --device NAME_OR_ID [--reason TEXT] --out FILE [--json]

Tạo khóa gốc của một đợt triển khai mới trong DIR / Create a new deployment's authority in DIR.
The authority signs every device's credential. Keep DIR offline, with the
administrator: never copy it to a field laptop.
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
	case "revoke":
		return runAuthorityRevoke(ctx, rest, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, authorityUsage)
		return nil
	case "":
		return usageError{errors.New("authority needs a sub-command: init or revoke")}
	}
	return usageError{fmt.Errorf("unknown authority sub-command %q: want init or revoke", sub)}
}

func runAuthorityInit(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("authority init", authorityUsage, stdout)
	dir := fs.String("dir", "", "directory for the authority key, created if missing (required) (thư mục chứa khóa gốc)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *dir == "" {
		return usageError{errors.New("--dir DIR is required (cần chỉ định thư mục)")}
	}
	a, err := identity.InitAuthority(*dir, rand.Reader)
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
