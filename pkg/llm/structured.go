package llm

import (
	"context"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/retry"
)

// Schema is a JSON Schema for a structured answer, sent as response_format
// {"type": "json_schema", "json_schema": {"name": Name, "strict": true, "schema": Schema}}.
// With strict on, OpenAI wants every property listed in "required" and
// "additionalProperties": false on every object.
type Schema struct {
	Name   string         // a-z, A-Z, 0-9, _ and -, at most 64 characters
	Schema map[string]any // the JSON Schema object
}

// CompleteJSON is Complete with a structured answer: the model is held to
// schema through response_format json_schema, and Completion.Text is the
// JSON document it returned (the caller decodes and checks it). Retries and
// errors are those of Complete.
//
// API: https://platform.openai.com/docs/guides/structured-outputs
func (c *Client) CompleteJSON(ctx context.Context, system, user string, schema Schema) (*Completion, error) {
	params := openai.ChatCompletionNewParams{
		Model: shared.ChatModel(c.model),
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.SystemMessage(system),
			openai.UserMessage(user),
		},
		Temperature: openai.Float(c.temperature),
		ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{
			OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
				JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{
					Name:   schema.Name,
					Strict: openai.Bool(true),
					Schema: schema.Schema,
				},
			},
		},
	}
	if c.maxTokens > 0 {
		params.MaxTokens = openai.Int(int64(c.maxTokens))
	}
	start := time.Now()
	attempt := 0
	out, err := retry.Do(ctx, c.policy, func() (*Completion, error) {
		attempt++
		return c.once(ctx, params)
	}, func(err error, wait time.Duration) {
		c.log.Warn("llm call failed, retrying", "model", c.model, "attempt", attempt, "wait", wait, "err", err)
	})
	if err != nil {
		c.log.Debug("llm call failed", "model", c.model, "schema", schema.Name, "attempts", attempt, "duration", time.Since(start), "err", err)
		return nil, err
	}
	c.log.Debug("llm call", "model", out.Model, "schema", schema.Name, "prompt_tokens", out.Usage.PromptTokens,
		"completion_tokens", out.Usage.CompletionTokens, "finish_reason", out.FinishReason,
		"attempts", attempt, "duration", time.Since(start))
	return out, nil
}
