package kommotest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The OpenAI-compatible fake: POST /v1/chat/completions and GET /v1/models.
// It validates requests like the OpenAI API and answers with a summary that
// states it is fake, built from simple facts of the prompt.

// FakeLLMMarker is the first line of every fake LLM answer.
const FakeLLMMarker = "[FAKE LLM — not a real model]"

func llmError(w http.ResponseWriter, status int, message, typ string, param, code any) {
	writeJSON(w, status, "application/json", map[string]any{"error": map[string]any{
		"message": message, "type": typ, "param": param, "code": code,
	}})
}

func (s *Server) serveLLM(w http.ResponseWriter, r *http.Request) {
	route := r.Method + " " + r.URL.Path
	isCompletion := route == "POST /v1/chat/completions"
	if isCompletion {
		s.mu.Lock()
		s.stats.LLMCalls++
		s.mu.Unlock()
	}
	sleepCtx(r, s.opts.LLMLatency)
	if route != "POST /v1/chat/completions" && route != "GET /v1/models" {
		s.unknownRoute(r)
		llmError(w, http.StatusNotFound, fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path), "invalid_request_error", nil, nil)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+s.opts.LLMAPIKey {
		llmError(w, http.StatusUnauthorized, "Incorrect API key provided", "invalid_request_error", nil, "invalid_api_key")
		return
	}
	if !isCompletion {
		writeJSON(w, http.StatusOK, "application/json", map[string]any{"object": "list", "data": []any{
			map[string]any{"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "kommotest"},
		}})
		return
	}
	s.mu.Lock()
	s.llmCalls++
	throttled := s.llmCalls <= s.opts.LLM429First
	if throttled {
		s.stats.LLM429++
	}
	s.mu.Unlock()
	if throttled {
		llmError(w, http.StatusTooManyRequests, "Rate limit reached for requests", "requests", nil, "rate_limit_exceeded")
		return
	}
	s.completion(w, r)
}

type chatRequest struct {
	Model               string            `json:"model"`
	Messages            []json.RawMessage `json:"messages"`
	Temperature         *float64          `json:"temperature"`
	MaxTokens           *int64            `json:"max_tokens"`
	MaxCompletionTokens *int64            `json:"max_completion_tokens"`
	Stream              bool              `json:"stream"`
	ResponseFormat      json.RawMessage   `json:"response_format"`
}

func (s *Server) completion(w http.ResponseWriter, r *http.Request) {
	bad := func(msg string, param any, code any) {
		llmError(w, http.StatusBadRequest, msg, "invalid_request_error", param, code)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		bad("Could not read the request body.", nil, nil)
		return
	}
	var req chatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		bad("We could not parse the JSON body of your request. ("+err.Error()+")", nil, nil)
		return
	}
	switch {
	case req.Model == "":
		bad("you must provide a model parameter", "model", nil)
		return
	case len(req.Messages) == 0:
		bad("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.", "messages", "empty_array")
		return
	case req.Temperature != nil && (*req.Temperature < 0 || *req.Temperature > 2):
		bad(fmt.Sprintf("Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got %v instead.", *req.Temperature), "temperature", "decimal_above_max_value")
		return
	case req.MaxTokens != nil && *req.MaxTokens < 1:
		bad("Invalid 'max_tokens': integer below minimum value. Expected a value >= 1.", "max_tokens", "integer_below_min_value")
		return
	case req.MaxCompletionTokens != nil && *req.MaxCompletionTokens < 1:
		bad("Invalid 'max_completion_tokens': integer below minimum value. Expected a value >= 1.", "max_completion_tokens", "integer_below_min_value")
		return
	case req.Stream:
		bad("kommotest: the fake LLM does not stream; send stream=false", "stream", nil)
		return
	case reasoningModel(req.Model) && req.MaxTokens != nil:
		// OpenAI's reasoning models refuse the old parameter outright.
		bad("Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.", "max_tokens", "unsupported_parameter")
		return
	case reasoningModel(req.Model) && req.Temperature != nil && *req.Temperature != 1:
		bad(fmt.Sprintf("Unsupported value: 'temperature' does not support %v with this model. Only the default (1) value is supported.", *req.Temperature), "temperature", "unsupported_value")
		return
	}
	schema, problem := parseResponseFormat(req.ResponseFormat)
	if problem != "" {
		bad("Invalid 'response_format': "+problem, "response_format", nil)
		return
	}
	if msg := refusedFormat(req.Model, schema); msg != "" {
		bad(msg, "response_format", nil)
		return
	}
	var user, system strings.Builder
	firstUser := ""
	retried := false
	promptBytes := 0
	for i, raw := range req.Messages {
		role, content, msg := parseChatMessage(raw)
		if msg != "" {
			bad(fmt.Sprintf("Invalid 'messages[%d]': %s", i, msg), fmt.Sprintf("messages[%d]", i), nil)
			return
		}
		s.logPrompt(content)
		promptBytes += len(content)
		switch role {
		case "user":
			if firstUser == "" {
				firstUser = content
			}
			user.WriteString(content)
			user.WriteString("\n")
		case "system":
			system.WriteString(content)
			system.WriteString("\n")
		case "assistant":
			retried = true
		}
	}

	var answer, refusal string
	switch {
	case s.opts.LLMAnswer != nil:
		answer = s.opts.LLMAnswer(system.String(), user.String())
	case wantsSummaryJSON(schema, system.String()):
		switch {
		case req.Model == FakeModelInvalid, req.Model == FakeModelInvalidOnce && !retried:
			answer = `{"language": "en", "client_context": "` + FakeLLMMarker + ` cut off`
		case req.Model == FakeModelRefuse:
			refusal = "I'm sorry, I can't help with that."
		case req.Model == FakeModelEmpty:
			answer = ""
		default:
			answer = s.structuredAnswer(req.Model, system.String(), firstUser)
		}
	case schema != nil:
		answer = s.fakeStructured(schema, user.String())
	default:
		answer = s.fakeSummary(user.String())
	}
	finish := "stop"
	limit := int64(-1)
	if req.MaxTokens != nil {
		limit = *req.MaxTokens
	}
	if req.MaxCompletionTokens != nil {
		limit = *req.MaxCompletionTokens
	}
	if limit > 0 && int64(len(answer)/4) > limit {
		answer = cutBytes(answer, int(limit)*4)
		finish = "length"
	}
	if n := s.opts.LLMAnswerBytes; n > 0 {
		answer = hugeAnswer(n)
		finish = "stop"
	}
	switch s.opts.LLMFinishReason {
	case "":
	case "content_filter":
		answer, finish = "", "content_filter"
	case "length":
		answer, finish = cutBytes(answer, len(answer)/2), "length"
	default:
		finish = s.opts.LLMFinishReason
	}
	promptTokens := max(promptBytes/4, 1)
	completionTokens := max(len(answer)/4, 1)

	s.mu.Lock()
	n := s.stats.LLMCalls
	now := s.now().Unix()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, "application/json", map[string]any{
		"id":                 "chatcmpl-kommotest-" + strconv.Itoa(n),
		"object":             "chat.completion",
		"created":            now,
		"model":              req.Model,
		"system_fingerprint": "fp_kommotest",
		"choices": []any{map[string]any{
			"index":         0,
			"message":       fakeMessage(answer, refusal),
			"logprobs":      nil,
			"finish_reason": finish,
		}},
		"usage": map[string]any{
			"prompt_tokens": promptTokens, "completion_tokens": completionTokens,
			"total_tokens": promptTokens + completionTokens,
		},
	})
}

