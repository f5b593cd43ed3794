package salesbot_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommo"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommotest"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/llm"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/retry"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/salesbot"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
)

type world struct {
	fake   *kommotest.Server
	db     *store.DB
	svc    *salesbot.Service
	hook   *httptest.Server
	kommo  *kommo.Client
	opts   salesbot.Options
	cancel context.CancelFunc
	done   chan struct{}
	prompt struct {
		sync.Mutex
		system, user string
	}
}

type worldOptions struct {
	fake    kommotest.Options
	bot     func(*salesbot.Options)
	noRun   bool
	llmKey  string
	dbPath  string
	capture bool
}

func newWorld(t testing.TB, wo worldOptions) *world {
	t.Helper()
	w := &world{}
	fo := wo.fake
	if fo.Leads == 0 {
		fo.Leads = 5
	}
	fo.RESTRateLimit = -1
	if wo.capture && fo.LLMAnswer == nil {
		fo.LLMAnswer = func(system, user string) string {
			w.prompt.Lock()
			w.prompt.system, w.prompt.user = system, user
			w.prompt.Unlock()
			b, _ := json.Marshal(map[string]any{"reply": "Captured.", "handoff": false, "reason": ""})
			return string(b)
		}
	}
	fake, err := kommotest.Start(fo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	w.fake = fake
	path := wo.dbPath
	if path == "" {
		path = filepath.Join(t.TempDir(), "state.db")
	}
	db, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	w.db = db
	kc, err := kommo.New(kommo.Options{
		BaseURL: fake.KommoURL, Tokens: kommo.StaticToken(fake.LongLivedToken()),
		Retry: retry.Policy{Initial: time.Millisecond, Max: 5 * time.Millisecond, Multiplier: 2, Tries: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	w.kommo = kc
	key := wo.llmKey
	if key == "" {
		key = "sk-fake"
	}
	lc, err := llm.New(llm.Options{BaseURL: fake.LLMURL, APIKey: key, Model: "gpt-4o-mini", RetryBase: time.Millisecond, Tries: 2})
	if err != nil {
		t.Fatal(err)
	}
	o := salesbot.Options{
		DB: db, LLM: lc, Kommo: kc, ClientSecret: fake.Options().ClientSecret,
		AccountLookup: func(ctx context.Context) (int64, error) {
			a, err := kc.Account(ctx)
			if err != nil {
				return 0, err
			}
			return a.ID, nil
		},
		RetryBase: 5 * time.Millisecond,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if wo.bot != nil {
		wo.bot(&o)
	}
	w.opts = o
	svc, err := salesbot.New(o)
	if err != nil {
		t.Fatal(err)
	}
	w.svc = svc
	w.hook = httptest.NewServer(svc.Handler())
	t.Cleanup(w.hook.Close)
	if !wo.noRun {
		w.run(t)
	}
	return w
}

// run starts the worker; stop ends it.
func (w *world) run(t testing.TB) {
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel, w.done = cancel, make(chan struct{})
	go func() {
		defer close(w.done)
		if err := w.svc.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(w.stop)
}

func (w *world) stop() {
	if w.cancel != nil {
		w.cancel()
		<-w.done
		w.cancel = nil
	}
}

func (w *world) send(t testing.TB, req kommotest.WidgetRequest) *kommotest.WidgetDelivery {
	t.Helper()
	if req.URL == "" {
		req.URL = w.hook.URL + "/salesbot/widget_request"
	}
	return w.fake.SendWidgetRequest(context.Background(), req)
}

// continued waits for the continue call of d.
func (w *world) continued(t testing.TB, d *kommotest.WidgetDelivery) kommotest.ContinueCall {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, ok := w.fake.Continued(d.ContinueID); ok {
			return c
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no continue call for %s", d.ContinueID)
	return kommotest.ContinueCall{}
}

func shows(t testing.TB, c kommotest.ContinueCall) []string {
	t.Helper()
	var out []string
	for _, h := range c.Handlers {
		if h.Handler != "show" || h.Params["type"] != "text" {
			t.Fatalf("handler %+v", h)
		}
		v := h.Params["value"].(string)
		if n := utf8.RuneCountInString(v); n > salesbot.MaxShowRunes || n == 0 {
			t.Fatalf("show value of %d runes: %q", n, v)
		}
		out = append(out, v)
	}
	return out
}

func lead(w *world) int64 { return w.fake.Leads()[0].ID }

func TestReplySuccess(t *testing.T) {
	w := newWorld(t, worldOptions{})
	d := w.send(t, kommotest.WidgetRequest{Message: "Hello, how much is delivery?"})
	if d.Failed || d.Status != 200 {
		t.Fatalf("widget_request: %+v %s", d, d.Body)
	}
	c := w.continued(t, d)
	if c.Data["status"] != "success" || !strings.Contains(c.Data["reply"].(string), kommotest.FakeLLMMarker) {
		t.Fatalf("data %v", c.Data)
	}
	got := strings.Join(shows(t, c), " ")
	if got != c.Data["reply"] {
		t.Fatalf("bubbles %q do not make the reply %q", got, c.Data["reply"])
	}
	msgs, err := w.db.LeadMessages(context.Background(), lead(w), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[0].Direction != store.DirectionIn || msgs[0].Text != "Hello, how much is delivery?" ||
		msgs[1].Direction != store.DirectionOut || msgs[1].Text != c.Data["reply"] || msgs[1].Origin != salesbot.Origin ||
		msgs[1].ChatID != "salesbot:"+itoa(lead(w)) {
		t.Fatalf("message log: %+v", msgs)
	}
	waitJob(t, w, store.BotJobDone)
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func waitJob(t testing.TB, w *world, state string) store.BotJob {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var jobs []store.BotJob
	for time.Now().Before(deadline) {
		var err error
		jobs, err = w.db.BotJobs(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) == 1 && jobs[0].State == state {
			return jobs[0]
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("job not %s: %+v", state, jobs)
	return store.BotJob{}
}

func TestBadRequests(t *testing.T) {
	w := newWorld(t, worldOptions{})
	long := strings.Repeat("x", 2<<20)
	for _, tc := range []struct {
		name   string
		req    kommotest.WidgetRequest
		status int
	}{
		{"wrong secret", kommotest.WidgetRequest{Message: "hi", Secret: "not-the-secret"}, 401},
		{"expired", kommotest.WidgetRequest{Message: "hi", Expired: true}, 401},
		{"alg none", kommotest.WidgetRequest{Message: "hi", Alg: "none"}, 401},
		{"other account", kommotest.WidgetRequest{Message: "hi", AccountID: 42}, 401},
		{"no exp", kommotest.WidgetRequest{Message: "hi", Claims: map[string]any{"exp": nil}}, 401},
		{"not yet valid", kommotest.WidgetRequest{Message: "hi", Claims: map[string]any{"nbf": time.Now().Add(time.Hour).Unix()}}, 401},
		{"no token", kommotest.WidgetRequest{RawBody: []byte(`{"data":{"message":"hi"},"return_url":"x"}`)}, 401},
		{"no return_url", kommotest.WidgetRequest{Message: "hi", OmitReturnURL: true}, 400},
		{"foreign return_url", kommotest.WidgetRequest{Message: "hi", ReturnURL: "https://evil.example.com/api/v4/salesbot/1/continue/2"}, 400},
		{"return_url elsewhere on the host", kommotest.WidgetRequest{Message: "hi", ReturnURL: w.fake.KommoURL + "/api/v4/leads"}, 400},
		{"not JSON", kommotest.WidgetRequest{RawBody: []byte("token=x&data=y")}, 400},
		{"JSON array", kommotest.WidgetRequest{RawBody: []byte(`[1,2]`)}, 400},
		{"empty body", kommotest.WidgetRequest{RawBody: []byte{}}, 400},
		{"huge body", kommotest.WidgetRequest{RawBody: []byte(`{"token":"` + long + `"}`)}, 413},
	} {
		before := w.fake.Stats()
		d := w.send(t, tc.req)
		if d.Status != tc.status {
			t.Errorf("%s: status %d, want %d: %s", tc.name, d.Status, tc.status, d.Body)
		}
		var e struct{ Error string }
		if json.Unmarshal(d.Body, &e) != nil || e.Error == "" || strings.Contains(e.Error, "\n") {
			t.Errorf("%s: body %s is not a one-line error", tc.name, d.Body)
		}
		time.Sleep(20 * time.Millisecond)
		after := w.fake.Stats()
		if after.LLMCalls != before.LLMCalls || after.ContinueCalls != before.ContinueCalls {
			t.Errorf("%s: LLM calls %d -> %d, continue calls %d -> %d", tc.name, before.LLMCalls, after.LLMCalls, before.ContinueCalls, after.ContinueCalls)
		}
	}
	if jobs, _ := w.db.BotJobs(context.Background(), 0); len(jobs) != 0 {
		t.Fatalf("bad requests made jobs: %+v", jobs)
	}
	// HS256 is accepted too.
	d := w.send(t, kommotest.WidgetRequest{Message: "hi", Alg: "HS256"})
	if d.Status != 200 {
		t.Fatalf("HS256: %d %s", d.Status, d.Body)
	}
	w.continued(t, d)
}

func TestCleanFails(t *testing.T) {
	w := newWorld(t, worldOptions{})
	for _, tc := range []struct{ name, msg string }{
		{"empty", ""},
		{"blank", "  \n "},
		{"100 KB", strings.Repeat("очень длинное сообщение ", 100<<10/24)},
	} {
		before := w.fake.Stats().LLMCalls
		d := w.send(t, kommotest.WidgetRequest{Message: tc.msg})
		if d.Status != 200 {
			t.Fatalf("%s: %d %s", tc.name, d.Status, d.Body)
		}
		c := w.continued(t, d)
		if c.Data["status"] != "fail" || c.Data["reply"] != salesbot.DefaultFallbackText {
			t.Errorf("%s: data %v", tc.name, c.Data)
		}
		if w.fake.Stats().LLMCalls != before {
			t.Errorf("%s: the LLM was called", tc.name)
		}
	}
}

func TestLLMFailureResumesWithFail(t *testing.T) {
	w := newWorld(t, worldOptions{llmKey: "sk-wrong", bot: func(o *salesbot.Options) { o.FallbackText = "Un momento, por favor." }})
	d := w.send(t, kommotest.WidgetRequest{Message: "¿precio?"})
	c := w.continued(t, d)
	if c.Data["status"] != "fail" || c.Data["reply"] != "Un momento, por favor." || len(c.Handlers) != 1 {
		t.Fatalf("continue %+v", c)
	}
}

func TestLongReplyIsCut(t *testing.T) {
	w := newWorld(t, worldOptions{})
	d := w.send(t, kommotest.WidgetRequest{Message: "Please give me a long answer"})
	c := w.continued(t, d)
	vs := shows(t, c)
	if len(vs) != salesbot.MaxHandlers || !strings.HasSuffix(vs[len(vs)-1], "…") {
		t.Fatalf("%d bubbles: %q", len(vs), vs)
	}
	reply := c.Data["reply"].(string)
	if utf8.RuneCountInString(reply) < 1000 {
		t.Fatalf("data.reply is not the whole reply: %q", reply)
	}
	for _, v := range vs {
		for _, word := range strings.Fields(v) {
			if word != "…" && !strings.Contains(reply, word) {
				t.Errorf("bubble %q has %q, not a word of the reply", v, word)
			}
			if strings.HasPrefix(word, "https://") && !strings.Contains(word, "/offer/") {
				t.Errorf("a link was split: %q", word)
			}
		}
	}
}

func TestHandoff(t *testing.T) {
	w := newWorld(t, worldOptions{})
	ctx := context.Background()
	id := lead(w)
	// A keyword: no LLM call, status handoff, the lead is quiet.
	before := w.fake.Stats().LLMCalls
	c := w.continued(t, w.send(t, kommotest.WidgetRequest{Message: "Можно с менеджером поговорить?"}))
	if c.Data["status"] != "handoff" || c.Data["reply"] != salesbot.DefaultFallbackText {
		t.Fatalf("keyword: %v", c.Data)
	}
	if w.fake.Stats().LLMCalls != before {
		t.Fatal("keyword handoff called the LLM")
	}
	h, err := w.db.BotHandoffOf(ctx, id)
	if err != nil || h == nil || h.QuietUntil.Sub(h.At) != salesbot.DefaultHandoffQuiet {
		t.Fatalf("handoff %+v %v", h, err)
	}
	// While quiet: no AI reply, the bot still goes on.
	c = w.continued(t, w.send(t, kommotest.WidgetRequest{Message: "Hello?"}))
	if c.Data["status"] != "handoff" || c.Data["reply"] != "" || len(c.Handlers) != 0 || w.fake.Stats().LLMCalls != before {
		t.Fatalf("quiet: %+v", c)
	}
	// Cleared: the bot answers again.
	if found, err := w.db.ClearBotHandoff(ctx, id); err != nil || !found {
		t.Fatal(found, err)
	}
	c = w.continued(t, w.send(t, kommotest.WidgetRequest{Message: "Hello?"}))
	if c.Data["status"] != "success" {
		t.Fatalf("after clear: %v", c.Data)
	}
	// The model's own flag.
	c = w.continued(t, w.send(t, kommotest.WidgetRequest{Message: "Please call me back tomorrow"}))
	if c.Data["status"] != "handoff" || !strings.Contains(c.Data["reply"].(string), "manager will call") {
		t.Fatalf("model flag: %v", c.Data)
	}
	if h, _ := w.db.BotHandoffOf(ctx, id); h == nil || h.Reason != "the client asked for a call" {
		t.Fatalf("model handoff %+v", h)
	}
	// Keywords match at the start of a word only.
	if got := w.continued(t, w.send(t, kommotest.WidgetRequest{LeadID: w.fake.Leads()[1].ID, Message: "A superhuman offer?"})); got.Data["status"] != "success" {
		t.Fatalf("superhuman: %v", got.Data)
	}
}

func TestMemoryAndInstructions(t *testing.T) {
	dir := t.TempDir()
	instr := filepath.Join(dir, "instructions.md")
	if err := os.WriteFile(instr, []byte("You sell pianos. Never discuss guitars."), 0o600); err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, worldOptions{capture: true, bot: func(o *salesbot.Options) { o.InstructionsFile = instr }})
	ctx := context.Background()
	id := lead(w)
	// A summary and a logged webhook message of the lead.
	if err := w.db.AddPending(ctx, store.Pending{RequestID: "r1", LeadID: id, RunID: "run", State: store.StateNoted, NoteText: "Client wants a grand piano, budget 10k."}); err != nil {
		t.Fatal(err)
	}
	if err := w.db.Complete(ctx, "run", "r1"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.db.AddMessages(ctx, []store.LogMessage{{ID: "m1", ChatID: "chat-1", TalkID: 7, LeadID: id, Direction: store.DirectionIn,
		Type: "text", Text: "Do you deliver to Riga?", CreatedAt: time.Now().Add(-time.Hour), Origin: "waba"}}); err != nil {
		t.Fatal(err)
	}
	w.continued(t, w.send(t, kommotest.WidgetRequest{Message: "And what about tuning?"}))
	w.prompt.Lock()
	sys, user := w.prompt.system, w.prompt.user
	w.prompt.Unlock()
	for _, want := range []string{"grand piano, budget 10k", "[Client]: Do you deliver to Riga?", "New message from the client:\nAnd what about tuning?"} {
		if !strings.Contains(user, want) {
			t.Errorf("prompt lacks %q:\n%s", want, user)
		}
	}
	if !strings.HasPrefix(sys, "You sell pianos.") || !strings.Contains(sys, "at most 10 bubbles") {
		t.Errorf("system prompt:\n%s", sys)
	}
	// The reply went to the same chat, and the next prompt sees it.
	msgs, _ := w.db.LeadMessages(ctx, id, 10)
	if len(msgs) != 3 || msgs[2].ChatID != "chat-1" || msgs[2].Text != "Captured." || msgs[2].TalkID != 7 {
		t.Fatalf("log %+v", msgs)
	}
	// Edited instructions are read again.
	if err := w.svc.SetInstructions("You sell violins."); err != nil {
		t.Fatal(err)
	}
	w.continued(t, w.send(t, kommotest.WidgetRequest{Message: "Hi again"}))
	w.prompt.Lock()
	sys, user = w.prompt.system, w.prompt.user
	w.prompt.Unlock()
	if !strings.HasPrefix(sys, "You sell violins.") || !strings.Contains(user, "[Bot]: Captured.") {
		t.Errorf("after the edit:\n%s\n---\n%s", sys, user)
	}
}

func TestDryRunSendsNothing(t *testing.T) {
	w := newWorld(t, worldOptions{noRun: true})
	b, err := w.svc.Test(context.Background(), lead(w), "Hello there")
	if err != nil {
		t.Fatal(err)
	}
	if b.Data.Status != "success" || len(b.ExecuteHandlers) == 0 {
		t.Fatalf("%+v", b)
	}
	st := w.fake.Stats()
	if st.ContinueCalls != 0 || st.LLMCalls != 1 {
		t.Fatalf("stats %+v", st)
	}
	if msgs, _ := w.db.LeadMessages(context.Background(), lead(w), 0); len(msgs) != 0 {
		t.Fatalf("Test logged %+v", msgs)
	}
}

func TestDurableAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	w := newWorld(t, worldOptions{noRun: true, dbPath: path})
	d := w.send(t, kommotest.WidgetRequest{Message: "Hi"})
	if d.Status != 200 {
		t.Fatalf("%d %s", d.Status, d.Body)
	}
	// The process "restarts": a new service on the same store works the job.
	svc2, err := salesbot.New(w.opts)
	if err != nil {
		t.Fatal(err)
	}
	w.svc = svc2
	w.run(t)
	if c := w.continued(t, d); c.Data["status"] != "success" {
		t.Fatalf("%v", c.Data)
	}
}

func TestContinueRetriesAndDrops(t *testing.T) {
	w := newWorld(t, worldOptions{fake: kommotest.Options{ContinueFailFirst: 4}})
	c := w.continued(t, w.send(t, kommotest.WidgetRequest{Message: "Hi"}))
	if c.Data["status"] != "success" {
		t.Fatalf("%v", c.Data)
	}
	if j := waitJob(t, w, store.BotJobDone); j.Attempts < 2 {
		t.Fatalf("attempts %d", j.Attempts)
	}
	// The bot moved on before we answered: 404, dropped, not retried.
	w.stop()
	d := w.send(t, kommotest.WidgetRequest{Message: "Hi"})
	w.fake.ExpireContinue(d.ContinueID)
	w.run(t)
	j := waitJob(t, w, store.BotJobDropped)
	if !strings.Contains(j.Error, "404") {
		t.Fatalf("job %+v", j)
	}
}

func TestTokenVector(t *testing.T) {
	// kommo-webhooks.md §7.4: HS512, secret test-client-secret.
	const token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzUxMiJ9.eyJpc3MiOiJodHRwczovL2FjbWUua29tbW8uY29tIiwiYXVkIjoiaHR0cHM6Ly9ib3QuZXhhbXBsZS5jb20iLCJqdGkiOiIzZjFjMmE5ZS0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDEiLCJpYXQiOjE3NjcyMjU2MDAsIm5iZiI6MTc2NzIyNTYwMCwiZXhwIjoxNzY3MjI2NTAwLCJhY2NvdW50X2lkIjozMTI1NzI5NCwic3ViZG9tYWluIjoiYWNtZSIsImNsaWVudF91dWlkIjoiMGIwODMyZjYtZDEyMy00MTIzLTkxMjMtZTczZjIzNjgzM2MwIiwiZW50aXR5X2lkIjoyNzc1NDU5OSwiZW50aXR5X3R5cGUiOjIsImJvdF90eXBlIjoic2FsZXNib3QifQ.PhkyEkbQzdn6DGlhdr-1LDAz3fq8DxCn0R8J7H_Mvd1_J0SmTWO_SkxkRko98_eqdvC1tdGK-i3JOsH0q4ryFA"
	for _, tc := range []struct {
		name    string
		now     int64
		secret  string
		account int64
		ok      bool
	}{
		{"valid", 1767225700, "test-client-secret", 31257294, true},
		{"within leeway after exp", 1767226500 + 30, "test-client-secret", 31257294, true},
		{"expired", 1767226500 + 120, "test-client-secret", 31257294, false},
		{"before nbf", 1767225600 - 120, "test-client-secret", 31257294, false},
		{"wrong secret", 1767225700, "other", 31257294, false},
		{"other account", 1767225700, "test-client-secret", 1, false},
	} {
		lead, err := salesbot.VerifyToken(token, tc.secret, tc.account, time.Unix(tc.now, 0), salesbot.DefaultLeeway)
		if (err == nil) != tc.ok || (tc.ok && lead != 27754599) {
			t.Errorf("%s: lead %d, err %v", tc.name, lead, err)
		}
	}
}

func TestContinueGivesUp(t *testing.T) {
	w := newWorld(t, worldOptions{fake: kommotest.Options{ContinueFailFirst: 1000}, bot: func(o *salesbot.Options) { o.MaxAttempts = 2 }})
	w.send(t, kommotest.WidgetRequest{Message: "Hi"})
	j := waitJob(t, w, store.BotJobFailed)
	if j.Attempts != 2 || !strings.Contains(j.Error, "503") || j.Status != "success" {
		t.Fatalf("job %+v", j)
	}
}

func TestShutdownFinishesTheJobInHand(t *testing.T) {
	w := newWorld(t, worldOptions{fake: kommotest.Options{LLMLatency: 300 * time.Millisecond}})
	d := w.send(t, kommotest.WidgetRequest{Message: "Hi"})
	time.Sleep(50 * time.Millisecond) // the worker has the job and waits for the LLM
	w.stop()
	if _, ok := w.fake.Continued(d.ContinueID); !ok {
		t.Fatal("Run returned before the job in hand was done")
	}
	if j := waitJob(t, w, store.BotJobDone); j.Status != "success" {
		t.Fatalf("job %+v", j)
	}
}

func TestMessageLoggedByWebhookIsNotLoggedTwice(t *testing.T) {
	w := newWorld(t, worldOptions{capture: true})
	ctx := context.Background()
	id := lead(w)
	if _, err := w.db.AddMessages(ctx, []store.LogMessage{
		{ID: "kommo-1", ChatID: "chat-9", TalkID: 3, LeadID: id, Direction: store.DirectionIn, Type: "text", Text: "Is it in stock?", CreatedAt: time.Now().Add(-time.Minute), Origin: "telegram"},
		{ID: "kommo-2", ChatID: "chat-9", TalkID: 3, LeadID: id, Direction: store.DirectionOut, Type: "text", Text: "Salesbot greeting", CreatedAt: time.Now().Add(-50 * time.Second), Origin: "telegram"},
	}); err != nil {
		t.Fatal(err)
	}
	w.continued(t, w.send(t, kommotest.WidgetRequest{Message: "Is it in stock?"}))
	msgs, _ := w.db.LeadMessages(ctx, id, 0)
	if len(msgs) != 3 || msgs[2].Direction != store.DirectionOut || msgs[2].ChatID != "chat-9" {
		t.Fatalf("log %+v", msgs)
	}
	w.prompt.Lock()
	user := w.prompt.user
	w.prompt.Unlock()
	if strings.Count(user, "Is it in stock?") != 1 {
		t.Fatalf("the message is twice in the prompt:\n%s", user)
	}
}
