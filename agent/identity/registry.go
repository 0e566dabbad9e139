package identity

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The authority directory's registry of issued credentials and its last
// revocation list.
const (
	// DevicesDir holds one file per issued credential, <device id>.cbor
	// (the marshalled credential), written by `device init`. It lets
	// `authority revoke` find a device by name and seal the next gossip key
	// to every device that remains.
	DevicesDir = "devices"
	// RevocationsFile is the authority's newest revocation list, from which
	// the next one is built (numbered and cumulative).
	RevocationsFile = "revocations.cbor"
)

// RegisterDevice records an issued credential in the authority directory's
// registry (dir/devices/<id>.cbor, 0644: credentials are public). Recording
// it again replaces the file.
func RegisterDevice(dir string, c Credential) error {
	if !isLowerBase32(c.DeviceID, DeviceIDLen) {
		return fmt.Errorf("register device: %w", malformed("device id %q", clip(c.DeviceID)))
	}
	raw, err := c.Marshal()
	if err != nil {
		return fmt.Errorf("register device: %w", err)
	}
	sub := filepath.Join(dir, DevicesDir)
	if err := os.MkdirAll(sub, dirMode); err != nil {
		return fmt.Errorf("register device: %w", err)
	}
	if err := replaceFile(sub, c.DeviceID+".cbor", raw, publicMode); err != nil {
		return fmt.Errorf("register device: %w", err)
	}
	return nil
}

// RegisteredDevices returns the credentials in the authority directory's
// registry, sorted by device id, each checked against the authority (a file
// that does not verify is an error: someone put it there).
func (a *Authority) RegisteredDevices(dir string) ([]Credential, error) {
	sub := filepath.Join(dir, DevicesDir)
	entries, err := os.ReadDir(sub)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read device registry: %w", err)
	}
	v := a.Verifier()
	var out []Credential
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".cbor") || strings.HasPrefix(name, ".") {
			continue
		}
		path := filepath.Join(sub, name)
		raw, err := readFile(path)
		if err != nil {
			return nil, fmt.Errorf("read device registry: %w", err)
		}
		c, err := UnmarshalCredential(raw)
		if err == nil {
			err = v.verifyIssued(c)
		}
		if err == nil && name != c.DeviceID+".cbor" {
			err = malformed("file name does not match device id %s", c.DeviceID)
		}
		if err != nil {
			return nil, fmt.Errorf("device registry: %s: %w", path, err)
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(x, y Credential) int { return strings.Compare(x.DeviceID, y.DeviceID) })
	return out, nil
}

// LastRevocation returns the authority's newest list (its encoding and
// content), or nil bytes when it has issued none.
func (a *Authority) LastRevocation(dir string) ([]byte, *RevocationList, error) {
	path := filepath.Join(dir, RevocationsFile)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read revocation list: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, MaxRevocationSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read revocation list: %w", err)
	}
	l, err := a.Verifier().VerifyRevocation(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w (restore it from the backup of the authority directory)", path, err)
	}
	return raw, &l, nil
}

// Revocation is the outcome of [Authority.Revoke].
type Revocation struct {
	// Raw is the signed list to hand to any agent.
	Raw  []byte
	List RevocationList
	// Device is the entry of the device asked for.
	Device RevokedDevice
	// Already: the device was revoked by an earlier list, which Raw is
	// (nothing was signed).
	Already bool
	// Unregistered: the device id was not in the registry (issued before
	// it, or by hand).
	Unregistered bool
}

// ErrUnknownDevice: `authority revoke` was given a name that no device in
// the registry has, or a name several devices share.
var ErrUnknownDevice = errors.New("unknown device")

// Revoke revokes the device named target (a device name from the registry,
// or a device id) in dir's authority directory: it signs list N+1, holding
// every revocation of list N and this one, and keeps it as dir's newest list
// (revocations.cbor) before returning it. A device already revoked returns
// the newest list unchanged. seal, if not nil, is given the credentials of
// every registered device that remains, for the list's new gossip key.
func (a *Authority) Revoke(dir, target, reason string, now time.Time, seal func(remaining []Credential, epoch uint64) (*GossipGrant, error)) (Revocation, error) {
	if len(reason) > MaxReasonLen || !printable(reason) {
		return Revocation{}, fmt.Errorf("reason: at most %d bytes of printable text (lý do tối đa %d byte)", MaxReasonLen, MaxReasonLen)
	}
	registry, err := a.RegisteredDevices(dir)
	if err != nil {
		return Revocation{}, err
	}
	prevRaw, prev, err := a.LastRevocation(dir)
	if err != nil {
		return Revocation{}, err
	}
	entry := RevokedDevice{Reason: reason}
	unregistered := false
	switch {
	case isLowerBase32(target, DeviceIDLen):
		entry.DeviceID = target
		unregistered = true
		for _, c := range registry {
			if c.DeviceID == target {
				entry.Name, unregistered = c.Name, false
			}
		}
	default:
		var ids []string
		for _, c := range registry {
			if c.Name == target {
				entry.DeviceID, entry.Name = c.DeviceID, c.Name
				ids = append(ids, c.DeviceID)
			}
		}
		switch len(ids) {
		case 0:
			return Revocation{}, &detailError{
				msg: fmt.Sprintf("no device named %q in the registry of %s (%s): give its device id instead, 26 characters, shown by `fieldsync status` on the device or by `device init` (không tìm thấy máy tên này; hãy dùng mã thiết bị)",
					clip(target), dir, DevicesDir),
				sentinel: ErrUnknownDevice,
			}
		case 1:
		default:
			return Revocation{}, &detailError{
				msg: fmt.Sprintf("%d devices are named %q (%s): give the device id of the one to revoke (nhiều máy cùng tên; hãy dùng mã thiết bị)",
					len(ids), clip(target), strings.Join(ids, ", ")),
				sentinel: ErrUnknownDevice,
			}
		}
	}
	if got, ok := prev.Lookup(entry.DeviceID); ok {
		return Revocation{Raw: prevRaw, List: *prev, Device: got, Already: true}, nil
	}
	issued := now.Unix()
	next := RevocationList{Number: 1, Issued: issued}
	if prev != nil {
		next.Number = prev.Number + 1
		next.Issued = max(issued, prev.Issued)
		next.Revoked = slices.Clone(prev.Revoked)
	}
	entry.RevokedAt = next.Issued
	next.Revoked = append(next.Revoked, entry)
	slices.SortFunc(next.Revoked, func(x, y RevokedDevice) int { return strings.Compare(x.DeviceID, y.DeviceID) })
	if seal != nil {
		var remaining []Credential
		for _, c := range registry {
			if _, gone := next.Lookup(c.DeviceID); !gone {
				remaining = append(remaining, c)
			}
		}
		if next.Gossip, err = seal(remaining, next.Number); err != nil {
			return Revocation{}, fmt.Errorf("seal the new gossip key: %w", err)
		}
	}
	raw, err := a.SignRevocation(next)
	if err != nil {
		return Revocation{}, err
	}
	if err := replaceFile(dir, RevocationsFile, raw, publicMode); err != nil {
		return Revocation{}, fmt.Errorf("keep revocation list: %w", err)
	}
	return Revocation{Raw: raw, List: next, Device: entry, Unregistered: unregistered}, nil
}
