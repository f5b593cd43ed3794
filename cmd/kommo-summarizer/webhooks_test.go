//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommotest"
)

const testWebhookSecret = "5ecret0123456789abcdef"

func withPublicURL(publicURL string) func(cfg map[string]map[string]any) {
	return func(cfg map[string]map[string]any) {
		fast(cfg)
		cfg["serve"] = map[string]any{"webhook_secret": testWebhookSecret}
		if publicURL != "" {
			cfg["serve"]["public_url"] = publicURL
		}
	}
}

// preRegister adds a webhook the way another tool (or Kommo's UI) would have.
func preRegister(t *testing.T, srv *kommotest.Server, dest string, settings ...string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"destination": dest, "settings": settings})
	req, _ := http.NewRequest("POST", srv.KommoURL+"/api/v4/webhooks", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+srv.LongLivedToken())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("pre-register: %d", resp.StatusCode)
	}
}

func noSecret(t *testing.T, res result) {
	t.Helper()
	if strings.Contains(res.stdout+res.stderr, testWebhookSecret) {
		t.Errorf("the webhook secret was printed:\n%s\n%s", res.stdout, res.stderr)
	}
}

func TestWebhooksInstallStatusRemove(t *testing.T) {
	w := newWorld(t, fastFakes, withPublicURL("https://bot.example.com/"))
	w.login()
	dest := "https://bot.example.com/webhooks/kommo/" + testWebhookSecret + "/"
	preRegister(t, w.srv, dest, "update_lead", "add_message")
	preRegister(t, w.srv, "https://other.example.com/hook/", "add_lead")

	want := []string{"update_lead", "add_message", "add_outgoing_message", "add_talk", "update_talk"}
	ours := func() *kommotest.Webhook {
		for _, h := range w.srv.Webhooks() {
			if h.Destination == dest {
				return &h
			}
		}
		return nil
	}

	res := w.run("webhooks", "install")
	noSecret(t, res)
	if res.code != 0 || !strings.Contains(res.stdout, "Webhook updated: https://bot.example.com/webhooks/kommo/5ecr…/") {
		t.Fatalf("install: exit %d\n%s\n%s", res.code, res.stdout, tail(res.stderr))
	}
	if h := ours(); h == nil || !reflect.DeepEqual(h.Settings, want) || h.Disabled {
		t.Fatalf("after install: %+v, want settings %v", h, want)
	}

	// Idempotent: nothing to change, nothing posted.
	w.srv.ResetStats()
	res = w.run("webhooks", "install")
	if res.code != 0 || !strings.Contains(res.stdout, "already installed") {
		t.Errorf("second install: exit %d\n%s\n%s", res.code, res.stdout, tail(res.stderr))
	}
	if h := ours(); h == nil || !reflect.DeepEqual(h.Settings, want) {
		t.Errorf("after the second install: %+v", h)
	}
	if n := w.srv.Stats().RESTRequests; n != 1 {
		t.Errorf("second install made %d REST requests, want 1 (the GET)", n)
	}
	if len(w.srv.Webhooks()) != 2 {
		t.Errorf("webhooks %+v: the other hook must stay", w.srv.Webhooks())
	}

	res = w.run("webhooks", "status")
	noSecret(t, res)
	if res.code != 0 || !strings.Contains(res.stdout, "State: enabled") ||
		!strings.Contains(res.stdout, "Events: "+strings.Join(want, ", ")) || !strings.Contains(res.stdout, "Last delivery: never") {
		t.Errorf("status: exit %d\n%s\n%s", res.code, res.stdout, tail(res.stderr))
	}

	// Kommo disabled it: status says so, install enables it again.
	w.srv.SetWebhookDisabled(dest, true)
	res = w.run("webhooks", "status")
	if res.code != 0 || !strings.Contains(res.stdout, "DISABLED") {
		t.Errorf("status of a disabled hook: exit %d\n%s", res.code, res.stdout)
	}
	res = w.run("webhooks", "install")
	if res.code != 0 || !strings.Contains(res.stdout, "enabled again") {
		t.Errorf("install over a disabled hook: exit %d\n%s\n%s", res.code, res.stdout, tail(res.stderr))
	}
	if h := ours(); h == nil || h.Disabled {
		t.Errorf("after re-install: %+v", h)
	}

	res = w.run("webhooks", "remove")
	noSecret(t, res)
	if res.code != 0 || !strings.Contains(res.stdout, "Webhook removed") || ours() != nil {
		t.Errorf("remove: exit %d\n%s\n%s", res.code, res.stdout, tail(res.stderr))
	}
	res = w.run("webhooks", "remove")
	if res.code != 0 || !strings.Contains(res.stdout, "not installed") {
		t.Errorf("second remove: exit %d\n%s\n%s", res.code, res.stdout, tail(res.stderr))
	}
	res = w.run("webhooks", "status")
	if res.code != 0 || !strings.Contains(res.stdout, "Webhook: not installed") {
		t.Errorf("status after remove: exit %d\n%s", res.code, res.stdout)
	}
	if len(w.srv.Webhooks()) != 1 {
		t.Errorf("webhooks %+v: only the other hook must be left", w.srv.Webhooks())
	}
}

