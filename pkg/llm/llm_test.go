package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fake is an OpenAI-compatible server on 127.0.0.1 that records every
// request and answers through handle (n counts the attempts from 1).
type fake struct {
	t      *testing.T
	srv    *httptest.Server
	handle func(w http.ResponseWriter, r *http.Request, n int)

	mu   sync.Mutex
	reqs []request
}

type request struct {
	Header http.Header
	Body   map[string]any
}

func newFake(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, n int)) *fake {
	t.Helper()
	f := &fake{t: t, handle: handle}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("reading the request: %v", err)
		}
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Errorf("the request body is not JSON: %v: %s", err, raw)
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, request{Header: r.Header.Clone(), Body: body})
		n := len(f.reqs)
		f.mu.Unlock()
		f.handle(w, r, n)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request %s %s", r.Method, r.URL)
		http.NotFound(w, r)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fake) URL() string { return f.srv.URL + "/v1" }

func (f *fake) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.reqs...)
}

func (f *fake) attempts() int { return len(f.requests()) }

func answer(w http.ResponseWriter, model, content, finish string, prompt, completion int64) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id": "chatcmpl-1", "object": "chat.completion", "created": 1763700000, "model": model,
		"choices": []any{map[string]any{
			"index":         0,
			"message":       map[string]any{"role": "assistant", "content": content},
			"finish_reason": finish,
		}},
		"usage": map[string]any{"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
	})
}

func ok(w http.ResponseWriter) { answer(w, "gpt-4o-mini-2024-07-18", "Summary.", "stop", 100, 10) }

func apiError(w http.ResponseWriter, status int, typ, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": code}})
}

// logs collects a client's log lines as JSON objects.
type logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logs) lines(t *testing.T, level string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, s := range strings.Split(strings.TrimSpace(l.buf.String()), "\n") {
		if s == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatalf("log line %q: %v", s, err)
		}
		if m["level"] == level {
			out = append(out, m)
		}
	}
	return out
}

func newClient(t *testing.T, baseURL string, edit func(*Options)) (*Client, *logs) {
	t.Helper()
	l := &logs{}
	opts := Options{
		BaseURL: baseURL, APIKey: "sk-test", Model: "gpt-4o-mini", Temperature: 0.3, MaxTokens: 300,
		RetryBase: 5 * time.Millisecond, Tries: 5,
		Logger: slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if edit != nil {
		edit(&opts)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c, l
}

func TestCompleteSendsAndParses(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		answer(w, "gpt-4o-mini-2024-07-18", "Client context: a bakery.", "stop", 1234, 56)
	})
	c, l := newClient(t, f.URL(), nil)
	got, err := c.Complete(context.Background(), "You summarize.", "01.11 09:00 [Anna]: secret chat text")
	if err != nil {
		t.Fatal(err)
	}
	want := Completion{Text: "Client context: a bakery.", Model: "gpt-4o-mini-2024-07-18", FinishReason: "stop", Usage: Usage{PromptTokens: 1234, CompletionTokens: 56}}
	if *got != want {
		t.Errorf("Complete = %+v, want %+v", *got, want)
	}

	reqs := f.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if h := r.Header.Get("Authorization"); h != "Bearer sk-test" {
		t.Errorf("Authorization = %q", h)
	}
	if h := r.Header.Get("Content-Type"); h != "application/json" {
		t.Errorf("Content-Type = %q", h)
	}
	b := r.Body
	if b["model"] != "gpt-4o-mini" || b["temperature"] != 0.3 || b["max_completion_tokens"] != 300.0 {
		t.Errorf("model %v temperature %v max_completion_tokens %v", b["model"], b["temperature"], b["max_completion_tokens"])
	}
	if _, ok := b["max_tokens"]; ok {
		t.Error("max_tokens sent: reasoning models refuse it")
	}
	if _, ok := b["stream"]; ok {
		t.Error("stream sent")
	}
	msgs, _ := json.Marshal(b["messages"])
	if want := `[{"content":"You summarize.","role":"system"},{"content":"01.11 09:00 [Anna]: secret chat text","role":"user"}]`; string(msgs) != want {
		t.Errorf("messages = %s, want %s", msgs, want)
	}

	debug := l.lines(t, "DEBUG")
	if len(debug) != 1 {
		t.Fatalf("%d debug lines, want 1", len(debug))
	}
	d := debug[0]
	if d["model"] != "gpt-4o-mini-2024-07-18" || d["prompt_tokens"] != 1234.0 || d["completion_tokens"] != 56.0 || d["duration"] == nil {
		t.Errorf("debug line = %v", d)
	}
	if strings.Contains(l.buf.String(), "secret") {
		t.Error("chat text reached the log")
	}
}

