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
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

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

// answer is one HTTP exchange, read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// do is the one request path: pacer, signed request, retry on 429, 5xx and
// network errors, typed errors, JSON decoding into out. It returns the final
// status; a 204 is not an error here.
func (c *Client) do(ctx context.Context, method string, u *url.URL, body []byte, out any) (int, error) {
	op := func() (*answer, error) {
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
	if a.status == http.StatusNoContent {
		return a.status, nil
	}
	return a.status, decode(method, u, a, out)
}

// send signs and sends one attempt. The Date, and so the signature, is made
// per attempt: a signature is valid 15 minutes from its Date, and retries can
// take a while.
func (c *Client) send(ctx context.Context, method string, u *url.URL, body []byte) (*answer, error) {
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, retry.Permanent(fmt.Errorf("amojo: %s %s: %w", method, cleanURL(u), err))
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

	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.log.Debug("amojo request", "method", method, "path", u.Path, "error", err, "duration", time.Since(start))
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL with its query; ours says it once
		}
		return nil, fmt.Errorf("amojo: %s %s: %w", method, cleanURL(u), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	c.log.Debug("amojo request", "method", method, "path", u.Path, "status", resp.StatusCode, "duration", time.Since(start))
	if err != nil {
		return nil, fmt.Errorf("amojo: %s %s: read the answer: %w", method, cleanURL(u), err)
	}
	return &answer{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// checkResponse turns a non-2xx answer into an *Error, retryable for 429 and
// 5xx only.
func (c *Client) checkResponse(method string, u *url.URL, a *answer) error {
	switch s := a.status; {
	case s >= 200 && s < 300:
		return nil
	case s == http.StatusTooManyRequests:
		err := apiError(method, u, a)
		if d := retryAfter(a.header); d > 0 {
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

// retryAfter reads a Retry-After header (seconds or an HTTP date), capped.
func retryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(v); err == nil {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = time.Until(t)
	}
	if d <= 0 {
		return 0
	}
	return min(d, maxRetryAfter)
}

// apiError builds the *Error of a non-2xx answer.
func apiError(method string, u *url.URL, a *answer) *Error {
	e := &Error{Method: method, URL: cleanURL(u), Status: a.status}
	body := bytes.TrimSpace(a.body)
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
	e.Body = snippet(body)
	return e
}

// decode reads a 2xx JSON answer into out; anything else (an HTML page from
// a proxy) is an *Error rather than an empty result.
func decode(method string, u *url.URL, a *answer, out any) error {
	ct := a.header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	if ct != "" && mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		if mt == "" {
			mt = ct
		}
		return &Error{Method: method, URL: cleanURL(u), Status: a.status, ContentType: mt, Body: snippet(a.body)}
	}
	if err := json.Unmarshal(a.body, out); err != nil {
		return &Error{Method: method, URL: cleanURL(u), Status: a.status, ContentType: mt, Description: err.Error(), Body: snippet(a.body)}
	}
	return nil
}

// cleanURL is u without query, fragment or user info: what errors show.
func cleanURL(u *url.URL) string {
	v := *u
	v.RawQuery, v.Fragment, v.RawFragment, v.User, v.ForceQuery = "", "", "", nil, false
	return v.String()
}
