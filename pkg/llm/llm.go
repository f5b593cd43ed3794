// Package llm asks an OpenAI-compatible chat completions endpoint (OpenAI,
// Ollama, vLLM, LM Studio, ...) for one answer and accounts for the tokens
// it cost.
//
// It uses github.com/openai/openai-go/v3 for the wire format only: the SDK's
// own retries are off (we retry with pkg/retry, never both) and nothing is
// read from the environment (no OPENAI_API_KEY, OPENAI_BASE_URL,
// OPENAI_ORG_ID or OPENAI_CUSTOM_HEADERS): the config is the only source.
package llm

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/httpx"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/retry"
)

// Defaults for zero Options fields.
const (
	DefaultBaseURL   = "https://api.openai.com/v1"
	DefaultRetryBase = 2 * time.Second
	DefaultTries     = 5
	DefaultTimeout   = 60 * time.Second
)

// maxRetryAfter is the longest Retry-After we wait for. A server that asks
// for more is out of quota for a while: failing the lead now is better than
// parking a worker for an hour in a cron run.
const maxRetryAfter = 2 * time.Minute

// Options configure a Client.
type Options struct {
	// BaseURL must end with /v1 for OpenAI-compatible servers
	// ("http://127.0.0.1:11434/v1" for Ollama); a trailing slash is fine.
	// Default "https://api.openai.com/v1".
	BaseURL string
	// APIKey is sent as "Authorization: Bearer ..."; empty sends no
	// Authorization header (local servers).
	APIKey      string
	Model       string // required
	Temperature float64
	// SendTemperature says when Temperature is sent; "" is TemperatureAuto.
	SendTemperature TemperatureMode
	// MaxTokens is sent as max_completion_tokens; 0 = not sent (the
	// server's default). It also bounds the answer this client accepts:
	// see MaxAnswerBytes.
	MaxTokens int
	// HTTPClient carries the per-attempt timeout; nil = a client with a 60 s timeout.
	HTTPClient *http.Client
	// RetryBase is the first wait after a 429, 5xx or network error, doubled
	// (with jitter) on each retry: 2 s, 4 s, 8 s, ... A Retry-After header in
	// seconds wins. Default 2 s; tests pass a few milliseconds.
	RetryBase time.Duration
	Tries     uint         // total attempts, default 5
	Logger    *slog.Logger // nil = discard; debug line per call, warn per retry
}

// TemperatureMode says when the temperature is sent. OpenAI's reasoning
// models (o1, o3, o4-mini, gpt-5, ...) refuse any temperature but the
// default 1 with a 400.
type TemperatureMode string

// The values of llm.send_temperature.
const (
	// TemperatureAuto leaves the temperature out for the model names
	// RejectsTemperature knows, and sends it to every other model.
	TemperatureAuto   TemperatureMode = "auto"
	TemperatureAlways TemperatureMode = "always"
	TemperatureNever  TemperatureMode = "never"
)

// ParseTemperatureMode reads llm.send_temperature: "", auto, always or never.
func ParseTemperatureMode(s string) (TemperatureMode, error) {
	switch m := TemperatureMode(strings.ToLower(strings.TrimSpace(s))); m {
	case "", TemperatureAuto:
		return TemperatureAuto, nil
	case TemperatureAlways, TemperatureNever:
		return m, nil
	}
	return "", fmt.Errorf("%q is not auto, always or never", s)
}

// RejectsTemperature reports whether model is one of OpenAI's reasoning
// models, which accept no temperature but the default: a name starting with
// o1, o3, o4 or gpt-5 (provider prefixes such as "openai/" are skipped).
func RejectsTemperature(model string) bool {
	m := strings.ToLower(strings.TrimSpace(model))
	if i := strings.LastIndexByte(m, '/'); i >= 0 {
		m = m[i+1:]
	}
	for _, p := range []string{"o1", "o3", "o4", "gpt-5"} {
		if strings.HasPrefix(m, p) {
			return true
		}
	}
	return false
}

// Bounds of what an answer may hold. A summary is a few hundred tokens; an
// answer far over max_tokens comes from a server that ignores it (or a
// proxy gone wrong), and must not end up whole in a CRM note.
const (
	// bytesPerToken is generous: a token is about 4 bytes of English and
	// 2-3 Cyrillic letters (4-6 bytes).
	bytesPerToken = 16
	// minAnswerBytes is the floor of MaxAnswerBytes, for small max_tokens.
	minAnswerBytes = 4 << 10
	// noLimitAnswerBytes bounds the answer when max_tokens is not sent.
	noLimitAnswerBytes = 256 << 10
	// envelopeBytes is room for the JSON around the text (ids, usage,
	// escaping) when the whole HTTP body is bounded.
	envelopeBytes = 64 << 10
)

