package main

import (
	"flag"

	"github.com/fieldsync/fieldsync/agent/api"
)

// tokenHint tells an officer how to pass a token after a 401.
const tokenHint = `(chạy lệnh bằng cùng người dùng với tác tử, hoặc dùng --token TOKEN hay biến FIELDSYNC_API_TOKEN /
 run the command as the same OS user as the agent, or pass --token TOKEN or FIELDSYNC_API_TOKEN)`

// tokenFlag registers --token on fs.
func tokenFlag(fs *flag.FlagSet) {
	fs.String("token", "", "API token (default: $FIELDSYNC_API_TOKEN, else the agent's runtime file for --api) (mã truy cập API)")
}

// newClient returns a client for addr carrying the token: --token, else
// $FIELDSYNC_API_TOKEN, else the agent's runtime file (api.FindToken).
func newClient(fs *flag.FlagSet, addr string) *api.Client {
	c := api.NewClient(addr)
	if f := fs.Lookup("token"); f != nil && f.Value.String() != "" {
		c.SetToken(f.Value.String())
	}
	return c
}
