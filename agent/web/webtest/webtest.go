// Package webtest drives the admin web page with a headless Chromium, for
// end-to-end tests of the page against a fake API or real agents.
//
// [NewBrowser] starts a fresh browser per test, fenced to 127.0.0.1: every
// connection to anywhere else goes to a local black hole, and the test fails
// if the page asked for anything outside loopback, threw an uncaught
// exception, logged a console error or broke its Content-Security-Policy.
// The actions ([ClickText], [WaitText], ...) find elements by the text a
// person reads, so a test reads like the steps an admin takes;
// [SettleConflict] and the selectors [ConflictCard] and [DuplicateCard] do
// not depend on the language shown.
//
// # Hooks
//
// The page marks what a test needs to find with data attributes and ids that
// do not depend on the language shown; they are a contract between the page
// and its tests:
//
//	body[data-view]                       overview, records, conflicts, duplicates
//	#count-conflicts, #count-duplicates   the queue sizes in the header (hidden at 0)
//	[data-tile=NAME] .tile-value          overview figures: records, conflicts,
//	                                      duplicates, at_risk, held_elsewhere
//	#search, table.records tr[data-id]    the dossier list
//	.field[data-field], .field-conflict   a dossier's fields; a field in conflict
//	table.history tr[data-op][data-kind]  a dossier's history
//	[data-survivor], [data-merged]        links to the dossier kept / merged in
//	article.conflict[data-record][data-field]   one conflict in the queue
//	  label.value-card[data-value]              one competing value (as stored)
//	  .custom-input, .actions button            a typed value; the settle button
//	article.duplicate[data-records="ID ID"]     one group of possible duplicates
//	[data-readonly]                       the note shown when the device may not settle
//	.error .error-main, .error-other      an error, current language first
//	#lang                                 the language switch
package webtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// ChromiumPath is where Debian's chromium package puts the browser.
const ChromiumPath = "/usr/bin/chromium"

// RequireEnv names the environment variable that turns a missing browser
// from a skipped test into a failed one (make test sets it).
const RequireEnv = "FIELDSYNC_REQUIRE_BROWSER"

// Timeout bounds each action of this package: long enough for a loaded CI
// machine, short enough that a broken page fails fast.
const Timeout = 10 * time.Second

// TimeZoneVietnam is the browser's time zone in NewBrowser: the page's
// users are in Vietnam (UTC+7), and tests must not depend on the machine's
// zone.
const TimeZoneVietnam = "Asia/Ho_Chi_Minh"

// Viewport sizes the page is designed for.
const (
	LaptopWidth, LaptopHeight = 1366, 768
	SmallWidth, SmallHeight   = 1024, 600
)

// NewBrowser starts a headless Chromium for t and returns a chromedp context
// of its one tab, with the viewport set to 1366×768 and the time zone to
// Vietnam's. The browser is stopped
// and its profile removed when t ends. When ChromiumPath is missing the test
// is skipped, or fails if FIELDSYNC_REQUIRE_BROWSER=1.
//
// At the end of t, the test fails if the page requested a URL outside
// 127.0.0.1 (or localhost), threw an uncaught exception, called
// console.error, or reported a Content-Security-Policy violation.
func NewBrowser(t testing.TB) context.Context {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("headless browser needed and missing: %v (apt-get install -y chromium)", err)
		}
		t.Skipf("no %s: browser tests skipped (apt-get install -y chromium; %s=1 makes this a failure)", ChromiumPath, RequireEnv)
	}
	profile := t.TempDir()
	hole := blackHole(t)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(ChromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(LaptopWidth, LaptopHeight),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("disable-client-side-phishing-detection", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter,AutofillServerCommunication"),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", false),
		// The fence: every request goes through a proxy that is a local black
		// hole, except loopback, which Chromium never proxies; and names do not
		// resolve, except localhost.
		chromedp.Flag("proxy-server", "http://"+hole),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	// Start the browser now, on a context without a deadline: the first Run
	// binds the browser's life to its context.
	if err := chromedp.Do(ctx); err != nil {
		cancelTab()
		cancelAlloc()
		t.Fatalf("start headless browser: %v", err)
	}
	w := &watcher{}
	if err := chromedp.Listen(ctx, w.event); err != nil {
		cancelTab()
		cancelAlloc()
		t.Fatalf("listen to the browser: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(LaptopWidth, LaptopHeight), TimeZone(TimeZoneVietnam)); err != nil {
		cancelTab()
		cancelAlloc()
		t.Fatalf("set viewport and time zone: %v", err)
	}
	t.Cleanup(func() {
		_ = chromedp.Cancel(ctx)
		cancelTab()
		cancelAlloc()
		for _, p := range w.problems() {
			t.Errorf("browser: %s", p)
		}
	})
	return ctx
}

// blackHole listens on a loopback port and closes every connection at once:
// the browser's proxy, so that nothing it tries to reach outside loopback is
// reached. Closed when t ends.
func blackHole(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen for the browser's black-hole proxy: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	return l.Addr().String()
}

// watcher collects what must never happen on the page. Its event method runs
// on chromedp's reading goroutine: it only appends under a lock.
type watcher struct {
	mu    sync.Mutex
	found []string
}

func (w *watcher) add(s string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.found) < 20 {
		w.found = append(w.found, s)
	}
}

func (w *watcher) problems() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.found...)
}

func (w *watcher) event(ev any) {
	switch e := ev.(type) {
	case *network.EventRequestWillBeSent:
		if e.Request != nil && !local(e.Request.URL) {
			w.add("page requested a URL outside 127.0.0.1: " + e.Request.URL)
		}
	case *runtime.EventExceptionThrown:
		if d := e.ExceptionDetails; d != nil {
			msg := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				msg += " " + d.Exception.Description
			}
			w.add(fmt.Sprintf("uncaught exception at %s:%d: %s", d.URL, d.LineNumber, msg))
		}
	case *runtime.EventConsoleAPICalled:
		if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
			var parts []string
			for _, a := range e.Args {
				var str string
				if a.Value != nil && json.Unmarshal(a.Value, &str) == nil {
					parts = append(parts, str)
				} else if a.Value != nil {
					parts = append(parts, string(a.Value))
				} else {
					parts = append(parts, a.Description)
				}
			}
			w.add("console.error: " + strings.Join(parts, " "))
		}
	case *log.EventEntryAdded:
		if en := e.Entry; en != nil && strings.Contains(en.Text, "Content Security Policy") {
			w.add("content security policy: " + en.Text)
		}
	}
}

// local reports whether a URL the page asked for stays on this machine.
func local(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "data", "blob", "about":
		return true
	case "http", "https", "ws", "wss":
		h := u.Hostname()
		return h == "127.0.0.1" || h == "localhost" || h == "::1"
	}
	return false
}

// bounded runs a with its own deadline of Timeout, so one stuck step fails
// instead of hanging the test.
func bounded[T any](a chromedp.Action[T]) chromedp.Action[T] {
	return func(ctx context.Context, tg *chromedp.Target) (T, error) {
		tctx, cancel := context.WithTimeout(ctx, Timeout)
		defer cancel()
		v, err := a(tctx, tg)
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("gave up after %s: %w", Timeout, err)
		}
		return v, err
	}
}