// MaxAnswerBytes is the longest answer text, in bytes, a client with this
// max_tokens accepts: 16 bytes per token, at least 4 KiB; 256 KiB when
// maxTokens <= 0.
func MaxAnswerBytes(maxTokens int) int {
	if maxTokens <= 0 {
		return noLimitAnswerBytes
	}
	return max(maxTokens*bytesPerToken, minAnswerBytes)
}

// Client calls the chat completions endpoint. It is safe for concurrent use.
type Client struct {
	svc             openai.ChatCompletionService
	endpoint        string // for error messages and logs
	model           string
	temperature     float64
	sendTemperature bool
	maxTokens       int
	maxText         int   // MaxAnswerBytes(maxTokens)
	maxBody         int64 // what is read of an HTTP answer, error or not
	policy          retry.Policy
	log             *slog.Logger
	format          jsonFormat // CompleteStructured's response_format
}

// New returns a Client. It fails when Model is empty or BaseURL is not an
// http(s) URL.
func New(opts Options) (*Client, error) {
	if strings.TrimSpace(opts.Model) == "" {
		return nil, errors.New("llm: no model: set llm.model")
	}
	base := strings.TrimRight(strings.TrimSpace(opts.BaseURL), "/")
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("llm: base URL %q is not an http(s) URL: set llm.base_url, e.g. https://api.openai.com/v1", opts.BaseURL)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: DefaultTimeout}
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = DefaultRetryBase
	}
	if opts.Tries == 0 {
		opts.Tries = DefaultTries
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	mode, err := ParseTemperatureMode(string(opts.SendTemperature))
	if err != nil {
		return nil, fmt.Errorf("llm: send_temperature %w: set llm.send_temperature", err)
	}
	sendTemp := mode == TemperatureAlways || (mode == TemperatureAuto && !RejectsTemperature(opts.Model))
	maxText := MaxAnswerBytes(opts.MaxTokens)
	// 6 bytes a text byte covers a body that escapes every character (\u0430).
	maxBody := int64(envelopeBytes + 6*maxText)

	// NewChatCompletionService, unlike openai.NewClient, reads no environment
	// variables, so every setting below is the whole truth.
	svc := openai.NewChatCompletionService(
		option.WithBaseURL(base+"/"),
		option.WithAPIKey(opts.APIKey),
		option.WithHTTPClient(opts.HTTPClient),
		option.WithMaxRetries(0),
		option.WithMiddleware(limitBody(maxBody)),
	)
	return &Client{
		svc:             svc,
		endpoint:        base + "/chat/completions",
		model:           opts.Model,
		temperature:     opts.Temperature,
		sendTemperature: sendTemp,
		maxTokens:       opts.MaxTokens,
		maxText:         maxText,
		maxBody:         maxBody,
		policy: retry.Policy{
			Initial:    opts.RetryBase,
			Max:        max(opts.RetryBase, time.Minute),
			Multiplier: 2,
			Tries:      opts.Tries,
		},
		log: opts.Logger,
	}, nil
}

// Usage is what a call cost, as the server counted it.
type Usage struct {
	PromptTokens, CompletionTokens int64
}

// Completion is the model's answer.
type Completion struct {
	Text         string // the first choice's content, as sent
	Model        string // the model that answered (may be more specific than the one asked for)
	FinishReason string // "stop", or "length" when MaxTokens cut the answer
	Usage        Usage
	// Format is the response_format CompleteStructured used; empty otherwise.
	Format Format
}

// ErrNoText is matched (errors.Is) by the error Complete returns when the
// server answered 200 without any text: no choices or empty content. Retrying
// does not help: the same prompt gets the same empty answer.
var ErrNoText = errors.New("the model returned no text")

// Complete sends the system and user messages and returns the first choice.
// 429s, 5xx answers and network errors are retried; any other 4xx is not.
// An error from the server is an *Error.
//
// API: https://platform.openai.com/docs/api-reference/chat/create
func (c *Client) Complete(ctx context.Context, system, user string) (*Completion, error) {
	return c.call(ctx, c.params([]openai.ChatCompletionMessageParamUnion{
		openai.SystemMessage(system),
		openai.UserMessage(user),
	}))
}

