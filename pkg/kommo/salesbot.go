package kommo

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
)

// continuePath is the path of a Salesbot return_url.
var continuePath = regexp.MustCompile(`^/api/v4/(salesbot|marketingbot)/[0-9]+/continue/[A-Za-z0-9_-]+$`)

// ErrForeignReturnURL is matched (errors.Is) by the error of a return_url
// that is not the account's continue endpoint: the access token is never
// sent there.
var ErrForeignReturnURL = errors.New("the return_url is not this account's Salesbot continue endpoint")

// CheckReturnURL parses a Salesbot return_url and checks that it is this
// account's continue endpoint: the scheme and host of kommo.base_url, no
// user info, no query, and the path
// /api/v4/{salesbot|marketingbot}/{bot_id}/continue/{continue_id}.
func (c *Client) CheckReturnURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return nil, fmt.Errorf("kommo: %w: it is empty", ErrForeignReturnURL)
	case err != nil:
		return nil, fmt.Errorf("kommo: %w: it does not parse", ErrForeignReturnURL)
	case u.Scheme != c.base.Scheme || u.Host != c.base.Host:
		return nil, fmt.Errorf("kommo: %w: host %q is not %q (kommo.base_url)", ErrForeignReturnURL, u.Scheme+"://"+u.Host, c.base.Scheme+"://"+c.base.Host)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || !continuePath.MatchString(u.Path):
		return nil, fmt.Errorf("kommo: %w: path %q is not /api/v4/salesbot/{bot_id}/continue/{continue_id}", ErrForeignReturnURL, u.Path)
	}
	return u, nil
}

// ContinueBot resumes a Salesbot that waits at a widget step: it POSTs body
// ({"data": ..., "execute_handlers": [...]}) to the bot's return_url with
// the access token. Kommo answers 202 with no body. A return_url that is not
// this account's (see CheckReturnURL) gets no request at all.
//
// 429, 5xx and network errors are retried: a continue_id is consumed by the
// first call that acted, so a repeat can only get a 404, never a second
// resume. A 404 (the bot no longer waits: it moved on, or the id was used)
// matches errors.Is(err, ErrNotFound).
//
// https://developers.kommo.com/reference/salesbot-widget-block-execution-confirmation
func (c *Client) ContinueBot(ctx context.Context, returnURL string, body any) error {
	u, err := c.CheckReturnURL(returnURL)
	if err != nil {
		return err
	}
	// Not do: Kommo answers 202 with no body, nothing to decode.
	_, err = c.exchange(ctx, http.MethodPost, u, body, idempotent)
	return err
}
