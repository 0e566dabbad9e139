// Command fieldsync captures, syncs and inspects citizen enrollment dossiers
// on offline laptops. Each sub-command lives in its own file as
// runX(ctx, args, stdout, stderr) error; main maps the error to an exit code.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"unicode"

	"github.com/fieldsync/fieldsync/agent/api"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// stdin is where `put -` reads; tests replace it.
var stdin io.Reader = os.Stdin

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
	// exitToken: the agent refused the API token (401).
	exitToken = 4
	// 5 and 6: the attachment commands (attach.go).
)

// usageError is a mistake in how the command was called (a bad flag, a
// missing argument): exit code 2, and a hint to read --help.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// command is one sub-command.
type command struct {
	name    string
	summary string // "Vietnamese / English"
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands lists the sub-commands in the order the usage shows them. It is a
// function, not a variable, because help refers back to it.
func commands() []command {
	return []command{
		{"authority", "init, revoke: khóa gốc, thu hồi máy; chỉ trên máy quản trị / a deployment's authority and revocations, admin machine only", runAuthority},
		{"device", "init: cấp danh tính cho một máy / provision a laptop or the hub", runDevice},
		{"agent", "chạy tác tử đồng bộ trên máy này / run the sync agent on this laptop", runAgent},
		{"hub", "chạy máy chủ trung tâm / run the upstream hub", runHub},
		{"put", "tạo hoặc sửa hồ sơ từ tệp JSON / create or update a dossier from a JSON file", runPut},
		{"get", "xem một hồ sơ / show one dossier", runGet},
		{"list", "liệt kê mọi hồ sơ / list every dossier", runList},
		{"status", "trạng thái của tác tử / the agent's status", runStatus},
		{"conflicts", "liệt kê xung đột / list field conflicts", runConflicts},
		{"resolve", "giải quyết một xung đột (máy quản trị) / settle a conflict (admin device)", runResolve},
		{"duplicates", "hồ sơ có thể trùng / possible duplicate dossiers", runDuplicates},
		{"merge", "gộp hai hồ sơ của một người (máy quản trị) / merge two dossiers (admin device)", runMerge},
		{"distinct", "không phải cùng một người (máy quản trị) / not the same person (admin device)", runDistinct},
		{"open", "mở trang quản trị, đã đăng nhập / open the web page, logged in", runOpen},
		{"history", "lịch sử một hồ sơ / a dossier's history", runHistory},
		{"attach", "đính kèm ảnh, vân tay, giấy tờ / attach a photo, fingerprint or document", runAttach},
		{"attachments", "liệt kê tệp đính kèm của hồ sơ / list a dossier's attachments", runAttachments},
		{"attachment", "lấy một tệp đính kèm / write an attachment's bytes to a file", runAttachment},
		{"revoke", "trao danh sách thu hồi cho tác tử / hand a revocation list to an agent", runRevoke},
		{"quarantine", "thay đổi bị cách ly của máy bị thu hồi / changes of revoked devices kept apart", runQuarantine},
		{"version", "phiên bản / print the version", runVersion},
	}
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, `fieldsync: đồng bộ hồ sơ giữa các máy tính ngoại tuyến / sync enrollment dossiers between offline laptops

Cách dùng / Usage:
  fieldsync LỆNH/COMMAND [tùy chọn/flags] [đối số/arguments]

Lệnh / Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Xem hướng dẫn của từng lệnh / Help on one command:
  fieldsync LỆNH/COMMAND --help
`)
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command line args and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printUsage(stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && name == "help" {
			// `fieldsync help put` is `fieldsync put --help`.
			return run(ctx, []string{args[1], "--help"}, stdout, stderr)
		}
		printUsage(stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == name {
			return exitCode(name, c.run(ctx, args[1:], stdout, stderr), stderr)
		}
	}
	fmt.Fprintf(stderr, "fieldsync: unknown command %q (lệnh không tồn tại)\n\n", name)
	printUsage(stderr)
	return exitUsage
}

// exitCode prints err, if any, and maps it to the exit code.
func exitCode(name string, err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "fieldsync: %v\n(xem hướng dẫn / see usage: fieldsync %s --help)\n", err, name)
		return exitUsage
	case errors.As(err, new(lockedError)):
		fmt.Fprintf(stderr, "fieldsync: %v\n%s\n", err, lockedHint)
		return exitLocked
	case errors.As(err, new(*refusedError)):
		var re *refusedError
		errors.As(err, &re)
		fmt.Fprintf(stderr, "fieldsync: %v\n", err)
		return re.code
	case errors.Is(err, api.ErrUnauthorized):
		fmt.Fprintf(stderr, "fieldsync: %v\n%s\n", err, tokenHint)
		return exitToken
	}
	fmt.Fprintf(stderr, "fieldsync: %v\n", err)
	return exitError
}

