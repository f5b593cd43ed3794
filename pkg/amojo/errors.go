package amojo

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// ErrSignature is matched (errors.Is) by the *Error of a 403: the Chats API
// answers 403 to a request whose signature it does not accept.
var ErrSignature = errors.New("the Chats API rejected the request signature: check chats.channel_id and chats.channel_secret")

// ErrNotConnected is matched (errors.Is) by the *Error of a history request
// answered 404: the channel is not connected to the account. Kommo disables
// the channel when the integration is disabled, and every install needs a
// new connect (https://developers.kommo.com/reference/connect-channel).
var ErrNotConnected = errors.New("the channel is not connected: run `kommo-summarizer auth connect-channel`")

// Error is a non-2xx answer of the Chats API, or a 2xx whose body is not the
// JSON we expect. Code, Type and Description come from an
// {"error_code","error_type","error_description"} body when there is one.
type Error struct {
	Method, URL string // URL without its query string
	Status      int
	Code        int
	Type        string
	Description string
	// ContentType is set for a 2xx answer that is not JSON.
	ContentType string
	// Body holds the first 200 bytes of a body that was not JSON.
	Body string
	// NotConnected is set on a 404 of History: Kommo answers "channel not
	// found" for a scope that is not connected (the only 404 it documents
	// there; a missing chat is a 204).
	NotConnected bool
}

func (e *Error) Error() string {
	where := fmt.Sprintf("%s %s: %d", e.Method, e.URL, e.Status)
	if e.Status >= 200 && e.Status < 300 {
		ct := e.ContentType
		if ct == "" {
			ct = "no content type"
		}
		s := "amojo: " + where + ": the answer is not JSON (" + ct + ")"
		if e.Description != "" {
			s += ": " + e.Description
		}
		if e.Body != "" {
			s += ": " + e.Body
		}
		return s
	}
	if t := http.StatusText(e.Status); t != "" {
		where += " " + t
	}
	if d := e.detail(); d != "" {
		where += ": " + d
	}
	if e.NotConnected {
		return "amojo: " + ErrNotConnected.Error() + " (" + where + ")"
	}
	switch e.Status {
	case http.StatusForbidden:
		return ErrSignature.Error() + " (" + where + "; a wrong system clock breaks signatures too)"
	case http.StatusTooManyRequests:
		return "amojo: " + where + ": lower chats.requests_per_second"
	}
	return "amojo: " + where
}

func (e *Error) detail() string {
	var parts []string
	if e.Type != "" {
		parts = append(parts, e.Type)
	}
	if e.Code != 0 {
		parts = append(parts, "code "+strconv.Itoa(e.Code))
	}
	s := strings.Join(parts, " ")
	switch {
	case e.Description != "" && s != "":
		s += ": " + e.Description
	case e.Description != "":
		s = e.Description
	case s == "" && e.Body != "":
		s = e.Body
	}
	return s
}

// Is makes errors.Is(err, ErrSignature) true for a 403, and
// errors.Is(err, ErrNotConnected) true for a History 404.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrSignature:
		return e.Status == http.StatusForbidden
	case ErrNotConnected:
		return e.NotConnected
	}
	return false
}

// errorBody is the Chats API's error document.
type errorBody struct {
	Code        json.RawMessage `json:"error_code"`
	Type        string          `json:"error_type"`
	Description string          `json:"error_description"`
}

// code reads error_code whether it comes as a number or a quoted number.
func (b errorBody) code() (int, bool) {
	raw := strings.Trim(string(b.Code), `"`)
	n, err := strconv.Atoi(raw)
	return n, err == nil
}
