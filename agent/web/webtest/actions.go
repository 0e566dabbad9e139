package webtest

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
)

// Void is chromedp's "no value": the type of the actions that only act.
type Void = chromedp.Void

// Do runs actions in order on the tab of ctx (a context from NewBrowser) and
// returns the first error.
func Do(ctx context.Context, actions ...chromedp.Action[Void]) error {
	return chromedp.Do(ctx, actions...)
}

// Open loads url afresh (also when only its #fragment differs from the page
// shown) and waits until the page has drawn its view (the "loading" line is
// gone).
func Open(url string) chromedp.Action[Void] {
	return chromedp.Steps(
		bounded(chromedp.Navigate("about:blank")),
		bounded(chromedp.Navigate(url)),
		pollTrue("the page to draw its view at "+url,
			`() => document.body && document.body.dataset.view && !document.querySelector('main .loading')`),
	)
}

// Navigate loads url and waits for its load event, for pages other than
// the admin page (Open waits for the admin page's view).
func Navigate(url string) chromedp.Action[Void] {
	return bounded(chromedp.Navigate(url))
}

// Go switches the page to the view of a hash route ("#/conflicts") without
// reloading it, as a click on a link does, and waits until it is drawn.
func Go(hash string) chromedp.Action[Void] {
	return chromedp.Steps(
		bounded(chromedp.Evaluate[Void](fmt.Sprintf(`window.location.hash = %s`, jsString(hash)))),
		pollTrue("the view "+hash+" to be drawn",
			`(h) => window.location.hash.startsWith(h) && !document.querySelector('main .loading')`, hash),
	)
}

// WaitText waits until text appears anywhere on the page as a person reads it
// (innerText, runs of spaces folded).
func WaitText(text string) chromedp.Action[Void] {
	return WaitTextIn("body", text)
}

// WaitTextIn waits until some element matching the CSS selector scope shows
// text.
func WaitTextIn(scope, text string) chromedp.Action[Void] {
	return pollTrue(fmt.Sprintf("%q to show %q", scope, text), `(scope, text) => {
		const fold = (s) => s.replace(/\s+/g, ' ');
		return Array.from(document.querySelectorAll(scope)).some((el) => fold(el.innerText).includes(fold(text)));
	}`, scope, text)
}

// WaitNoText waits until text no longer appears anywhere on the page.
func WaitNoText(text string) chromedp.Action[Void] {
	return pollTrue(fmt.Sprintf("%q to disappear", text), `(text) => {
		const fold = (s) => s.replace(/\s+/g, ' ');
		return !fold(document.body.innerText).includes(fold(text));
	}`, text)
}

// WaitGone waits until nothing matches the CSS selector.
func WaitGone(sel string) chromedp.Action[Void] {
	return pollTrue(fmt.Sprintf("%q to disappear", sel), `(sel) => !document.querySelector(sel)`, sel)
}

// WaitVisible waits until an element matching the CSS selector is shown.
func WaitVisible(sel string) chromedp.Action[Void] {
	return bounded(chromedp.WaitVisible(chromedp.CSS(sel)))
}

// ClickText clicks, with a real mouse click, the button, link or label whose
// text is text: an exact match if there is one, else the smallest element
// containing it. It waits until such an element is visible and enabled.
func ClickText(text string) chromedp.Action[Void] {
	return ClickTextIn("body", text)
}

var clickSeq atomic.Uint64

// ClickTextIn is ClickText among the descendants of the first element
// matching the CSS selector scope.
func ClickTextIn(scope, text string) chromedp.Action[Void] {
	mark := fmt.Sprint(clickSeq.Add(1))
	return chromedp.Steps(
		pollTrue(fmt.Sprintf("a clickable %q in %q", text, scope), `(scope, text, mark) => {
			const root = document.querySelector(scope);
			if (!root) return false;
			const fold = (s) => s.replace(/\s+/g, ' ').trim();
			const want = fold(text);
			const cands = Array.from(root.querySelectorAll('button, a, label, summary, [role=button], input[type=submit]'))
				.filter((el) => el.offsetParent !== null && !el.disabled && !el.closest('[disabled], [hidden]'));
			let hit = cands.find((el) => fold(el.innerText || el.value || '') === want);
			if (!hit) {
				const inside = cands.filter((el) => fold(el.innerText || '').includes(want));
				inside.sort((a, b) => (a.innerText || '').length - (b.innerText || '').length);
				hit = inside[0];
			}
			if (!hit) return false;
			hit.setAttribute('data-webtest-click', mark);
			return true;
		}`, scope, text, mark),
		bounded(chromedp.Click(chromedp.CSS(`[data-webtest-click="`+mark+`"]`))),
	)
}

