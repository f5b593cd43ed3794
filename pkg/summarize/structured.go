package summarize

import (
	"bytes"
	"encoding/json"

	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Structured is the summary the model answers as JSON (Schema), checked by
// ParseStructured. It is what the sweep keeps for the next rolling update,
// and what Render turns into the note and the field.
type Structured struct {
	// Language is the ISO 639-1 code of the summary's text ("ru", "en").
	Language      string `json:"language"`
	ClientContext string `json:"client_context"`
	Facts         []Fact `json:"key_facts"`
	// OpenQuestions are what the client asked that is still unanswered,
	// and what the rep should clarify.
	OpenQuestions []string `json:"open_questions"`
	NextStep      NextStep `json:"next_step"`
	Sentiment     string   `json:"sentiment"` // one of Sentiments
}

// Fact is one key fact and the message it came from.
type Fact struct {
	Kind  string `json:"kind"` // one of FactKinds
	Value string `json:"value"`
	// At is the time of the message the fact came from, "dd.mm HH:MM" as
	// the prompt shows it; Verify checks that such a message was shown.
	At string `json:"at"`
}

// NextStep is the agreed next step; Action "" means none was agreed.
type NextStep struct {
	Action string `json:"action"`
	Date   string `json:"date"` // "dd.mm.yyyy", or "" when no date was agreed
}

// The fact kinds. Budget, timeline and decision maker hold one value each (a
// newer one replaces the older); a lead may have several objections and
// other facts.
const (
	KindBudget        = "budget"
	KindTimeline      = "timeline"
	KindDecisionMaker = "decision_maker"
	KindObjection     = "objection"
	KindOther         = "other"
)

// FactKinds are the kinds a Fact may have, in the order the note lists them.
var FactKinds = []string{KindBudget, KindTimeline, KindDecisionMaker, KindObjection, KindOther}

// Sentiments are the values of Structured.Sentiment.
var Sentiments = []string{"positive", "neutral", "negative"}

// Bounds of the answer: longer strings are cut, longer lists truncated.
const (
	maxContextRunes  = 600
	maxValueRunes    = 240
	maxFacts         = 24
	maxQuestions     = 10
	maxAnswerToParse = 256 << 10
)

// Schema returns the JSON schema of Structured in the strict subset of
// OpenAI's structured outputs: every property required, no other
// properties. A fresh map each call: callers may not share it.
func Schema() map[string]any {
	str := func(desc string) map[string]any { return map[string]any{"type": "string", "description": desc} }
	obj := func(props map[string]any, order ...string) map[string]any {
		return map[string]any{"type": "object", "properties": props, "required": order, "additionalProperties": false}
	}
	return obj(map[string]any{
		"language":       str("ISO 639-1 code of the language the summary is written in"),
		"client_context": str("who the client is and what they want, one or two sentences"),
		"key_facts": map[string]any{"type": "array", "items": obj(map[string]any{
			"kind":  map[string]any{"type": "string", "enum": FactKinds},
			"value": str("the fact, with exact numbers, currencies, names and dates as written"),
			"at":    str("dd.mm HH:MM of the chat message the fact comes from, exactly as shown"),
		}, "kind", "value", "at")},
		"open_questions": map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
		"next_step": obj(map[string]any{
			"action": str("the agreed next step, or empty"),
			"date":   str("dd.mm.yyyy of the next step, or empty"),
		}, "action", "date"),
		"sentiment": map[string]any{"type": "string", "enum": Sentiments},
	}, "language", "client_context", "key_facts", "open_questions", "next_step", "sentiment")
}

// SchemaName names Schema in the request.
const SchemaName = "deal_summary"

// ValidationError lists what is wrong with a structured answer, in words
// the model can act on when it is shown the error.
type ValidationError struct{ Problems []string }

func (e *ValidationError) Error() string {
	return "the answer does not match the schema: " + strings.Join(e.Problems, "; ")
}

var (
	reAt       = regexp.MustCompile(`^\d{2}\.\d{2} \d{2}:\d{2}$`)
	reDate     = regexp.MustCompile(`^\d{2}\.\d{2}(\.\d{4})?$`)
	reLangCode = regexp.MustCompile(`^[a-z]{2,3}$`)
)

// ParseStructured reads a model's JSON answer and checks it against the
// schema: the fields and their types, the enums, the "at" and date formats.
// A <think> block and ``` fences around the JSON are dropped; the datamark
// (DataMark) is turned back into spaces; strings are put on one line and cut
// to their bounds; repeated facts and questions are dropped. ErrEmptyAnswer for an empty answer; otherwise a
// *ValidationError.
func ParseStructured(raw string) (*Structured, error) {
	raw = dropThinking(strings.TrimSpace(cutBytes(raw, maxAnswerToParse)))
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, ErrEmptyAnswer
	}
	if i, j := strings.IndexByte(raw, '{'), strings.LastIndexByte(raw, '}'); i >= 0 && j > i {
		raw = raw[i : j+1]
	} else {
		return nil, &ValidationError{[]string{"the answer is not a JSON object"}}
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	var s Structured
	if err := dec.Decode(&s); err != nil {
		return nil, &ValidationError{[]string{"the answer is not valid JSON of the schema: " + err.Error()}}
	}
	var probs []string
	var present map[string]json.RawMessage
	_ = json.Unmarshal([]byte(raw), &present)
	for _, k := range []string{"language", "client_context", "key_facts", "open_questions", "next_step", "sentiment"} {
		if _, ok := present[k]; !ok {
			probs = append(probs, fmt.Sprintf("%q is missing", k))
		}
	}
	clean := func(v string, n int) string { return Cut(oneLine(strings.ReplaceAll(v, DataMark, " ")), n) }
	s.Language = strings.ToLower(clean(s.Language, 10))
	if i := strings.IndexAny(s.Language, "-_"); i > 0 {
		s.Language = s.Language[:i]
	}
	if !reLangCode.MatchString(s.Language) {
		probs = append(probs, fmt.Sprintf("language %q is not an ISO 639-1 code like \"en\"", s.Language))
	}
	s.ClientContext = clean(s.ClientContext, maxContextRunes)
	s.Sentiment = strings.ToLower(clean(s.Sentiment, 20))
	if !slices.Contains(Sentiments, s.Sentiment) {
		probs = append(probs, fmt.Sprintf("sentiment %q is not one of %s", s.Sentiment, strings.Join(Sentiments, ", ")))
	}
	facts := s.Facts[:0]
	for i, f := range s.Facts {
		f.Kind = strings.ToLower(clean(f.Kind, 30))
		f.Value = clean(f.Value, maxValueRunes)
		f.At = clean(f.At, 20)
		switch {
		case !slices.Contains(FactKinds, f.Kind):
			probs = append(probs, fmt.Sprintf("key_facts[%d].kind %q is not one of %s", i, f.Kind, strings.Join(FactKinds, ", ")))
		case f.Value == "":
			continue // an empty fact says nothing: drop it, no retry for that
		case !reAt.MatchString(f.At):
			probs = append(probs, fmt.Sprintf("key_facts[%d].at %q is not \"dd.mm HH:MM\" of a chat message", i, f.At))
		default:
			dup := slices.ContainsFunc(facts, func(g Fact) bool { return g.Kind == f.Kind && norm(g.Value) == norm(f.Value) })
			if !dup && len(facts) < maxFacts {
				facts = append(facts, f)
			}
		}
	}
	s.Facts = facts
	qs := []string{}
	for _, q := range s.OpenQuestions {
		q = clean(q, maxValueRunes)
		if q != "" && len(qs) < maxQuestions && !slices.ContainsFunc(qs, func(x string) bool { return norm(x) == norm(q) }) {
			qs = append(qs, q)
		}
	}
	s.OpenQuestions = qs
	s.NextStep.Action = clean(s.NextStep.Action, maxValueRunes)
	s.NextStep.Date = clean(s.NextStep.Date, 20)
	if s.NextStep.Date != "" && !reDate.MatchString(s.NextStep.Date) {
		probs = append(probs, fmt.Sprintf("next_step.date %q is not \"dd.mm.yyyy\" or empty", s.NextStep.Date))
	}
	if len(probs) > 0 {
		return nil, &ValidationError{probs[:min(len(probs), 6)]}
	}
	if s.ClientContext == "" && len(s.Facts) == 0 && s.NextStep.Action == "" && len(s.OpenQuestions) == 0 {
		return nil, ErrEmptyAnswer
	}
	return &s, nil
}

// Strings calls f on every text of s and stores what it returns: the
// redaction is undone this way.
func (s *Structured) Strings(f func(string) string) {
	s.ClientContext = f(s.ClientContext)
	for i := range s.Facts {
		s.Facts[i].Value = f(s.Facts[i].Value)
	}
	for i := range s.OpenQuestions {
		s.OpenQuestions[i] = f(s.OpenQuestions[i])
	}
	s.NextStep.Action = f(s.NextStep.Action)
}

// Clone returns a deep copy of s.
func (s *Structured) Clone() *Structured {
	if s == nil {
		return nil
	}
	c := *s
	c.Facts = slices.Clone(s.Facts)
	c.OpenQuestions = slices.Clone(s.OpenQuestions)
	return &c
}

// Verify splits s's facts into those whose "at" names a message the model
// was shown (seen) and those that name none: an unverified fact is never
// written to the field.
func Verify(s *Structured, seen map[string]bool) (unverified []Fact) {
	kept := s.Facts[:0:0]
	for _, f := range s.Facts {
		if seen[f.At] {
			kept = append(kept, f)
		} else {
			unverified = append(unverified, f)
		}
	}
	s.Facts = kept
	return unverified
}

// Change is one difference between two summaries: a new fact (Old ""), a
// changed value, a changed next step or sentiment.
type Change struct {
	Label    string // the heading it is under: a fact kind, "next_step", "sentiment"
	Old, New string
}

// Diff lists what changed from prev to cur: new facts, changed values of
// the one-value kinds, a changed next step or sentiment. Nil when prev is nil.
func Diff(prev, cur *Structured) []Change {
	if prev == nil || cur == nil {
		return nil
	}
	var out []Change
	norm := func(s string) string { return strings.ToLower(strings.Join(strings.Fields(s), " ")) }
	single := func(k string) bool { return k == KindBudget || k == KindTimeline || k == KindDecisionMaker }
	for _, kind := range FactKinds {
		var was, now []string
		for _, f := range prev.Facts {
			if f.Kind == kind {
				was = append(was, f.Value)
			}
		}
		for _, f := range cur.Facts {
			if f.Kind == kind {
				now = append(now, f.Value)
			}
		}
		if single(kind) && len(was) > 0 && len(now) > 0 {
			if o, n := was[len(was)-1], now[len(now)-1]; norm(o) != norm(n) {
				out = append(out, Change{Label: kind, Old: o, New: n})
			}
			continue
		}
		for _, n := range now {
			if !slices.ContainsFunc(was, func(o string) bool { return norm(o) == norm(n) }) {
				out = append(out, Change{Label: kind, New: n})
			}
		}
	}
	step := func(n NextStep) string {
		if n.Date == "" {
			return n.Action
		}
		return strings.TrimSpace(n.Action + " — " + n.Date)
	}
	if o, n := step(prev.NextStep), step(cur.NextStep); norm(o) != norm(n) && n != "" {
		out = append(out, Change{Label: "next_step", Old: o, New: n})
	}
	if prev.Sentiment != cur.Sentiment && cur.Sentiment != "" {
		out = append(out, Change{Label: "sentiment", Old: prev.Sentiment, New: cur.Sentiment})
	}
	return out
}

// CarryForward puts back into cur the budget, timeline and decision maker
// of prev that cur lacks altogether: a rolling update may only change such
// a fact (a newer message states another value), never lose it. It returns
// how many facts it put back.
func CarryForward(prev, cur *Structured) int {
	if prev == nil || cur == nil {
		return 0
	}
	n := 0
	for _, kind := range []string{KindBudget, KindTimeline, KindDecisionMaker} {
		if slices.ContainsFunc(cur.Facts, func(f Fact) bool { return f.Kind == kind }) {
			continue
		}
		for i := len(prev.Facts) - 1; i >= 0; i-- {
			if prev.Facts[i].Kind == kind {
				cur.Facts = append(cur.Facts, prev.Facts[i])
				n++
				break
			}
		}
	}
	return n
}
