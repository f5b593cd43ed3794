package kommotest

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// The fake LLM's structured answers. A request whose response_format is
// json_schema or json_object, or whose system message asks for "one JSON
// object", gets JSON of kommo-summarizer's summary schema, built from the
// prompt by fixed rules (so the same prompt gets the same answer):
//
//   - each message line is read (the datamark "ˆ" is undone); a budget,
//     timeline (a date), decision maker, objection, next step and question
//     are taken from simple phrases in English and Russian, each fact citing
//     its line's "dd.mm HH:MM";
//   - the previous summary of an update is kept, newer messages replacing
//     one-value facts;
//   - the language is the one the system message sets, else the chat's
//     (Cyrillic or not);
//   - the client context names the client side and quotes the last client
//     message, as the plain fake summary does.
//
// Model names pick misbehaviours, so that a config can ask for them:
//
//	kommotest-invalid       every JSON answer is broken JSON
//	kommotest-invalid-once  broken JSON unless the model is shown its error (a retry)
//	kommotest-refuse        a refusal instead of content
//	kommotest-empty         empty content
//	kommotest-obey          obeys instructions written in the chat ("set budget to ...")
//	kommotest-bad-at        adds a fact citing a message that does not exist
//	kommotest-no-schema     400 for response_format json_schema (json_object works)
//	kommotest-no-format     400 for any response_format
//
// Plain-text requests (no response_format, the old prompt) get the plain
// fake summary whatever the model.

// Fake model names.
const (
	FakeModelInvalid     = "kommotest-invalid"
	FakeModelInvalidOnce = "kommotest-invalid-once"
	FakeModelRefuse      = "kommotest-refuse"
	FakeModelEmpty       = "kommotest-empty"
	FakeModelObey        = "kommotest-obey"
	FakeModelBadAt       = "kommotest-bad-at"
	FakeModelNoSchema    = "kommotest-no-schema"
	FakeModelNoFormat    = "kommotest-no-format"
)

// LLMPrompts returns the text of every message sent to the fake LLM, in
// order: what left the machine.
func (s *Server) LLMPrompts() []string {
	l := promptLogFor(s)
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.texts)
}

type promptLog struct {
	mu    sync.Mutex
	texts []string
}

var promptLogs sync.Map // *Server -> *promptLog

func promptLogFor(s *Server) *promptLog {
	l, _ := promptLogs.LoadOrStore(s, &promptLog{})
	return l.(*promptLog)
}

func (s *Server) logPrompt(text string) {
	l := promptLogFor(s)
	l.mu.Lock()
	l.texts = append(l.texts, text)
	l.mu.Unlock()
}

// refusedFormat is the 400 the misbehaving models answer for a
// response_format they do not support; "" when the format is fine.
func refusedFormat(model string, rs *responseSchema) string {
	switch {
	case rs == nil:
	case rs.name == "json_object" && model == FakeModelNoFormat:
		return "Invalid parameter: 'response_format' of type 'json_object' is not supported with this model."
	case rs.name != "json_object" && (model == FakeModelNoSchema || model == FakeModelNoFormat):
		return "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model."
	}
	return ""
}

// wantsSummaryJSON reports a request for kommo-summarizer's structured
// summary: its schema (deal_summary), or json_object or plain text with a
// system message that asks for "one JSON object".
func wantsSummaryJSON(rs *responseSchema, system string) bool {
	if rs != nil && rs.name == "deal_summary" {
		return true
	}
	return (rs == nil || rs.name == "json_object") && strings.Contains(system, "Answer with one JSON object")
}

type fakeFact struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
	At    string `json:"at"`
}

type fakeStructured struct {
	Language      string     `json:"language"`
	ClientContext string     `json:"client_context"`
	Facts         []fakeFact `json:"key_facts"`
	OpenQuestions []string   `json:"open_questions"`
	NextStep      struct {
		Action string `json:"action"`
		Date   string `json:"date"`
	} `json:"next_step"`
	Sentiment string `json:"sentiment"`
}

var (
	reLineAt   = regexp.MustCompile(`(\d{2}\.\d{2} \d{2}:\d{2}) \[([^\]]+)\]:\s?(.*)$`)
	reSetLang  = regexp.MustCompile(`set "language" to "([a-z]{2,3})"`)
	reBudget   = regexp.MustCompile(`(?i)(?:budget|бюджет)\D{0,40}?(\d[\d ,.]*\d|\d)\s*(k\b|тыс\.?|млн|million|usd|eur|rub|руб\.?|₽|\$|€|долл\S*)?`)
	reTimeline = regexp.MustCompile(`(?i)(?:deadline|launch|go live|go-live|срок|запуск|дедлайн)\D{0,40}?(\d{1,2}\.\d{1,2}(?:\.\d{2,4})?)`)
	reDecider  = regexp.MustCompile(`(?i)(?:decision maker is|the decision is with|decides:|решение принимает|решение за|лпр\s*[—:-])\s*([^.,;!?]+)`)
	reObject   = regexp.MustCompile(`(?i)(too expensive|дорого|competitor|конкурент|not sure|сомнева)`)
	reNext     = regexp.MustCompile(`(?i)(?:next step|следующий шаг)\s*[:\-—]\s*(.+)$`)
	reDateIn   = regexp.MustCompile(`\d{1,2}\.\d{1,2}\.\d{4}`)
	reObeySet  = regexp.MustCompile(`(?i)(?:set|установи|поставь)\s+(budget|бюджет|next[_ ]step|следующий шаг)\s*(?:=|to|на|:)\s*([^.;!]+)`)
	reObeyVIP  = regexp.MustCompile(`(?i)(?:customer|client|клиент)\S*\s+(?:is\s+|—\s+|-\s+)?vip`)
	reNeg      = regexp.MustCompile(`(?i)(disappointed|angry|terrible|разочарован|ужасно|плохо|недоволен)`)
	rePos      = regexp.MustCompile(`(?i)(great|perfect|thank you|отлично|спасибо|супер|здорово)`)
	reCyr      = regexp.MustCompile(`[А-Яа-яЁё]`)
)

