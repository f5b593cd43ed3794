package llm

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommotest"
)

var jsonReq = JSONRequest{
	Messages: []Message{
		{Role: "system", Content: "Answer with one JSON object and nothing else."},
		{Role: "user", Content: "<<<CHAT-x>>>\n01.11 09:00 [Anna]: Our budget is 500 EUR\n<<<END-x>>>"},
	},
	SchemaName: "deal_summary",
	Schema:     map[string]any{"type": "object", "properties": map[string]any{}, "required": []string{}, "additionalProperties": false},
}

// A server that refuses json_schema gets json_object, one that refuses
// both gets no response_format; the client remembers.
func TestCompleteStructuredFallsBackThroughFormats(t *testing.T) {
	for _, tc := range []struct {
		model string
		want  Format
	}{
		{"gpt-4o-mini", FormatJSONSchema},
		{kommotest.FakeModelNoSchema, FormatJSONObject},
		{kommotest.FakeModelNoFormat, FormatText},
	} {
		srv := kommotest.StartT(t, kommotest.Options{})
		c := fakeClient(t, srv, func(o *Options) { o.Model = tc.model })
		for range 2 {
			out, err := c.CompleteStructured(context.Background(), jsonReq)
			if err != nil {
				t.Fatalf("%s: %v", tc.model, err)
			}
			if out.Format != tc.want || !strings.Contains(out.Text, `"500 EUR"`) {
				t.Fatalf("%s: format %s, text %s", tc.model, out.Format, out.Text)
			}
		}
		if got, want := srv.Stats().LLMCalls, map[Format]int{FormatJSONSchema: 2, FormatJSONObject: 3, FormatText: 4}[tc.want]; got != want {
			t.Errorf("%s: %d calls, want %d (each refused format once)", tc.model, got, want)
		}
	}
}

func TestCompleteStructuredRefusal(t *testing.T) {
	srv := kommotest.StartT(t, kommotest.Options{})
	c := fakeClient(t, srv, func(o *Options) { o.Model = kommotest.FakeModelRefuse })
	_, err := c.CompleteStructured(context.Background(), jsonReq)
	var ae *AnswerError
	if !errors.As(err, &ae) || ae.Reason != ReasonRefusal || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("err = %v", err)
	}
	if srv.Stats().LLMCalls != 1 {
		t.Errorf("a refusal was retried: %d calls", srv.Stats().LLMCalls)
	}
}
