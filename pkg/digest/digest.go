// Package digest makes one lead's structured summary with an LLM: it hides
// personal data (pkg/redact), builds the prompt (pkg/summarize), asks for
// JSON of the schema, validates the answer, retries once showing the model
// its validation error, falls back to a plain-text summary marked as such,
// restores the hidden data, checks each fact's cited message, and renders
// the note and the field. The sweep and `eval` share it.
package digest

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/llm"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/redact"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/summarize"
)

// LLM is what a digest needs from the model's client.
type LLM interface {
	Complete(ctx context.Context, system, user string) (*llm.Completion, error)
	CompleteStructured(ctx context.Context, req llm.JSONRequest) (*llm.Completion, error)
}

// Options shape every digest.
type Options struct {
	Prompt summarize.Options
	// Redact hides phones, e-mails, cards and IBANs from the model.
	Redact bool
	// MaxOutputTokens is llm.max_tokens: the most one answer may cost.
	MaxOutputTokens int
	// Prices in USD per million tokens, for the estimate.
	PriceInputPer1M, PriceOutputPer1M float64
}

// Plan is a prompt ready to send: what it costs at most, and what it is
// made from.
type Plan struct {
	o        Options
	in       summarize.Input
	red      *redact.Redactor
	prompt   summarize.StructuredPrompt
	redacted []summarize.Chat
	known    *knownText
	// Rolling is true when the prompt updates a previous summary.
	Rolling bool
	// InputHash identifies the prompt: the same hash, the same answer.
	InputHash string
	// Tokens is the prompt's estimated size; EstimateUSD what one call costs
	// at most (the prompt, and max_tokens of answer).
	Tokens      int
	EstimateUSD float64
	// Redacted counts the values hidden, per kind.
	Redacted map[string]int
}

// NewPlan builds the prompt for in. A nil in.Previous builds the summary
// from the chats alone.
func NewPlan(in summarize.Input, o Options) *Plan {
	p := &Plan{o: o, in: in, Rolling: in.Previous != nil}
	chats := in.Chats
	prev := in.Previous
	if o.Redact {
		p.red = redact.New()
		chats = redactChats(p.red, chats)
		if prev != nil {
			prev = prev.Clone()
			prev.Strings(p.red.Redact)
		}
		p.Redacted = p.red.Counts()
	}
	p.redacted = chats
	p.prompt = summarize.BuildStructured(summarize.Input{Chats: chats, Previous: prev, PreviousAt: in.PreviousAt}, o.Prompt)
	p.InputHash = summarize.InputHash(p.prompt.System, p.prompt.User)
	p.Tokens = p.prompt.Tokens
	p.EstimateUSD = Cost(int64(p.Tokens), int64(max(o.MaxOutputTokens, 0)), o.PriceInputPer1M, o.PriceOutputPer1M)
	return p
}

// Prompt returns the system and user messages the model is sent: after
// redaction, so this is exactly what leaves the machine.
func (p *Plan) Prompt() (system, user string) { return p.prompt.System, p.prompt.User }

// Cost is the price of a call in USD.
func Cost(promptTokens, completionTokens int64, inPer1M, outPer1M float64) float64 {
	return float64(promptTokens)/1e6*inPer1M + float64(completionTokens)/1e6*outPer1M
}

func redactChats(r *redact.Redactor, chats []summarize.Chat) []summarize.Chat {
	out := make([]summarize.Chat, len(chats))
	for i, c := range chats {
		out[i] = summarize.Chat{Label: c.Label, Total: c.Total, Head: redactMsgs(r, c.Head), Tail: redactMsgs(r, c.Tail)}
	}
	return out
}

func redactMsgs(r *redact.Redactor, ms []summarize.Message) []summarize.Message {
	out := make([]summarize.Message, len(ms))
	for i, m := range ms {
		m.Text = r.Redact(m.Text)
		m.Sender = r.Redact(m.Sender)
		m.FileName = r.Redact(m.FileName)
		if m.Contact != nil {
			m.Contact = &summarize.ContactCard{Name: r.Redact(m.Contact.Name), Phone: r.Redact(m.Contact.Phone)}
		}
		out[i] = m
	}
	return out
}

