package kommotest

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Structured answers: response_format {"type":"json_schema", ...} is checked
// as OpenAI checks it (a name, a schema object, and under strict mode every
// property required and additionalProperties false on every object), and the
// answer is a JSON document that fits the schema.

type responseSchema struct {
	name   string
	schema map[string]any
}

var schemaName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// parseResponseFormat returns the schema of a json_schema response format,
// nil for text (or none), and a problem when the format is invalid.
func parseResponseFormat(raw json.RawMessage) (*responseSchema, string) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, ""
	}
	var rf struct {
		Type       string `json:"type"`
		JSONSchema *struct {
			Name   string         `json:"name"`
			Strict *bool          `json:"strict"`
			Schema map[string]any `json:"schema"`
		} `json:"json_schema"`
	}
	if err := json.Unmarshal(raw, &rf); err != nil {
		return nil, "expected an object with a 'type'"
	}
	switch rf.Type {
	case "text":
		return nil, ""
	case "json_object":
		return &responseSchema{name: "json_object", schema: map[string]any{"type": "object"}}, ""
	case "json_schema":
	default:
		return nil, fmt.Sprintf("'type' must be one of text, json_object, json_schema, got %q", rf.Type)
	}
	js := rf.JSONSchema
	switch {
	case js == nil:
		return nil, "missing required parameter 'response_format.json_schema'"
	case !schemaName.MatchString(js.Name):
		return nil, fmt.Sprintf("'json_schema.name' %q must match ^[a-zA-Z0-9_-]{1,64}$", js.Name)
	case js.Schema == nil:
		return nil, "'json_schema.schema' must be a JSON Schema object"
	}
	if js.Strict != nil && *js.Strict {
		if p := strictProblem(js.Schema, "schema"); p != "" {
			return nil, "Invalid schema for response_format '" + js.Name + "': " + p
		}
	}
	return &responseSchema{name: js.Name, schema: js.Schema}, ""
}

// strictProblem checks what strict structured outputs demand of each object.
func strictProblem(s map[string]any, path string) string {
	if s["type"] == "object" {
		props, _ := s["properties"].(map[string]any)
		if ap, ok := s["additionalProperties"].(bool); !ok || ap {
			return "In context=" + path + ", 'additionalProperties' is required to be supplied and to be false."
		}
		req, _ := s["required"].([]any)
		names := make([]string, 0, len(props))
		for k := range props {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			if !slices.Contains(req, any(k)) {
				return fmt.Sprintf("In context=%s, 'required' is required to be supplied and to be an array including every key in properties. Missing '%s'.", path, k)
			}
			sub, _ := props[k].(map[string]any)
			if sub == nil {
				return fmt.Sprintf("In context=%s, property '%s' must be a schema object.", path, k)
			}
			if p := strictProblem(sub, path+".properties."+k); p != "" {
				return p
			}
		}
	}
	if items, ok := s["items"].(map[string]any); ok {
		return strictProblem(items, path+".items")
	}
	return ""
}

// NewMessageMarker is the line after which the fake looks for the client's
// new message in a reply prompt (the last line of the prompt otherwise).
const NewMessageMarker = "New message from the client:"

// FakeHandoffPhrases make the fake model set handoff in a reply answer,
// as a real model would when asked for a call.
var FakeHandoffPhrases = []string{"call me back", "перезвоните"}

// fakeStructured answers a json_schema request. A schema with reply,
// handoff and reason properties gets a chat reply to the prompt's new
// message; any other schema gets placeholder values of the right types.
func (s *Server) fakeStructured(rs *responseSchema, user string) string {
	props, _ := rs.schema["properties"].(map[string]any)
	if props["reply"] != nil && props["handoff"] != nil {
		return s.fakeReply(user)
	}
	b, _ := json.Marshal(placeholder(rs.schema))
	return string(b)
}

func placeholder(s map[string]any) any {
	switch s["type"] {
	case "object":
		out := map[string]any{}
		props, _ := s["properties"].(map[string]any)
		for k, v := range props {
			sub, _ := v.(map[string]any)
			out[k] = placeholder(sub)
		}
		return out
	case "array":
		return []any{}
	case "boolean":
		return false
	case "integer", "number":
		return 0
	}
	if enum, ok := s["enum"].([]any); ok && len(enum) > 0 {
		return enum[0]
	}
	return FakeLLMMarker
}

func newMessage(user string) string {
	if _, after, ok := strings.Cut(user, NewMessageMarker); ok {
		return strings.TrimSpace(after)
	}
	lines := strings.Split(strings.TrimSpace(user), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// fakeReply is the fake model's chat reply: it quotes the client, says it is
// fake, and asks for a handoff when the client asked to be called back. A
// message that asks for "a long answer" gets one longer than ten 80-character
// bubbles, so that clients must cut it.
func (s *Server) fakeReply(user string) string {
	msg := newMessage(user)
	lower := strings.ToLower(msg)
	handoff := false
	for _, p := range FakeHandoffPhrases {
		if strings.Contains(lower, p) {
			handoff = true
		}
	}
	reply := fmt.Sprintf("%s Thank you for your message: %q. We will gladly help you with it.", FakeLLMMarker, cutRunes(msg, 60))
	reason := ""
	if handoff {
		reply = FakeLLMMarker + " Of course, a manager will call you back shortly."
		reason = "the client asked for a call"
	}
	if strings.Contains(lower, "long answer") {
		var b strings.Builder
		b.WriteString(reply)
		for i := 1; i <= 15; i++ {
			fmt.Fprintf(&b, " Point %d: our offer includes delivery, installation and a two-year warranty, see https://example.com/offer/%d for details.", i, i)
		}
		reply = b.String()
	}
	out, _ := json.Marshal(map[string]any{"reply": reply, "handoff": handoff, "reason": reason})
	return string(out)
}