// newFlagSet returns a flag set for a sub-command whose --help prints usage
// (a synopsis and description, which should end in a newline) and then the
// flags, to w. Parse errors print nothing: parseFlags returns them as
// usageError for main to print once.
func newFlagSet(name, usage string, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprint(w, usage)
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprint(w, "\nTùy chọn / Flags:\n")
			fs.SetOutput(w)
			fs.PrintDefaults()
			fs.SetOutput(io.Discard)
		}
	}
	return fs
}

// parseFlags parses args with fs, accepting flags before, between and after
// positional arguments (`put FILE --api X` as well as `put --api X FILE`); a
// "--" ends the flags. Afterwards fs.Args() holds the positional arguments in
// order. --help prints the usage and returns flag.ErrHelp; any other problem
// returns a usageError.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var flags, positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			positional = append(positional, a) // includes "-", meaning stdin
			continue
		}
		flags = append(flags, a)
		name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue // fs.Parse reports it
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			continue
		}
		if i+1 == len(args) {
			// Checked here: passing the flag on would hand it the "--"
			// added below as its value.
			return usageError{fmt.Errorf("flag needs an argument: %s", a)}
		}
		i++
		flags = append(flags, args[i])
	}
	usage := fs.Usage
	fs.Usage = func() {}
	err := fs.Parse(append(append(flags, "--"), positional...))
	fs.Usage = usage
	if errors.Is(err, flag.ErrHelp) {
		usage()
		return flag.ErrHelp
	}
	if err != nil {
		return usageError{err}
	}
	return nil
}

// noArgs checks that a command that takes no positional argument got none.
func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

const versionUsage = `fieldsync version

In phiên bản / Print the version.
`

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", versionUsage, stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	v := version
	if info, ok := debug.ReadBuildInfo(); ok && v == "dev" {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += "+" + s.Value[:12]
			}
		}
	}
	_, err := fmt.Fprintf(stdout, "fieldsync %s (%s, %s/%s)\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err
}

// Helpers shared by the commands that talk to an agent.

// apiFlag registers --api and --token; see newClient.
func apiFlag(fs *flag.FlagSet) *string {
	tokenFlag(fs)
	return fs.String("api", api.DefaultAddr, "HOST:PORT of the agent's API (địa chỉ API của tác tử)")
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

// explained is an error from the agent rewritten for an officer: the English
// and Vietnamese message, and every refused field on its own line.
type explained struct {
	text string
	err  error
}

func (e *explained) Error() string { return e.text }
func (e *explained) Unwrap() error { return e.err }

// explain rewrites an error from the API client in both languages.
func explain(err error) error {
	var apiErr *api.APIError
	switch {
	case errors.As(err, &apiErr):
		var b strings.Builder
		b.WriteString(clean(apiErr.Message))
		if apiErr.MessageVI != "" {
			b.WriteString(" / ")
			b.WriteString(clean(apiErr.MessageVI))
		}
		for _, f := range apiErr.Fields {
			fmt.Fprintf(&b, "\n  %s: %s / %s", clean(f.Field), clean(f.Problem), clean(f.ProblemVI))
		}
		return &explained{text: b.String(), err: err}
	case errors.Is(err, api.ErrNoAgent):
		return &explained{
			text: err.Error() + "\n(không có tác tử nào trả lời; hãy chạy `fieldsync agent` trước)",
			err:  err,
		}
	}
	return err
}

// clean makes text from the agent safe to print on a terminal: control and
// bidirectional-override characters, which could hide or rewrite what an
// officer sees, are shown as U+FFFD.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return '\uFFFD'
		}
		return r
	}, s)
}

// orDash shows an empty value as "-" in tables.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return clean(s)
}
