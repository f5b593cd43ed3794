package kommo

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/httpx"
)

// Account is the Kommo account the token belongs to.
type Account struct {
	ID            int64  `json:"id"`
	Name          string `json:"name"`
	Subdomain     string `json:"subdomain"`
	CurrentUserID int64  `json:"current_user_id"`
	AmojoID       string `json:"amojo_id"` // only with "amojo_id"; the account id of the Chats API
}

// Account returns the account the token belongs to; with adds optional
// parts, e.g. "amojo_id" (needed to connect a Chats API channel).
//
// https://developers.kommo.com/reference/account-parameters
func (c *Client) Account(ctx context.Context, with ...string) (*Account, error) {
	q := url.Values{}
	if len(with) > 0 {
		q.Set("with", strings.Join(with, ","))
	}
	var a Account
	status, err := c.do(ctx, http.MethodGet, c.endpoint("/api/v4/account", q), nil, idempotent, &a)
	if err != nil {
		return nil, err
	}
	if status == http.StatusNoContent {
		return nil, &Error{Method: http.MethodGet, URL: httpx.CleanURL(c.endpoint("/api/v4/account", nil)), Status: status}
	}
	return &a, nil
}
