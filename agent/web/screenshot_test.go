package web_test

import (
	"bytes"
	"flag"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/fieldsync/fieldsync/agent/web/webtest"
)

// go test ./agent/web -run Screenshots -update-screenshots rewrites the
// pictures of docs/web.md from the fake agent's canned dossiers.
var updateScreenshots = flag.Bool("update-screenshots", false, "write the page's screenshots to docs/screenshots")

// maxScreenshotBytes keeps the pictures small enough to commit.
const maxScreenshotBytes = 300 << 10

func TestScreenshots(t *testing.T) {
	f := newFakeAgent(t, true)
	ctx := webtest.NewBrowser(t)
	dumpOnFailure(t, ctx, f)
	dir := t.TempDir()
	if *updateScreenshots {
		dir = filepath.Join("..", "..", "docs", "screenshots")
	}
	shots := []struct {
		name  string
		hash  string
		ready string // text to wait for
		full  bool   // the whole page, not only the first screen
	}{
		{"overview", "#/", "Các máy trong đội", false},
		{"dossiers", "#/records", "Thào Mí Dính", false},
		{"dossier", "#/records/" + idMai, "Lịch sử thay đổi", true},
		{"conflicts", "#/conflicts", "Sùng Mý Chá", false},
		{"duplicates", "#/duplicates", "Trùng số định danh cá nhân", false},
	}
	do(t, ctx, webtest.Viewport(webtest.LaptopWidth, webtest.LaptopHeight))
	for _, s := range shots {
		do(t, ctx, webtest.Open(f.URL()+s.hash), webtest.WaitText(s.ready))
		var shot chromedp.Action[[]byte]
		if s.full {
			shot = chromedp.FullScreenshot(100)
		} else {
			shot = webtest.Screenshot()
		}
		data, err := webtest.Run(ctx, shot)
		if err != nil {
			t.Fatalf("%s: screenshot: %v", s.name, err)
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: not a PNG: %v", s.name, err)
		}
		// A whole-page picture leaves out the scroll bar's width.
		if cfg.Width > webtest.LaptopWidth || cfg.Width < webtest.LaptopWidth-20 || cfg.Height < webtest.LaptopHeight {
			t.Errorf("%s: %dx%d, want %d wide (less a scroll bar) and at least %d high", s.name, cfg.Width, cfg.Height,
				webtest.LaptopWidth, webtest.LaptopHeight)
		}
		if len(data) > maxScreenshotBytes {
			t.Errorf("%s: %d bytes, over %d", s.name, len(data), maxScreenshotBytes)
		}
		if err := os.WriteFile(filepath.Join(dir, "web-"+s.name+".png"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
