package kommo

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/retry"
)

func TestContinueBot(t *testing.T) {
	var foreign atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { foreign.Add(1) }))
	defer evil.Close()
	var calls atomic.Int32
	account := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		switch {
		case r.Header.Get("Authorization") != "Bearer tok":
			w.WriteHeader(401)
		case r.URL.Path == "/api/v4/salesbot/1/continue/gone":
			w.WriteHeader(404)
		case n == 1:
			w.WriteHeader(503) // retried
		default:
			w.WriteHeader(202)
		}
	}))
	defer account.Close()
	c, err := New(Options{BaseURL: account.URL, Tokens: StaticToken("tok"),
		Retry: retry.Policy{Initial: time.Millisecond, Max: time.Millisecond, Tries: 3}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.ContinueBot(ctx, account.URL+"/api/v4/salesbot/1/continue/42", map[string]any{"data": map[string]string{"status": "success"}}); err != nil {
		t.Fatalf("continue: %v", err)
	}
	if calls.Load() != 2 {
		t.Fatalf("%d calls, want a retry after the 503", calls.Load())
	}
	if err := c.ContinueBot(ctx, account.URL+"/api/v4/salesbot/1/continue/gone", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("404: %v", err)
	}
	for _, u := range []string{
		evil.URL + "/api/v4/salesbot/1/continue/42",
		account.URL + "/api/v4/leads",
		account.URL + "/api/v4/salesbot/1/continue/42?x=1",
		"",
	} {
		if err := c.ContinueBot(ctx, u, nil); !errors.Is(err, ErrForeignReturnURL) {
			t.Errorf("%q: %v", u, err)
		}
	}
	if foreign.Load() != 0 {
		t.Fatal("a request went to a foreign host")
	}
}
