package kommo

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommotest"
)

// webhooksClient is a Client of a fresh fake Kommo account.
func webhooksClient(t *testing.T) (*Client, *kommotest.Server) {
	t.Helper()
	srv := kommotest.StartT(t, kommotest.Options{RESTRateLimit: -1})
	return fakeClient(t, srv, nil), srv
}

func TestWebhooksAgainstTheFake(t *testing.T) {
	c, srv := webhooksClient(t)
	ctx := context.Background()
	dest := "https://bot.example.com/webhooks/kommo/s/"

	got, err := c.Webhooks(ctx, "")
	if err != nil || got != nil {
		t.Fatalf("no webhooks: got %+v, %v; want nil, nil (204)", got, err)
	}
	w, err := c.AddWebhook(ctx, dest, []string{"add_message", "update_talk"})
	if err != nil {
		t.Fatal(err)
	}
	if w.ID == 0 || w.Destination != dest || w.Disabled || !reflect.DeepEqual(w.Settings, []string{"add_message", "update_talk"}) ||
		w.CreatedAt == 0 || w.AccountID == 0 {
		t.Errorf("created %+v", w)
	}
	if _, err := c.AddWebhook(ctx, "https://other.example.com/h/", []string{"add_talk"}); err != nil {
		t.Fatal(err)
	}
	// A second POST replaces the settings.
	w2, err := c.AddWebhook(ctx, dest, []string{"add_outgoing_message"})
	if err != nil || w2.ID != w.ID || !reflect.DeepEqual(w2.Settings, []string{"add_outgoing_message"}) {
		t.Errorf("re-added: %+v, %v", w2, err)
	}
	all, err := c.Webhooks(ctx, "")
	if err != nil || len(all) != 2 {
		t.Fatalf("all webhooks: %+v, %v", all, err)
	}
	one, err := c.Webhooks(ctx, dest)
	if err != nil || len(one) != 1 || one[0].ID != w.ID || !reflect.DeepEqual(one[0].Settings, []string{"add_outgoing_message"}) {
		t.Errorf("filtered: %+v, %v", one, err)
	}

	if err := c.DeleteWebhook(ctx, dest); err != nil {
		t.Fatal(err)
	}
	err = c.DeleteWebhook(ctx, dest)
	var ke *Error
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &ke) || ke.Status != 404 {
		t.Errorf("second delete: %v, want a 404 that is ErrNotFound", err)
	}
	if got := srv.Webhooks(); len(got) != 1 || got[0].Destination == dest {
		t.Errorf("left on the fake: %+v", got)
	}
}

func TestAddWebhookRejected(t *testing.T) {
	c, _ := webhooksClient(t)
	ctx := context.Background()
	_, err := c.AddWebhook(ctx, "ftp://bot.example.com/h/", []string{"add_message"})
	var ke *Error
	if !errors.As(err, &ke) || ke.Status != 400 || len(ke.ValidationErrors) != 1 ||
		ke.ValidationErrors[0].Errors[0].Path != "destination" || ke.ValidationErrors[0].Errors[0].Detail != "Invalid URL" {
		t.Errorf("ftp destination: %v", err)
	}
	_, err = c.AddWebhook(ctx, "https://bot.example.com/h/", []string{"add_mesage"})
	if !errors.As(err, &ke) || ke.Status != 400 {
		t.Errorf("unknown event: %v", err)
	}
	if _, err := c.AddWebhook(ctx, "", []string{"add_message"}); err == nil {
		t.Error("empty destination accepted")
	}
}