// once makes one attempt and decides whether another one may help.
func (c *Client) once(ctx context.Context, params openai.ChatCompletionNewParams) (*Completion, error) {
	var resp *http.Response
	cc, err := c.svc.New(ctx, params, option.WithResponseInto(&resp))
	if err != nil {
		return nil, c.classify(ctx, resp, err)
	}
	if len(cc.Choices) == 0 {
		return nil, retry.Permanent(fmt.Errorf("llm: %w (no choices in the answer of %s)", ErrNoText, c.endpoint))
	}
	ch := cc.Choices[0]
	if r := strings.TrimSpace(ch.Message.Refusal); r != "" {
		// Structured outputs carry a refusal instead of content.
		return nil, retry.Permanent(&AnswerError{Reason: ReasonRefusal, Refusal: cutRunes(r, 200)})
	}
	if ch.FinishReason == "content_filter" {
		return nil, retry.Permanent(&AnswerError{Reason: ch.FinishReason})
	}
	if strings.TrimSpace(ch.Message.Content) == "" {
		hint := ""
		if ch.FinishReason == "length" {
			hint = ": raise llm.max_tokens (a reasoning model may spend them all before answering)"
		}
		return nil, retry.Permanent(fmt.Errorf("llm: %w (finish_reason %q)%s", ErrNoText, ch.FinishReason, hint))
	}
	if ch.FinishReason == "length" {
		return nil, retry.Permanent(&AnswerError{Reason: ch.FinishReason})
	}
	if n := len(ch.Message.Content); n > c.maxText {
		return nil, retry.Permanent(&AnswerError{Reason: ReasonTooLarge, Bytes: int64(n), Limit: int64(c.maxText)})
	}
	model := cc.Model
	if model == "" {
		model = c.model
	}
	return &Completion{
		Text:         ch.Message.Content,
		Model:        model,
		FinishReason: ch.FinishReason,
		Usage:        Usage{PromptTokens: cc.Usage.PromptTokens, CompletionTokens: cc.Usage.CompletionTokens},
	}, nil
}

// limitBody makes the SDK's read of an answer fail once it passes limit
// bytes: a runaway answer is refused before it is held in memory whole.
func limitBody(limit int64) option.Middleware {
	return func(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		resp, err := next(req)
		if err == nil && resp != nil && resp.Body != nil {
			resp.Body = &limitedBody{rc: resp.Body, left: limit, limit: limit}
		}
		return resp, err
	}
}

