// Package kommo is a client for the Kommo REST API v4 and its OAuth token
// endpoint (https://developers.kommo.com/reference).
//
// Every call to the account host, the token endpoint's included, goes
// through one request path (Client.exchange): IP block guard, pacer, bearer
// token and one refresh after a 401 (REST only), typed errors, a retry
// decision made per call, and JSON decoding.
package kommo

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/httpx"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/pace"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/retry"
)

// TokenSource hands out the bearer token for the REST API.
type TokenSource interface {
	// Token returns an access token to send as "Authorization: Bearer ...".
	Token(ctx context.Context) (string, error)
	// Refresh is called at most once per request, after a 401, with the token that was rejected.
	// It returns a fresh token or an error (an *AuthError when the credentials are dead).
	Refresh(ctx context.Context, rejected string) (string, error)
}

// StaticToken is a long-lived token (https://developers.kommo.com/docs/long-lived-token):
// used as is, never refreshed (Refresh returns *AuthError).
type StaticToken string

// Token returns the token itself.
func (t StaticToken) Token(context.Context) (string, error) {
	if t == "" {
		return "", &AuthError{Err: errors.New("the long-lived token is empty"), Hint: "set kommo.long_lived_token"}
	}
	return string(t), nil
}

// Refresh always fails: a long-lived token has no refresh token, so a 401
// means it expired or was revoked.
func (t StaticToken) Refresh(context.Context, string) (string, error) {
	return "", &AuthError{
		Err:  errors.New("the long-lived token is expired or revoked"),
		Hint: "create a new long-lived token in the integration's Keys and scopes tab and set kommo.long_lived_token",
	}
}

// Options configure a Client.
type Options struct {
	BaseURL    string       // "https://sub.kommo.com" (or http://127.0.0.1:port in tests); no trailing /api/v4
	HTTPClient *http.Client // nil: a client with 30 s timeout
	Tokens     TokenSource  // required
	Pacer      *pace.Pacer  // shared by every REST call of the process; nil = unpaced
	Retry      retry.Policy // zero value = retry.Default; tests pass a fast one
	ClientID   string       // sent as X-Client-UUID when set
	UserAgent  string       // default "kommo-summarizer"
	Logger     *slog.Logger // nil = discard; debug line per request (method, path, status, duration), warn per retry
	// Guard is the IP block guard of the account host; share it with the
	// process's OAuthApp. nil = a guard of this Client's own.
	Guard *Guard
}

// Guard remembers that Kommo blocked this IP, so that nothing more is sent to
// the account host: every request would fail, and more requests only extend
// the block. The REST Client and the OAuthApp of a process share one (it is
// one host); the zero value is ready to use.
type Guard struct {
	mu      sync.Mutex
	blocked *IPBlockedError
}

// Blocked returns the block met so far, or nil.
func (g *Guard) Blocked() *IPBlockedError {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.blocked
}

// block records e unless a block is known already, and returns the one kept.
func (g *Guard) block(e *IPBlockedError) *IPBlockedError {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.blocked == nil {
		g.blocked = e
	}
	return g.blocked
}

// err is Blocked as an error: nil when not blocked.
func (g *Guard) err() error {
	if b := g.Blocked(); b != nil {
		return b
	}
	return nil
}

// Client calls the Kommo REST API v4. It is safe for concurrent use; every
// goroutine of the process should share one Client (or at least its Guard),
// so that an IP block stops them all.
type Client struct {
	base      *url.URL
	hc        *http.Client
	tokens    TokenSource // nil for the token endpoint (OAuthApp), which takes no bearer
	pacer     *pace.Pacer
	retry     retry.Policy
	clientID  string
	userAgent string
	log       *slog.Logger
	guard     *Guard
}

// maxRetryAfter caps a server's Retry-After: Kommo does not document the
// header, and a run should not hang on a strange value.
const maxRetryAfter = time.Minute

// maxBody bounds what we read of one answer; a page of 250 leads with
// contacts is well under a megabyte.
const maxBody = 32 << 20

