package web

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b)
}

func TestIndexServedWithSecurityHeaders(t *testing.T) {
	h := Handler()
	res := get(t, h, "GET", "/", nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET / = %d", res.StatusCode)
	}
	want := map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Content-Security-Policy": ContentSecurityPolicy,
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-cache",
	}
	for k, v := range want {
		if got := res.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	csp := res.Header.Get("Content-Security-Policy")
	if !strings.HasPrefix(csp, "default-src 'self';") || strings.Contains(csp, "unsafe") || strings.Contains(csp, "http") {
		t.Errorf("CSP %q is not 'self'-only", csp)
	}
	b := body(t, res)
	if !strings.Contains(b, `<script type="module" src="/ui/app.js">`) {
		t.Errorf("index does not load /ui/app.js:\n%s", b)
	}
}

func TestAssetsServedWithTheirTypes(t *testing.T) {
	h := Handler()
	cases := map[string]string{
		"/ui/app.js":        "text/javascript; charset=utf-8",
		"/ui/i18n.js":       "text/javascript; charset=utf-8",
		"/ui/conflicts.js":  "text/javascript; charset=utf-8",
		"/ui/duplicates.js": "text/javascript; charset=utf-8",
		"/ui/app.css":       "text/css; charset=utf-8",
		"/ui/icon.png":      "image/png",
	}
	for path, ctype := range cases {
		res := get(t, h, "GET", path, nil)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d", path, res.StatusCode)
			continue
		}
		if got := res.Header.Get("Content-Type"); got != ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", path, got, ctype)
		}
		for _, k := range []string{"Content-Security-Policy", "X-Content-Type-Options", "ETag"} {
			if res.Header.Get(k) == "" {
				t.Errorf("GET %s: no %s", path, k)
			}
		}
		if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q", path, cc)
		}
		if len(body(t, res)) == 0 {
			t.Errorf("GET %s: empty", path)
		}
	}
}

func TestRevalidationAnswersNotModified(t *testing.T) {
	h := Handler()
	first := get(t, h, "GET", "/ui/app.js", nil)
	etag := first.Header.Get("ETag")
	again := get(t, h, "GET", "/ui/app.js", map[string]string{"If-None-Match": etag})
	if again.StatusCode != http.StatusNotModified {
		t.Fatalf("GET with If-None-Match %s = %d, want 304", etag, again.StatusCode)
	}
	other := get(t, h, "GET", "/ui/app.css", nil).Header.Get("ETag")
	if other == etag {
		t.Errorf("two different files share the ETag %s", etag)
	}
}

func TestUnknownPathsAndMethods(t *testing.T) {
	h := Handler()
	for _, path := range []string{"/index.html", "/ui/", "/ui/nope.js", "/ui/../web.go", "/static/index.html",
		"/v1/status", "/ui/ui/app.js", "/favicon.ico", "/records"} {
		res := get(t, h, "GET", path, nil)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, res.StatusCode)
		}
		if res.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s: 404 without CSP", path)
		}
	}
	res := get(t, h, "POST", "/", nil)
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST / = %d Allow %q, want 405 GET, HEAD", res.StatusCode, res.Header.Get("Allow"))
	}
	head := get(t, h, "HEAD", "/ui/app.css", nil)
	if head.StatusCode != http.StatusOK || body(t, head) != "" {
		t.Errorf("HEAD /ui/app.css = %d with a body", head.StatusCode)
	}
}