func TestBaseURLWithOrWithoutSlash(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) { ok(w) })
	for _, base := range []string{f.URL(), f.URL() + "/"} {
		c, _ := newClient(t, base, nil)
		if _, err := c.Complete(context.Background(), "s", "u"); err != nil {
			t.Errorf("base %q: %v", base, err)
		}
	}
	if n := f.attempts(); n != 2 {
		t.Errorf("%d requests reached /v1/chat/completions, want 2", n)
	}
}

func TestRetries429(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n <= 2 {
			apiError(w, 429, "requests", "rate_limit_exceeded", "Rate limit reached for gpt-4o-mini.")
			return
		}
		ok(w)
	})
	c, l := newClient(t, f.URL(), nil)
	got, err := c.Complete(context.Background(), "s", "u")
	if err != nil {
		t.Fatal(err)
	}
	if got.Text != "Summary." {
		t.Errorf("text = %q", got.Text)
	}
	if n := f.attempts(); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
	warns := l.lines(t, "WARN")
	if len(warns) != 2 {
		t.Fatalf("%d warn lines, want one per retry (2)", len(warns))
	}
	for i, w := range warns {
		if w["attempt"] != float64(i+1) || !strings.Contains(w["err"].(string), "llm: 429 rate_limit_exceeded") {
			t.Errorf("warn line %d = %v", i, w)
		}
		// RetryBase 5 ms doubling with ±50% jitter: never near a second.
		if wait := w["wait"].(float64); wait <= 0 || wait > float64(100*time.Millisecond) {
			t.Errorf("wait %v is not RetryBase-sized", time.Duration(wait))
		}
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			apiError(w, 429, "requests", "rate_limit_exceeded", "Slow down.")
			return
		}
		ok(w)
	})
	c, l := newClient(t, f.URL(), nil)
	if _, err := c.Complete(context.Background(), "s", "u"); err != nil {
		t.Fatal(err)
	}
	warns := l.lines(t, "WARN")
	if len(warns) != 1 || warns[0]["wait"] != float64(time.Second) {
		t.Errorf("warn lines = %v, want one with wait 1s", warns)
	}
}

func TestRetryAfterTooLongIsNotWaited(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Retry-After", "3600")
		apiError(w, 429, "requests", "rate_limit_exceeded", "Slow down.")
	})
	c, _ := newClient(t, f.URL(), nil)
	_, err := c.Complete(context.Background(), "s", "u")
	var e *Error
	if !errors.As(err, &e) || e.Status != 429 {
		t.Fatalf("err = %v, want an *Error with status 429", err)
	}
	if n := f.attempts(); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}

func TestRetries5xx(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			apiError(w, 500, "server_error", "", "The server had an error while processing your request.")
			return
		}
		ok(w)
	})
	c, _ := newClient(t, f.URL(), nil)
	if _, err := c.Complete(context.Background(), "s", "u"); err != nil {
		t.Fatal(err)
	}
	if n := f.attempts(); n != 2 {
		t.Errorf("%d attempts, want 2", n)
	}
}

