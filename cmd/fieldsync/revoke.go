package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/agent/identity"
)

const authorityRevokeUsage = `fieldsync authority revoke --authority DIR --device NAME_OR_ID [--reason TEXT] --out FILE [--json]

Thu hồi một máy bị mất / Revoke a lost or stolen device. Run it on the
administrator's machine, where the authority directory is. It writes the
deployment's next revocation list to FILE (numbered, and holding every earlier
revocation too) and a new gossip key sealed to every device that remains.
Hand FILE to any running agent (field laptop, admin laptop or hub):
  fieldsync revoke --api 127.0.0.1:7420 FILE
and it spreads from there to every agent it meets; no network to the
administrator is needed. NAME_OR_ID is the device name given to
` + "`device init`" + `, or its 26-character device id (for a device provisioned
before the authority kept its register of devices).
`

const revokeUsage = `fieldsync revoke [--api HOST:PORT] [--json] FILE

Trao danh sách thu hồi cho tác tử / Hand a revocation list (written by
` + "`fieldsync authority revoke`" + `) to the agent at --api. The agent checks the
authority's signature, keeps the list and passes it on to every peer and hub;
within a minute every agent connected to it refuses the revoked devices.
`

// revokeInfo is what both commands print with --json.
type revokeInfo struct {
	Number    uint64              `json:"number"`
	Installed *bool               `json:"installed,omitempty"`
	Already   bool                `json:"already_revoked,omitempty"`
	Out       string              `json:"out,omitempty"`
	Device    *api.RevokedDevice  `json:"device,omitempty"`
	Devices   []api.RevokedDevice `json:"devices"`
	// Sealed counts the devices the new gossip key is sealed to.
	Sealed int `json:"gossip_key_sealed_to"`
}

func runAuthorityRevoke(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("authority revoke", authorityRevokeUsage, stdout)
	authDir := fs.String("authority", "", "the deployment's authority directory (required) (thư mục khóa gốc)")
	device := fs.String("device", "", "name or device id of the device to revoke (required) (tên hoặc mã máy cần thu hồi)")
	reason := fs.String("reason", "", "why, e.g. \"lost on the ferry 2026-12-06\" (lý do)")
	out := fs.String("out", "", "file to write the revocation list to (required) (tệp danh sách thu hồi)")
	authPassFile := fs.String("authority-passphrase-file", "", "file holding the authority's passphrase (default: $FIELDSYNC_AUTHORITY_PASSPHRASE, else asked on the terminal)")
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
	case *device == "":
		return usageError{errors.New("--device NAME_OR_ID is required (cần tên hoặc mã máy)")}
	case *out == "":
		return usageError{errors.New("--out FILE is required (cần tệp đầu ra)")}
	}
	a, err := unlockAuthority(*authDir, *authPassFile)
	if err != nil {
		return err
	}
	res, err := a.Revoke(*authDir, *device, *reason, time.Now(), a.GossipSealer(*authDir, nil))
	if errors.Is(err, identity.ErrUnknownDevice) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	if err := writeListFile(*out, res.Raw); err != nil {
		return fmt.Errorf("write %s: %w (the list is kept in %s; run the command again to write it)", *out, err,
			filepath.Join(*authDir, identity.RevocationsFile))
	}
	info := revokeInfo{Number: res.List.Number, Already: res.Already, Out: *out, Devices: revokedDevices(res.List)}
	d := toAPIRevoked(res.Device)
	info.Device = &d
	if res.List.Gossip != nil {
		info.Sealed = len(res.List.Gossip.Sealed)
	}
	if *asJSON {
		return writeJSON(stdout, info)
	}
	name := res.Device.Name
	if name == "" {
		name = res.Device.DeviceID
	}
	if res.Already {
		fmt.Fprintf(stdout, "Máy %s đã bị thu hồi từ trước / %s was already revoked (list %d); the list is written again to %s.\n",
			clean(name), clean(name), res.List.Number, *out)
		return nil
	}
	if res.Unregistered {
		fmt.Fprintf(stderr, "Chú ý / Note: %s is not in the authority's register of devices; revoked by id.\n", res.Device.DeviceID)
	}
	_, err = fmt.Fprintf(stdout, `Đã thu hồi / Revoked: %s (%s)
Danh sách số / List number: %d (%d thiết bị bị thu hồi / revoked devices)
Khóa gossip mới gửi cho / New gossip key sealed to: %d devices
Tệp / File: %s

Tiếp theo / Next: hand the file to any running agent, e.g. on this machine:
  fieldsync revoke --api 127.0.0.1:7420 %s
then check on any agent: fieldsync status --json  ("revocation": {"number": %d, ...})
`, clean(name), res.Device.DeviceID, res.List.Number, len(res.List.Revoked), info.Sealed, *out, *out, res.List.Number)
	return err
}

func runRevoke(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("revoke", revokeUsage, stdout)
	addr := apiFlag(fs)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{errors.New("give the revocation list FILE (cần tệp danh sách thu hồi)")}
	}
	raw, err := readListFile(fs.Arg(0))
	if err != nil {
		return err
	}
	res, err := newClient(fs, *addr).Revoke(ctx, raw)
	if err != nil {
		return explain(err)
	}
	installed := res.Installed
	info := revokeInfo{Number: res.Revocation.Number, Installed: &installed, Devices: res.Revocation.Devices}
	if info.Devices == nil {
		info.Devices = []api.RevokedDevice{}
	}
	if *asJSON {
		return writeJSON(stdout, info)
	}
	if !installed {
		_, err = fmt.Fprintf(stdout, "Tác tử đã có danh sách này / The agent already holds this list (number %d).\n", info.Number)
		return err
	}
	fmt.Fprintf(stdout, "Đã áp dụng danh sách thu hồi số %d / Revocation list %d is in force; it now spreads to every peer.\n", info.Number, info.Number)
	for _, d := range info.Devices {
		fmt.Fprintf(stdout, "  %s  %s  %s\n", d.DeviceID, orDash(d.Name), orDash(d.Reason))
	}
	return nil
}

func revokedDevices(l identity.RevocationList) []api.RevokedDevice {
	out := make([]api.RevokedDevice, 0, len(l.Revoked))
	for _, r := range l.Revoked {
		out = append(out, toAPIRevoked(r))
	}
	return out
}

func toAPIRevoked(r identity.RevokedDevice) api.RevokedDevice {
	return api.RevokedDevice{DeviceID: r.DeviceID, Name: r.Name, Reason: r.Reason, RevokedAt: time.Unix(r.RevokedAt, 0).UTC()}
}

// writeListFile writes the list (public, signed) atomically enough for a
// USB stick: a temporary file renamed over FILE.
func writeListFile(path string, raw []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readListFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open revocation list: %w (không mở được tệp)", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, identity.MaxRevocationSize+1))
	if err != nil {
		return nil, fmt.Errorf("read revocation list: %w", err)
	}
	if len(raw) > identity.MaxRevocationSize {
		return nil, fmt.Errorf("%s is larger than %d bytes: it is not a revocation list (không phải danh sách thu hồi)", path, identity.MaxRevocationSize)
	}
	return raw, nil
}
