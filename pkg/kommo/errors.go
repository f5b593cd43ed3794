package kommo

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// ErrNotFound is matched (errors.Is) by an *Error with status 404, and by the
// 204 that Kommo sends instead of a 404 for some by-id GETs.
var ErrNotFound = errors.New("not found")

// Error is any non-2xx answer from Kommo, or a 2xx whose body is not the JSON
// we expect. Problem+json bodies (https://developers.kommo.com/docs/limitations)
// are decoded into Title, Detail, Type and ValidationErrors.
type Error struct {
	Method, URL string // URL without its query string
	Status      int
	// From application/problem+json.
	Title, Detail, Type string
	// Hint is the reason the OAuth endpoint gives next to its problem fields
	// ("Token has been revoked"); empty for the REST API.
	Hint             string
	ValidationErrors []ValidationError
	// ContentType is set for a 2xx answer that is not JSON.
	ContentType string
	// Body holds the first 200 bytes of a body that was not JSON.
	Body string
}

// ValidationError is one entry of a problem's "validation-errors": the
// errors of one element of a batch request.
type ValidationError struct {
	RequestID string       `json:"request_id"`
	Errors    []FieldError `json:"errors"`
}

// FieldError is one invalid field of a request element.
type FieldError struct {
	Code   string `json:"code"`
	Path   string `json:"path"`
	Detail string `json:"detail"`
}

// problem is the application/problem+json body of a Kommo error.
type problem struct {
	Title            string            `json:"title"`
	Detail           string            `json:"detail"`
	Type             string            `json:"type"`
	Hint             string            `json:"hint"`
	ValidationErrors []ValidationError `json:"validation-errors"`
}

// maxFieldErrors keeps the one-line message readable when a batch of 250
// elements fails validation; the full list stays in ValidationErrors.
const maxFieldErrors = 3

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "kommo: %s %s: %d", e.Method, e.URL, e.Status)
	if e.Status >= 200 && e.Status < 300 && e.Status != http.StatusNoContent {
		ct := e.ContentType
		if ct == "" {
			ct = "no content type"
		}
		fmt.Fprintf(&b, ": the answer is not JSON (%s)", ct)
		if e.Detail != "" {
			b.WriteString(": " + e.Detail)
		}
		if e.Body != "" {
			b.WriteString(": " + e.Body)
		}
		return b.String()
	}
	if t := http.StatusText(e.Status); t != "" {
		b.WriteString(" " + t)
	}
	switch {
	case e.Detail != "":
		b.WriteString(": " + e.Detail)
	case e.Title != "" && e.Title != http.StatusText(e.Status):
		b.WriteString(": " + e.Title)
	case e.Body != "":
		b.WriteString(": " + e.Body)
	case e.Status == http.StatusNoContent:
		b.WriteString(": not found")
	}
	if e.Hint != "" {
		b.WriteString(" (" + e.Hint + ")")
	}
	if fe := e.fieldErrors(); fe != "" {
		b.WriteString(" (" + fe + ")")
	}
	if e.Status == http.StatusForbidden {
		b.WriteString(": check that the user behind the token has the rights for this call")
	}
	return b.String()
}

func (e *Error) fieldErrors() string {
	var parts []string
	total := 0
	for _, ve := range e.ValidationErrors {
		for _, fe := range ve.Errors {
			total++
			if len(parts) == maxFieldErrors {
				continue
			}
			s := fe.Path + ": " + fe.Code + ": " + fe.Detail
			if len(e.ValidationErrors) > 1 && ve.RequestID != "" {
				s = "element " + ve.RequestID + ": " + s
			}
			parts = append(parts, s)
		}
	}
	if total > len(parts) {
		parts = append(parts, "and "+strconv.Itoa(total-len(parts))+" more")
	}
	return strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrNotFound) true for a 404, and for the 204 of a
// by-id GET (the only place an *Error with status 204 is made).
func (e *Error) Is(target error) bool {
	return target == ErrNotFound && (e.Status == http.StatusNotFound || e.Status == http.StatusNoContent)
}

// defaultAuthHint is what a user can do about dead credentials.
const defaultAuthHint = "run `kommo-summarizer auth login --code CODE` or set kommo.long_lived_token"

// AuthError is a 401 that a token refresh did not cure, or a token endpoint
// that refused the code or refresh token (used, revoked or expired).
type AuthError struct {
	Err  error
	Hint string // what to do; empty means the login hint
}

func (e *AuthError) Error() string {
	hint := e.Hint
	if hint == "" {
		hint = defaultAuthHint
	}
	detail := "no detail"
	if e.Err != nil {
		// The wrapped *Error already says "kommo: ..."; once per line is enough.
		detail = strings.TrimPrefix(e.Err.Error(), "kommo: ")
	}
	return "kommo rejected the credentials: " + detail + "; " + hint
}

func (e *AuthError) Unwrap() error { return e.Err }

// RateLimitError is a 429 that was still there after every retry.
type RateLimitError struct {
	Method, URL string
}

func (e *RateLimitError) Error() string {
	return "kommo: " + e.Method + " " + e.URL + ": 429 Too Many Requests: Kommo allows 7 requests per second; lower kommo.requests_per_second"
}

// IPBlockedError is a 403 whose body is Kommo's IP block rather than a
// problem about rights (see ipBlocked): Kommo blocks the IP of a client that
// keeps exceeding the rate limit (https://developers.kommo.com/docs/limitations),
// and every request fails until the block ends. Once a Guard has seen it,
// nothing more is sent through it: more requests would only extend the block.
type IPBlockedError struct {
	Method, URL string
	// Detail is the problem's detail, or a snippet of a body that was not one.
	Detail string
}

func (e *IPBlockedError) Error() string {
	s := "kommo blocked this IP (403 on " + e.Method + " " + e.URL
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s + "): stop and wait before the next run; repeated 429 answers cause it: lower kommo.requests_per_second"
}