type limitedBody struct {
	rc          io.ReadCloser
	left, limit int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells a body of exactly limit bytes from a longer one.
		var one [1]byte
		if n, _ := b.rc.Read(one[:]); n == 0 {
			return 0, io.EOF
		}
		return 0, &AnswerError{Reason: ReasonTooLarge, Bytes: b.limit + 1, Limit: b.limit}
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// ReasonTooLarge is the Reason of an AnswerError for an answer longer than
// max_tokens allows; the other reasons are finish_reason values.
const ReasonTooLarge = "too_large"

// AnswerError is a 200 answer that must not become a note: withheld by the
// content filter (Reason "content_filter"), cut at max_tokens ("length"),
// or longer than max_tokens allows (ReasonTooLarge). Retrying does not help.
type AnswerError struct {
	// Reason is the finish_reason, or ReasonTooLarge.
	Reason string
	// Bytes is the size seen (for a body cut short: at least this many) and
	// Limit the most accepted; both are set for ReasonTooLarge only.
	Bytes, Limit int64
	// Refusal is the model's refusal text (its start), for ReasonRefusal.
	Refusal string
}

func (e *AnswerError) Error() string {
	switch e.Reason {
	case "content_filter":
		return "llm: the answer was withheld by the provider's content filter (finish_reason content_filter): no summary for this lead"
	case "length":
		return "llm: the answer was cut at llm.max_tokens (finish_reason length): raise llm.max_tokens"
	case ReasonRefusal:
		return fmt.Sprintf("llm: the model refused to answer: %q", e.Refusal)
	case ReasonTooLarge:
		return fmt.Sprintf("llm: the answer is over %d bytes (%d or more received), far more than llm.max_tokens allows: refused (does the server honour max_completion_tokens?)", e.Limit, e.Bytes)
	}
	return fmt.Sprintf("llm: the answer is unusable (finish_reason %s)", e.Reason)
}

// classify turns an attempt's error into our error and marks what is worth
// retrying: 429 (unless the quota is spent), 5xx and network errors.
func (c *Client) classify(ctx context.Context, resp *http.Response, err error) error {
	if ctx.Err() != nil {
		return retry.Permanent(ctx.Err())
	}
	var ae *AnswerError
	if errors.As(err, &ae) {
		// The body passed the limit: an answer too large, or an error
		// page of megabytes. Either way the same request gets the same.
		return retry.Permanent(ae)
	}
	var e *Error
	var apiErr *openai.Error
	switch {
	case errors.As(err, &apiErr):
		e = &Error{Status: apiErr.StatusCode, Type: apiErr.Type, Code: apiErr.Code, Param: apiErr.Param, Message: apiErr.Message}
		if e.Type == "" && e.Code == "" && e.Message == "" {
			// No OpenAI {"error": {...}} object: a proxy's HTML page, or
			// vLLM's top-level {"message": ...}. The SDK kept the body.
			e.Type, e.Message = otherErrorBody(apiErr.Response)
		}
	case resp != nil && resp.StatusCode >= 400:
		e = &Error{Status: resp.StatusCode}
		e.Type, e.Message = otherErrorBody(resp)
	case resp != nil:
		// A 2xx that is not a chat completion: usually a base URL without
		// /v1 that reaches a web page.
		return retry.Permanent(fmt.Errorf("llm: POST %s: %d: the answer is not a chat completion (%v): check llm.base_url (OpenAI-compatible servers need the /v1 suffix)", c.endpoint, resp.StatusCode, err))
	default:
		var ue *url.Error
		if errors.As(err, &ue) {
			// The request did not get an answer: a refused connection, a
			// reset, a timeout. Completions have no side effects, so a
			// retry is safe.
			return fmt.Errorf("llm: POST %s: %w", c.endpoint, ue.Err)
		}
		return retry.Permanent(fmt.Errorf("llm: %w", err))
	}

	switch {
	case e.Status == http.StatusTooManyRequests && e.Code == "insufficient_quota":
		return retry.Permanent(e)
	case e.Status == http.StatusTooManyRequests || e.Status >= 500:
		if resp == nil {
			return e
		}
		// The limit is above maxRetryAfter, so that a longer wait shows.
		if d := httpx.RetryAfter(resp.Header, maxRetryAfter+time.Second); d > maxRetryAfter {
			return retry.Permanent(e)
		} else if d > 0 {
			return retry.After(d, e)
		}
		return e
	default:
		return retry.Permanent(e)
	}
}

// otherErrorBody reads an error body that is not OpenAI's: the type and
// message of a top-level {"type": ..., "message": ...} object, else the
// body's first 200 bytes on one line.
func otherErrorBody(resp *http.Response) (typ, msg string) {
	if resp == nil || resp.Body == nil {
		return "", ""
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	var obj struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &obj) == nil && obj.Message != "" {
		return obj.Type, obj.Message
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return "", strings.ToValidUTF8(string(b), "")
}

// Error is an error answer of the LLM server.
type Error struct {
	Status              int
	Type, Code, Message string // OpenAI's error object; Message may be a snippet of a non-JSON body
	// Param is the request parameter the error is about ("temperature",
	// "max_tokens"), when the server names one.
	Param string
}

// Error reads like "llm: 401 invalid_api_key: Incorrect API key provided: check llm.api_key".
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "llm: %d", e.Status)
	if kind := cmp.Or(e.Code, e.Type); kind != "" {
		b.WriteString(" " + kind)
	}
	// The trailing period goes so that the hint reads as part of the sentence.
	msg := strings.TrimRight(strings.Join(strings.Fields(e.Message), " "), ".")
	if r := []rune(msg); len(r) > 300 {
		msg = string(r[:299]) + "…"
	}
	b.WriteString(": " + cmp.Or(msg, http.StatusText(e.Status), "error"))
	if h := e.hint(); h != "" {
		b.WriteString(": " + h)
	}
	return b.String()
}

func (e *Error) hint() string {
	switch {
	case e.Status == http.StatusBadRequest && e.Param == "temperature":
		return "this model takes no temperature: set llm.send_temperature: never"
	case e.Status == http.StatusBadRequest && (e.Param == "max_tokens" || e.Param == "max_completion_tokens"):
		return "this server refuses the token limit: check llm.max_tokens (sent as max_completion_tokens) and llm.model"
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		return "check llm.api_key"
	case e.Code == "insufficient_quota":
		return "the account is out of quota: check its billing"
	case e.Code == "model_not_found":
		return "check llm.model"
	case e.Status == http.StatusNotFound:
		return "check llm.model and llm.base_url (OpenAI-compatible servers need the /v1 suffix)"
	case e.Status == http.StatusTooManyRequests:
		return "rate limited: lower llm.concurrency"
	case e.Status == http.StatusBadRequest:
		return "check llm.model, llm.max_tokens and llm.temperature"
	case e.Status >= 500:
		return "the LLM server failed: try again later"
	}
	return ""
}

// IsAuth reports whether err is the server refusing the credentials (401 or
// 403): retrying another lead will not help, the run should stop.
func IsAuth(err error) bool {
	var e *Error
	return errors.As(err, &e) && (e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden)
}

func cutRunes(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
