package kommo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/pace"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/retry"
)

// fastRetry keeps retry tests quick: four attempts, a few milliseconds apart.
var fastRetry = retry.Policy{Initial: time.Millisecond, Max: 5 * time.Millisecond, Multiplier: 2, Tries: 4}

// fakeTokens is a TokenSource that records refreshes.
type fakeTokens struct {
	mu         sync.Mutex
	token      string
	next       string // what Refresh hands out
	refreshErr error
	rejected   []string
}

func (f *fakeTokens) Token(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.token, nil
}

func (f *fakeTokens) Refresh(_ context.Context, rejected string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rejected = append(f.rejected, rejected)
	if f.refreshErr != nil {
		return "", f.refreshErr
	}
	f.token = f.next
	return f.next, nil
}

func (f *fakeTokens) refreshes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.rejected...)
}

// setup starts a Kommo stand-in on 127.0.0.1 whose mux fails the test on any
// request no handler was registered for, and a Client pointed at it.
func setup(t *testing.T, opts Options) (*Client, *http.ServeMux, string) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request: %s %s", r.Method, r.URL)
		http.Error(w, "unexpected request", http.StatusTeapot)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	opts.BaseURL = srv.URL
	if opts.Tokens == nil {
		opts.Tokens = StaticToken("test-token")
	}
	if opts.Retry == (retry.Policy{}) {
		opts.Retry = fastRetry
	}
	if opts.ClientID == "" {
		opts.ClientID = "client-uuid-1"
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c, mux, srv.URL
}

// counted wraps a handler with a request counter.
func counted(h http.HandlerFunc) (http.HandlerFunc, *atomic.Int32) {
	var n atomic.Int32
	return func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}, &n
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/hal+json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func writeProblem(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

const unauthorizedBody = `{"title":"Unauthorized","type":"https://httpstatus.es/401","status":401,"detail":"Invalid user name or password"}`

func wantHeader(t *testing.T, r *http.Request, key, want string) {
	t.Helper()
	if got := r.Header.Get(key); got != want {
		t.Errorf("%s %s: header %s = %q, want %q", r.Method, r.URL.Path, key, got, want)
	}
}

func wantQuery(t *testing.T, r *http.Request, want url.Values) {
	t.Helper()
	if got := r.URL.Query(); !reflect.DeepEqual(got, want) {
		t.Errorf("%s %s: query = %v, want %v", r.Method, r.URL.Path, got, want)
	}
}

// wantJSONBody compares the request body with want as JSON values.
func wantJSONBody(t *testing.T, r *http.Request, want string) {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	var got, exp any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Errorf("%s %s: body is not JSON: %v: %s", r.Method, r.URL.Path, err, b)
		return
	}
	if err := json.Unmarshal([]byte(want), &exp); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, exp) {
		t.Errorf("%s %s: body = %s, want %s", r.Method, r.URL.Path, b, want)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{Tokens: StaticToken("x")}, "set kommo.base_url"},
		{Options{BaseURL: "sub.kommo.com", Tokens: StaticToken("x")}, "not an http(s) URL"},
		{Options{BaseURL: "https://sub.kommo.com/api/v4", Tokens: StaticToken("x")}, "without it"},
		{Options{BaseURL: "https://sub.kommo.com"}, "no credentials"},
	} {
		_, err := New(tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error containing %q", tc.opts, err, tc.want)
		}
	}
	if _, err := New(Options{BaseURL: "https://sub.kommo.com/", Tokens: StaticToken("x")}); err != nil {
		t.Errorf("a trailing slash should be accepted: %v", err)
	}
}

func TestRequestHeaders(t *testing.T) {
	c, mux, _ := setup(t, Options{Tokens: StaticToken("tok-1"), UserAgent: "ua-test/1"})
	mux.HandleFunc("GET /api/v4/account", func(w http.ResponseWriter, r *http.Request) {
		wantHeader(t, r, "Authorization", "Bearer tok-1")
		wantHeader(t, r, "Accept", "application/json")
		wantHeader(t, r, "X-Client-UUID", "client-uuid-1")
		wantHeader(t, r, "User-Agent", "ua-test/1")
		wantHeader(t, r, "Content-Type", "") // no body, no content type
		wantQuery(t, r, url.Values{"with": {"amojo_id,version"}})
		writeJSON(w, 200, `{"id":31579862,"name":"Acme","subdomain":"acme","current_user_id":7,"amojo_id":"52fd2a28-d2eb-4bd8-b862-a67934927b38","country":"BR"}`)
	})
	got, err := c.Account(context.Background(), "amojo_id", "version")
	if err != nil {
		t.Fatal(err)
	}
	want := &Account{ID: 31579862, Name: "Acme", Subdomain: "acme", CurrentUserID: 7, AmojoID: "52fd2a28-d2eb-4bd8-b862-a67934927b38"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Account = %+v, want %+v", got, want)
	}
}

