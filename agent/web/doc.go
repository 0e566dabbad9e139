// Package web owns the admin web page: a single-page application in plain
// HTML, CSS and JavaScript, embedded in the binary and served by every agent
// and hub next to its JSON API (GET / and GET /ui/...).
//
// The page has no build step and loads nothing from outside the agent: no
// framework, no CDN, no web fonts. The field has no Internet, and a page that
// pulled code from elsewhere could send citizens' data there. [Handler]
// enforces that with a Content-Security-Policy of 'self' only, and the tests
// scan every embedded file for external URLs.
//
// The page talks only to the agent's own API (/v1/status, /v1/records,
// /v1/conflicts, /v1/duplicates and the settling POSTs), from the same
// origin, so the API's loopback Host and Origin checks let it through. It
// speaks Vietnamese by default, with an English switch remembered in the
// browser's localStorage; every label lives in one dictionary
// (static/ui/i18n.js) that holds both languages side by side. It builds the
// DOM with textContent only, never innerHTML from data: field values come
// from other devices and must not become markup.
//
// docs/web.md describes the page for a district admin. The subpackage
// webtest drives it with headless Chromium for end-to-end tests.
package web
