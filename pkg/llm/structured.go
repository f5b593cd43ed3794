package llm

import (
	"context"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"
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
	// The same settings and request path as every other call: reasoning
	// models get max_completion_tokens and no temperature they refuse.
	params := c.params([]openai.ChatCompletionMessageParamUnion{openai.SystemMessage(system), openai.UserMessage(user)})
	params.ResponseFormat = openai.ChatCompletionNewParamsResponseFormatUnion{
		OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
			JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: schema.Name, Strict: openai.Bool(true), Schema: schema.Schema},
		},
	}
	return c.call(ctx, params)
}