// Result is a digest made.
type Result struct {
	// Rendered is what goes to Kommo: Rendered.Note() and Rendered.Field().
	Rendered summarize.Rendered
	// Summary is the verified structured summary with the hidden data put
	// back: what the next rolling update starts from. Nil for a fallback.
	Summary *summarize.Structured
	// Fallback is true when the structured answer failed twice and the note
	// holds a plain-text summary.
	Fallback bool
	// Retried is true when the first answer failed validation; Problem is
	// why (the first answer's, or the fallback's reason).
	Retried bool
	Problem string
	// Raw is the model's answer before the injection guard and the
	// evidence check (placeholders not restored), for eval.
	Raw *summarize.Structured
	// Injected is what the guard removed: values taken from messages that
	// give the model instructions.
	Injected summarize.Injected
	// Carried counts the previous summary's one-value facts that the
	// update left out and that were put back.
	Carried int
	Calls   int
	Usage   llm.Usage
	Model   string
	Format  llm.Format
}

// CostUSD is what the calls cost.
func (r *Result) CostUSD(o Options) float64 {
	return Cost(r.Usage.PromptTokens, r.Usage.CompletionTokens, o.PriceInputPer1M, o.PriceOutputPer1M)
}

// retryable reports an answer worth one more try: invalid or empty JSON, a
// refusal, an answer cut at max_tokens or too large.
func retryable(err error) bool {
	var ve *summarize.ValidationError
	var ae *llm.AnswerError
	return errors.As(err, &ve) || errors.Is(err, summarize.ErrEmptyAnswer) || errors.Is(err, llm.ErrNoText) || errors.As(err, &ae)
}

// Run asks the model: the structured answer, one retry that shows the model
// its validation error, then a plain-text summary. It fails only when the
// model cannot be reached (an error worth the lead's failure) or every
// answer was unusable; never with a half-made summary.
func (p *Plan) Run(ctx context.Context, model LLM) (*Result, error) {
	res := &Result{}
	add := func(c *llm.Completion) {
		res.Calls++ // a failed call may have cost tokens too, but the server did not say how many
		if c != nil {
			res.Usage.PromptTokens += c.Usage.PromptTokens
			res.Usage.CompletionTokens += c.Usage.CompletionTokens
			res.Model, res.Format = c.Model, c.Format
		}
	}
	sys, user := p.prompt.System, p.prompt.User
	msgs := []llm.Message{{Role: "system", Content: sys}, {Role: "user", Content: user}}
	var s *summarize.Structured
	for attempt := 0; attempt < 2 && s == nil; attempt++ {
		comp, err := model.CompleteStructured(ctx, llm.JSONRequest{Messages: msgs, SchemaName: summarize.SchemaName, Schema: summarize.Schema()})
		add(comp)
		if err != nil && !retryable(err) {
			return res, err
		}
		if err == nil {
			s, err = summarize.ParseStructured(comp.Text)
		}
		if err != nil {
			if res.Problem == "" {
				res.Problem = err.Error()
			}
			if attempt == 0 {
				res.Retried = true
				prevAnswer := "(no answer)"
				if comp != nil && strings.TrimSpace(comp.Text) != "" {
					prevAnswer = summarize.Cut(comp.Text, 2000)
				}
				msgs = append(msgs[:2],
					llm.Message{Role: "assistant", Content: prevAnswer},
					llm.Message{Role: "user", Content: "Your answer was rejected: " + summarize.Cut(err.Error(), 600) +
						". Answer again with only the JSON object the system message describes, every field present."})
			}
		}
	}
	if s == nil {
		return p.fallback(ctx, model, res)
	}
	res.Raw = s.Clone()
	res.Injected = summarize.Guard(s, p.prompt)
	// Numbers are checked against the messages as the model saw them
	// (placeholders and all), before the hidden data is put back.
	wrongNumbers := summarize.VerifyNumbers(s, p.prompt)
	if p.red != nil {
		s.Strings(p.red.Restore)
		for i := range wrongNumbers {
			wrongNumbers[i].Value = p.red.Restore(wrongNumbers[i].Value)
		}
	}
	s.Strings(p.keepKnownContacts)
	if p.Rolling {
		res.Carried = summarize.CarryForward(p.in.Previous, s)
	}
	unverified := append(wrongNumbers, summarize.Verify(s, p.prompt.Seen)...)
	res.Summary = s
	res.Rendered = summarize.Rendered{
		Summary: s, Unverified: unverified, Changes: summarize.Diff(p.in.Previous, s),
		Since: p.in.PreviousAt, Location: p.o.Prompt.Location,
		Ignored: len(res.Injected.Facts) + min(len(res.Injected.NextStep), 1),
	}
	return res, nil
}

