// Package httpx holds the small HTTP helpers both Kommo API clients share.
//
// It knows nothing of either API: each client keeps its own request path,
// typed errors, retry decisions and error messages, and calls these helpers
// for the parts that are the same.
package httpx

import (
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
	"unicode/utf8"
)

// Response is one HTTP exchange, read whole.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// RoundTrip sends req with hc and reads at most maxBody bytes of the answer.
// It logs one debug line per request on log, with message msg: method, path
// (never the query), then the status or the error, and the duration.
//
// A request that got no answer returns the transport error, without the
// *url.Error around it (that one repeats the URL with its query; callers say
// the URL once, cleaned). A body that could not be read returns an error that
// says "read the answer". A non-2xx status is no error here.
func RoundTrip(hc *http.Client, req *http.Request, maxBody int64, log *slog.Logger, msg string) (*Response, error) {
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		log.Debug(msg, "method", req.Method, "path", req.URL.Path, "error", err, "duration", time.Since(start))
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	log.Debug(msg, "method", req.Method, "path", req.URL.Path, "status", resp.StatusCode, "duration", time.Since(start))
	if err != nil {
		return nil, fmt.Errorf("read the answer: %w", err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// RetryAfter reads the Retry-After header of h, in seconds or as an HTTP
// date, and caps it at limit. It returns 0 when the header is absent, does
// not parse, or names no time still to come.
func RetryAfter(h http.Header, limit time.Duration) time.Duration {
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
	return min(d, limit)
}

// JSONContent reports whether the Content-Type of h allows a JSON body:
// none at all, application/json, or a +json type (application/hal+json,
// application/problem+json). mediaType is the parsed media type; when ok is
// false and the header does not parse, it is the header as sent, so that an
// error can say what came instead.
func JSONContent(h http.Header) (mediaType string, ok bool) {
	ct := h.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	if ct != "" && mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		if mt == "" {
			mt = ct
		}
		return mt, false
	}
	return mt, true
}

// snippetLen is how many bytes of a body Snippet keeps.
const snippetLen = 200

// Snippet returns the first 200 bytes of body for an error message: on one
// line (runs of white space become one space), cut on a rune boundary,
// invalid UTF-8 shown as "?", and "…" after it when body was longer.
func Snippet(body []byte) string {
	s := body
	if len(s) > snippetLen {
		cut := snippetLen
		for i := 0; i < utf8.UTFMax-1 && cut > 0 && !utf8.RuneStart(body[cut]); i++ {
			cut--
		}
		s = s[:cut]
	}
	out := strings.Join(strings.Fields(strings.ToValidUTF8(string(s), "?")), " ")
	if len(body) > len(s) {
		out += "…"
	}
	return out
}

// CleanURL is u without query, fragment or user info: what errors show.
func CleanURL(u *url.URL) string {
	v := *u
	v.RawQuery, v.Fragment, v.RawFragment, v.User, v.ForceQuery = "", "", "", nil, false
	return v.String()
}
