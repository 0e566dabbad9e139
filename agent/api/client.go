package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
)

const (
	// clientDialTimeout is short: the agent is on this laptop, so a
	// connection that is not made at once will not be made.
	clientDialTimeout = 3 * time.Second
	// clientTimeout bounds one whole request, a page of records included.
	clientTimeout = time.Minute
	// clientPageSize is the page size of ListAll: large enough that 100,000
	// dossiers take 100 round trips, small enough that a page stays about 1 MB.
	clientPageSize = 1000
	// maxAnswerBytes bounds an answer the client reads: a page of
	// MaxListLimit records is about 5 MB.
	maxAnswerBytes = 64 << 20
)

// Client calls an agent's API. It is safe for concurrent use.
type Client struct {
	addr string
	base string
	hc   *http.Client

	tokenMu    sync.Mutex
	token      string // "" until set or found
	runtimeDir string // where to look for the runtime file; "" = RuntimeDir()
}

// SetToken fixes the bearer token the client sends (the CLI's --token).
func (c *Client) SetToken(token string) {
	c.tokenMu.Lock()
	c.token = token
	c.tokenMu.Unlock()
}

// SetRuntimeDir makes the client look for the agent's runtime file in dir
// rather than in [RuntimeDir] (tests, one directory per cluster).
func (c *Client) SetRuntimeDir(dir string) {
	c.tokenMu.Lock()
	c.runtimeDir = dir
	c.tokenMu.Unlock()
}

// bearer returns the token to send: the one set, else $FIELDSYNC_API_TOKEN,
// else the runtime file of the client's address, read again on each request
// (the agent writes a new one each time it starts). With a runtime
// directory set (tests), only that directory's file counts.
func (c *Client) bearer() string {
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	if c.token != "" {
		return c.token
	}
	// Not cached: an agent started again at the same address has a new token.
	if c.runtimeDir != "" {
		return ReadRuntimeToken(c.runtimeDir, c.addr)
	}
	return FindToken(c.addr)
}

// NewClient returns a client for the agent whose API listens at addr,
// "host:port" (a leading "http://" is tolerated).
func NewClient(addr string) *Client {
	addr = strings.TrimSuffix(strings.TrimPrefix(addr, "http://"), "/")
	dialer := &net.Dialer{Timeout: clientDialTimeout}
	return &Client{
		addr: addr,
		base: "http://" + addr,
		hc: &http.Client{
			Timeout: clientTimeout,
			Transport: &http.Transport{
				// No proxy: the agent is local, and a proxy from the
				// environment must not see personal data.
				Proxy:                 nil,
				DialContext:           dialer.DialContext,
				ResponseHeaderTimeout: 30 * time.Second,
				MaxIdleConnsPerHost:   4,
				IdleConnTimeout:       30 * time.Second,
				// An attachment's body waits for the agent's "100
				// Continue", so a refusal made from the request alone
				// (unknown dossier, too large) costs no upload.
				ExpectContinueTimeout: 5 * time.Second,
			},
		},
	}
}

// Create creates a record from fields and returns it as stored.
func (c *Client) Create(ctx context.Context, fields map[string]string) (Record, error) {
	var rec Record
	err := c.do(ctx, http.MethodPost, "/v1/records", fields, &rec)
	return rec, err
}

// Update sets only the given fields of record id (an empty value clears an
// optional field) and returns the record as stored.
func (c *Client) Update(ctx context.Context, id string, fields map[string]string) (Record, error) {
	var rec Record
	err := c.do(ctx, http.MethodPatch, "/v1/records/"+url.PathEscape(id), fields, &rec)
	return rec, err
}

// Get returns record id. An unknown id returns an *APIError matching
// [ErrNotFound].
func (c *Client) Get(ctx context.Context, id string) (Record, error) {
	var rec Record
	err := c.do(ctx, http.MethodGet, "/v1/records/"+url.PathEscape(id), nil, &rec)
	return rec, err
}

// ListAll returns every record, following pages. The slice is never nil.
func (c *Client) ListAll(ctx context.Context) ([]Record, error) {
	return c.listPages(ctx, false)
}

// ListUndelivered returns every record whose creation no hub has receipted.
func (c *Client) ListUndelivered(ctx context.Context) ([]Record, error) {
	return c.listPages(ctx, true)
}

