package kommotest

import (
	"encoding/json"
	"strings"
	"testing"
)

const promptUser = `Chat WhatsApp
20.10 11:00 [Сергей Кузнецов]: Здравствуйте! Какой у вас ценник? Наш бюджет — около 3 млн ₽.
20.10 12:43 [Анна Смирнова]: Согласовали скидку 10% при оплате до конца месяца.
… 12 messages left out …
21.10 09:53 [Сергей Кузнецов]: Решение принимает наш директор, я готовлю сравнение предложений, пришлите, пожалуйста, всё одним файлом до пятницы.
21.10 09:56 [Анна Смирнова]: Хорошо.`

func llmRequest(model string, extra map[string]any) map[string]any {
	req := map[string]any{"model": model, "messages": []any{
		map[string]any{"role": "system", "content": "Summarize. Key facts: budget, timeline, decision maker, objections."},
		map[string]any{"role": "user", "content": promptUser},
	}}
	for k, v := range extra {
		req[k] = v
	}
	return req
}

func TestLLMChecksTheKey(t *testing.T) {
	s := startTest(t, Options{LLMAPIKey: "sk-right"}, nil)
	if !strings.HasSuffix(s.LLMURL, "/v1") {
		t.Fatalf("LLMURL %q does not end with /v1", s.LLMURL)
	}
	for _, h := range [][]string{nil, bearer("sk-wrong")} {
		r := send(t, "POST", s.LLMURL+"/chat/completions", llmRequest("gpt-4o-mini", nil), append(h, "Content-Type", "application/json")...)
		wantStatus(t, r, 401)
		e := r.json(t)["error"].(map[string]any)
		if e["message"] != "Incorrect API key provided" || e["type"] != "invalid_request_error" || e["code"] != "invalid_api_key" {
			t.Errorf("401 body %s", r.body)
		}
		if _, ok := e["param"]; !ok {
			t.Error("401 error lacks param: null")
		}
	}
	wantStatus(t, send(t, "GET", s.LLMURL+"/models", nil), 401)
	r := send(t, "GET", s.LLMURL+"/models", nil, bearer("sk-right")...)
	wantStatus(t, r, 200)
	if dig(r.json(t), "data", 0, "id") == nil {
		t.Errorf("models: %s", r.body)
	}
	wantStatus(t, send(t, "POST", s.LLMURL+"/completions", llmRequest("m", nil), bearer("sk-right")...), 404)
	if got := takeUnknown(s); len(got) != 1 || got[0] != "POST /v1/completions" {
		t.Errorf("UnknownRequests = %q", got)
	}
}

func TestLLMAnswerShape(t *testing.T) {
	s := startTest(t, Options{}, nil)
	req := llmRequest("gpt-4o-mini", map[string]any{"temperature": 0.3, "max_tokens": 300})
	r := send(t, "POST", s.LLMURL+"/chat/completions", req, withJSON(bearer("sk-fake"))...)
	wantStatus(t, r, 200)
	var resp struct {
		ID      string
		Object  string
		Created int64
		Model   string
		Choices []struct {
			Index   int
			Message struct{ Role, Content string }
			Finish  string `json:"finish_reason"`
		}
		Usage struct {
			Prompt     int `json:"prompt_tokens"`
			Completion int `json:"completion_tokens"`
			Total      int `json:"total_tokens"`
		}
	}
	if err := json.Unmarshal(r.body, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.ID == "" || resp.Object != "chat.completion" || resp.Created == 0 || resp.Model != "gpt-4o-mini" || len(resp.Choices) != 1 {
		t.Fatalf("answer %s", r.body)
	}
	ch := resp.Choices[0]
	if ch.Index != 0 || ch.Message.Role != "assistant" || ch.Finish != "stop" {
		t.Errorf("choice %+v", ch)
	}
	text := ch.Message.Content
	if first, _, _ := strings.Cut(text, "\n"); first != "[FAKE LLM — not a real model]" {
		t.Errorf("first line %q", first)
	}
	for _, want := range []string{"Client context: 4 messages in the prompt (12 more left out)", "client side: Сергей Кузнецов",
		"managers: Анна Смирнова", "Key facts:", "- Budget: the budget is discussed", "- Decision maker: someone else decides",
		"- Objections: price, discount requested", "Open questions:", "Sentiment:", "сравнение предложений, пришлите, пожал…\".\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("answer lacks %q:\n%s", want, text)
		}
	}
	contents := len("Summarize. Key facts: budget, timeline, decision maker, objections.") + len(promptUser)
	if resp.Usage.Prompt != contents/4 || resp.Usage.Completion != len(text)/4 || resp.Usage.Total != resp.Usage.Prompt+resp.Usage.Completion {
		t.Errorf("usage %+v for %d prompt bytes and %d answer bytes", resp.Usage, contents, len(text))
	}

	// Same prompt, same answer: the fake is deterministic.
	r2 := send(t, "POST", s.LLMURL+"/chat/completions", req, withJSON(bearer("sk-fake"))...)
	if again := dig(r2.json(t), "choices", 0, "message", "content"); again != text {
		t.Errorf("the same prompt gave a different answer:\n%v", again)
	}

	// A tiny max_tokens cuts the answer, as a real model stops at the limit.
	r = send(t, "POST", s.LLMURL+"/chat/completions", llmRequest("m", map[string]any{"max_completion_tokens": 5}), withJSON(bearer("sk-fake"))...)
	m := r.json(t)
	if dig(m, "choices", 0, "finish_reason") != "length" || dig(m, "usage", "completion_tokens") != 5.0 {
		t.Errorf("max_completion_tokens 5: %s", r.body)
	}
}

