package amojo

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/retry"
)

// The official Kommo example (kommo-api.md §1.4).
const (
	testSecret  = "fb50586ff7b68cd831fe0ef356345903f644c0d2"
	testChannel = "f62a0162-46a7-430e-b06c-0ef798d76a21"
	testAccount = "52fd2a28-d2eb-4bd8-b862-a67934927b38"
	testScope   = testChannel + "_" + testAccount
	testChat    = "30477717-9f3c-4d3f-8101-60327e14dc48"
	testDate    = "Tue, 13 Dec 2022 11:00:00 +0000"
)

var testNow = time.Date(2022, 12, 13, 11, 0, 0, 0, time.UTC)

var fastRetry = retry.Policy{Initial: time.Millisecond, Max: 5 * time.Millisecond, Multiplier: 2, Tries: 4}

func TestSignOfficialVector(t *testing.T) {
	got := Sign(testSecret, "GET", "d41d8cd98f00b204e9800998ecf8427e", "application/json", testDate,
		"/v2/origin/custom/"+testScope+"/chats/"+testChat+"/history")
	if want := "2a2593df86235c44943a40ce35409d18bda5778c"; got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
	// The method is upper-cased before signing.
	if lower := Sign(testSecret, "get", "d41d8cd98f00b204e9800998ecf8427e", "application/json", testDate,
		"/v2/origin/custom/"+testScope+"/chats/"+testChat+"/history"); lower != got {
		t.Errorf("Sign with a lower-case method = %s, want %s", lower, got)
	}
	if contentMD5(nil) != "d41d8cd98f00b204e9800998ecf8427e" {
		t.Errorf("contentMD5(nil) = %s", contentMD5(nil))
	}
}

func TestSignPOSTVector(t *testing.T) {
	body := `{"account_id":"52fd2a28-d2eb-4bd8-b862-a67934927b38","title":"ScopeTitle","hook_api_version":"v2"}`
	sum := contentMD5([]byte(body))
	if want := "989f68f3a07bc2e97ee8336339d20f52"; sum != want {
		t.Errorf("Content-MD5 = %s, want %s", sum, want)
	}
	got := Sign(testSecret, "POST", sum, "application/json", testDate, "/v2/origin/custom/"+testChannel+"/connect")
	if want := "e59cb5aeaaaa760e4464b64d089f19f8bf39f379"; got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

// setup starts a Chats API stand-in on 127.0.0.1 whose mux fails the test on
// any request no handler was registered for, and a Client with the example
// secret and a fixed clock.
func setup(t *testing.T, opts Options) (*Client, *http.ServeMux, string) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request: %s %s", r.Method, r.URL)
		w.WriteHeader(http.StatusTeapot)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	opts.BaseURL = srv.URL
	if opts.ChannelSecret == "" {
		opts.ChannelSecret = testSecret
	}
	if opts.ScopeID == "" {
		opts.ScopeID = testScope
	}
	if opts.Retry == (retry.Policy{}) {
		opts.Retry = fastRetry
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return testNow.In(time.FixedZone("BRT", -3*3600)) } // Date must still be UTC
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c, mux, srv.URL
}

// checkSigned recomputes Content-MD5 and X-Signature from what arrived, the
// way the Chats API does, and returns the body.
func checkSigned(t *testing.T, r *http.Request, secret string) []byte {
	t.Helper()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(body)
	wantMD5 := hex.EncodeToString(sum[:])
	if got := r.Header.Get("Content-MD5"); got != wantMD5 {
		t.Errorf("Content-MD5 = %q, want %q (md5 of the body as received)", got, wantMD5)
	}
	if got := r.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q", got)
	}
	if got := r.Header.Get("Date"); got != testDate {
		t.Errorf("Date = %q, want %q", got, testDate)
	}
	mac := hmac.New(sha1.New, []byte(secret))
	io.WriteString(mac, strings.Join([]string{r.Method, wantMD5, "application/json", r.Header.Get("Date"), r.URL.EscapedPath()}, "\n"))
	if got, want := r.Header.Get("X-Signature"), hex.EncodeToString(mac.Sum(nil)); got != want {
		t.Errorf("X-Signature = %q, want %q", got, want)
	}
	if r.Header.Get("Authorization") != "" {
		t.Error("the Chats API takes no bearer token")
	}
	return body
}

