//go:build unix

package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommotest"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
)

const testAdminToken = "admin-token-0123456789"

// serve answers Salesbot's widget_request: 200 at once, then the continue
// call with the LLM's reply; a bad token gets 401 and no call; a handoff
// keeps the bot quiet until `bot clear-handoff`; a job acknowledged before a
// kill -9 is answered after the restart; the admin page wants its token.
func TestServeSalesbot(t *testing.T) {
	opts := fastFakes
	opts.LLMLatency = 300 * time.Millisecond
	w := newWorld(t, opts, withServe("2m"))
	w.login()
	instr := filepath.Join(w.dir, "instructions.md")
	if err := os.WriteFile(instr, []byte("You sell pianos."), 0o600); err != nil {
		t.Fatal(err)
	}
	w.cfg["bot"] = map[string]any{"instructions_file": instr}
	w.cfg["serve"]["admin_token"] = testAdminToken
	s := w.startServe()
	hook := s.url + "/salesbot/widget_request"
	lead := w.srv.Leads()[0].ID
	ctx := context.Background()
	continued := func(d *kommotest.WidgetDelivery) kommotest.ContinueCall {
		t.Helper()
		var c kommotest.ContinueCall
		waitFor(t, "the continue call", 15*time.Second, func() bool {
			var ok bool
			c, ok = w.srv.Continued(d.ContinueID)
			return ok
		})
		return c
	}

	d := w.srv.SendWidgetRequest(ctx, kommotest.WidgetRequest{URL: hook, LeadID: lead, Message: "How much is a piano?"})
	if d.Status != 200 || d.Duration > 500*time.Millisecond {
		t.Fatalf("widget_request: %d in %s: %s\n%s", d.Status, d.Duration, d.Body, tail(s.stderr.String()))
	}
	c := continued(d)
	if c.Data["status"] != "success" || !strings.Contains(c.Data["reply"].(string), kommotest.FakeLLMMarker) || len(c.Handlers) == 0 {
		t.Fatalf("continue: %+v", c)
	}
	if lag := c.At.Sub(time.Now().Add(-d.Duration)); lag > 5*time.Second {
		t.Fatalf("continue after %s", lag)
	}

	before := w.srv.Stats()
	if d := w.srv.SendWidgetRequest(ctx, kommotest.WidgetRequest{URL: hook, LeadID: lead, Message: "hi", Secret: "wrong"}); d.Status != 401 {
		t.Fatalf("wrong secret: %d", d.Status)
	}
	time.Sleep(100 * time.Millisecond)
	if after := w.srv.Stats(); after.LLMCalls != before.LLMCalls || after.ContinueCalls != before.ContinueCalls {
		t.Fatalf("a bad token made calls: %+v -> %+v", before, after)
	}

	c = continued(w.srv.SendWidgetRequest(ctx, kommotest.WidgetRequest{URL: hook, LeadID: lead, Message: "I need a manager"}))
	if c.Data["status"] != "handoff" {
		t.Fatalf("handoff: %v", c.Data)
	}
	c = continued(w.srv.SendWidgetRequest(ctx, kommotest.WidgetRequest{URL: hook, LeadID: lead, Message: "Hello?"}))
	if c.Data["status"] != "handoff" || c.Data["reply"] != "" {
		t.Fatalf("quiet: %v", c.Data)
	}
	if res := w.run("bot", "clear-handoff", "--lead", itoa(lead)); res.code != 0 || !strings.Contains(res.stdout, "handoff cleared") {
		t.Fatalf("clear-handoff: %d %s %s", res.code, res.stdout, res.stderr)
	}

	// Admin page: 401 without the token, 200 with it.
	for tok, want := range map[string]int{"": 401, testAdminToken: 200} {
		req, _ := http.NewRequest("GET", s.url+"/admin/", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("admin with %q: %d", tok, resp.StatusCode)
		}
	}

	// Acknowledged, then killed before the LLM answered: the restarted serve
	// still resumes the bot.
	d = w.srv.SendWidgetRequest(ctx, kommotest.WidgetRequest{URL: hook, LeadID: lead, Message: "Do you deliver?"})
	if d.Status != 200 {
		t.Fatalf("widget_request: %d", d.Status)
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	if _, ok := w.srv.Continued(d.ContinueID); ok {
		t.Skip("the reply went out before the kill: the machine is too fast for this check")
	}
	s = w.startServe()
	if c := continued(d); c.Data["status"] != "success" {
		t.Fatalf("after restart: %v", c.Data)
	}
	s.stop(t)

	// The bot's replies are in the message log, for the next summary.
	db := w.openStore()
	msgs, err := db.LeadMessages(ctx, lead, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out int
	for _, m := range msgs {
		if m.Direction == store.DirectionOut && m.Origin == "kommo-summarizer" {
			out++
		}
	}
	if out < 3 {
		t.Fatalf("%d bot replies logged: %+v", out, msgs)
	}
}