// External loads: absolute URLs, and protocol-relative ones ("//host/x")
// in the places a page loads from (src, href, action, url(), import,
// fetch). The page must work with no Internet and leak nothing to it.
var externalRefs = []*regexp.Regexp{
	regexp.MustCompile(`(?i)https?:`),
	regexp.MustCompile(`(?i)wss?:`),
	regexp.MustCompile(`(?i)(src|href|action|poster|data)\s*=\s*["']?\s*//`),
	regexp.MustCompile(`(?i)url\(\s*["']?\s*//`),
	regexp.MustCompile(`(?i)@import`),
	regexp.MustCompile(`(?i)(import|from)\s*\(?\s*["']\s*//`),
	regexp.MustCompile(`(?i)fetch\(\s*["'\x60]\s*//`),
	regexp.MustCompile(`(?i)<(iframe|object|embed|base)\b`),
	regexp.MustCompile(`(?i)\bon[a-z]+\s*=\s*["']`),         // inline handlers: refused by the CSP anyway
	regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>\s*[^<\s]`), // inline script
	regexp.MustCompile(`(?i)\b(eval|innerHTML|outerHTML|insertAdjacentHTML|document\.write)\b`),
}

func TestNoExternalURLsInEmbeddedFiles(t *testing.T) {
	n := 0
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(static, p)
		if err != nil {
			return err
		}
		n++
		for _, re := range externalRefs {
			if loc := re.FindIndex(data); loc != nil {
				line := 1 + strings.Count(string(data[:loc[0]]), "\n")
				t.Errorf("%s:%d: %q matches %s", p, line, data[loc[0]:loc[1]], re)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 8 {
		t.Fatalf("scanned only %d embedded files", n)
	}
}

// Every asset the page names (src and href in index.html, imports in the
// scripts, url() in the styles) is served, and every served asset is named.
func TestEveryReferenceResolves(t *testing.T) {
	h := Handler()
	refs := map[string]bool{}
	index := body(t, get(t, h, "GET", "/", nil))
	for _, m := range regexp.MustCompile(`(?:src|href)="(/ui/[^"]+)"`).FindAllStringSubmatch(index, -1) {
		refs[m[1]] = true
	}
	imp := regexp.MustCompile(`(?m)^import .* from '\./([^']+)';$`)
	cssURL := regexp.MustCompile(`url\("(/ui/[^"]+)"\)`)
	assets, err := load(static)
	if err != nil {
		t.Fatal(err)
	}
	for path, a := range assets {
		switch {
		case strings.HasSuffix(path, ".js"):
			for _, m := range imp.FindAllStringSubmatch(string(a.data), -1) {
				refs["/ui/"+m[1]] = true
			}
		case strings.HasSuffix(path, ".css"):
			for _, m := range cssURL.FindAllStringSubmatch(string(a.data), -1) {
				refs[m[1]] = true
			}
		}
	}
	for ref := range refs {
		if res := get(t, h, "GET", ref, nil); res.StatusCode != http.StatusOK {
			t.Errorf("%s is referenced and answers %d", ref, res.StatusCode)
		}
	}
	for path := range assets {
		if path != "/" && !refs[path] {
			t.Errorf("%s is embedded and never referenced", path)
		}
	}
}

// The dictionary holds both languages in each entry; an entry with one
// string, or an empty one, would show a blank label.
func TestEveryWordInBothLanguages(t *testing.T) {
	data, err := fs.ReadFile(static, "static/ui/i18n.js")
	if err != nil {
		t.Fatal(err)
	}
	entry := regexp.MustCompile(`(?m)^  (\w+): \[`)
	pair := regexp.MustCompile(`^  \w+: \[\s*'((?:[^'\\]|\\.)+)',\s*'((?:[^'\\]|\\.)+)',?\s*\],\n`)
	src := string(data)
	locs := entry.FindAllStringIndex(src, -1)
	if len(locs) < 100 {
		t.Fatalf("found only %d dictionary entries", len(locs))
	}
	for _, loc := range locs {
		if !pair.MatchString(src[loc[0]:]) {
			end := min(loc[0]+80, len(src))
			t.Errorf("entry is not a pair of two non-empty strings: %q", src[loc[0]:end])
		}
	}
	// Every key the scripts ask for exists.
	keys := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  (\w+): \[`).FindAllStringSubmatch(src, -1) {
		keys[m[1]] = true
	}
	use := regexp.MustCompile(`\b(?:t|both)\('(\w+)'[,)]`)
	err = fs.WalkDir(static, "static/ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".js") {
			return err
		}
		b, err := fs.ReadFile(static, p)
		if err != nil {
			return err
		}
		for _, m := range use.FindAllStringSubmatch(string(b), -1) {
			if !keys[m[1]] {
				t.Errorf("%s asks for the word %q, which the dictionary lacks", p, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