func TestNonJSON5xxUntilTriesRunOut(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(502)
		_, _ = io.WriteString(w, "<html><body>\n<h1>502 Bad Gateway</h1>\n</body></html>")
	})
	c, _ := newClient(t, f.URL(), func(o *Options) { o.Tries = 3 })
	_, err := c.Complete(context.Background(), "s", "u")
	var e *Error
	if !errors.As(err, &e) || e.Status != 502 || !strings.Contains(e.Message, "502 Bad Gateway") {
		t.Fatalf("err = %#v, want an *Error with status 502 and the body's text", err)
	}
	if want := "llm: 502: <html><body> <h1>502 Bad Gateway</h1> </body></html>: the LLM server failed: try again later"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
	if n := f.attempts(); n != 3 {
		t.Errorf("%d attempts, want Tries = 3", n)
	}
}

func TestAuthErrorIsNotRetried(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		apiError(w, 401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided")
	})
	c, _ := newClient(t, f.URL(), nil)
	_, err := c.Complete(context.Background(), "s", "u")
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want *Error", err, err)
	}
	if *e != (Error{Status: 401, Type: "invalid_request_error", Code: "invalid_api_key", Message: "Incorrect API key provided"}) {
		t.Errorf("Error = %+v", *e)
	}
	if !IsAuth(err) {
		t.Error("IsAuth = false for a 401")
	}
	if want := "llm: 401 invalid_api_key: Incorrect API key provided: check llm.api_key"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
	if n := f.attempts(); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}

func TestOther4xxAreNotRetried(t *testing.T) {
	for _, tc := range []struct {
		status     int
		typ, code  string
		wantSuffix string
	}{
		{400, "invalid_request_error", "context_length_exceeded", "check llm.model, llm.max_tokens and llm.temperature"},
		{404, "invalid_request_error", "model_not_found", "check llm.model"},
		{429, "insufficient_quota", "insufficient_quota", "the account is out of quota: check its billing"},
	} {
		t.Run(tc.code, func(t *testing.T) {
			f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
				apiError(w, tc.status, tc.typ, tc.code, "Nope.")
			})
			c, _ := newClient(t, f.URL(), nil)
			_, err := c.Complete(context.Background(), "s", "u")
			var e *Error
			if !errors.As(err, &e) || e.Status != tc.status || e.Code != tc.code {
				t.Fatalf("err = %v, want an *Error %d %s", err, tc.status, tc.code)
			}
			if IsAuth(err) {
				t.Error("IsAuth = true")
			}
			if !strings.HasSuffix(err.Error(), ": "+tc.wantSuffix) {
				t.Errorf("err = %q, want the hint %q", err, tc.wantSuffix)
			}
			if n := f.attempts(); n != 1 {
				t.Errorf("%d attempts, want 1", n)
			}
		})
	}
}

func TestNetworkErrorsAreRetried(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			// Drop the connection without an answer.
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			_ = conn.Close()
			return
		}
		ok(w)
	})
	c, l := newClient(t, f.URL(), nil)
	if _, err := c.Complete(context.Background(), "s", "u"); err != nil {
		t.Fatal(err)
	}
	if n := f.attempts(); n != 2 {
		t.Errorf("%d attempts, want 2", n)
	}
	if warns := l.lines(t, "WARN"); len(warns) != 1 {
		t.Errorf("%d warn lines, want 1", len(warns))
	}

	// Nobody listens: every try fails, and the error names the endpoint.
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL + "/v1"
	dead.Close()
	c, l = newClient(t, url, func(o *Options) { o.Tries = 3 })
	_, err := c.Complete(context.Background(), "s", "u")
	if err == nil || !strings.HasPrefix(err.Error(), "llm: POST "+url+"/chat/completions: ") {
		t.Fatalf("err = %v", err)
	}
	var e *Error
	if errors.As(err, &e) {
		t.Errorf("a network error became an *Error: %v", e)
	}
	if warns := l.lines(t, "WARN"); len(warns) != 2 {
		t.Errorf("%d warn lines, want 2 (3 tries)", len(warns))
	}
}

