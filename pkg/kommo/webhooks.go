package kommo

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/httpx"
)

// Webhook is an account webhook: Kommo POSTs the events named in Settings
// (add_message, add_outgoing_message, update_talk, ...) to Destination.
// Kommo sets Disabled after too many invalid answers; saving the webhook
// again enables it.
type Webhook struct {
	ID          int64    `json:"id"`
	Destination string   `json:"destination"`
	Settings    []string `json:"settings"`
	Sort        int64    `json:"sort"`
	Disabled    bool     `json:"disabled"`
	AccountID   int64    `json:"account_id"`
	CreatedBy   int64    `json:"created_by"`
	CreatedAt   int64    `json:"created_at"`
	UpdatedAt   int64    `json:"updated_at"`
}

// Webhooks returns the account's webhooks, or only the one whose destination
// is exactly destination when it is not empty; none is not an error. It
// needs an administrator's token.
//
// https://www.amocrm.ru/developers/content/crm_platform/webhooks-api (Kommo: https://developers.kommo.com/docs/webhooks-general)
func (c *Client) Webhooks(ctx context.Context, destination string) ([]Webhook, error) {
	var q url.Values
	if destination != "" {
		q = url.Values{"filter[destination]": {destination}}
	}
	var page struct {
		Embedded struct {
			Webhooks []Webhook `json:"webhooks"`
		} `json:"_embedded"`
	}
	u := c.endpoint("/api/v4/webhooks", q)
	status, err := c.do(ctx, http.MethodGet, u, nil, idempotent, &page)
	if err != nil || status == http.StatusNoContent {
		return nil, err
	}
	return page.Embedded.Webhooks, nil
}

// AddWebhook subscribes destination to the events in settings and returns
// the webhook. When the destination is registered already, Kommo replaces
// its settings with these (it does not merge them) and enables it again:
// read the current settings with Webhooks first to keep them. Sending it
// twice is harmless, so it is retried like a GET.
//
// https://developers.kommo.com/reference/add-webhooks
func (c *Client) AddWebhook(ctx context.Context, destination string, settings []string) (*Webhook, error) {
	if destination == "" || len(settings) == 0 {
		return nil, fmt.Errorf("kommo: a webhook needs a destination and at least one event")
	}
	in := struct {
		Destination string   `json:"destination"`
		Settings    []string `json:"settings"`
	}{destination, settings}
	var out Webhook
	u := c.endpoint("/api/v4/webhooks", nil)
	status, err := c.do(ctx, http.MethodPost, u, in, idempotent, &out)
	if err != nil {
		return nil, err
	}
	if status == http.StatusNoContent || out.Destination == "" {
		return nil, fmt.Errorf("kommo: POST %s: %d: Kommo answered without the webhook", httpx.CleanURL(u), status)
	}
	return &out, nil
}

// DeleteWebhook unsubscribes destination. A destination that is not
// registered is an *Error that matches ErrNotFound; so is one whose first,
// retried, attempt deleted it already.
//
// https://www.amocrm.ru/developers/content/crm_platform/webhooks-api
func (c *Client) DeleteWebhook(ctx context.Context, destination string) error {
	if destination == "" {
		return fmt.Errorf("kommo: delete a webhook: the destination is empty")
	}
	in := struct {
		Destination string `json:"destination"`
	}{destination}
	_, err := c.do(ctx, http.MethodDelete, c.endpoint("/api/v4/webhooks", nil), in, idempotent, nil)
	return err
}
