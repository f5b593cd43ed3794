package amojo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/httpx"
)

// connectRequest is the body of a connect call; its field order is the one
// of Kommo's examples, which makes the signed body predictable.
type connectRequest struct {
	AccountID      string `json:"account_id"`
	Title          string `json:"title"`
	HookAPIVersion string `json:"hook_api_version"`
}

// Connect connects our channel to an account and returns the scope id
// (channel id + "_" + amojo account id) that History needs. amojoAccountID
// is the account's amojo_id (GET /api/v4/account?with=amojo_id).
//
// Connecting an already connected channel returns the same scope, so the
// call is retried like a GET.
//
// https://developers.kommo.com/reference/connect-channel
func (c *Client) Connect(ctx context.Context, channelID, amojoAccountID, title string) (string, error) {
	if channelID == "" {
		return "", errors.New("amojo: the channel id is empty: set chats.channel_id")
	}
	if amojoAccountID == "" {
		return "", errors.New("amojo: the account's amojo_id is empty: read it with GET /api/v4/account?with=amojo_id")
	}
	body, err := json.Marshal(connectRequest{AccountID: amojoAccountID, Title: title, HookAPIVersion: "v2"})
	if err != nil {
		return "", err
	}
	u := c.endpoint(nil, "v2", "origin", "custom", channelID, "connect")
	var out struct {
		ScopeID string `json:"scope_id"`
	}
	status, err := c.do(ctx, http.MethodPost, u, body, &out)
	if err != nil {
		return "", err
	}
	if status == http.StatusNoContent || out.ScopeID == "" {
		return "", fmt.Errorf("amojo: POST %s: %d: the answer has no scope_id", httpx.CleanURL(u), status)
	}
	return out.ScopeID, nil
}
