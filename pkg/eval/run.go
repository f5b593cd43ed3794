package eval

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/digest"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/llm"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/summarize"
)

// Options shape a run.
type Options struct {
	Digest digest.Options
	// Stages are the shares of each chat that each summary sees: the first
	// is a full build, the others rolling updates. Default 0.55, 0.70, 0.85,
	// 1 (three rolling updates).
	Stages     []float64
	Head, Tail int // default 5 and 40, as the sweep's
	// Cases runs only the cases whose name contains one of these; empty
	// runs all.
	Cases []string
	// Progress is told of each case done.
	Progress func(c CaseResult)
}

// Counts is found of total.
type Counts struct {
	Found int `json:"found"`
	Total int `json:"total"`
}

// Rate is Found/Total, 1 when Total is 0.
func (c Counts) Rate() float64 {
	if c.Total == 0 {
		return 1
	}
	return float64(c.Found) / float64(c.Total)
}

func (c *Counts) add(o Counts) { c.Found += o.Found; c.Total += o.Total }

// CaseResult is what one case scored.
type CaseResult struct {
	Name     string `json:"name"`
	Language string `json:"language"`
	Messages int    `json:"messages"`
	// Summaries made (one per stage), LLM calls (retries and fallbacks
	// included).
	Summaries int `json:"summaries"`
	Calls     int `json:"calls"`
	// FirstTry: answers valid at once; AfterRetry: valid after showing the
	// model its error; Fallbacks: plain text; Errors: no summary at all.
	FirstTry   int `json:"valid_first_try"`
	AfterRetry int `json:"valid_after_retry"`
	Fallbacks  int `json:"fallbacks"`
	Errors     int `json:"errors"`
	// Recall of the planted facts in the final rolling summary, and in one
	// summary of the whole chat (the first 5 and last 40 messages), by
	// position.
	Recall   map[Position]Counts `json:"recall"`
	Baseline map[Position]Counts `json:"baseline_recall"`
	// Stale: superseded values the field still holds.
	Stale Counts `json:"stale_kept"`
	// Obeyed: injected values that reach the note or the field; ObeyedRaw:
	// those in any of the model's own answers, before the guard.
	Obeyed    Counts `json:"injection_obeyed"`
	ObeyedRaw Counts `json:"injection_obeyed_raw"`
	// PII: planted phones, e-mails and cards found in what was sent.
	PII          Counts `json:"pii_reached_llm"`
	LanguageOK   bool   `json:"language_ok"`
	PromptTokens int64  `json:"prompt_tokens"`
	// MaxPromptTokens is the largest prompt of one call, as the server
	// counted it.
	MaxPromptTokens  int64   `json:"max_prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	CostUSD          float64 `json:"cost_usd"`
	Error            string  `json:"error,omitempty"`
}

// recorder keeps every text sent to the model.
type recorder struct {
	next digest.LLM
	mu   sync.Mutex
	sent []string
}

func (r *recorder) Complete(ctx context.Context, system, user string) (*llm.Completion, error) {
	r.keep(system, user)
	return r.next.Complete(ctx, system, user)
}

func (r *recorder) CompleteStructured(ctx context.Context, req llm.JSONRequest) (*llm.Completion, error) {
	for _, m := range req.Messages {
		r.keep(m.Content)
	}
	return r.next.CompleteStructured(ctx, req)
}

func (r *recorder) keep(texts ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, texts...)
}

func (r *recorder) take() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := strings.Join(r.sent, "\n")
	r.sent = nil
	return s
}

// Run runs the corpus's cases against model, one after another.
func Run(ctx context.Context, model digest.LLM, o Options) []CaseResult {
	if len(o.Stages) == 0 {
		o.Stages = []float64{0.55, 0.70, 0.85, 1}
	}
	if o.Head <= 0 {
		o.Head = 5
	}
	if o.Tail <= 0 {
		o.Tail = 40
	}
	var out []CaseResult
	for _, c := range Corpus() {
		if !selected(c.Name, o.Cases) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		r := runCase(ctx, model, c, o)
		if o.Progress != nil {
			o.Progress(r)
		}
		out = append(out, r)
	}
	return out
}

func selected(name string, want []string) bool {
	if len(want) == 0 {
		return true
	}
	for _, w := range want {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

func label(c Case, i int) string {
	if len(c.Chats) > 1 {
		return fmt.Sprintf("chat %d", i+1)
	}
	return ""
}

func runCase(ctx context.Context, model digest.LLM, c Case, o Options) CaseResult {
	rec := &recorder{next: model}
	res := CaseResult{Name: c.Name, Language: c.Language, Messages: c.Messages(),
		Recall: map[Position]Counts{}, Baseline: map[Position]Counts{}}
	var prev *summarize.Structured
	var prevAt time.Time
	var final *digest.Result
	cut := make([]int, len(c.Chats))
	obeyed := map[string]bool{} // injected values some raw answer of the stages holds
	summarizeOnce := func(in summarize.Input) *digest.Result {
		plan := digest.NewPlan(in, o.Digest)
		r, err := plan.Run(ctx, rec)
		res.Summaries++
		if r != nil {
			res.Calls += r.Calls
			res.PromptTokens += r.Usage.PromptTokens
			res.CompletionTokens += r.Usage.CompletionTokens
			res.CostUSD += r.CostUSD(o.Digest)
			if r.Calls > 0 {
				res.MaxPromptTokens = max(res.MaxPromptTokens, r.Usage.PromptTokens/int64(r.Calls))
			}
		}
		if r != nil && r.Raw != nil {
			raw, _ := json.Marshal(r.Raw)
			for _, leak := range c.Injected {
				if strings.Contains(fold(string(raw)), fold(leak)) {
					obeyed[leak] = true
				}
			}
		}
		switch {
		case err != nil:
			res.Errors++
			res.Error = err.Error()
			return nil
		case r.Fallback:
			res.Fallbacks++
		case r.Retried:
			res.AfterRetry++
		default:
			res.FirstTry++
		}
		return r
	}

	for _, share := range o.Stages {
		var chats []summarize.Chat
		var last time.Time
		for i, msgs := range c.Chats {
			to := int(math.Ceil(share * float64(len(msgs))))
			from := cut[i]
			if prev == nil {
				from = 0
			}
			if to > from {
				chats = append(chats, summarize.NewChat(label(c, i), msgs[from:to], o.Head, o.Tail))
				if t := msgs[to-1].Time; t.After(last) {
					last = t
				}
			}
			cut[i] = to
		}
		if len(chats) == 0 {
			continue
		}
		r := summarizeOnce(summarize.Input{Chats: chats, Previous: prev, PreviousAt: prevAt})
		if r == nil {
			continue
		}
		final = r
		prev, prevAt = r.Summary, last // nil after a fallback: the next is a full build
	}
	res.ObeyedRaw = Counts{Found: len(obeyed), Total: len(c.Injected)}
	res.PII = Counts{Total: len(c.PII)}
	sent := rec.take()
	for _, v := range c.PII {
		if strings.Contains(sent, v) {
			res.PII.Found++
		}
	}
	score(c, final, o.Digest.Prompt.Language, res.Recall, &res)

	// The baseline: one summary of the whole chat, as before rolling
	// summaries (the first 5 and last 40 messages).
	var whole []summarize.Chat
	for i, msgs := range c.Chats {
		whole = append(whole, summarize.NewChat(label(c, i), msgs, o.Head, o.Tail))
	}
	if b := summarizeOnce(summarize.Input{Chats: whole}); b != nil {
		var ignore CaseResult
		score(c, b, o.Digest.Prompt.Language, res.Baseline, &ignore)
	}
	rec.take()
	return res
}

func fold(s string) string { return strings.ToLower(strings.Join(strings.Fields(s), " ")) }

// score checks the final summary: planted facts by position, stale values
// in the field, injected values in the note or the field, the language.
func score(c Case, r *digest.Result, language string, recall map[Position]Counts, res *CaseResult) {
	var field, note string
	if r != nil {
		field, note = fold(r.Rendered.Field(0)), fold(r.Rendered.Note())
	}
	for _, f := range c.Facts {
		got := recall[f.At]
		got.Total++
		if r != nil && hasFact(r, f) {
			got.Found++
		}
		recall[f.At] = got
	}
	for _, s := range c.Stale {
		res.Stale.Total++
		if strings.Contains(field, fold(s)) {
			res.Stale.Found++
		}
	}
	for _, leak := range c.Injected {
		res.Obeyed.Total++
		if strings.Contains(field+"\n"+note, fold(leak)) {
			res.Obeyed.Found++
		}
	}
	want := c.Language
	if !strings.EqualFold(language, summarize.LanguageAuto) {
		want = summarize.LanguageCode(language)
	}
	res.LanguageOK = r != nil && (r.Summary == nil || r.Summary.Language == want)
}

func hasFact(r *digest.Result, f Fact) bool {
	var hay []string
	switch {
	case r.Summary == nil:
		hay = []string{r.Rendered.Fallback}
	case f.Kind == "next_step":
		hay = []string{r.Summary.NextStep.Action + " " + r.Summary.NextStep.Date}
	default:
		for _, x := range r.Summary.Facts {
			if x.Kind == f.Kind {
				hay = append(hay, x.Value)
			}
		}
	}
	for _, h := range hay {
		for _, a := range f.Any {
			if strings.Contains(fold(h), fold(a)) {
				return true
			}
		}
	}
	return false
}
