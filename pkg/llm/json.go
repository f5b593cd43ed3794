package llm

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/retry"
)

// Format is how CompleteStructured asks the server for JSON.
type Format string

// The formats, best first. A server that refuses one (400 about
// response_format) gets the next, and the client remembers it.
const (
	// FormatJSONSchema: response_format json_schema, strict: the answer
	// follows the schema (OpenAI, vLLM, recent Ollama).
	FormatJSONSchema Format = "json_schema"
	// FormatJSONObject: response_format json_object: valid JSON, the schema
	// only as the prompt describes it.
	FormatJSONObject Format = "json_object"
	// FormatText: no response_format at all: the prompt alone asks for JSON.
	FormatText Format = "text"
)

// ReasonRefusal is the Reason of an AnswerError for a model that refused to
// answer (the message's refusal field, sent instead of content).
const ReasonRefusal = "refusal"

// Message is one message of a conversation: role system, user or assistant.
type Message struct {
	Role, Content string
}

// JSONRequest is a conversation whose answer must be JSON of Schema.
type JSONRequest struct {
	Messages []Message
	// SchemaName names the schema for the server (a-z, A-Z, 0-9, _ and -).
	SchemaName string
	// Schema is a JSON Schema object in the strict subset OpenAI accepts:
	// every property required, additionalProperties false.
	Schema map[string]any
}

// jsonFormat is the best format the server accepted so far; the zero
// value is FormatJSONSchema.
type jsonFormat struct{ v atomic.Int32 }

var formats = []Format{FormatJSONSchema, FormatJSONObject, FormatText}

func (f *jsonFormat) get() Format { return formats[min(int(f.v.Load()), len(formats)-1)] }

// downgrade moves from the format that failed to the next one; false when
// there is none left.
func (f *jsonFormat) downgrade(failed Format) bool {
	for i, x := range formats {
		if x == failed && i+1 < len(formats) {
			f.v.CompareAndSwap(int32(i), int32(i+1))
			return true
		}
	}
	return false
}

// CompleteStructured sends the conversation asking for an answer in req.Schema:
// response_format json_schema (strict) where the server takes it, else
// json_object, else plain text (the prompt must then describe the JSON).
// A 400 about response_format moves the client to the next format for good;
// the answer's Format says which one was used. The answer is not checked
// against the schema here: the caller validates it.
//
// API: https://platform.openai.com/docs/api-reference/chat/create#chat-create-response_format
func (c *Client) CompleteStructured(ctx context.Context, req JSONRequest) (*Completion, error) {
	msgs := make([]openai.ChatCompletionMessageParamUnion, 0, len(req.Messages))
	for _, m := range req.Messages {
		switch m.Role {
		case "system":
			msgs = append(msgs, openai.SystemMessage(m.Content))
		case "assistant":
			msgs = append(msgs, openai.AssistantMessage(m.Content))
		default:
			msgs = append(msgs, openai.UserMessage(m.Content))
		}
	}
	for {
		format := c.format.get()
		params := c.params(msgs)
		switch format {
		case FormatJSONSchema:
			params.ResponseFormat.OfJSONSchema = &shared.ResponseFormatJSONSchemaParam{
				JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{
					Name: req.SchemaName, Strict: openai.Bool(true), Schema: req.Schema,
				},
			}
		case FormatJSONObject:
			params.ResponseFormat.OfJSONObject = &shared.ResponseFormatJSONObjectParam{}
		}
		out, err := c.call(ctx, params)
		if err != nil && format != FormatText && refusesFormat(err) && c.format.downgrade(format) {
			c.log.Warn("the LLM server refused this response_format; trying the next", "format", format, "next", c.format.get(), "err", err)
			continue
		}
		if out != nil {
			out.Format = format
		}
		return out, err
	}
}

// refusesFormat reports a 400 (or 422, as some proxies answer) about
// response_format: the server does not support that format.
func refusesFormat(err error) bool {
	var e *Error
	if !errors.As(err, &e) || (e.Status != 400 && e.Status != 422) {
		return false
	}
	s := strings.ToLower(e.Param + " " + e.Message + " " + e.Code)
	return strings.Contains(s, "response_format") || strings.Contains(s, "json_schema") || strings.Contains(s, "json_object")
}

// params are the request's settings but the messages' and the format.
func (c *Client) params(msgs []openai.ChatCompletionMessageParamUnion) openai.ChatCompletionNewParams {
	params := openai.ChatCompletionNewParams{Model: shared.ChatModel(c.model), Messages: msgs}
	if c.sendTemperature {
		params.Temperature = openai.Float(c.temperature)
	}
	if c.maxTokens > 0 {
		// max_completion_tokens, not max_tokens: OpenAI's reasoning models
		// refuse max_tokens with a 400, every OpenAI model takes
		// max_completion_tokens, and so do vLLM and recent Ollama. A server
		// that ignores it is still bounded by MaxAnswerBytes.
		params.MaxCompletionTokens = openai.Int(int64(c.maxTokens))
	}
	return params
}

// call sends params with retries and logs the outcome.
func (c *Client) call(ctx context.Context, params openai.ChatCompletionNewParams) (*Completion, error) {
	start := time.Now()
	attempt := 0
	out, err := retry.Do(ctx, c.policy, func() (*Completion, error) {
		attempt++
		return c.once(ctx, params)
	}, func(err error, wait time.Duration) {
		c.log.Warn("llm call failed, retrying", "model", c.model, "attempt", attempt, "wait", wait, "err", err)
	})
	if err != nil {
		c.log.Debug("llm call failed", "model", c.model, "attempts", attempt, "duration", time.Since(start), "err", err)
		return nil, err
	}
	c.log.Debug("llm call", "model", out.Model, "prompt_tokens", out.Usage.PromptTokens,
		"completion_tokens", out.Usage.CompletionTokens, "finish_reason", out.FinishReason,
		"attempts", attempt, "duration", time.Since(start))
	return out, nil
}