// reasoningModel reports the OpenAI model names that, like o1, o3, o4-mini
// and gpt-5, refuse max_tokens and any temperature but 1.
func reasoningModel(model string) bool {
	for _, p := range []string{"o1", "o3", "o4", "gpt-5"} {
		if strings.HasPrefix(model, p) {
			return true
		}
	}
	return false
}

// hugeAnswer is n bytes of text: the marker, then a filler line over and over.
func hugeAnswer(n int) string {
	var b strings.Builder
	b.Grow(n)
	b.WriteString(FakeLLMMarker + "\n")
	for b.Len() < n {
		b.WriteString("The fake model ignores max_tokens and goes on. ")
	}
	return b.String()[:n]
}

// parseChatMessage accepts what OpenAI accepts for these roles: string content,
// or an array of text parts. It returns a problem description when invalid.
func parseChatMessage(raw json.RawMessage) (role, content, problem string) {
	obj, ok := jsonObject(raw)
	if !ok {
		return "", "", "expected an object"
	}
	role, _ = jsonString(obj["role"])
	if !slices.Contains([]string{"system", "user", "assistant"}, role) {
		return "", "", "'role' must be one of system, user, assistant"
	}
	c := obj["content"]
	if str, ok := jsonString(c); ok {
		return role, str, ""
	}
	parts, ok := jsonArray(c)
	if !ok || len(parts) == 0 {
		return "", "", "'content' must be a string or a non-empty array of text parts"
	}
	var b strings.Builder
	for _, p := range parts {
		var part struct {
			Type string  `json:"type"`
			Text *string `json:"text"`
		}
		if json.Unmarshal(p, &part) != nil || part.Type != "text" || part.Text == nil {
			return "", "", "only text content parts are supported"
		}
		b.WriteString(*part.Text)
	}
	return role, b.String(), ""
}