func TestRefreshAfter401ThenSuccess(t *testing.T) {
	tokens := &fakeTokens{token: "old", next: "new"}
	c, mux, _ := setup(t, Options{Tokens: tokens})
	h, n := counted(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Authorization") {
		case "Bearer old":
			writeProblem(w, 401, unauthorizedBody)
		case "Bearer new":
			writeJSON(w, 200, `{"id":1,"name":"Acme"}`)
		default:
			t.Errorf("unexpected Authorization %q", r.Header.Get("Authorization"))
			w.WriteHeader(400)
		}
	})
	mux.HandleFunc("GET /api/v4/account", h)
	a, err := c.Account(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != 1 {
		t.Errorf("account id = %d, want 1", a.ID)
	}
	if got := tokens.refreshes(); !reflect.DeepEqual(got, []string{"old"}) {
		t.Errorf("Refresh called with %q, want once with the rejected token", got)
	}
	if n.Load() != 2 {
		t.Errorf("%d requests, want 2", n.Load())
	}
}

func TestSecond401IsAuthError(t *testing.T) {
	tokens := &fakeTokens{token: "old", next: "also-bad"}
	c, mux, _ := setup(t, Options{Tokens: tokens})
	h, n := counted(func(w http.ResponseWriter, r *http.Request) { writeProblem(w, 401, unauthorizedBody) })
	mux.HandleFunc("GET /api/v4/account", h)

	_, err := c.Account(context.Background())
	var ae *AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want *AuthError", err)
	}
	var ke *Error
	if !errors.As(err, &ke) || ke.Status != 401 || ke.Detail != "Invalid user name or password" {
		t.Errorf("wrapped error = %+v, want the 401 problem", ke)
	}
	if !strings.Contains(err.Error(), "Invalid user name or password") || !strings.Contains(err.Error(), "auth login --code CODE") {
		t.Errorf("message %q should carry Kommo's detail and the login hint", err)
	}
	if got := tokens.refreshes(); len(got) != 1 {
		t.Errorf("Refresh called %d times, want once", len(got))
	}
	if n.Load() != 2 {
		t.Errorf("%d requests, want 2 (the first and the one after the refresh)", n.Load())
	}
}

func TestRefreshFailureStopsTheCall(t *testing.T) {
	dead := &AuthError{Err: errors.New("refresh token revoked")}
	tokens := &fakeTokens{token: "old", refreshErr: dead}
	c, mux, _ := setup(t, Options{Tokens: tokens})
	h, n := counted(func(w http.ResponseWriter, r *http.Request) { writeProblem(w, 401, unauthorizedBody) })
	mux.HandleFunc("GET /api/v4/account", h)
	_, err := c.Account(context.Background())
	if !errors.Is(err, dead) {
		t.Errorf("err = %v, want the TokenSource's *AuthError", err)
	}
	if n.Load() != 1 {
		t.Errorf("%d requests, want 1", n.Load())
	}

	// A refresh that fails for another reason is not dressed as an auth error.
	tokens.refreshErr = errors.New("database is locked")
	_, err = c.Account(context.Background())
	var ae *AuthError
	if errors.As(err, &ae) || !strings.Contains(err.Error(), "database is locked") {
		t.Errorf("err = %v, want the refresh failure, not an *AuthError", err)
	}
}

func TestStaticToken401(t *testing.T) {
	c, mux, _ := setup(t, Options{Tokens: StaticToken("long-lived")})
	h, n := counted(func(w http.ResponseWriter, r *http.Request) { writeProblem(w, 401, unauthorizedBody) })
	mux.HandleFunc("GET /api/v4/account", h)
	_, err := c.Account(context.Background())
	var ae *AuthError
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "kommo.long_lived_token") {
		t.Errorf("err = %v, want an *AuthError naming kommo.long_lived_token", err)
	}
	if n.Load() != 1 {
		t.Errorf("%d requests, want 1: a long-lived token cannot be refreshed", n.Load())
	}
}

