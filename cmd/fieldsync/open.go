package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
)

const openUsage = `fieldsync open [--api HOST:PORT] [--no-browser] [--json]

Mở trang quản trị trên trình duyệt / Open the agent's web page in a browser,
logged in: prints a one-time link (valid 2 minutes, usable once) and opens it.
The page then keeps a session cookie for 12 hours.
`

func runOpen(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("open", openUsage, stdout)
	addr := apiFlag(fs)
	noBrowser := fs.Bool("no-browser", false, "only print the link (chỉ in liên kết)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	lt, err := newClient(fs, *addr).LoginToken(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, lt)
	}
	fmt.Fprintf(stdout, "Mở liên kết này (dùng một lần, trong 2 phút) / Open this link (once, within 2 minutes):\n  %s\n", lt.URL)
	if !*noBrowser {
		if err := openBrowser(lt.URL); err != nil {
			fmt.Fprintf(stdout, "(không mở được trình duyệt / could not start a browser: %v)\n", err)
		}
	}
	return nil
}

// openBrowser starts the desktop's browser on url without waiting for it.
func openBrowser(url string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	case "darwin":
		cmd = exec.Command("open", url)
	default:
		if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
			return fmt.Errorf("no display")
		}
		cmd = exec.Command("xdg-open", url)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }()
	return nil
}
