// Package amojo is a client for the Kommo Chats API (amojo): signed requests
// to read the history of the chats of our own chat channel.
//
// The Chats API takes no OAuth token; every request is signed with the
// channel secret (see Sign and
// https://developers.kommo.com/reference/chats-api-authorization-and-headers).
package amojo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/httpx"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/pace"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/retry"
)

// DefaultBaseURL is the Chats API host of Kommo accounts.
const DefaultBaseURL = "https://amojo.kommo.com"

// contentType is the only one the Chats API supports; it is signed, so it is
// sent on GETs too.
const contentType = "application/json"

// maxRetryAfter caps a server's Retry-After (undocumented for amojo).
const maxRetryAfter = time.Minute

// maxBody bounds what we read of one answer: 50 messages are a few KB.
const maxBody = 16 << 20

// Options configure a Client.
type Options struct {
	BaseURL       string           // default "https://amojo.kommo.com"
	ScopeID       string           // required for History: channel_id + "_" + amojo account id
	ChannelSecret string           // required
	HTTPClient    *http.Client     // nil: a client with 30 s timeout
	Pacer         *pace.Pacer      // its own pacer (chats.requests_per_second)
	Retry         retry.Policy     // zero = retry.Default
	Now           func() time.Time // for the Date header; default time.Now
	Logger        *slog.Logger     // nil = discard
}

// Client calls the Chats API. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	scopeID string
	secret  string
	hc      *http.Client
	pacer   *pace.Pacer
	retry   retry.Policy
	now     func() time.Time
	log     *slog.Logger
}

// New returns a Client. It fails when ChannelSecret is empty or BaseURL is
// not an http(s) URL.
func New(opts Options) (*Client, error) {
	if opts.ChannelSecret == "" {
		return nil, errors.New("amojo: the channel secret is empty: set chats.channel_secret (Kommo support issues it with the channel id)")
	}
	raw := opts.BaseURL
	if raw == "" {
		raw = DefaultBaseURL
	}
	base, err := url.Parse(raw)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" || base.RawQuery != "" {
		return nil, fmt.Errorf("amojo: the base URL %q is not an http(s) URL: set chats.base_url, e.g. %s", raw, DefaultBaseURL)
	}
	base.Path = strings.TrimRight(base.Path, "/")
	base.RawPath = ""
	c := &Client{
		base:    base,
		scopeID: opts.ScopeID,
		secret:  opts.ChannelSecret,
		hc:      opts.HTTPClient,
		pacer:   opts.Pacer,
		retry:   opts.Retry,
		now:     opts.Now,
		log:     opts.Logger,
	}
	if c.hc == nil {
		c.hc = &http.Client{Timeout: 30 * time.Second}
	}
	if c.retry == (retry.Policy{}) {
		c.retry = retry.Default
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// endpoint returns the URL of an API path given as segments, each escaped,
// so that the signed path is exactly the one sent.
func (c *Client) endpoint(q url.Values, segments ...string) *url.URL {
	esc := make([]string, len(segments))
	for i, s := range segments {
		esc[i] = url.PathEscape(s)
	}
	u := *c.base
	u.RawPath = c.base.EscapedPath() + "/" + strings.Join(esc, "/")
	u.Path, _ = url.PathUnescape(u.RawPath)
	u.RawQuery = q.Encode()
	return &u
}

// do is the one request path: pacer, signed request, retry on 429, 5xx and
// network errors, typed errors, JSON decoding into out. It returns the final
// status; a 204 is not an error here.
func (c *Client) do(ctx context.Context, method string, u *url.URL, body []byte, out any) (int, error) {
	op := func() (*httpx.Response, error) {
		if err := c.pacer.Wait(ctx); err != nil {
			return nil, retry.Permanent(err)
		}
		a, err := c.send(ctx, method, u, body)
		if err != nil {
			if ctx.Err() != nil {
				return nil, retry.Permanent(err)
			}
			return nil, err
		}
		return a, c.checkResponse(method, u, a)
	}
	a, err := retry.Do(ctx, c.retry, op, c.notify(method, u))
	if err != nil {
		return 0, err
	}
	if a.Status == http.StatusNoContent {
		return a.Status, nil
	}
	return a.Status, decode(method, u, a, out)
}

// send signs and sends one attempt. The Date, and so the signature, is made
// per attempt: a signature is valid 15 minutes from its Date, and retries can
// take a while.
func (c *Client) send(ctx context.Context, method string, u *url.URL, body []byte) (*httpx.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, retry.Permanent(fmt.Errorf("amojo: %s %s: %w", method, httpx.CleanURL(u), err))
	}
	if body == nil {
		req.Body, req.ContentLength, req.GetBody = http.NoBody, 0, nil
	}
	date := c.now().UTC().Format(time.RFC1123Z)
	sum := contentMD5(body)
	req.Header.Set("Date", date)
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Content-MD5", sum)
	req.Header.Set("X-Signature", Sign(c.secret, method, sum, contentType, date, u.EscapedPath()))
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "kommo-summarizer")

	a, err := httpx.RoundTrip(c.hc, req, maxBody, c.log, "amojo request")
	if err != nil {
		return nil, fmt.Errorf("amojo: %s %s: %w", method, httpx.CleanURL(u), err)
	}
	return a, nil
}