func Test429ThenSuccess(t *testing.T) {
	c, mux, _ := setup(t, Options{})
	h, n := counted(func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /api/v4/account", func(w http.ResponseWriter, r *http.Request) {
		h(w, r)
		if n.Load() == 1 {
			w.WriteHeader(429) // Kommo's 429 body may be anything; here it is empty
			return
		}
		writeJSON(w, 200, `{"id":5}`)
	})
	a, err := c.Account(context.Background())
	if err != nil || a.ID != 5 {
		t.Fatalf("Account = %+v, %v; want id 5", a, err)
	}
	if n.Load() != 2 {
		t.Errorf("%d requests, want 2", n.Load())
	}
}

func Test429UntilTriesRunOut(t *testing.T) {
	c, mux, srv := setup(t, Options{})
	h, n := counted(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(429) })
	mux.HandleFunc("GET /api/v4/leads/9", h)
	_, err := c.Lead(context.Background(), 9)
	var rl *RateLimitError
	if !errors.As(err, &rl) || rl.Method != "GET" || rl.URL != srv+"/api/v4/leads/9" {
		t.Fatalf("err = %#v, want *RateLimitError for GET %s/api/v4/leads/9", err, srv)
	}
	if n.Load() != int32(fastRetry.Tries) {
		t.Errorf("%d requests, want %d (every try)", n.Load(), fastRetry.Tries)
	}
}

func Test403After429IsIPBlock(t *testing.T) {
	c, mux, srv := setup(t, Options{})
	h, n := counted(func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /api/v4/leads/1", func(w http.ResponseWriter, r *http.Request) {
		h(w, r)
		if n.Load() == 1 {
			w.WriteHeader(429)
			return
		}
		w.WriteHeader(403)
	})
	never, nn := counted(func(w http.ResponseWriter, r *http.Request) { t.Error("a blocked client sent a request") })
	mux.HandleFunc("GET /api/v4/contacts/chats", never)

	_, err := c.Lead(context.Background(), 1)
	var blocked *IPBlockedError
	if !errors.As(err, &blocked) {
		t.Fatalf("err = %v, want *IPBlockedError", err)
	}
	want := "kommo blocked this IP (403 on GET " + srv + "/api/v4/leads/1): stop and wait before the next run; repeated 429 answers cause it: lower kommo.requests_per_second"
	if err.Error() != want {
		t.Errorf("message:\n got %q\nwant %q", err, want)
	}
	if n.Load() != 2 {
		t.Errorf("%d requests, want 2 (the 429 and the 403; a block is not retried)", n.Load())
	}

	_, err2 := c.ContactChats(context.Background(), 7)
	var again *IPBlockedError
	if !errors.As(err2, &again) || again != blocked {
		t.Errorf("later call: err = %v, want the same *IPBlockedError", err2)
	}
	for range c.Leads(context.Background(), LeadsQuery{}) {
		break
	}
	if nn.Load() != 0 || n.Load() != 2 {
		t.Errorf("requests were sent after the block")
	}
}

func Test403WithoutRecent429IsPlainError(t *testing.T) {
	c, mux, _ := setup(t, Options{})
	h, n := counted(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, 403, `{"title":"Forbidden","type":"https://httpstatus.es/403","status":403,"detail":"Access denied"}`)
	})
	mux.HandleFunc("GET /api/v4/contacts/chats", h)
	for i := range 2 {
		_, err := c.ContactChats(context.Background(), 7)
		var ke *Error
		var blocked *IPBlockedError
		if !errors.As(err, &ke) || ke.Status != 403 || errors.As(err, &blocked) {
			t.Fatalf("call %d: err = %v, want a plain *Error 403", i, err)
		}
		if !strings.Contains(err.Error(), "Access denied") || !strings.Contains(err.Error(), "rights") {
			t.Errorf("message %q should carry the detail and name the missing rights", err)
		}
	}
	if n.Load() != 2 {
		t.Errorf("%d requests, want 2: a plain 403 does not stop the client", n.Load())
	}
}

