package identity

import (
	"fmt"
	"strings"
)

// Role is what a device may do in the deployment. It is signed into the
// credential, so a device cannot promote itself.
type Role string

// The roles. Field devices capture and sync; the hub is the upstream that
// stores and exports and issues receipts; admins resolve conflicts.
const (
	RoleField Role = "field"
	RoleHub   Role = "hub"
	RoleAdmin Role = "admin"
)

// validRoles is the list named in error messages, in this order.
const validRoles = "field, hub, admin"

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool {
	switch r {
	case RoleField, RoleHub, RoleAdmin:
		return true
	}
	return false
}

// String returns the role name.
func (r Role) String() string { return string(r) }

// ParseRole parses a role name as typed by an operator (case and surrounding
// spaces are ignored). The empty string means [RoleField], the common case.
// An unknown name returns an error wrapping [ErrUnknownRole] that lists the
// valid roles.
func ParseRole(s string) (Role, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "" {
		return RoleField, nil
	}
	if r := Role(t); r.Valid() {
		return r, nil
	}
	return "", &detailError{
		msg:      fmt.Sprintf("unknown role %q: valid roles are %s", s, validRoles),
		sentinel: ErrUnknownRole,
	}
}
