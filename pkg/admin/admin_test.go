package admin_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/admin"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommo"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommotest"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/llm"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/salesbot"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
)

const token = "admin-token-0123456789"

type env struct {
	srv    *httptest.Server
	instr  string
	fake   *kommotest.Server
	client *http.Client
}

// newEnv serves the admin page of a real Salesbot service on the fakes.
func newEnv(t *testing.T) *env {
	t.Helper()
	fake, err := kommotest.Start(kommotest.Options{Leads: 3, RESTRateLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	dir := t.TempDir()
	db, err := store.Open(context.Background(), filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	kc, err := kommo.New(kommo.Options{BaseURL: fake.KommoURL, Tokens: kommo.StaticToken(fake.LongLivedToken())})
	if err != nil {
		t.Fatal(err)
	}
	lc, err := llm.New(llm.Options{BaseURL: fake.LLMURL, APIKey: "sk-fake", Model: "gpt-4o-mini", RetryBase: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	instr := filepath.Join(dir, "instructions.md")
	if err := os.WriteFile(instr, []byte("Be nice."), 0o600); err != nil {
		t.Fatal(err)
	}
	svc, err := salesbot.New(salesbot.Options{DB: db, LLM: lc, Kommo: kc, ClientSecret: "s", AccountID: 1, InstructionsFile: instr})
	if err != nil {
		t.Fatal(err)
	}
	h, err := admin.New(admin.Options{Token: token, DB: db, Bot: svc})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(admin.Prefix, h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	return &env{srv: srv, instr: instr, fake: fake, client: &http.Client{Jar: jar}}
}

func (e *env) do(t *testing.T, method, path string, form url.Values, headers ...string) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func TestAdminAuthAndForms(t *testing.T) {
	e := newEnv(t)
	if resp, body := e.do(t, "GET", "/admin/", nil); resp.StatusCode != 401 || !strings.Contains(body, `action="/admin/login"`) {
		t.Fatalf("no token: %d", resp.StatusCode)
	}
	if resp, _ := e.do(t, "GET", "/admin/", nil, "Authorization", "Bearer wrong-token-xxxxxxxx"); resp.StatusCode != 401 {
		t.Fatalf("wrong bearer: %d", resp.StatusCode)
	}
	if resp, body := e.do(t, "GET", "/admin/", nil, "Authorization", "Bearer "+token); resp.StatusCode != 200 || !strings.Contains(body, "Be nice.") {
		t.Fatalf("bearer: %d", resp.StatusCode)
	}
	if resp, _ := e.do(t, "POST", "/admin/login", url.Values{"token": {"nope"}}); resp.StatusCode != 401 {
		t.Fatalf("bad login: %d", resp.StatusCode)
	}
	// Log in: an HttpOnly, SameSite=Strict cookie.
	e.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, _ := e.do(t, "POST", "/admin/login", url.Values{"token": {token}})
	if resp.StatusCode != 303 || len(resp.Cookies()) != 1 || !resp.Cookies()[0].HttpOnly || resp.Cookies()[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("login: %d %v", resp.StatusCode, resp.Cookies())
	}
	e.client.CheckRedirect = nil
	resp, body := e.do(t, "GET", "/admin/", nil)
	m := csrfRE.FindStringSubmatch(body)
	if resp.StatusCode != 200 || m == nil {
		t.Fatalf("dashboard by cookie: %d", resp.StatusCode)
	}
	// A form without (or with a wrong) CSRF token changes nothing.
	for _, csrf := range []string{"", "00" + m[1][2:]} {
		if resp, _ := e.do(t, "POST", "/admin/instructions", url.Values{"csrf": {csrf}, "instructions": {"Evil."}}); resp.StatusCode != 403 {
			t.Fatalf("csrf %q: %d", csrf, resp.StatusCode)
		}
	}
	if b, _ := os.ReadFile(e.instr); string(b) != "Be nice." {
		t.Fatalf("instructions changed without CSRF: %q", b)
	}
	resp, body = e.do(t, "POST", "/admin/instructions", url.Values{"csrf": {m[1]}, "instructions": {"Sell pianos."}})
	if resp.StatusCode != 200 || !strings.Contains(body, "Instructions saved") {
		t.Fatalf("save: %d", resp.StatusCode)
	}
	if b, _ := os.ReadFile(e.instr); string(b) != "Sell pianos." {
		t.Fatalf("instructions file: %q", b)
	}
	resp, body = e.do(t, "POST", "/admin/test", url.Values{"csrf": {m[1]}, "message": {"Hello, do you sell pianos?"}})
	if resp.StatusCode != 200 || !strings.Contains(body, `id="test-status">success<`) || !strings.Contains(body, "FAKE LLM") {
		t.Fatalf("test chat: %d %s", resp.StatusCode, body)
	}
	if e.fake.Stats().ContinueCalls != 0 {
		t.Fatal("the test chat sent a continue call")
	}
	if resp, _ := e.do(t, "POST", "/admin/test", url.Values{"csrf": {m[1]}, "lead": {"abc"}, "message": {"x"}}); resp.StatusCode != 400 {
		t.Fatalf("bad lead: %d", resp.StatusCode)
	}
	if resp.Header.Get("Content-Security-Policy") == "" {
		t.Fatal("no CSP")
	}
}

func TestAdminNeedsAToken(t *testing.T) {
	if _, err := admin.New(admin.Options{Token: "short"}); err == nil {
		t.Fatal("a short token was accepted")
	}
}