// A 403 about rights right after a 429 is still about rights: only the
// body tells an IP block from the other 403s.
func Test403ForRightsRightAfter429IsNotABlock(t *testing.T) {
	c, mux, _ := setup(t, Options{})
	mux.HandleFunc("GET /api/v4/leads/1", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(429) })
	notes, n := counted(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, 403, `{"title":"Forbidden","type":"https://httpstatus.es/403","status":403,"detail":"Access denied"}`)
	})
	mux.HandleFunc("GET /api/v4/leads/2/notes", notes)

	var rl *RateLimitError
	if _, err := c.Lead(context.Background(), 1); !errors.As(err, &rl) {
		t.Fatalf("err = %v, want the 429's *RateLimitError", err)
	}
	for i := range 2 {
		_, err := c.LeadNotes(context.Background(), 2, NotesQuery{})
		var blocked *IPBlockedError
		var ke *Error
		if errors.As(err, &blocked) || !errors.As(err, &ke) || ke.Status != 403 || ke.Detail != "Access denied" {
			t.Fatalf("call %d: err = %v, want a plain *Error 403 with the detail", i, err)
		}
	}
	if n.Load() != 2 {
		t.Errorf("%d requests, want 2: a rights 403 does not stop the client", n.Load())
	}
}

// What a 403 body says decides whether it is the IP block.
func TestIPBlockedBody(t *testing.T) {
	for body, want := range map[string]bool{
		``: true,
		"<html><body><h1>403 Forbidden</h1></body></html>": true,
		`Forbidden`: true,
		`{}`:        true,
		`{"title":"Forbidden","type":"https://httpstatus.es/403","status":403,"detail":"Access denied: the IP address is blocked for repeatedly exceeding the request limit"}`: true,
		`{"title":"Forbidden","status":403,"detail":"Ваш IP-адрес заблокирован"}`:                                                                                              true,
		`{"title":"Forbidden","type":"https://httpstatus.es/403","status":403,"detail":"Access denied"}`:                                                                       false,
		`{"title":"Forbidden","status":403,"detail":"Access denied: the user has no rights for this entity"}`:                                                                  false,
		`{"title":"Forbidden","status":403,"detail":"The IP address is not in the API whitelist"}`:                                                                             false,
		`{"title":"Forbidden","status":403,"detail":"The method is available for administrators of the account"}`:                                                              false,
	} {
		if got := ipBlocked([]byte(body)); got != want {
			t.Errorf("ipBlocked(%q) = %v, want %v", body, got, want)
		}
	}
}