func counted(h http.HandlerFunc) (http.HandlerFunc, *atomic.Int32) {
	var n atomic.Int32
	return func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}, &n
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

const historyPath = "/v2/origin/custom/" + testScope + "/chats/" + testChat + "/history"

func TestHistory(t *testing.T) {
	c, mux, _ := setup(t, Options{})
	h, n := counted(func(w http.ResponseWriter, r *http.Request) {
		checkSigned(t, r, testSecret)
		// The official vector: this exact request carries this signature.
		if got := r.Header.Get("X-Signature"); got != "2a2593df86235c44943a40ce35409d18bda5778c" {
			t.Errorf("X-Signature = %s, want the official vector", got)
		}
		if q := r.URL.Query(); !reflect.DeepEqual(q, url.Values{"offset": {"0"}, "limit": {"50"}}) {
			t.Errorf("query = %v", q)
		}
		writeJSON(w, 200, `{"messages":[
			{"timestamp":1596470953,"msec_timestamp":1596470953123,
			 "sender":{"id":"d8d9f9c4-0000-0000-0000-000000000001","name":"Manager"},
			 "receiver":{"id":"86a0caef-0000-0000-0000-000000000002","client_id":"sk-1376265f","name":"Example Client","phone":"79151112233"},
			 "message":{"id":"3985523d-0000-0000-0000-000000000003","client_id":"skm-5f2836a8ca468","type":"text","text":"Hello","media":"","file_size":0}},
			{"timestamp":1596470809,
			 "sender":{"id":"86a0caef-0000-0000-0000-000000000002","client_id":"sk-1376265f","name":"Example Client"},
			 "message":{"id":"1bf6a765-0000-0000-0000-000000000004","type":"file","text":"","media":"https://x/f.pdf","file_name":"f.pdf","file_size":1024}}]}`)
	})
	mux.HandleFunc("GET "+historyPath, h)

	msgs, err := c.History(context.Background(), testChat, 0, 50)
	if err != nil {
		t.Fatal(err)
	}
	want := []Message{
		{Timestamp: 1596470953, MsecTimestamp: 1596470953123,
			Sender:   Participant{ID: "d8d9f9c4-0000-0000-0000-000000000001", Name: "Manager"},
			Receiver: &Participant{ID: "86a0caef-0000-0000-0000-000000000002", ClientID: "sk-1376265f", Name: "Example Client", Phone: "79151112233"},
			Message:  Body{ID: "3985523d-0000-0000-0000-000000000003", ClientID: "skm-5f2836a8ca468", Type: "text", Text: "Hello"}},
		{Timestamp: 1596470809,
			Sender:  Participant{ID: "86a0caef-0000-0000-0000-000000000002", ClientID: "sk-1376265f", Name: "Example Client"},
			Message: Body{ID: "1bf6a765-0000-0000-0000-000000000004", Type: "file", Media: "https://x/f.pdf", FileName: "f.pdf", FileSize: 1024}},
	}
	if !reflect.DeepEqual(msgs, want) {
		t.Errorf("messages = %+v\nwant %+v", msgs, want)
	}
	if n.Load() != 1 {
		t.Errorf("%d requests, want 1", n.Load())
	}
	if got := msgs[0].Time(); !got.Equal(time.UnixMilli(1596470953123)) || got.Location() != time.UTC {
		t.Errorf("Time() = %v, want the msec timestamp in UTC", got)
	}
	if got := msgs[1].Time(); !got.Equal(time.Unix(1596470809, 0)) {
		t.Errorf("Time() without msec = %v", got)
	}
	if msgs[0].FromClient() || !msgs[1].FromClient() {
		t.Errorf("FromClient: %v %v, want false true", msgs[0].FromClient(), msgs[1].FromClient())
	}
}

