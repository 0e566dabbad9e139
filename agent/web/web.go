package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// static holds the page: index.html and the assets under ui/.
//
//go:embed static
var static embed.FS

// ContentSecurityPolicy is sent with every answer. 'self' alone for scripts
// means no inline script and no eval, so data that slipped into the DOM as
// markup still could not run; connect-src 'self' keeps the page's fetches on
// the agent; frame-ancestors 'none' stops another page from framing the
// settle buttons (clickjacking).
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// contentTypes maps the extensions the page uses to their types. A fixed
// table rather than mime.TypeByExtension, whose answer depends on the
// machine's /etc/mime.types: a wrong type for a module script stops the page
// under nosniff.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
}

// asset is one embedded file, ready to serve.
type asset struct {
	name  string // base name, for http.ServeContent
	data  []byte
	ctype string
	etag  string // strong, from the content: an upgraded agent changes it
}

// Handler serves the page: GET or HEAD / answers index.html and GET or HEAD
// /ui/NAME the asset NAME; every other path is 404 and every other method on
// those paths 405. Every answer carries the Content-Security-Policy above,
// X-Content-Type-Options: nosniff and no-referrer.
//
// Assets are sent with Cache-Control: no-cache and a content ETag: their
// names carry no version, so a browser must revalidate (a 304 on loopback,
// nearly free) rather than run yesterday's script against an upgraded API.
//
// The handler is safe for concurrent use and may be mounted on any mux that
// passes it the request's full path.
func Handler() http.Handler {
	assets, err := load(static)
	if err != nil {
		// Only a broken build gets here: the files are compiled in.
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			setHeaders(w)
			http.Error(w, "admin page unavailable: "+err.Error(), http.StatusInternalServerError)
		})
	}
	return &handler{assets: assets}
}

// load reads every embedded file into memory, keyed by the URL path that
// serves it: "/" for index.html, "/ui/..." for the rest of static/ui.
func load(fsys fs.FS) (map[string]asset, error) {
	assets := map[string]asset{}
	err := fs.WalkDir(fsys, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, "static/")
		ctype, ok := contentTypes[path.Ext(rel)]
		if !ok {
			return fmt.Errorf("embedded file %s: no content type for its extension", rel)
		}
		sum := sha256.Sum256(data)
		a := asset{name: path.Base(rel), data: data, ctype: ctype,
			etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		switch {
		case rel == "index.html":
			assets["/"] = a
		case strings.HasPrefix(rel, "ui/"):
			assets["/"+rel] = a
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load embedded page: %w", err)
	}
	if _, ok := assets["/"]; !ok {
		return nil, fmt.Errorf("load embedded page: no index.html")
	}
	return assets, nil
}

type handler struct {
	assets map[string]asset
}

func setHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setHeaders(w)
	a, ok := h.assets[r.URL.Path]
	if !ok {
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", a.ctype)
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", a.etag)
	// ServeContent answers HEAD, If-None-Match (304) and ranges. A zero
	// modification time leaves Last-Modified out: the ETag is the validator.
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.data))
}
