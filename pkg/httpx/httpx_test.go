package httpx

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name     string
		value    string // "" sends no header
		limit    time.Duration
		min, max time.Duration // the answer must lie in [min, max]
	}{
		{"no header", "", time.Minute, 0, 0},
		{"seconds", "7", time.Minute, 7 * time.Second, 7 * time.Second},
		{"seconds with spaces", "  12 ", time.Minute, 12 * time.Second, 12 * time.Second},
		{"seconds over the cap", "120", time.Minute, time.Minute, time.Minute},
		{"own cap", "120", 90 * time.Second, 90 * time.Second, 90 * time.Second},
		{"zero", "0", time.Minute, 0, 0},
		{"negative", "-5", time.Minute, 0, 0},
		{"fraction", "1.5", time.Minute, 0, 0},
		{"garbage", "soon", time.Minute, 0, 0},
		// An HTTP date has whole seconds: 30 s ahead reads as 29 to 30 s.
		{"HTTP date", now.Add(30 * time.Second).UTC().Format(http.TimeFormat), time.Minute, 28 * time.Second, 30 * time.Second},
		{"RFC 850 date", now.Add(30 * time.Second).UTC().Format(time.RFC850), time.Minute, 28 * time.Second, 30 * time.Second},
		{"date over the cap", now.Add(time.Hour).UTC().Format(http.TimeFormat), time.Minute, time.Minute, time.Minute},
		{"date in the past", now.Add(-time.Hour).UTC().Format(http.TimeFormat), time.Minute, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.value != "" {
				h.Set("Retry-After", tt.value)
			}
			got := RetryAfter(h, tt.limit)
			if got < tt.min || got > tt.max {
				t.Errorf("RetryAfter(%q, %v) = %v, want %v to %v", tt.value, tt.limit, got, tt.min, tt.max)
			}
		})
	}
}

func TestSnippet(t *testing.T) {
	ascii200 := strings.Repeat("x", 200)
	tests := []struct {
		name, body, want string
	}{
		{"empty", "", ""},
		{"short", "Bad Gateway", "Bad Gateway"},
		{"one line", "<html>\n  <body>Down for maintenance</body>\n</html>\n", "<html> <body>Down for maintenance</body> </html>"},
		{"exactly the limit", ascii200, ascii200},
		{"one byte over", ascii200 + "y", ascii200 + "…"},
		// 2-byte runes from byte 0: byte 200 starts a rune, so 100 of them stay.
		{"2-byte runes, cut on a boundary", strings.Repeat("é", 150) + "\nmore", strings.Repeat("é", 100) + "…"},
		// "a" then 2-byte runes: byte 200 is the middle of one, which goes.
		{"2-byte runes, cut inside one", "a" + strings.Repeat("é", 150), "a" + strings.Repeat("é", 99) + "…"},
		// "ab" then 4-byte runes: byte 200 is the third byte of the 50th.
		{"4-byte runes, cut inside one", "ab" + strings.Repeat("😀", 60), "ab" + strings.Repeat("😀", 49) + "…"},
		{"invalid UTF-8", "a\xffb", "a?b"},
		// No rune start within reach: the cut steps back three bytes at most.
		{"only continuation bytes", strings.Repeat("\x80", 201), "?…"},
		{"continuation bytes at the cut", strings.Repeat("x", 196) + strings.Repeat("\x80", 10), strings.Repeat("x", 196) + "?…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Snippet([]byte(tt.body)); got != tt.want {
				t.Errorf("Snippet(%q) =\n %q\nwant\n %q", tt.body, got, tt.want)
			}
		})
	}
}

func TestCleanURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://example.kommo.com/api/v4/leads", "https://example.kommo.com/api/v4/leads"},
		{"https://example.kommo.com/api/v4/leads?with=contacts&page=2", "https://example.kommo.com/api/v4/leads"},
		{"https://user:secret@example.kommo.com/api/v4/account#top", "https://example.kommo.com/api/v4/account"},
		{"https://example.kommo.com/api/v4/leads?", "https://example.kommo.com/api/v4/leads"},
		{"http://127.0.0.1:8080/v2/origin/custom/scope%2F1/chats/c%20d/history?limit=50", "http://127.0.0.1:8080/v2/origin/custom/scope%2F1/chats/c%20d/history"},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		before := *u
		if got := CleanURL(u); got != tt.want {
			t.Errorf("CleanURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if *u != before {
			t.Errorf("CleanURL(%q) changed its argument to %q", tt.in, u)
		}
	}
}

