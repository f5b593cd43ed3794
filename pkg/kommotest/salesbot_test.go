package kommotest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestSalesbotContinue(t *testing.T) {
	s := startTest(t, Options{Leads: 3, RESTRateLimit: -1}, nil)
	var got []byte
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
	}))
	defer hook.Close()
	d := s.SendWidgetRequest(context.Background(), WidgetRequest{URL: hook.URL, Message: "Hi"})
	if d.Failed || d.Status != 200 {
		t.Fatalf("delivery: %+v", d)
	}
	var body struct {
		Token     string         `json:"token"`
		Data      map[string]any `json:"data"`
		ReturnURL string         `json:"return_url"`
	}
	if err := json.Unmarshal(got, &body); err != nil || body.Token == "" || body.Data["message"] != "Hi" || body.ReturnURL != d.ReturnURL {
		t.Fatalf("widget_request body: %s", got)
	}
	if !strings.HasPrefix(d.ReturnURL, s.KommoURL+"/api/v4/salesbot/321/continue/") {
		t.Fatalf("return_url %s", d.ReturnURL)
	}
	bearer := "Bearer " + s.LongLivedToken()
	long := strings.Repeat("я", 81)
	show := func(v string) map[string]any {
		return map[string]any{"handler": "show", "params": map[string]any{"type": "text", "value": v}}
	}
	eleven := []any{}
	for range 11 {
		eleven = append(eleven, show("x"))
	}
	for _, tc := range []struct {
		name   string
		body   any
		auth   string
		status int
	}{
		{"no bearer", map[string]any{}, "", 401},
		{"not an object", "[1]", bearer, 400},
		{"show too long", map[string]any{"execute_handlers": []any{show(long)}}, bearer, 400},
		{"too many handlers", map[string]any{"execute_handlers": eleven}, bearer, 400},
		{"bad handler", map[string]any{"execute_handlers": []any{map[string]any{"handler": "widget_request", "params": map[string]any{}}}}, bearer, 400},
		{"bad show type", map[string]any{"execute_handlers": []any{map[string]any{"handler": "show", "params": map[string]any{"type": "html", "value": "x"}}}}, bearer, 400},
		{"goto without step", map[string]any{"execute_handlers": []any{map[string]any{"handler": "goto", "params": map[string]any{"type": "question"}}}}, bearer, 400},
		{"ok", map[string]any{"data": map[string]any{"status": "success", "reply": "Hello"}, "execute_handlers": []any{show(strings.Repeat("я", 80))}}, bearer, 202},
		{"consumed", map[string]any{"data": map[string]any{}}, bearer, 404},
	} {
		headers := []string{"Content-Type", "application/json"}
		if tc.auth != "" {
			headers = append(headers, "Authorization", tc.auth)
		}
		r := send(t, "POST", d.ReturnURL, tc.body, headers...)
		if r.status != tc.status {
			t.Errorf("%s: status %d, want %d: %s", tc.name, r.status, tc.status, r.body)
		}
		if tc.status == 202 && len(r.body) != 0 {
			t.Errorf("%s: 202 with a body: %s", tc.name, r.body)
		}
		if tc.status == 400 && r.header.Get("Content-Type") != problemJSON {
			t.Errorf("%s: content type %q", tc.name, r.header.Get("Content-Type"))
		}
	}
	c, ok := s.Continued(d.ContinueID)
	if !ok || c.Data["reply"] != "Hello" || len(c.Handlers) != 1 || c.BotType != "salesbot" {
		t.Fatalf("recorded call: %+v %v", c, ok)
	}
	r := send(t, "POST", s.KommoURL+"/api/v4/salesbot/321/continue/999999", map[string]any{}, "Content-Type", "application/json", "Authorization", bearer)
	if r.status != 404 {
		t.Fatalf("unknown continue_id: %d", r.status)
	}
}

func TestSignJWT(t *testing.T) {
	// The HS512 vector of kommo-webhooks.md §7.4, re-signed from its own parts.
	const vector = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzUxMiJ9.eyJpc3MiOiJodHRwczovL2FjbWUua29tbW8uY29tIiwiYXVkIjoiaHR0cHM6Ly9ib3QuZXhhbXBsZS5jb20iLCJqdGkiOiIzZjFjMmE5ZS0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDEiLCJpYXQiOjE3NjcyMjU2MDAsIm5iZiI6MTc2NzIyNTYwMCwiZXhwIjoxNzY3MjI2NTAwLCJhY2NvdW50X2lkIjozMTI1NzI5NCwic3ViZG9tYWluIjoiYWNtZSIsImNsaWVudF91dWlkIjoiMGIwODMyZjYtZDEyMy00MTIzLTkxMjMtZTczZjIzNjgzM2MwIiwiZW50aXR5X2lkIjoyNzc1NDU5OSwiZW50aXR5X3R5cGUiOjIsImJvdF90eXBlIjoic2FsZXNib3QifQ.PhkyEkbQzdn6DGlhdr-1LDAz3fq8DxCn0R8J7H_Mvd1_J0SmTWO_SkxkRko98_eqdvC1tdGK-i3JOsH0q4ryFA"
	parts := strings.Split(vector, ".")
	if got := hmacSign("HS512", "test-client-secret", parts[0]+"."+parts[1]); got != parts[2] {
		t.Fatalf("signature %s, want %s", got, parts[2])
	}
	if tok := SignJWT("none", "x", map[string]any{"a": 1}); !strings.HasSuffix(tok, ".") {
		t.Fatalf("alg none token %s", tok)
	}
}

func TestLLMResponseFormat(t *testing.T) {
	s := startTest(t, Options{}, nil)
	schema := map[string]any{
		"type": "object",
		"properties": map[string]any{
			"reply": map[string]any{"type": "string"}, "handoff": map[string]any{"type": "boolean"}, "reason": map[string]any{"type": "string"},
		},
		"required": []any{"reply", "handoff", "reason"}, "additionalProperties": false,
	}
	ask := func(rf any, msg string) reply {
		return send(t, "POST", s.LLMURL+"/chat/completions", map[string]any{
			"model": "gpt-4o-mini", "response_format": rf,
			"messages": []any{map[string]any{"role": "user", "content": NewMessageMarker + "\n" + msg}},
		}, "Authorization", "Bearer sk-fake", "Content-Type", "application/json")
	}
	r := ask(map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "salesbot_reply", "strict": true, "schema": schema}}, "Please call me back")
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	content := r.json(t)["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"].(string)
	var a struct {
		Reply   string
		Handoff bool
		Reason  string
	}
	if err := json.Unmarshal([]byte(content), &a); err != nil || !a.Handoff || a.Reply == "" {
		t.Fatalf("answer %s", content)
	}
	loose := map[string]any{"type": "object", "properties": map[string]any{"reply": map[string]any{"type": "string"}}}
	for name, rf := range map[string]any{
		"strict without additionalProperties": map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "x", "strict": true, "schema": loose}},
		"no name":                             map[string]any{"type": "json_schema", "json_schema": map[string]any{"schema": schema}},
		"bad type":                            map[string]any{"type": "yaml"},
	} {
		if r := ask(rf, "hi"); r.status != 400 {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
}