// checkResponse turns a non-2xx answer into an *Error, retryable for 429 and
// 5xx only.
func (c *Client) checkResponse(method string, u *url.URL, a *httpx.Response) error {
	switch s := a.Status; {
	case s >= 200 && s < 300:
		return nil
	case s == http.StatusTooManyRequests:
		err := apiError(method, u, a)
		if d := httpx.RetryAfter(a.Header, maxRetryAfter); d > 0 {
			return retry.After(d, err)
		}
		return err
	case s >= 500:
		return apiError(method, u, a)
	default:
		return retry.Permanent(apiError(method, u, a))
	}
}

func (c *Client) notify(method string, u *url.URL) func(error, time.Duration) {
	return func(err error, wait time.Duration) {
		args := []any{"method", method, "path", u.Path, "wait", wait}
		var e *Error
		if errors.As(err, &e) {
			args = append(args, "status", e.Status)
		} else {
			args = append(args, "error", err)
		}
		c.log.Warn("amojo request failed, retrying", args...)
	}
}

// apiError builds the *Error of a non-2xx answer.
func apiError(method string, u *url.URL, a *httpx.Response) *Error {
	e := &Error{Method: method, URL: httpx.CleanURL(u), Status: a.Status}
	body := bytes.TrimSpace(a.Body)
	if len(body) == 0 {
		return e
	}
	var eb errorBody
	if body[0] == '{' && json.Unmarshal(body, &eb) == nil && (len(eb.Code) > 0 || eb.Type != "" || eb.Description != "") {
		e.Type, e.Description = eb.Type, eb.Description
		if n, ok := eb.code(); ok {
			e.Code = n
		} else if len(eb.Code) > 0 && string(eb.Code) != "null" {
			e.Type = strings.TrimSpace(e.Type + " " + strings.Trim(string(eb.Code), `"`))
		}
		return e
	}
	e.Body = httpx.Snippet(body)
	return e
}

// decode reads a 2xx JSON answer into out; anything else (an HTML page from
// a proxy) is an *Error rather than an empty result.
func decode(method string, u *url.URL, a *httpx.Response, out any) error {
	mt, ok := httpx.JSONContent(a.Header)
	if !ok {
		return &Error{Method: method, URL: httpx.CleanURL(u), Status: a.Status, ContentType: mt, Body: httpx.Snippet(a.Body)}
	}
	if err := json.Unmarshal(a.Body, out); err != nil {
		return &Error{Method: method, URL: httpx.CleanURL(u), Status: a.Status, ContentType: mt, Description: err.Error(), Body: httpx.Snippet(a.Body)}
	}
	return nil
}