// fallback asks for the plain-text summary of the original prompt, from the
// same (redacted) chats.
func (p *Plan) fallback(ctx context.Context, model LLM, res *Result) (*Result, error) {
	sys, user := summarize.Prompt(p.redacted, p.o.Prompt)
	comp, err := model.Complete(ctx, sys, user)
	res.Calls++
	if comp != nil {
		res.Usage.PromptTokens += comp.Usage.PromptTokens
		res.Usage.CompletionTokens += comp.Usage.CompletionTokens
		res.Model = comp.Model
	}
	if err != nil {
		return res, fmt.Errorf("the structured answer failed twice (%s), and so did the plain-text one: %w", res.Problem, err)
	}
	text, err := summarize.ParseAnswer(comp.Text)
	if err != nil {
		return res, fmt.Errorf("the structured answer failed twice (%s), and the plain-text one was empty: %w", res.Problem, err)
	}
	if p.red != nil {
		text = p.red.Restore(text)
	}
	text = p.keepKnownContacts(text)
	lang := summarize.LanguageCode(p.o.Prompt.Language)
	res.Fallback = true
	res.Format = llm.FormatText
	res.Rendered = summarize.Rendered{Fallback: text, Lang: lang, Location: p.o.Prompt.Location}
	return res, nil
}

var (
	reOutPhone = regexp.MustCompile(`\+?\d[\d \-().]{7,20}\d`)
	reOutURL   = regexp.MustCompile(`(?i)\b(?:https?://|www\.)[^\s,;"')]+`)
)

// keepKnownContacts removes from a summary's text the phone numbers and
// links that no message of the chats (nor the previous summary) holds: a
// model talked into adding a "call this number" line cannot put it in Kommo.
func (p *Plan) keepKnownContacts(s string) string {
	if !strings.ContainsAny(s, "0123456789") && !strings.Contains(strings.ToLower(s), "http") && !strings.Contains(strings.ToLower(s), "www.") {
		return s
	}
	known := p.knownText()
	s = reOutPhone.ReplaceAllStringFunc(s, func(m string) string {
		d := onlyDigits(m)
		if len(d) < 9 || strings.Contains(known.digits, d) {
			return m
		}
		return "[removed]"
	})
	return reOutURL.ReplaceAllStringFunc(s, func(m string) string {
		if strings.Contains(known.lower, strings.ToLower(m)) {
			return m
		}
		return "[removed]"
	})
}

type knownText struct{ digits, lower string }

func (p *Plan) knownText() knownText {
	if p.known != nil {
		return *p.known
	}
	var b strings.Builder
	for _, c := range p.in.Chats {
		for _, ms := range [][]summarize.Message{c.Head, c.Tail} {
			for _, m := range ms {
				if summarize.Suspicious(m.Text) {
					continue
				}
				b.WriteString(m.Text + " " + m.Sender + " ")
				if m.Contact != nil {
					b.WriteString(m.Contact.Phone + " ")
				}
			}
		}
	}
	if prev := p.in.Previous; prev != nil {
		prev.Clone().Strings(func(s string) string { b.WriteString(s + " "); return s })
	}
	k := knownText{digits: onlyDigits(b.String()), lower: strings.ToLower(b.String())}
	// Digits of different messages run together in k.digits; a number
	// spread over two messages is a false "known", which errs on the side
	// of keeping text.
	p.known = &k
	return k
}

func onlyDigits(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c >= '0' && c <= '9' {
			b.WriteRune(c)
		}
	}
	return b.String()
}