func Test5xxRetriedOnGETAndPATCH(t *testing.T) {
	c, mux, _ := setup(t, Options{})
	get, ng := counted(func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /api/v4/leads/3", func(w http.ResponseWriter, r *http.Request) {
		get(w, r)
		if ng.Load() == 1 {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(502)
			io.WriteString(w, "<html>bad gateway</html>")
			return
		}
		writeJSON(w, 200, `{"id":3,"status_id":142}`)
	})
	const patchBody = `[{"id":3,"custom_fields_values":[{"field_id":900001,"values":[{"value":"summary"}]}]}]`
	patch, np := counted(func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("PATCH /api/v4/leads", func(w http.ResponseWriter, r *http.Request) {
		patch(w, r)
		wantHeader(t, r, "Content-Type", "application/json")
		wantJSONBody(t, r, patchBody) // the same body on every attempt
		if np.Load() < 3 {
			w.WriteHeader([]int{503, 504}[np.Load()-1])
			return
		}
		writeJSON(w, 200, `{"_embedded":{"leads":[{"id":3,"updated_at":1700000000}]}}`)
	})

	l, err := c.Lead(context.Background(), 3)
	if err != nil || l.ID != 3 || !l.Closed() {
		t.Fatalf("Lead = %+v, %v", l, err)
	}
	err = c.UpdateLeads(context.Background(), []LeadUpdate{{ID: 3, CustomFieldsValues: []CustomFieldValue{{FieldID: 900001, Values: []FieldValue{{Value: "summary"}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if ng.Load() != 2 || np.Load() != 3 {
		t.Errorf("requests: GET %d (want 2), PATCH %d (want 3)", ng.Load(), np.Load())
	}
}

func Test5xxErrorAfterTries(t *testing.T) {
	c, mux, srv := setup(t, Options{})
	h, n := counted(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(502)
		io.WriteString(w, "<html>\n<h1>502 Bad Gateway</h1>\n</html>")
	})
	mux.HandleFunc("GET /api/v4/account", h)
	_, err := c.Account(context.Background())
	want := "kommo: GET " + srv + "/api/v4/account: 502 Bad Gateway: <html> <h1>502 Bad Gateway</h1> </html>"
	if err == nil || err.Error() != want {
		t.Errorf("err:\n got %v\nwant %s", err, want)
	}
	if n.Load() != int32(fastRetry.Tries) {
		t.Errorf("%d requests, want %d", n.Load(), fastRetry.Tries)
	}
}

func TestProblemJSONValidationErrors(t *testing.T) {
	c, mux, srv := setup(t, Options{})
	h, n := counted(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, 400, `{"validation-errors":[{"request_id":"0","errors":[{"code":"NotSupportedChoice","path":"custom_fields_values.0.field_id","detail":"The value you selected is not a valid choice."}]}],
 "title":"Bad Request","type":"https://httpstatus.es/400","status":400,"detail":"Request validation failed"}`)
	})
	mux.HandleFunc("PATCH /api/v4/leads", h)
	err := c.UpdateLeads(context.Background(), []LeadUpdate{{ID: 1}})
	var ke *Error
	if !errors.As(err, &ke) {
		t.Fatalf("err = %v, want *Error", err)
	}
	wantErr := &Error{
		Method: "PATCH", URL: srv + "/api/v4/leads", Status: 400,
		Title: "Bad Request", Detail: "Request validation failed", Type: "https://httpstatus.es/400",
		ValidationErrors: []ValidationError{{RequestID: "0", Errors: []FieldError{{
			Code: "NotSupportedChoice", Path: "custom_fields_values.0.field_id", Detail: "The value you selected is not a valid choice.",
		}}}},
	}
	if !reflect.DeepEqual(ke, wantErr) {
		t.Errorf("error = %+v\nwant %+v", ke, wantErr)
	}
	want := "kommo: PATCH " + srv + "/api/v4/leads: 400 Bad Request: Request validation failed " +
		"(custom_fields_values.0.field_id: NotSupportedChoice: The value you selected is not a valid choice.)"
	if err.Error() != want {
		t.Errorf("message:\n got %q\nwant %q", err, want)
	}
	if n.Load() != 1 {
		t.Errorf("%d requests, want 1: a 400 is not retried", n.Load())
	}
}

func TestManyValidationErrorsStayOnOneShortLine(t *testing.T) {
	e := &Error{Method: "PATCH", URL: "https://x.kommo.com/api/v4/leads", Status: 400, Detail: "Request validation failed"}
	for i := range 5 {
		e.ValidationErrors = append(e.ValidationErrors, ValidationError{RequestID: fmt.Sprint(i), Errors: []FieldError{{Code: "C", Path: "p", Detail: "d"}}})
	}
	want := "kommo: PATCH https://x.kommo.com/api/v4/leads: 400 Bad Request: Request validation failed " +
		"(element 0: p: C: d; element 1: p: C: d; element 2: p: C: d; and 2 more)"
	if e.Error() != want {
		t.Errorf("got  %q\nwant %q", e.Error(), want)
	}
}

func TestNonJSON2xxIsAnError(t *testing.T) {
	c, mux, srv := setup(t, Options{})
	mux.HandleFunc("GET /api/v4/account", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "<html>\n  <body>Down for maintenance</body>\n</html>\n")
	})
	_, err := c.Account(context.Background())
	var ke *Error
	if !errors.As(err, &ke) || ke.Status != 200 || ke.ContentType != "text/html" {
		t.Fatalf("err = %#v, want *Error 200 text/html", err)
	}
	want := "kommo: GET " + srv + "/api/v4/account: 200: the answer is not JSON (text/html): <html> <body>Down for maintenance</body> </html>"
	if err.Error() != want {
		t.Errorf("message:\n got %q\nwant %q", err, want)
	}

	// A JSON content type over a broken body is caught too.
	mux.HandleFunc("GET /api/v4/leads/8", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, `{"id":`) })
	_, err = c.Lead(context.Background(), 8)
	if !errors.As(err, &ke) || !strings.Contains(err.Error(), "not JSON (application/hal+json)") {
		t.Errorf("err = %v, want a not-JSON *Error", err)
	}
}