// promptLine matches "dd.mm HH:MM [Sender]: text", optionally after a chat label.
var promptLine = regexp.MustCompile(`\d{2}\.\d{2} \d{2}:\d{2} \[([^\]]+)\]:\s?(.*)$`)
var leftOut = regexp.MustCompile(`(\d+)\D{0,20}(left out|пропущ)`)

type promptFacts struct {
	lines     int
	skipped   int
	clients   []string
	managers  []string
	text      strings.Builder
	lastLine  string
	lastClint string
}

func (s *Server) fakeSummary(user string) string {
	var f promptFacts
	for _, line := range strings.Split(user, "\n") {
		if m := leftOut.FindStringSubmatch(line); m != nil && !promptLine.MatchString(line) {
			n, _ := strconv.Atoi(m[1])
			f.skipped += n
			continue
		}
		m := promptLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		f.lines++
		name, text := m[1], m[2]
		f.text.WriteString(strings.ToLower(text))
		f.text.WriteString("\n")
		f.lastLine = text
		if s.acct.userNames[name] {
			if !slices.Contains(f.managers, name) {
				f.managers = append(f.managers, name)
			}
			continue
		}
		if !slices.Contains(f.clients, name) {
			f.clients = append(f.clients, name)
		}
		f.lastClint = text
	}
	has := func(words ...string) bool {
		for _, w := range words {
			if strings.Contains(f.text.String(), w) {
				return true
			}
		}
		return false
	}
	yesNo := func(found bool, yes, no string) string {
		if found {
			return yes
		}
		return no
	}
	list := func(names []string) string {
		if len(names) == 0 {
			return "nobody identified"
		}
		return strings.Join(names, ", ")
	}
	last := f.lastClint
	if last == "" {
		last = f.lastLine
	}
	if last == "" {
		last = "(no messages in the prompt)"
	}

	var b strings.Builder
	fmt.Fprintln(&b, FakeLLMMarker)
	fmt.Fprintf(&b, "Client context: %d messages in the prompt", f.lines)
	if f.skipped > 0 {
		fmt.Fprintf(&b, " (%d more left out)", f.skipped)
	}
	fmt.Fprintf(&b, "; client side: %s; managers: %s.\n", list(f.clients), list(f.managers))
	fmt.Fprintln(&b, "Key facts:")
	fmt.Fprintf(&b, "- Budget: %s.\n", yesNo(has("budget", "бюджет"), "the budget is discussed", "no budget mentioned"))
	fmt.Fprintf(&b, "- Timeline: %s.\n", yesNo(has("deadline", "timeline", "delivery", "срок", "достав"), "dates and delivery are discussed", "no timeline mentioned"))
	fmt.Fprintf(&b, "- Decision maker: %s.\n", yesNo(has("director", "cfo", "management", "committee", "директор", "руковод", "комитет"), "someone else decides (director / management)", "not named"))
	var objections []string
	if has("price", "cost", "cheaper", "цена", "стоим", "дешевле", "ценник") {
		objections = append(objections, "price")
	}
	if has("discount", "скидк") {
		objections = append(objections, "discount requested")
	}
	fmt.Fprintf(&b, "- Objections: %s.\n", yesNo(len(objections) > 0, strings.Join(objections, ", "), "none found"))
	fmt.Fprintf(&b, "Open questions: the last client message was %q.\n", cutRunes(last, 80))
	fmt.Fprint(&b, "Sentiment: neutral (a fake model does not judge tone).")
	return b.String()
}

func cutRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}

// cutBytes cuts s to at most n bytes without splitting a rune.
func cutBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return string(bytes.TrimRight([]byte(s[:n]), "\n"))
}

// fakeMessage is the choice's message: content, or a refusal with null
// content as OpenAI's structured outputs send it.
func fakeMessage(answer, refusal string) map[string]any {
	if refusal != "" {
		return map[string]any{"role": "assistant", "content": nil, "refusal": refusal}
	}
	return map[string]any{"role": "assistant", "content": answer, "refusal": nil}
}
