package main

import (
	"flag"
	"os"

	"github.com/fieldsync/fieldsync/agent/api"
)

// tokenHint tells an officer how to pass a token after a 401.
const tokenHint = `(chạy lệnh bằng cùng người dùng với tác tử, hoặc dùng --token TOKEN hay biến FIELDSYNC_API_TOKEN /
 run the command as the same OS user as the agent, or pass --token TOKEN or FIELDSYNC_API_TOKEN)`

// tokenFlag registers --token on fs.
func tokenFlag(fs *flag.FlagSet) {
	fs.String("token", "", "API token (default: $FIELDSYNC_API_TOKEN, else the agent's runtime file for --api) (mã truy cập API)")
	fs.String("admin-token", "", "a hub's admin token, needed there to settle conflicts and duplicates (default: $FIELDSYNC_ADMIN_TOKEN) (mã quản trị)")
}

// EnvAdminToken carries a hub's admin token to the CLI.
const EnvAdminToken = "FIELDSYNC_ADMIN_TOKEN"

// newClient returns a client for addr carrying the token: --token, else
// $FIELDSYNC_API_TOKEN, else the agent's runtime file (api.FindToken).
func newClient(fs *flag.FlagSet, addr string) *api.Client {
	c := api.NewClient(addr)
	if f := fs.Lookup("token"); f != nil && f.Value.String() != "" {
		c.SetToken(f.Value.String())
	}
	// The admin token allows every call, so it replaces the other.
	admin := os.Getenv(EnvAdminToken)
	if f := fs.Lookup("admin-token"); f != nil && f.Value.String() != "" {
		admin = f.Value.String()
	}
	if admin != "" {
		c.SetToken(admin)
	}
	return c
}