// New returns a Client. It fails when BaseURL is empty or not an http(s) URL,
// or when Tokens is nil.
func New(opts Options) (*Client, error) {
	base, err := parseBaseURL(opts.BaseURL)
	if err != nil {
		return nil, err
	}
	if opts.Tokens == nil {
		return nil, errors.New("kommo: no credentials: set kommo.long_lived_token or log in with `kommo-summarizer auth login --code CODE`")
	}
	c := &Client{
		base:      base,
		hc:        opts.HTTPClient,
		tokens:    opts.Tokens,
		pacer:     opts.Pacer,
		retry:     opts.Retry,
		clientID:  opts.ClientID,
		userAgent: opts.UserAgent,
		log:       opts.Logger,
		guard:     opts.Guard,
	}
	c.defaults()
	return c, nil
}

// defaults fills in what New and OAuthApp leave unset.
func (c *Client) defaults() {
	if c.hc == nil {
		c.hc = &http.Client{Timeout: 30 * time.Second}
	}
	if c.retry == (retry.Policy{}) {
		c.retry = retry.Default
	}
	if c.userAgent == "" {
		c.userAgent = "kommo-summarizer"
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.guard == nil {
		c.guard = &Guard{}
	}
}

func parseBaseURL(raw string) (*url.URL, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, errors.New("kommo: the base URL is empty: set kommo.base_url, e.g. https://example.kommo.com")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("kommo: the base URL %q is not an http(s) URL: set kommo.base_url, e.g. https://example.kommo.com", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("kommo: the base URL %q has a query or fragment: set kommo.base_url to scheme and host only", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	if strings.HasSuffix(u.Path, "/api/v4") {
		return nil, fmt.Errorf("kommo: the base URL %q ends with /api/v4: set kommo.base_url without it", raw)
	}
	return u, nil
}

// endpoint returns the absolute URL of an API path ("/api/v4/leads").
func (c *Client) endpoint(path string, q url.Values) *url.URL {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawQuery = q.Encode()
	return &u
}

// retryMode says after which failures a call may be sent again.
type retryMode int

const (
	// idempotent calls (GET, and PATCH that sets fields) are retried on 429,
	// 5xx and network errors: sending them twice does no harm.
	idempotent retryMode = iota
	// notIdempotent calls (POST notes) are retried only when the server
	// surely did not act: a 429, or a connection that was never made. A 5xx
	// or a timeout may come after the notes were stored.
	notIdempotent
)

// answer is one HTTP exchange, read whole.
type answer struct {
	httpx.Response
	token string // the bearer that was sent, for Refresh after a 401
}

// transportError is a request that got no HTTP answer.
type transportError struct {
	method, url string
	err         error
}

func (e *transportError) Error() string {
	return "kommo: " + e.method + " " + e.url + ": " + e.err.Error()
}

func (e *transportError) Unwrap() error { return e.err }

// neverSent reports whether err surely happened before the request reached
// the server: the connection was never made.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// do is the REST API's call: it sends in (JSON) to u, retries per mode, and
// decodes a 2xx JSON answer into out (out == nil: the answer must still be
// JSON). It returns the final status; a 204 is not an error here, each
// caller says what an empty answer means.
func (c *Client) do(ctx context.Context, method string, u *url.URL, in any, mode retryMode, out any) (int, error) {
	a, err := c.exchange(ctx, method, u, in, mode)
	if err != nil {
		return 0, err
	}
	if a.Status == http.StatusNoContent {
		return a.Status, nil
	}
	return a.Status, decode(method, u, a, out)
}

// exchange is the one request path to the account host: IP block guard,
// pacer, the bearer token with one refresh after a 401 (when c has a
// TokenSource), the status check and the retry loop. It returns the final
// 2xx answer.
func (c *Client) exchange(ctx context.Context, method string, u *url.URL, in any, mode retryMode) (*answer, error) {
	if err := c.guard.err(); err != nil {
		return nil, err
	}
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("kommo: %s %s: encode the request: %w", method, httpx.CleanURL(u), err)
		}
		body = b
	}
	refreshed := false
	op := func() (*answer, error) {
		a, err := c.send(ctx, method, u, body, "")
		if err == nil && a.Status == http.StatusUnauthorized && c.tokens != nil && !refreshed {
			refreshed = true
			fresh, rerr := c.tokens.Refresh(ctx, a.token)
			if rerr != nil {
				return nil, retry.Permanent(refreshError(rerr))
			}
			a, err = c.send(ctx, method, u, body, fresh)
		}
		if err != nil {
			return nil, c.classifySendError(ctx, err, mode)
		}
		return a, c.checkResponse(method, u, a, mode)
	}
	return retry.Do(ctx, c.retry, op, c.notify(method, u))
}

func refreshError(err error) error {
	var ae *AuthError
	if errors.As(err, &ae) {
		return err
	}
	return fmt.Errorf("kommo: refresh the access token after a 401: %w", err)
}

// send makes one attempt: pacer, token, request, answer. token overrides
// Tokens.Token (the fresh one right after a refresh). Errors before the
// request is sent are permanent; a failed exchange is a *transportError.
func (c *Client) send(ctx context.Context, method string, u *url.URL, body []byte, token string) (*answer, error) {
	if err := c.pacer.Wait(ctx); err != nil {
		return nil, retry.Permanent(err)
	}
	// Another goroutine may have met the block while this one waited.
	if err := c.guard.err(); err != nil {
		return nil, retry.Permanent(err)
	}
	if token == "" && c.tokens != nil {
		t, err := c.tokens.Token(ctx)
		if err != nil {
			var ae *AuthError
			if errors.As(err, &ae) {
				return nil, retry.Permanent(err)
			}
			return nil, retry.Permanent(fmt.Errorf("kommo: get the access token: %w", err))
		}
		token = t
	}
	req, err := c.newRequest(ctx, method, u, body, token)
	if err != nil {
		return nil, retry.Permanent(err)
	}
	a, err := roundTrip(c.hc, c.log, req)
	if err != nil {
		return nil, err
	}
	a.token = token
	return a, nil
}

func (c *Client) newRequest(ctx context.Context, method string, u *url.URL, body []byte, token string) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), r)
	if err != nil {
		return nil, fmt.Errorf("kommo: %s %s: %w", method, httpx.CleanURL(u), err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.clientID != "" {
		req.Header.Set("X-Client-UUID", c.clientID)
	}
	req.Header.Set("User-Agent", c.userAgent)
	return req, nil
}

// roundTrip sends req and reads the whole answer, logging one debug line.
// The line has the path only: the query holds nothing secret today, but the
// path is all a reader of the log needs. A failed exchange is a
// *transportError.
func roundTrip(hc *http.Client, log *slog.Logger, req *http.Request) (*answer, error) {
	r, err := httpx.RoundTrip(hc, req, maxBody, log, "kommo request")
	if err != nil {
		return nil, &transportError{method: req.Method, url: httpx.CleanURL(req.URL), err: err}
	}
	return &answer{Response: *r}, nil
}

// classifySendError decides whether a request that got no answer may be sent
// again.
func (c *Client) classifySendError(ctx context.Context, err error, mode retryMode) error {
	var te *transportError
	if !errors.As(err, &te) {
		return err // already permanent (pacer, token)
	}
	if ctx.Err() != nil {
		return retry.Permanent(err)
	}
	if mode == idempotent || neverSent(err) {
		return err
	}
	return retry.Permanent(err)
}

// checkResponse turns a non-2xx answer into a typed error, marked permanent
// or retryable for this call's mode.
func (c *Client) checkResponse(method string, u *url.URL, a *answer, mode retryMode) error {
	s := a.Status
	switch {
	case s >= 200 && s < 300:
		return nil
	case s == http.StatusTooManyRequests:
		err := &RateLimitError{Method: method, URL: httpx.CleanURL(u)}
		if d := httpx.RetryAfter(a.Header, maxRetryAfter); d > 0 {
			return retry.After(d, err)
		}
		return err
	case s == http.StatusUnauthorized, s == http.StatusBadRequest && c.tokens == nil:
		// The token endpoint refuses a used, revoked or expired code or
		// refresh token with a 400 or a 401.
		return retry.Permanent(&AuthError{Err: apiError(method, u, a)})
	case s == http.StatusForbidden:
		e := apiError(method, u, a)
		if ipBlocked(a.Body) {
			blocked := c.guard.block(&IPBlockedError{Method: method, URL: httpx.CleanURL(u), Detail: cmp.Or(e.Detail, e.Title, e.Body)})
			c.log.Error("kommo blocked this IP: no more requests will be sent", "method", method, "path", u.Path)
			return retry.Permanent(blocked)
		}
		// Missing rights (a lead the user cannot see), an API IP whitelist,
		// an admin-only endpoint: this call fails, the others may not.
		return retry.Permanent(e)
	case s >= 500 && mode == idempotent:
		return apiError(method, u, a)
	default:
		return retry.Permanent(apiError(method, u, a))
	}
}

// blockWords finds a problem document that says the IP is blocked, in
// English or Russian.
var blockWords = regexp.MustCompile(`(?i)\bip\b.*(block|заблок)|(block|заблок).*\bip\b`)

// ipBlocked reads the body of a 403. Kommo answers 403 for an IP block
// ("any code in the API will return HTTP code 403 for any request for this
// IP", https://developers.kommo.com/docs/limitations), but also for missing
// rights, an API IP whitelist and admin-only endpoints, and only the block
// must end a run. The block's body is not documented, so: a body that is not
// a problem document (empty, an HTML page, plain text) is the block, and so is
// a problem whose title or detail says that the IP is blocked. Any other
// problem document (rights, whitelist, admin) is not.
func ipBlocked(body []byte) bool {
	body = bytes.TrimSpace(body)
	var p problem
	if len(body) == 0 || body[0] != '{' || json.Unmarshal(body, &p) != nil || (p.Title == "" && p.Detail == "") {
		return true
	}
	return blockWords.MatchString(p.Title + " " + p.Detail)
}

// notify logs a warn line per retry, without bodies.
func (c *Client) notify(method string, u *url.URL) func(error, time.Duration) {
	return retryLogger(c.log, method, u)
}

func retryLogger(log *slog.Logger, method string, u *url.URL) func(error, time.Duration) {
	return func(err error, wait time.Duration) {
		args := []any{"method", method, "path", u.Path, "wait", wait}
		var e *Error
		var rl *RateLimitError
		switch {
		case errors.As(err, &e):
			args = append(args, "status", e.Status, "detail", e.Detail)
		case errors.As(err, &rl):
			args = append(args, "status", http.StatusTooManyRequests)
		default:
			args = append(args, "error", err)
		}
		log.Warn("kommo request failed, retrying", args...)
	}
}

// apiError builds the *Error of a non-2xx answer, decoding problem+json
// when the body is JSON and keeping a snippet when it is not.
func apiError(method string, u *url.URL, a *answer) *Error {
	e := &Error{Method: method, URL: httpx.CleanURL(u), Status: a.Status}
	body := bytes.TrimSpace(a.Body)
	if len(body) == 0 {
		return e
	}
	var p problem
	if body[0] == '{' && json.Unmarshal(body, &p) == nil &&
		(p.Title != "" || p.Detail != "" || p.Type != "" || p.Hint != "" || len(p.ValidationErrors) > 0) {
		e.Title, e.Detail, e.Type, e.Hint, e.ValidationErrors = p.Title, p.Detail, p.Type, p.Hint, p.ValidationErrors
		return e
	}
	e.Body = httpx.Snippet(body)
	return e
}

// decode reads a 2xx JSON answer into out. Kommo answers
// application/hal+json; a proxy or a maintenance page answers HTML with a
// 200, which must not pass for an empty result.
func decode(method string, u *url.URL, a *answer, out any) error {
	mt, ok := httpx.JSONContent(a.Header)
	if !ok {
		return &Error{Method: method, URL: httpx.CleanURL(u), Status: a.Status, ContentType: mt, Body: httpx.Snippet(a.Body)}
	}
	var err error
	if out == nil {
		if !json.Valid(a.Body) {
			err = errors.New("invalid JSON")
		}
	} else {
		err = json.Unmarshal(a.Body, out)
	}
	if err != nil {
		return &Error{Method: method, URL: httpx.CleanURL(u), Status: a.Status, ContentType: mt, Detail: err.Error(), Body: httpx.Snippet(a.Body)}
	}
	return nil
}