func TestLLMValidatesRequests(t *testing.T) {
	s := startTest(t, Options{}, nil)
	h := withJSON(bearer("sk-fake"))
	for name, body := range map[string]any{
		"not JSON":        "{",
		"no model":        llmRequest("", nil),
		"no messages":     map[string]any{"model": "m", "messages": []any{}},
		"bad role":        map[string]any{"model": "m", "messages": []any{map[string]any{"role": "robot", "content": "x"}}},
		"number content":  map[string]any{"model": "m", "messages": []any{map[string]any{"role": "user", "content": 5}}},
		"temperature 2.5": llmRequest("m", map[string]any{"temperature": 2.5}),
		"temperature -1":  llmRequest("m", map[string]any{"temperature": -1}),
		"max_tokens 0":    llmRequest("m", map[string]any{"max_tokens": 0}),
	} {
		r := send(t, "POST", s.LLMURL+"/chat/completions", body, h...)
		if r.status != 400 {
			t.Errorf("%s: status %d, want 400", name, r.status)
			continue
		}
		if e, _ := r.json(t)["error"].(map[string]any); e["type"] != "invalid_request_error" || e["message"] == "" {
			t.Errorf("%s: body %s", name, r.body)
		}
	}
	parts := map[string]any{"model": "m", "messages": []any{map[string]any{"role": "user",
		"content": []any{map[string]any{"type": "text", "text": "21.10 09:53 [Client]: hello"}}}}}
	wantStatus(t, send(t, "POST", s.LLMURL+"/chat/completions", parts, h...), 200)
}

func TestLLM429First(t *testing.T) {
	s := startTest(t, Options{LLM429First: 2}, nil)
	h := withJSON(bearer("sk-fake"))
	for i := range 2 {
		r := send(t, "POST", s.LLMURL+"/chat/completions", llmRequest("m", nil), h...)
		wantStatus(t, r, 429)
		e := r.json(t)["error"].(map[string]any)
		if e["code"] != "rate_limit_exceeded" || e["type"] != "requests" || r.header.Get("Retry-After") != "" {
			t.Errorf("429 #%d: %v %s", i, r.header, r.body)
		}
	}
	wantStatus(t, send(t, "POST", s.LLMURL+"/chat/completions", llmRequest("m", nil), h...), 200)
	if st := s.Stats(); st.LLMCalls != 3 || st.LLM429 != 2 {
		t.Errorf("LLMCalls %d LLM429 %d, want 3 and 2", st.LLMCalls, st.LLM429)
	}
}

// Reasoning models refuse max_tokens and any temperature but 1, with
// OpenAI's error objects.
func TestLLMReasoningModelParameters(t *testing.T) {
	s := startTest(t, Options{}, nil)
	h := withJSON(bearer("sk-fake"))
	for _, tc := range []struct {
		model       string
		extra       map[string]any
		status      int
		param, code string
	}{
		{"o3-mini", map[string]any{"max_tokens": 300}, 400, "max_tokens", "unsupported_parameter"},
		{"gpt-5", map[string]any{"temperature": 0.3, "max_completion_tokens": 300}, 400, "temperature", "unsupported_value"},
		{"gpt-5", map[string]any{"temperature": 1, "max_completion_tokens": 300}, 200, "", ""},
		{"o1", map[string]any{"max_completion_tokens": 300}, 200, "", ""},
		{"gpt-4o-mini", map[string]any{"temperature": 0.3, "max_tokens": 300}, 200, "", ""},
	} {
		r := send(t, "POST", s.LLMURL+"/chat/completions", llmRequest(tc.model, tc.extra), h...)
		wantStatus(t, r, tc.status)
		if tc.status != 200 {
			e := r.json(t)
			if dig(e, "error", "param") != tc.param || dig(e, "error", "code") != tc.code || dig(e, "error", "type") != "invalid_request_error" {
				t.Errorf("%s %v: %s", tc.model, tc.extra, r.body)
			}
		}
	}
}

func TestLLMAnswerOptions(t *testing.T) {
	for _, tc := range []struct {
		opts   Options
		finish string
		check  func(text string) bool
	}{
		{Options{LLMAnswerBytes: 1 << 20}, "stop", func(s string) bool { return len(s) == 1<<20 }},
		{Options{LLMFinishReason: "content_filter"}, "content_filter", func(s string) bool { return s == "" }},
		{Options{LLMFinishReason: "length"}, "length", func(s string) bool { return strings.HasPrefix(s, FakeLLMMarker) }},
	} {
		s := startTest(t, tc.opts, nil)
		r := send(t, "POST", s.LLMURL+"/chat/completions", llmRequest("gpt-4o-mini", map[string]any{"max_tokens": 300}), withJSON(bearer("sk-fake"))...)
		wantStatus(t, r, 200)
		m := r.json(t)
		text, _ := dig(m, "choices", 0, "message", "content").(string)
		if dig(m, "choices", 0, "finish_reason") != tc.finish || !tc.check(text) {
			t.Errorf("%+v: finish %v, %d bytes of text", tc.opts, dig(m, "choices", 0, "finish_reason"), len(text))
		}
	}
}
