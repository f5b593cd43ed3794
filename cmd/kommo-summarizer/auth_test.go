package main

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
)

func TestAuthCommands(t *testing.T) {
	w := newWorld(t, fastFakes, fast)
	w.login()

	res := w.run("auth", "status")
	if res.code != 0 || !strings.Contains(res.stdout, "expires") || !strings.Contains(res.stdout, "credentials work") {
		t.Fatalf("auth status: exit %d\n%s\n%s", res.code, res.stdout, tail(res.stderr))
	}
	before := w.srv.Stats().OAuthRequests
	if res := w.run("auth", "refresh"); res.code != 0 || !strings.Contains(res.stdout, "Refreshed") {
		t.Fatalf("auth refresh: exit %d\n%s\n%s", res.code, res.stdout, tail(res.stderr))
	}
	if n := w.srv.Stats().OAuthRequests - before; n != 1 {
		t.Errorf("auth refresh made %d token requests, want 1", n)
	}
	// The rotated pair is the one in use.
	if res := w.run("auth", "status"); res.code != 0 {
		t.Fatalf("auth status after refresh: exit %d\n%s", res.code, tail(res.stderr))
	}
}

// Two processes find the access token dead at the same moment: the refresh
// is serialised, one refresh token is spent, both go on.
func TestTwoProcessesRefreshOnce(t *testing.T) {
	w := newWorld(t, fastFakes, fast)
	w.login()
	w.srv.ExpireAccessTokens()
	before := w.srv.Stats().OAuthRequests
	var wg sync.WaitGroup
	results := make([]result, 2)
	for i := range results {
		wg.Go(func() { results[i] = w.run("auth", "status") })
	}
	wg.Wait()
	for i, res := range results {
		if res.code != 0 {
			t.Errorf("process %d: exit %d\n%s", i, res.code, tail(res.stderr))
		}
	}
	if n := w.srv.Stats().OAuthRequests - before; n != 1 {
		t.Errorf("%d token requests, want one refresh", n)
	}
}

// A long-lived token is used as is; OPENAI_API_KEY fills llm.api_key.
func TestLongLivedTokenAndEnvKey(t *testing.T) {
	w := newWorld(t, fastFakes, func(c map[string]map[string]any) {
		fast(c)
		delete(c["kommo"], "client_id")
		delete(c["kommo"], "client_secret")
		delete(c["llm"], "api_key")
	})
	w.cfg["kommo"]["long_lived_token"] = w.srv.LongLivedToken()
	w.writeConfig()
	cmd := w.command("sweep", "--json")
	cmd.Env = append(cmd.Env, "OPENAI_API_KEY="+w.srv.Options().LLMAPIKey)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sweep: %v\n%s", err, out)
	}
	if w.srv.Stats().OAuthRequests != 0 {
		t.Error("a long-lived token was refreshed")
	}
	assertNotes(t, w.srv, 1)
	if res := w.run("auth", "refresh"); res.code != 2 || !strings.Contains(errorLine(t, res.stderr), "long_lived_token") {
		t.Errorf("auth refresh with a long-lived token: exit %d, %q; want 2 naming kommo.long_lived_token", res.code, res.stderr)
	}
}

// Disabling the integration disconnects the chat channel: a sweep says so and
// names the command that fixes it; auth connect-channel reconnects it.
func TestConnectChannel(t *testing.T) {
	fo := fastFakes
	fo.ChannelDisconnected = true
	w := newWorld(t, fo, fast)
	w.login()

	res := w.run("sweep", "--json")
	var rep report
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
		t.Fatalf("sweep: exit %d, no JSON report (%v)\n%s", res.code, err, tail(res.stderr))
	}
	const hint = "the channel is not connected: run `kommo-summarizer auth connect-channel`"
	// Every lead would fail the same way: the run stops at the first.
	if res.code != 4 || !strings.Contains(rep.Error, hint) || !strings.Contains(errorLine(t, res.stderr), hint) {
		t.Fatalf("sweep on a disconnected channel: exit %d, error %q; want exit 4 saying %q", res.code, rep.Error, hint)
	}
	if strings.Contains(res.stdout+res.stderr, "channel_secret") {
		t.Errorf("the error blames the channel secret:\n%s", res.stdout)
	}

	res = w.run("auth", "connect-channel")
	if res.code != 0 || !strings.Contains(res.stdout, "scope_id "+w.srv.ScopeID()) || !w.srv.ChannelConnected() {
		t.Fatalf("auth connect-channel: exit %d, connected %v\n%s\n%s", res.code, w.srv.ChannelConnected(), res.stdout, tail(res.stderr))
	}
	if strings.Contains(res.stdout+res.stderr, w.srv.Options().ChannelSecret) {
		t.Error("the channel secret was printed")
	}
	rep, res = w.sweep()
	if res.code != 0 || rep.Failed != 0 || rep.Summarized == 0 {
		t.Fatalf("sweep after connect-channel: exit %d, %d failed, %d summarized\n%s", res.code, rep.Failed, rep.Summarized, tail(res.stderr))
	}
}
