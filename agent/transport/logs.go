package transport

import (
	"log/slog"

	"github.com/libp2p/go-libp2p/gologshim"
)

// SetLibp2pLogHandler routes libp2p's own log lines (dial errors, listener
// errors at shutdown, mDNS) to handler instead of libp2p's default, which
// writes errors to stderr. It is process-wide: libp2p's loggers are package
// variables. It only affects loggers that have not logged yet, so call it
// once at start-up, before New.
func SetLibp2pLogHandler(handler slog.Handler) {
	gologshim.SetDefaultHandler(handler)
}
