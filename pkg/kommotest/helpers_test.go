package kommotest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable time source, so windows, expiry and blocks move without sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)} }

func startTest(t *testing.T, opts Options, c *clock) *Server {
	t.Helper()
	now := time.Now
	if c != nil {
		now = c.Now
	}
	s, err := start(opts, now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	t.Cleanup(func() { s.VerifyNoUnknown(t) })
	return s
}

// takeUnknown returns the unknown requests recorded so far and forgets them,
// for the tests that send such requests on purpose.
func takeUnknown(s *Server) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.unknown
	s.unknown = nil
	return u
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer is not a JSON object (%v): %s", err, r.body)
	}
	return m
}

// send does one HTTP request. body may be nil, a string (sent as is) or any
// value (sent as JSON). headers are pairs: name, value, ...
func send(t *testing.T, method, url string, body any, headers ...string) reply {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: data}
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

func withJSON(h []string) []string { return append(h, "Content-Type", "application/json") }

func wantStatus(t *testing.T, r reply, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body: %s", r.status, status, r.body)
	}
}

// validation returns the (request_id, code, path) triples of a Kommo validation error.
func validation(t *testing.T, r reply) [][3]string {
	t.Helper()
	wantStatus(t, r, 400)
	if ct := r.header.Get("Content-Type"); ct != problemJSON {
		t.Fatalf("content type %q, want %q", ct, problemJSON)
	}
	var body struct {
		VE []struct {
			RequestID string `json:"request_id"`
			Errors    []struct{ Code, Path, Detail string }
		} `json:"validation-errors"`
		Title  string
		Status int
		Detail string
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Status != 400 || body.Title != "Bad Request" || body.Detail != "Request validation failed" {
		t.Fatalf("not a validation problem: %s", r.body)
	}
	var out [][3]string
	for _, ve := range body.VE {
		for _, e := range ve.Errors {
			if e.Detail == "" {
				t.Errorf("validation error without detail: %s", r.body)
			}
			out = append(out, [3]string{ve.RequestID, e.Code, e.Path})
		}
	}
	if len(out) == 0 {
		t.Fatalf("no validation-errors in %s", r.body)
	}
	return out
}

func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}