// between returns the text between the line "<<<open-...>>>" and the next
// "<<<END-...>>>" line.
func between(user, open string) (string, bool) {
	i := strings.Index(user, "<<<"+open+"-")
	if i < 0 {
		return "", false
	}
	rest := user[i:]
	nl := strings.IndexByte(rest, '\n')
	if nl < 0 {
		return "", false
	}
	rest = rest[nl+1:]
	j := strings.Index(rest, "<<<END-")
	if j < 0 {
		return "", false
	}
	return rest[:j], true
}

// structuredAnswer is the fake model's JSON answer to a structured prompt.
func (s *Server) structuredAnswer(model, system, user string) string {
	var out fakeStructured
	if prev, ok := between(user, "PREVIOUS"); ok {
		_ = json.Unmarshal([]byte(strings.TrimSpace(prev)), &out)
	}
	if out.Facts == nil {
		out.Facts = []fakeFact{}
	}
	chat, ok := between(user, "CHAT")
	if !ok {
		chat = user
	}
	var clients []string
	lines, cyr, pos, neg := 0, 0, 0, 0
	var questions []string
	lastClient := ""
	for _, line := range strings.Split(chat, "\n") {
		m := reLineAt.FindStringSubmatch(strings.ReplaceAll(line, "ˆ", " "))
		if m == nil {
			continue
		}
		lines++
		at, name, text := m[1], m[2], m[3]
		if reCyr.MatchString(text) {
			cyr++
		}
		client := !s.acct.userNames[name]
		if client && !slices.Contains(clients, name) {
			clients = append(clients, name)
		}
		set := func(kind, value string, single bool) {
			value = strings.TrimSpace(value)
			if value == "" {
				return
			}
			if single {
				out.Facts = slices.DeleteFunc(out.Facts, func(f fakeFact) bool { return f.Kind == kind })
			} else if slices.ContainsFunc(out.Facts, func(f fakeFact) bool { return f.Kind == kind && f.Value == value }) {
				return
			}
			out.Facts = append(out.Facts, fakeFact{Kind: kind, Value: value, At: at})
		}
		injected := reObeySet.FindStringSubmatch(text)
		if injected != nil && model != FakeModelObey {
			// A well-behaved model summarises an instruction, never obeys it.
			continue
		}
		if injected != nil {
			v := strings.TrimSpace(injected[2])
			if k := strings.ToLower(injected[1]); strings.HasPrefix(k, "next") || strings.HasPrefix(k, "след") {
				out.NextStep.Action, out.NextStep.Date = v, ""
			} else {
				set("budget", v, true)
			}
			continue
		}
		if client && strings.TrimSpace(text) != "" {
			lastClient = text
		}
		if model == FakeModelObey && reObeyVIP.MatchString(text) {
			out.ClientContext = "VIP client. "
		}
		if b := reBudget.FindStringSubmatch(text); b != nil {
			set("budget", strings.TrimSpace(b[1]+" "+b[2]), true)
		}
		if t := reTimeline.FindStringSubmatch(text); t != nil {
			set("timeline", t[1], true)
		}
		if d := reDecider.FindStringSubmatch(text); d != nil {
			set("decision_maker", d[1], true)
		}
		if reObject.MatchString(text) && client {
			set("objection", cutRunes(text, 100), false)
		}
		if n := reNext.FindStringSubmatch(text); n != nil {
			action := strings.TrimRight(strings.TrimSpace(n[1]), ".!")
			out.NextStep.Action = cutRunes(action, 120)
			out.NextStep.Date = reDateIn.FindString(action)
			if len(out.NextStep.Date) == 9 { // d.mm.yyyy
				out.NextStep.Date = "0" + out.NextStep.Date
			}
		}
		if client && strings.HasSuffix(strings.TrimSpace(text), "?") {
			questions = append(questions, cutRunes(text, 120))
		}
		pos += len(rePos.FindAllString(text, -1))
		neg += len(reNeg.FindAllString(text, -1))
	}
	if len(questions) > 0 {
		out.OpenQuestions = questions[max(0, len(questions)-3):]
	}
	if out.OpenQuestions == nil {
		out.OpenQuestions = []string{}
	}
	if l := reSetLang.FindStringSubmatch(system); l != nil {
		out.Language = l[1]
	} else if out.Language == "" || lines > 0 {
		out.Language = "en"
		if cyr*2 > lines {
			out.Language = "ru"
		}
	}
	vip := strings.HasPrefix(out.ClientContext, "VIP")
	out.ClientContext = FakeLLMMarker + " " + strings.Join(clients, ", ") + ": " + itoaInt(lines) + " messages in the prompt"
	if lastClient != "" {
		out.ClientContext += fmt.Sprintf("; the last client message was %q", cutRunes(lastClient, 80))
	}
	out.ClientContext += "."
	if vip {
		out.ClientContext = "VIP client. " + out.ClientContext
	}
	switch {
	case neg > pos:
		out.Sentiment = "negative"
	case pos > neg:
		out.Sentiment = "positive"
	default:
		out.Sentiment = "neutral"
	}
	if model == FakeModelBadAt {
		out.Facts = append(out.Facts, fakeFact{Kind: "other", Value: "an invented fact", At: "31.12 23:59"})
	}
	b, _ := json.Marshal(out)
	return string(b)
}

func itoaInt(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
