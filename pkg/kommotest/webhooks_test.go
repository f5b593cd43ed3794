package kommotest

import (
	"fmt"
	"net/url"
	"reflect"
	"testing"
)

func TestWebhooksRegistry(t *testing.T) {
	s := startTest(t, Options{RESTRateLimit: -1}, newClock())
	h := withJSON(bearer(s.LongLivedToken()))
	api := s.KommoURL + "/api/v4/webhooks"
	dest := "http://127.0.0.1:9/webhooks/kommo/secret/"

	wantStatus(t, send(t, "GET", api, nil, h...), 204)
	wantStatus(t, send(t, "POST", api, map[string]any{"destination": dest, "settings": []string{"add_message"}}), 401)

	r := send(t, "POST", api, map[string]any{"destination": dest, "settings": []string{"add_message", "update_lead", "add_message"}}, h...)
	wantStatus(t, r, 201)
	m := r.json(t)
	if dig(m, "destination") != dest || dig(m, "disabled") != false || dig(m, "account_id") != float64(accountID) ||
		!reflect.DeepEqual(dig(m, "settings"), []any{"add_message", "update_lead"}) || dig(m, "id") == nil ||
		dig(m, "created_at") == nil || dig(m, "sort") != 1.0 {
		t.Errorf("created webhook: %s", r.body)
	}
	id := dig(m, "id")

	// The same destination replaces the settings and enables the hook again.
	if !s.SetWebhookDisabled(dest, true) {
		t.Fatal("SetWebhookDisabled did not find the destination")
	}
	r = send(t, "POST", api, map[string]any{"destination": dest, "settings": []string{"add_outgoing_message"}, "sort": 10}, h...)
	wantStatus(t, r, 201)
	m = r.json(t)
	if dig(m, "id") != id || dig(m, "disabled") != false || dig(m, "sort") != 10.0 ||
		!reflect.DeepEqual(dig(m, "settings"), []any{"add_outgoing_message"}) {
		t.Errorf("re-posted webhook: %s", r.body)
	}

	other := "https://bot.example.com/hook/"
	wantStatus(t, send(t, "POST", api, map[string]any{"destination": other, "settings": []string{"add_talk"}}, h...), 201)
	r = send(t, "GET", api, nil, h...)
	wantStatus(t, r, 200)
	if m := r.json(t); dig(m, "_total_items") != 2.0 || dig(m, "_embedded", "webhooks", 1, "destination") != other {
		t.Errorf("list: %s", r.body)
	}
	r = send(t, "GET", api+"?"+url.Values{"filter[destination]": {dest}}.Encode(), nil, h...)
	if m := r.json(t); dig(m, "_total_items") != 1.0 || dig(m, "_embedded", "webhooks", 0, "id") != id {
		t.Errorf("filtered list: %s", r.body)
	}
	wantStatus(t, send(t, "GET", api+"?filter[destination]=http://127.0.0.1:9/nope/", nil, h...), 204)
	validation(t, send(t, "GET", api+"?filter[id]=1", nil, h...))

	wantStatus(t, send(t, "DELETE", api, map[string]any{"destination": other}, h...), 204)
	wantStatus(t, send(t, "DELETE", api, map[string]any{"destination": other}, h...), 404)
	validation(t, send(t, "DELETE", api, map[string]any{}, h...))
	if got := s.Webhooks(); len(got) != 1 || got[0].Destination != dest {
		t.Errorf("Webhooks() = %+v", got)
	}
}

func TestWebhooksValidation(t *testing.T) {
	s := startTest(t, Options{RESTRateLimit: -1}, newClock())
	h := withJSON(bearer(s.LongLivedToken()))
	api := s.KommoURL + "/api/v4/webhooks"
	tests := []struct {
		name string
		body map[string]any
		want [3]string
	}{
		{"no destination", map[string]any{"settings": []string{"add_message"}}, [3]string{"0", "NotBlank", "destination"}},
		{"ftp", map[string]any{"destination": "ftp://127.0.0.1/x/", "settings": []string{"add_message"}}, [3]string{"0", "InvalidValue", "destination"}},
		{"relative", map[string]any{"destination": "/hook/", "settings": []string{"add_message"}}, [3]string{"0", "InvalidValue", "destination"}},
		{"cyrillic", map[string]any{"destination": "https://бот.рф/hook/", "settings": []string{"add_message"}}, [3]string{"0", "InvalidValue", "destination"}},
		{"no settings", map[string]any{"destination": "https://bot.example.com/hook/"}, [3]string{"0", "NotBlank", "settings"}},
		{"empty settings", map[string]any{"destination": "https://bot.example.com/hook/", "settings": []string{}}, [3]string{"0", "NotBlank", "settings"}},
		{"unknown setting", map[string]any{"destination": "https://bot.example.com/hook/", "settings": []string{"add_message", "add_mesage"}}, [3]string{"0", "NotSupportedChoice", "settings.1"}},
		{"sort not int", map[string]any{"destination": "https://bot.example.com/hook/", "settings": []string{"add_message"}, "sort": "1"}, [3]string{"0", "InvalidType", "sort"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := validation(t, send(t, "POST", api, tt.body, h...))
			if !reflect.DeepEqual(got, [][3]string{tt.want}) {
				t.Errorf("validation errors %v, want %v", got, tt.want)
			}
		})
	}
	r := send(t, "POST", api, map[string]any{"destination": "ftp://127.0.0.1/x/", "settings": []string{"add_message"}}, h...)
	if m := r.json(t); dig(m, "validation-errors", 0, "errors", 0, "detail") != invalidURL {
		t.Errorf("ftp destination: %s", r.body)
	}
	wantStatus(t, send(t, "POST", api, `{"destination":"https://x.example.com/h/","settings":["add_message"]}`, bearer(s.LongLivedToken())...), 415)
	// The official example, without a trailing slash.
	wantStatus(t, send(t, "POST", api, map[string]any{"destination": "https://example.test", "settings": []string{"add_lead"}, "sort": 10}, h...), 201)
	wantStatus(t, send(t, "DELETE", api, map[string]any{"destination": "https://example.test"}, h...), 204)

	for i := range maxWebhooks {
		wantStatus(t, send(t, "POST", api, map[string]any{"destination": fmt.Sprintf("https://h%d.example.com/h/", i),
			"settings": []string{"add_message"}}, h...), 201)
	}
	validation(t, send(t, "POST", api, map[string]any{"destination": "https://one-more.example.com/h/", "settings": []string{"add_message"}}, h...))
	// Updating an existing one is still allowed at the limit.
	wantStatus(t, send(t, "POST", api, map[string]any{"destination": "https://h0.example.com/h/", "settings": []string{"add_talk"}}, h...), 201)
}

func TestWebhooksCountAgainstTheRateLimit(t *testing.T) {
	s := startTest(t, Options{}, newClock())
	h := bearer(s.LongLivedToken())
	codes := map[int]int{}
	for range 9 {
		codes[send(t, "GET", s.KommoURL+"/api/v4/webhooks", nil, h...).status]++
	}
	if codes[204] != 7 || codes[429] != 2 {
		t.Errorf("answers %v, want 7 × 204 and 2 × 429", codes)
	}
}
