package webtest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/fieldsync/fieldsync/agent/web/webtest"
)

// recorder stands in for the test given to NewBrowser, to see what the
// browser's watch reports instead of failing.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// A page that misbehaves in every way the watch looks for: it asks for an
// address outside loopback, runs an inline script against its policy, logs
// an error and throws.
func TestBrowserReportsWhatThePageMustNeverDo(t *testing.T) {
	mux := http.NewServeMux()
	// No policy here, so only the browser's fence stands between the page
	// and 192.0.2.1 (TEST-NET-1: reserved for documentation, never routed).
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>bad</title>
<img id="far" src="http://192.0.2.1/pixel.png">
<script src="/bad.js"></script>
<p>loaded</p>`)
	})
	mux.HandleFunc("GET /strict", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>strict</title>
<script>document.title = 'inline ran';</script>
<p>loaded</p>`)
	})
	mux.HandleFunc("GET /bad.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprint(w, `console.error('boom from the page'); setTimeout(() => { throw new Error('uncaught on purpose'); }, 0);`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	rec := &recorder{}
	t.Run("page", func(st *testing.T) {
		rec.TB = st
		ctx := webtest.NewBrowser(rec)
		// Open waits for the admin page's view, which these pages lack.
		if err := webtest.Do(ctx, webtest.Navigate(srv.URL+"/strict"), webtest.WaitText("loaded")); err != nil {
			st.Fatal(err)
		}
		title, err := webtest.Run(ctx, webtest.Eval[string](`document.title`))
		if err != nil || title != "strict" {
			st.Errorf("title %q (%v): the inline script ran despite the policy", title, err)
		}
		if err := webtest.Do(ctx, webtest.Navigate(srv.URL+"/"), webtest.WaitText("loaded")); err != nil {
			st.Fatal(err)
		}
		// The far image never loads: the browser is fenced to loopback.
		loaded, err := webtest.Run(ctx, webtest.Eval[bool](`new Promise((ok) => {
			const img = document.getElementById('far');
			if (img.complete) ok(img.naturalWidth > 0);
			img.onload = () => ok(true);
			img.onerror = () => ok(false);
		})`))
		if err != nil {
			st.Fatal(err)
		}
		if loaded {
			st.Error("an image outside 127.0.0.1 loaded")
		}
	})
	all := strings.Join(rec.errs, "\n")
	for _, want := range []string{
		"outside 127.0.0.1: http://192.0.2.1/pixel.png",
		"console.error: boom from the page",
		"uncaught on purpose",
		"content security policy",
	} {
		if !strings.Contains(strings.ToLower(all), strings.ToLower(want)) {
			t.Errorf("the watch did not report %q; it reported:\n%s", want, all)
		}
	}
}