func TestHistoryNoContent(t *testing.T) {
	c, mux, _ := setup(t, Options{})
	mux.HandleFunc("GET "+historyPath, func(w http.ResponseWriter, r *http.Request) {
		if q := r.URL.Query(); q.Get("offset") != "100" || q.Get("limit") != "10" {
			t.Errorf("query = %v", q)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	msgs, err := c.History(context.Background(), testChat, 100, 10)
	if msgs != nil || err != nil {
		t.Errorf("History = %v, %v; want nil, nil", msgs, err)
	}
}

func TestHistory403IsSignatureError(t *testing.T) {
	c, mux, srv := setup(t, Options{ChannelSecret: "wrong-secret"})
	h, n := counted(func(w http.ResponseWriter, r *http.Request) {
		checkSigned(t, r, "wrong-secret") // the client signs with what it was given
		writeJSON(w, 403, `{"error_code":403,"error_type":"InvalidSignature","error_description":"Request signature is invalid"}`)
	})
	mux.HandleFunc("GET "+historyPath, h)
	_, err := c.History(context.Background(), testChat, 0, 50)
	if !errors.Is(err, ErrSignature) {
		t.Fatalf("err = %v, want ErrSignature", err)
	}
	if !strings.HasPrefix(err.Error(), ErrSignature.Error()) || strings.Contains(err.Error(), "\n") {
		t.Errorf("message %q should start with the ErrSignature sentence, on one line", err)
	}
	if !strings.Contains(err.Error(), srv+historyPath) || strings.Contains(err.Error(), "limit=") {
		t.Errorf("message %q should name the URL without its query", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Code != 403 || e.Type != "InvalidSignature" || e.Description != "Request signature is invalid" {
		t.Errorf("error = %+v", e)
	}
	if n.Load() != 1 {
		t.Errorf("%d requests, want 1: a bad signature is not retried", n.Load())
	}
}

func TestHistoryLimitCheckedLocally(t *testing.T) {
	c, _, _ := setup(t, Options{}) // any request fails the test
	for _, limit := range []int{0, 51} {
		if _, err := c.History(context.Background(), testChat, 0, limit); err == nil || !strings.Contains(err.Error(), "1..50") {
			t.Errorf("limit %d: err = %v, want a range error", limit, err)
		}
	}
	if _, err := c.History(context.Background(), testChat, -1, 50); err == nil {
		t.Error("a negative offset was sent")
	}
	if _, err := c.History(context.Background(), "", 0, 50); err == nil {
		t.Error("an empty chat id was sent")
	}
	noScope, err := New(Options{ChannelSecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := noScope.History(context.Background(), testChat, 0, 50); err == nil || !strings.Contains(err.Error(), "chats.scope_id") {
		t.Errorf("no scope: err = %v", err)
	}
}

func TestHistoryRetries429And5xx(t *testing.T) {
	c, mux, _ := setup(t, Options{})
	h, n := counted(func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET "+historyPath, func(w http.ResponseWriter, r *http.Request) {
		h(w, r)
		checkSigned(t, r, testSecret) // every attempt is signed
		switch n.Load() {
		case 1:
			w.WriteHeader(429)
		case 2:
			w.WriteHeader(502)
		default:
			writeJSON(w, 200, `{"messages":[{"timestamp":1,"sender":{"id":"a"},"message":{"id":"m1","type":"text","text":"hi"}}]}`)
		}
	})
	msgs, err := c.History(context.Background(), testChat, 0, 50)
	if err != nil || len(msgs) != 1 || msgs[0].Message.ID != "m1" || n.Load() != 3 {
		t.Errorf("History = %+v, %v after %d requests; want m1 after 3", msgs, err, n.Load())
	}
}

func TestHistoryGivesUpAfterTries(t *testing.T) {
	c, mux, _ := setup(t, Options{})
	h, n := counted(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(429) })
	mux.HandleFunc("GET "+historyPath, h)
	_, err := c.History(context.Background(), testChat, 0, 50)
	var e *Error
	if !errors.As(err, &e) || e.Status != 429 || !strings.Contains(err.Error(), "chats.requests_per_second") {
		t.Errorf("err = %v, want a 429 *Error naming chats.requests_per_second", err)
	}
	if n.Load() != int32(fastRetry.Tries) {
		t.Errorf("%d requests, want %d", n.Load(), fastRetry.Tries)
	}
}

func TestErrorBodyDecoded(t *testing.T) {
	c, mux, srv := setup(t, Options{})
	h, n := counted(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 400, `{"error_code":400,"error_type":"ValidationError","error_description":"limit must be at most 50"}`)
	})
	mux.HandleFunc("GET "+historyPath, h)
	_, err := c.History(context.Background(), testChat, 0, 50)
	want := &Error{Method: "GET", URL: srv + historyPath, Status: 400, Code: 400, Type: "ValidationError", Description: "limit must be at most 50"}
	var e *Error
	if !errors.As(err, &e) || !reflect.DeepEqual(e, want) {
		t.Fatalf("err = %#v, want %#v", err, want)
	}
	if got, wantMsg := err.Error(), "amojo: GET "+srv+historyPath+": 400 Bad Request: ValidationError code 400: limit must be at most 50"; got != wantMsg {
		t.Errorf("message:\n got %q\nwant %q", got, wantMsg)
	}
	if errors.Is(err, ErrSignature) || n.Load() != 1 {
		t.Errorf("a 400 is no signature error and is not retried (%d requests)", n.Load())
	}
}

func TestNonJSON2xxIsAnError(t *testing.T) {
	c, mux, srv := setup(t, Options{})
	mux.HandleFunc("GET "+historyPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<html>\n<p>gateway</p>\n</html>")
	})
	_, err := c.History(context.Background(), testChat, 0, 50)
	want := "amojo: GET " + srv + historyPath + ": 200: the answer is not JSON (text/html): <html> <p>gateway</p> </html>"
	if err == nil || err.Error() != want {
		t.Errorf("err:\n got %v\nwant %s", err, want)
	}
}

func TestConnect(t *testing.T) {
	c, mux, _ := setup(t, Options{ScopeID: "unused"})
	h, n := counted(func(w http.ResponseWriter, r *http.Request) {
		body := checkSigned(t, r, testSecret)
		// §1.4 C: the exact body, its Content-MD5 and its signature.
		if string(body) != `{"account_id":"52fd2a28-d2eb-4bd8-b862-a67934927b38","title":"ScopeTitle","hook_api_version":"v2"}` {
			t.Errorf("body = %s", body)
		}
		if got := r.Header.Get("Content-MD5"); got != "989f68f3a07bc2e97ee8336339d20f52" {
			t.Errorf("Content-MD5 = %s", got)
		}
		if got := r.Header.Get("X-Signature"); got != "e59cb5aeaaaa760e4464b64d089f19f8bf39f379" {
			t.Errorf("X-Signature = %s", got)
		}
		writeJSON(w, 200, `{"account_id":"52fd2a28-d2eb-4bd8-b862-a67934927b38","scope_id":"`+testScope+`","title":"ScopeTitle","hook_api_version":"v2","is_time_window_disabled":false}`)
	})
	mux.HandleFunc("POST /v2/origin/custom/"+testChannel+"/connect", h)
	scope, err := c.Connect(context.Background(), testChannel, testAccount, "ScopeTitle")
	if err != nil || scope != testScope || n.Load() != 1 {
		t.Errorf("Connect = %q, %v after %d requests; want %q after 1", scope, err, n.Load(), testScope)
	}
}

func TestConnect403(t *testing.T) {
	c, mux, _ := setup(t, Options{})
	mux.HandleFunc("POST /v2/origin/custom/"+testChannel+"/connect", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(403)
	})
	if _, err := c.Connect(context.Background(), testChannel, testAccount, "t"); !errors.Is(err, ErrSignature) {
		t.Errorf("err = %v, want ErrSignature", err)
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Options{}); err == nil || !strings.Contains(err.Error(), "chats.channel_secret") {
		t.Errorf("no secret: err = %v", err)
	}
	if _, err := New(Options{ChannelSecret: "s", BaseURL: "amojo.kommo.com"}); err == nil || !strings.Contains(err.Error(), "chats.base_url") {
		t.Errorf("bad URL: err = %v", err)
	}
	c, err := New(Options{ChannelSecret: "s", ScopeID: "a_b"})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.endpoint(url.Values{"limit": {"1"}}, "v2", "origin", "custom", "a_b", "chats", "c/d", "history").String(); got != DefaultBaseURL+"/v2/origin/custom/a_b/chats/c%2Fd/history?limit=1" {
		t.Errorf("endpoint = %s", got)
	}
}