// Click clicks the first element matching the CSS selector, once visible.
func Click(sel string) chromedp.Action[Void] {
	return bounded(chromedp.Click(chromedp.CSS(sel)))
}

// Type focuses the element matching the CSS selector and types text into it
// as a keyboard or input method would (input events fire), after what is
// already there. Any Unicode text works, Vietnamese included.
func Type(sel, text string) chromedp.Action[Void] {
	return chromedp.Steps(
		bounded(chromedp.Focus(chromedp.CSS(sel))),
		bounded(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, input.InsertText, input.InsertTextParams{Text: text})
			return err
		})),
	)
}

// PressEnter presses the Enter key in the focused element (submits a form).
func PressEnter() chromedp.Action[Void] {
	return bounded(chromedp.KeyEvent("\r"))
}

// Clear empties the input matching the CSS selector as a person selecting
// its text and deleting it would: an input event fires.
func Clear(sel string) chromedp.Action[Void] {
	return chromedp.Steps(
		bounded(chromedp.WaitVisible(chromedp.CSS(sel))),
		bounded(chromedp.Evaluate[Void](fmt.Sprintf(`(() => {
			const el = document.querySelector(%s);
			el.focus();
			el.value = '';
			el.dispatchEvent(new Event('input', { bubbles: true }));
		})()`, jsString(sel)))),
	)
}

// Text returns the text a person reads in the first element matching the
// CSS selector.
func Text(sel string) chromedp.Action[string] {
	return bounded(chromedp.Text(chromedp.CSS(sel)))
}

// Eval evaluates a JavaScript expression in the page and decodes its value;
// a promise is awaited.
func Eval[T any](expr string) chromedp.Action[T] {
	return bounded(chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// Viewport sets the page's viewport in CSS pixels.
func Viewport(width, height int64) chromedp.Action[Void] {
	return bounded(chromedp.EmulateViewport(width, height))
}

// TimeZone sets the page's time zone (an IANA name such as
// "Asia/Ho_Chi_Minh").
func TimeZone(zone string) chromedp.Action[Void] {
	return bounded(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: zone})
		return err
	}))
}

// NoHorizontalScroll fails if the page is wider than its viewport: on a
// small laptop screen the admin must never scroll sideways to reach a button.
func NoHorizontalScroll() chromedp.Action[Void] {
	return func(ctx context.Context, t *chromedp.Target) (Void, error) {
		type sizes struct {
			Scroll int    `json:"scroll"`
			Inner  int    `json:"inner"`
			Widest string `json:"widest"`
		}
		s, err := bounded(chromedp.Evaluate[sizes](`(() => {
			const inner = document.documentElement.clientWidth;
			let widest = '';
			for (const el of document.querySelectorAll('body *')) {
				const r = el.getBoundingClientRect();
				if (r.right > inner + 1) { widest = el.tagName.toLowerCase() + (el.className ? '.' + el.className : '') + ' ends at ' + Math.round(r.right); break; }
			}
			return { scroll: document.documentElement.scrollWidth, inner, widest };
		})()`))(ctx, t)
		if err != nil {
			return Void{}, err
		}
		if s.Scroll > s.Inner {
			return Void{}, fmt.Errorf("page scrolls sideways: %d px wide in a %d px viewport (%s)", s.Scroll, s.Inner, s.Widest)
		}
		return Void{}, nil
	}
}

// Screenshot captures the viewport as PNG.
func Screenshot() chromedp.Action[[]byte] {
	return bounded(chromedp.CaptureScreenshot())
}

// pollTrue waits, up to Timeout, until the JavaScript function fn returns a
// truthy value for args; what names what was awaited, for the error.
func pollTrue(what, fn string, args ...any) chromedp.Action[Void] {
	p := chromedp.PollFunction[Void](fn, chromedp.WithPollingTimeout(Timeout),
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingArgs(args...))
	return func(ctx context.Context, t *chromedp.Target) (Void, error) {
		_, err := bounded(p)(ctx, t)
		if err != nil {
			return Void{}, fmt.Errorf("waiting for %s: %w", what, err)
		}
		return Void{}, nil
	}
}

func jsString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x2028 || r == 0x2029:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Run runs one action that returns a value on the tab of ctx.
func Run[T any](ctx context.Context, a chromedp.Action[T]) (T, error) {
	return chromedp.Run(ctx, a)
}