func TestPacerWaitsBeforeEveryAttempt(t *testing.T) {
	// 10/s spaces attempts about 104 ms apart; the bound below is half that,
	// so only a missing Wait (a gap near zero) can fail it.
	tokens := &fakeTokens{token: "old", next: "new"}
	c, mux, _ := setup(t, Options{Tokens: tokens, Pacer: pace.New(10)})
	var mu sync.Mutex
	var arrivals []time.Time
	mux.HandleFunc("GET /api/v4/account", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		k := len(arrivals)
		mu.Unlock()
		switch k {
		case 1:
			w.WriteHeader(429) // then a retry
		case 2:
			writeProblem(w, 401, unauthorizedBody) // then a resend after the refresh
		default:
			writeJSON(w, 200, `{"id":1}`)
		}
	})
	if _, err := c.Account(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(arrivals) != 3 {
		t.Fatalf("%d requests, want 3", len(arrivals))
	}
	for i := 1; i < len(arrivals); i++ {
		if gap := arrivals[i].Sub(arrivals[i-1]); gap < 50*time.Millisecond {
			t.Errorf("attempt %d came %v after the previous one: the pacer was not waited on", i+1, gap)
		}
	}
}

// syncBuffer is a log sink safe for the server and client goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLogsOneLinePerRequestAndNoSecrets(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, mux, _ := setup(t, Options{Tokens: StaticToken("secret-token-xyz"), Logger: log})
	h, n := counted(func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /api/v4/account", func(w http.ResponseWriter, r *http.Request) {
		h(w, r)
		if n.Load() == 1 {
			w.WriteHeader(503)
			return
		}
		writeJSON(w, 200, `{"id":1,"name":"Secret Company Name"}`)
	})
	if _, err := c.Account(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, secret := range []string{"secret-token-xyz", "Secret Company Name"} {
		if strings.Contains(out, secret) {
			t.Errorf("logs carry %q:\n%s", secret, out)
		}
	}
	if got := strings.Count(out, "level=DEBUG msg=\"kommo request\" method=GET path=/api/v4/account status="); got != 2 {
		t.Errorf("%d debug request lines, want 2:\n%s", got, out)
	}
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "status=503") {
		t.Errorf("no warn line for the retry:\n%s", out)
	}
}

// closedAddr returns an address on 127.0.0.1 where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// refusingFirst is an http.Client whose first connection attempt goes to a
// closed port (a real "connection refused"), and the rest to the server.
func refusingFirst(t *testing.T) (*http.Client, *atomic.Int32) {
	dead := closedAddr(t)
	var dials atomic.Int32
	var d net.Dialer
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dials.Add(1) == 1 {
			return d.DialContext(ctx, network, dead)
		}
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, &dials
}

func TestNetworkErrorRetriedOnGET(t *testing.T) {
	hc, dials := refusingFirst(t)
	c, mux, _ := setup(t, Options{HTTPClient: hc})
	h, n := counted(func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, `{"id":1}`) })
	mux.HandleFunc("GET /api/v4/account", h)
	if _, err := c.Account(context.Background()); err != nil {
		t.Fatal(err)
	}
	if dials.Load() != 2 || n.Load() != 1 {
		t.Errorf("dials %d (want 2), requests %d (want 1)", dials.Load(), n.Load())
	}
}

func TestContextCancelStopsRetries(t *testing.T) {
	c, mux, _ := setup(t, Options{Retry: retry.Policy{Initial: time.Hour, Max: time.Hour, Multiplier: 1, Tries: 3}})
	ctx, cancel := context.WithCancel(context.Background())
	mux.HandleFunc("GET /api/v4/account", func(w http.ResponseWriter, r *http.Request) {
		cancel() // the client would now wait an hour before its retry
		w.WriteHeader(503)
	})
	done := make(chan error, 1)
	go func() { _, err := c.Account(ctx); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("want an error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the retry wait ignored the cancelled context")
	}
}

func TestRefreshAtMostOncePerCall(t *testing.T) {
	// 401, refresh, 503, retry, 401 again: the second 401 must not refresh
	// again (a refresh token is single-use; a loop of refreshes burns them).
	tokens := &fakeTokens{token: "old", next: "new"}
	c, mux, _ := setup(t, Options{Tokens: tokens})
	h, n := counted(func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /api/v4/account", func(w http.ResponseWriter, r *http.Request) {
		h(w, r)
		if n.Load() == 2 {
			wantHeader(t, r, "Authorization", "Bearer new")
			w.WriteHeader(503)
			return
		}
		writeProblem(w, 401, unauthorizedBody)
	})
	_, err := c.Account(context.Background())
	var ae *AuthError
	if !errors.As(err, &ae) {
		t.Errorf("err = %v, want *AuthError", err)
	}
	if got := tokens.refreshes(); len(got) != 1 || n.Load() != 3 {
		t.Errorf("%d refreshes after %d requests, want 1 after 3", len(got), n.Load())
	}
}