func TestWebhooksInstallNeedsAnAddress(t *testing.T) {
	w := newWorld(t, fastFakes, withPublicURL(""))
	w.login()
	res := w.run("webhooks", "install")
	if res.code != 2 || !strings.Contains(errorLine(t, res.stderr), "serve.public_url") {
		t.Errorf("no public_url: exit %d, %s", res.code, res.stderr)
	}
	res = w.run("webhooks", "install", "--url", "ftp://127.0.0.1/")
	if res.code != 2 || !strings.Contains(errorLine(t, res.stderr), "--url") {
		t.Errorf("ftp --url: exit %d, %s", res.code, res.stderr)
	}

	res = w.run("webhooks", "install", "--url", "http://127.0.0.1:8080")
	noSecret(t, res)
	if res.code != 0 || !strings.Contains(res.stdout, "Webhook installed: http://127.0.0.1:8080/webhooks/kommo/5ecr…/") {
		t.Fatalf("install --url: exit %d\n%s\n%s", res.code, res.stdout, tail(res.stderr))
	}
	hooks := w.srv.Webhooks()
	if len(hooks) != 1 || hooks[0].Destination != "http://127.0.0.1:8080/webhooks/kommo/"+testWebhookSecret+"/" ||
		!reflect.DeepEqual(hooks[0].Settings, []string{"add_message", "add_outgoing_message", "add_talk", "update_talk"}) {
		t.Errorf("registered %+v", hooks)
	}

	// A hook left under an old secret is shown, masked.
	preRegister(t, w.srv, "https://old.example.com/webhooks/kommo/oldsecret0123456789/", "add_message")
	res = w.run("webhooks", "status", "--url", "http://127.0.0.1:8080")
	if res.code != 0 || !strings.Contains(res.stdout, "Another serve webhook on the account: https://old.example.com/webhooks/kommo/olds…/") ||
		strings.Contains(res.stdout, "oldsecret0123456789") || !strings.Contains(res.stdout, "State: enabled") {
		t.Errorf("status with a stale hook: exit %d\n%s\n%s", res.code, res.stdout, tail(res.stderr))
	}
}

// Native chats (WhatsApp, Telegram, ... of other integrations) are invisible
// to the sweep: their leads end as "no chats", never as failures, and get no
// note; the other leads are summarised as before.
func TestSweepSkipsNativeChats(t *testing.T) {
	opts := fastFakes
	opts.NativeLeads = 3
	w := newWorld(t, opts, fast)
	w.login()
	native := w.srv.NativeLeads()
	if len(native) != 3 {
		t.Fatalf("%d native leads, want 3", len(native))
	}
	rep, res := w.sweep()
	if res.code != 0 || rep.Failed != 0 || rep.Summarized != len(w.srv.OpenLeadsWithChats()) || rep.SkippedNoChats < 3 {
		t.Fatalf("sweep: exit %d, %+v\n%s", res.code, rep, tail(res.stderr))
	}
	for _, l := range native {
		if n := w.srv.Notes(l.ID); len(n) != 0 {
			t.Errorf("native lead %d got notes %+v", l.ID, n)
		}
	}
	assertNotes(t, w.srv, 1)
}
