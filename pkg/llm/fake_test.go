package llm

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommotest"
)

func fakeClient(t *testing.T, srv *kommotest.Server, edit func(*Options)) *Client {
	t.Helper()
	c, _ := newClient(t, srv.LLMURL, func(o *Options) {
		o.APIKey = srv.Options().LLMAPIKey
		if edit != nil {
			edit(o)
		}
	})
	return c
}

const prompt = "01.11 09:00 [Anna]: What is the price?"

func TestAnswersThatMustNotBecomeNotes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   kommotest.Options
		reason string
		says   string
	}{
		// A server that ignores max_tokens and sends megabytes: refused
		// while reading, never held whole.
		{"huge body", kommotest.Options{LLMAnswerBytes: 5 << 20}, ReasonTooLarge, "far more than llm.max_tokens allows"},
		// Just over the text limit, well within the body limit.
		{"long text", kommotest.Options{LLMAnswerBytes: MaxAnswerBytes(300) + 1}, ReasonTooLarge, "far more than llm.max_tokens allows"},
		{"content filter", kommotest.Options{LLMFinishReason: "content_filter"}, "content_filter", "content filter"},
		{"cut at max_tokens", kommotest.Options{LLMFinishReason: "length"}, "length", "raise llm.max_tokens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := kommotest.StartT(t, tc.opts)
			c := fakeClient(t, srv, nil)
			got, err := c.Complete(context.Background(), "You summarize.", prompt)
			var ae *AnswerError
			if !errors.As(err, &ae) || ae.Reason != tc.reason || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("Complete = %+v, %v; want an *AnswerError with reason %q saying %q", got, err, tc.reason, tc.says)
			}
			if n := srv.Stats().LLMCalls; n != 1 {
				t.Errorf("%d calls, want 1: retrying gets the same answer", n)
			}
		})
	}
}

func TestAnswerWithinTheLimitIsKept(t *testing.T) {
	srv := kommotest.StartT(t, kommotest.Options{LLMAnswerBytes: MaxAnswerBytes(300)})
	c := fakeClient(t, srv, nil)
	got, err := c.Complete(context.Background(), "You summarize.", prompt)
	if err != nil || len(got.Text) != MaxAnswerBytes(300) {
		t.Fatalf("Complete = %d bytes, %v; want %d bytes", len(got.Text), err, MaxAnswerBytes(300))
	}
}

func TestMaxAnswerBytes(t *testing.T) {
	for _, tc := range []struct{ tokens, want int }{{0, 256 << 10}, {-1, 256 << 10}, {10, 4 << 10}, {300, 4800}, {4000, 64000}} {
		if got := MaxAnswerBytes(tc.tokens); got != tc.want {
			t.Errorf("MaxAnswerBytes(%d) = %d, want %d", tc.tokens, got, tc.want)
		}
	}
}

func TestReasoningModels(t *testing.T) {
	srv := kommotest.StartT(t, kommotest.Options{})
	for _, model := range []string{"o1", "o3-mini", "o4-mini", "gpt-5", "gpt-5-mini", "gpt-5.2-chat-latest"} {
		t.Run(model, func(t *testing.T) {
			c := fakeClient(t, srv, func(o *Options) { o.Model = model })
			if _, err := c.Complete(context.Background(), "You summarize.", prompt); err != nil {
				t.Fatalf("auto: %v", err)
			}
			c = fakeClient(t, srv, func(o *Options) { o.Model = model; o.SendTemperature = TemperatureAlways })
			_, err := c.Complete(context.Background(), "You summarize.", prompt)
			var e *Error
			if !errors.As(err, &e) || e.Status != 400 || e.Code != "unsupported_value" || e.Param != "temperature" ||
				!strings.Contains(err.Error(), "llm.send_temperature: never") {
				t.Fatalf("always: err = %v, want a 400 naming llm.send_temperature", err)
			}
		})
	}
	// Other models get the temperature unless told otherwise; "never"
	// leaves it out for any model.
	for _, tc := range []struct {
		model string
		mode  TemperatureMode
		sent  bool
	}{{"gpt-4o-mini", "", true}, {"gpt-4o-mini", TemperatureAuto, true}, {"llama3.1", TemperatureNever, false}, {"o3", TemperatureAuto, false}, {"openai/o3", "", false}} {
		f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) { ok(w) })
		c, _ := newClient(t, f.URL(), func(o *Options) { o.Model = tc.model; o.SendTemperature = tc.mode })
		if _, err := c.Complete(context.Background(), "s", "u"); err != nil {
			t.Fatal(err)
		}
		// The bot's structured call takes the same settings.
		if _, err := c.CompleteJSON(context.Background(), "s", "u", Schema{Name: "reply", Schema: map[string]any{"type": "object"}}); err != nil {
			t.Fatal(err)
		}
		for i, r := range f.requests() {
			if _, sent := r.Body["temperature"]; sent != tc.sent {
				t.Errorf("%s, %q, request %d: temperature sent %v, want %v", tc.model, tc.mode, i, sent, tc.sent)
			}
			if _, sent := r.Body["max_tokens"]; sent {
				t.Errorf("%s, request %d: max_tokens sent", tc.model, i)
			}
		}
	}
	if _, err := New(Options{Model: "m", SendTemperature: "sometimes"}); err == nil || !strings.Contains(err.Error(), "llm.send_temperature") {
		t.Errorf("New with send_temperature sometimes: %v", err)
	}
}

// A server that refuses the token limit gets an error that names the key.
func TestRefusedTokenLimitNamesTheKey(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		_, _ = w.Write([]byte(`{"error":{"message":"Unrecognized request argument supplied: max_completion_tokens","type":"invalid_request_error","param":"max_completion_tokens","code":null}}`))
	})
	c, _ := newClient(t, f.URL(), nil)
	_, err := c.Complete(context.Background(), "s", "u")
	if err == nil || !strings.Contains(err.Error(), "check llm.max_tokens") {
		t.Fatalf("err = %v, want one naming llm.max_tokens", err)
	}
}