func TestJSONContent(t *testing.T) {
	tests := []struct {
		contentType string // "" sends no header
		wantType    string
		wantOK      bool
	}{
		{"", "", true},
		{"application/json", "application/json", true},
		{"application/json; charset=utf-8", "application/json", true},
		{"Application/JSON", "application/json", true},
		{"application/hal+json;charset=UTF-8", "application/hal+json", true},
		{"application/problem+json", "application/problem+json", true},
		{"text/html; charset=utf-8", "text/html", false},
		{"text/plain", "text/plain", false},
		{"application/xml", "application/xml", false},
		// A header that does not parse is shown as sent.
		{"/json", "/json", false},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.contentType != "" {
			h.Set("Content-Type", tt.contentType)
		}
		mt, ok := JSONContent(h)
		if mt != tt.wantType || ok != tt.wantOK {
			t.Errorf("JSONContent(%q) = %q, %v; want %q, %v", tt.contentType, mt, ok, tt.wantType, tt.wantOK)
		}
	}
}

// debugLog returns a logger that writes debug lines to the returned buffer.
func debugLog() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

func TestRoundTrip(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ok", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/hal+json")
		w.Header().Set("Retry-After", "3")
		io.WriteString(w, `{"id":5}`)
	})
	mux.HandleFunc("GET /unavailable", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "busy")
	})
	mux.HandleFunc("GET /long", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("z", 100))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	tests := []struct {
		path       string
		maxBody    int64
		wantStatus int
		wantBody   string
	}{
		{"/ok?with=contacts", 1 << 20, 200, `{"id":5}`},
		{"/unavailable", 1 << 20, 503, "busy"}, // a non-2xx answer is no error here
		{"/long", 10, 200, "zzzzzzzzzz"},       // read no more than maxBody
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			log, logs := debugLog()
			req, err := http.NewRequest(http.MethodGet, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			r, err := RoundTrip(srv.Client(), req, tt.maxBody, log, "test request")
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != tt.wantStatus || string(r.Body) != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", r.Status, r.Body, tt.wantStatus, tt.wantBody)
			}
			path, _, _ := strings.Cut(tt.path, "?")
			line := `level=DEBUG msg="test request" method=GET path=` + path + " status="
			if got := strings.Count(logs.String(), line); got != 1 {
				t.Errorf("%d lines %q, want 1:\n%s", got, line, logs)
			}
			if strings.Contains(logs.String(), "with=contacts") {
				t.Errorf("the log shows the query:\n%s", logs)
			}
		})
	}

	// The header comes back whole.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/ok", nil)
	r, err := RoundTrip(srv.Client(), req, 1<<20, slog.New(slog.DiscardHandler), "test request")
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Header.Get("Content-Type"); got != "application/hal+json" {
		t.Errorf("Content-Type = %q", got)
	}
	if got := RetryAfter(r.Header, time.Minute); got != 3*time.Second {
		t.Errorf("Retry-After = %v, want 3s", got)
	}
}

func TestRoundTripNoAnswer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: a real "connection refused"

	log, logs := debugLog()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/api/v4/leads?secret=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := RoundTrip(&http.Client{Timeout: 5 * time.Second}, req, 1<<20, log, "test request")
	if err == nil {
		t.Fatalf("RoundTrip = %+v, want an error", r)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		t.Errorf("err = %v, want it without the *url.Error", err)
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		t.Errorf("err = %#v, want a dial *net.OpError", err)
	}
	if strings.Contains(err.Error(), "secret=1") {
		t.Errorf("err = %v shows the query", err)
	}
	if !strings.Contains(logs.String(), `level=DEBUG msg="test request" method=POST path=/api/v4/leads error=`) {
		t.Errorf("no debug line for the failure:\n%s", logs)
	}
}

func TestRoundTripBodyCutShort(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\":")
		buf.Flush()
	}))
	t.Cleanup(srv.Close)

	log, logs := debugLog()
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/api/v4/account", nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := RoundTrip(srv.Client(), req, 1<<20, log, "test request")
	if err == nil {
		t.Fatalf("RoundTrip = %+v, want an error", r)
	}
	if want := "read the answer: unexpected EOF"; err.Error() != want || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("err = %q, want %q wrapping io.ErrUnexpectedEOF", err, want)
	}
	if !strings.Contains(logs.String(), `msg="test request" method=GET path=/api/v4/account status=200`) {
		t.Errorf("no debug line for the answer:\n%s", logs)
	}
}