func (c *Client) listPages(ctx context.Context, undelivered bool) ([]Record, error) {
	all := []Record{}
	after := ""
	for {
		q := url.Values{"limit": {strconv.Itoa(clientPageSize)}}
		if undelivered {
			q.Set("undelivered", "true")
		}
		if after != "" {
			q.Set("after", after)
		}
		var page listBody
		if err := c.do(ctx, http.MethodGet, "/v1/records?"+q.Encode(), nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Records...)
		if page.Next == "" {
			return all, nil
		}
		// Pages are in id order: a cursor that does not advance would
		// loop forever.
		if page.Next <= after {
			return nil, fmt.Errorf("list records: agent's page cursor did not advance past %q", after)
		}
		after = page.Next
	}
}

// Status returns the agent's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &st)
	return st, err
}

// noAgentError says that nothing answers at the address, in words an officer
// can act on.
type noAgentError struct {
	addr  string
	cause error
}

func (e *noAgentError) Error() string {
	return fmt.Sprintf("no agent answering at %s (is `fieldsync agent` running?)", e.addr)
}

func (e *noAgentError) Unwrap() []error { return []error{ErrNoAgent, e.cause} }

// do sends one request with in (if not nil) as its JSON body and decodes a
// 2xx answer into out. An error answer becomes an *APIError.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	length := int64(-1)
	contentType := ""
	if raw, ok := in.(rawBody); ok {
		body, contentType, length = bytes.NewReader(raw.data), raw.contentType, int64(len(raw.data))
	} else if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body, contentType, length = bytes.NewReader(data), "application/json", int64(len(data))
	}
	resp, err := c.send(ctx, method, path, body, length, contentType)
	if err != nil {
		return err
	}
	return c.answer(resp, out)
}

// doStream sends body (length bytes) as a raw request body with "Expect:
// 100-continue", and decodes the answer like do.
func (c *Client) doStream(ctx context.Context, method, path string, body io.Reader, length int64, out any) error {
	resp, err := c.send(ctx, method, path, body, length, "application/octet-stream")
	if err != nil {
		return err
	}
	return c.answer(resp, out)
}

// send sends one request (body nil for none; length -1 when unknown) and
// returns the answer, whatever its status. A raw body (not JSON) goes with
// "Expect: 100-continue".
func (c *Client) send(ctx context.Context, method, path string, body io.Reader, length int64, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.ContentLength = length
		req.Header.Set("Content-Type", contentType)
		if contentType == "application/octet-stream" {
			req.Header.Set("Expect", "100-continue")
		}
	}
	req.Header.Set("Accept", "application/json")
	if t := c.bearer(); t != "" {
		req.Header.Set("Authorization", "Bearer "+t)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			return nil, &noAgentError{addr: c.addr, cause: err}
		}
		return nil, fmt.Errorf("agent at %s: %w", c.addr, err)
	}
	return resp, nil
}

// answer reads a JSON answer (bounded) and closes it; a 2xx is decoded into
// out, anything else becomes an *APIError.
func (c *Client) answer(resp *http.Response, out any) error {
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return fmt.Errorf("read answer from agent at %s: %w", c.addr, err)
	}
	if len(data) > maxAnswerBytes {
		return fmt.Errorf("answer from agent at %s is larger than %d bytes", c.addr, maxAnswerBytes)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return apiError(resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode answer from agent at %s: %w", c.addr, err)
	}
	return nil
}

// apiError builds the *APIError of an error answer. An answer that is not the
// API's error shape (another program on the port, a proxy) keeps the start of
// its text so the user can tell what answered.
func apiError(status int, data []byte) *APIError {
	var b errorBody
	if err := json.Unmarshal(data, &b); err == nil && b.Error != "" {
		return &APIError{Status: status, Message: b.Error, MessageVI: b.ErrorVI, Fields: b.Fields}
	}
	msg := http.StatusText(status)
	if snippet := printable(string(data), 200); snippet != "" {
		msg += ": " + snippet
	}
	return &APIError{Status: status, Message: msg}
}

// printable trims s to at most n runes with control characters removed, so a
// stranger's answer cannot move the terminal's cursor.
func printable(s string, n int) string {
	var b strings.Builder
	for _, r := range strings.TrimSpace(s) {
		if n == 0 {
			b.WriteString("…")
			break
		}
		if unicode.IsControl(r) {
			r = ' '
		}
		b.WriteRune(r)
		n--
	}
	return b.String()
}

// LoginToken asks the agent for a one-time link that opens the web page
// logged in (POST /v1/login-tokens; needs the API token).
func (c *Client) LoginToken(ctx context.Context) (LoginToken, error) {
	var lt LoginToken
	err := c.do(ctx, http.MethodPost, "/v1/login-tokens", struct{}{}, &lt)
	return lt, err
}