func TestNoText(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter)
		want   string
	}{
		{"no choices", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":0,"total_tokens":1}}`)
		}, "no choices"},
		{"empty content", func(w http.ResponseWriter) { answer(w, "m", "  \n", "length", 1, 300) }, "raise llm.max_tokens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) { tc.answer(w) })
			c, _ := newClient(t, f.URL(), nil)
			_, err := c.Complete(context.Background(), "s", "u")
			if !errors.Is(err, ErrNoText) || !strings.Contains(err.Error(), "the model returned no text") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrNoText mentioning %q", err, tc.want)
			}
			if n := f.attempts(); n != 1 {
				t.Errorf("%d attempts, want 1", n)
			}
		})
	}
}

func TestNotAChatCompletion(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<html>Open WebUI</html>")
	})
	c, _ := newClient(t, f.URL(), nil)
	_, err := c.Complete(context.Background(), "s", "u")
	if err == nil || !strings.Contains(err.Error(), "check llm.base_url") {
		t.Fatalf("err = %v, want a hint at llm.base_url", err)
	}
	if n := f.attempts(); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}

func TestEnvironmentIsIgnored(t *testing.T) {
	t.Setenv("OPENAI_API_KEY", "sk-from-env")
	t.Setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
	t.Setenv("OPENAI_ORG_ID", "org-junk")
	t.Setenv("OPENAI_PROJECT_ID", "proj-junk")
	t.Setenv("OPENAI_CUSTOM_HEADERS", "X-Junk: yes")

	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) { ok(w) })
	for _, key := range []string{"sk-test", ""} {
		c, _ := newClient(t, f.URL(), func(o *Options) { o.APIKey = key })
		if _, err := c.Complete(context.Background(), "s", "u"); err != nil {
			t.Fatalf("key %q: %v (did OPENAI_BASE_URL win?)", key, err)
		}
	}
	reqs := f.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests reached the configured server, want 2", len(reqs))
	}
	if h := reqs[0].Header.Get("Authorization"); h != "Bearer sk-test" {
		t.Errorf("Authorization = %q, want the configured key", h)
	}
	if h, ok := reqs[1].Header["Authorization"]; ok {
		t.Errorf("Authorization = %q sent with no configured key", h)
	}
	for _, r := range reqs {
		for _, h := range []string{"OpenAI-Organization", "OpenAI-Project", "X-Junk"} {
			if v := r.Header.Get(h); v != "" {
				t.Errorf("%s = %q came from the environment", h, v)
			}
		}
	}
}

func TestContextCancelStopsTheWait(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		apiError(w, 503, "server_error", "", "Overloaded.")
		cancel()
	})
	c, _ := newClient(t, f.URL(), func(o *Options) { o.RetryBase = time.Hour })
	start := time.Now()
	_, err := c.Complete(ctx, "s", "u")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n := f.attempts(); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("cancel took %v: the hour-long wait was not interrupted", d)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{}, "llm: no model: set llm.model"},
		{Options{Model: "m", BaseURL: "ftp://example.com/v1"}, "set llm.base_url"},
		{Options{Model: "m", BaseURL: "127.0.0.1:11434/v1"}, "set llm.base_url"},
		{Options{Model: "m", BaseURL: "http:///v1"}, "set llm.base_url"},
	} {
		_, err := New(tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error with %q", tc.opts, err, tc.want)
		}
	}
	if _, err := New(Options{Model: "m"}); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestVLLMStyleErrorBody(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(404)
		_, _ = io.WriteString(w, `{"object":"error","message":"The model `+"`qwen`"+` does not exist.","type":"NotFoundError","param":null,"code":404}`)
	})
	c, _ := newClient(t, f.URL(), nil)
	_, err := c.Complete(context.Background(), "s", "u")
	want := "llm: 404 NotFoundError: The model `qwen` does not exist: check llm.model and llm.base_url (OpenAI-compatible servers need the /v1 suffix)"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	if n := f.attempts(); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}
