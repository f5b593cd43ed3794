package kommo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/httpx"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/pace"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/retry"
)

// OAuthApp is a Kommo integration's OAuth 2.0 client: it trades an
// authorization code or a refresh token for a token pair at
// POST {BaseURL}/oauth2/access_token.
type OAuthApp struct {
	BaseURL, ClientID, ClientSecret, RedirectURI string
	HTTPClient                                   *http.Client // nil: a client with 30 s timeout
	Pacer                                        *pace.Pacer  // the REST pacer: the token endpoint counts against the same limit
	Retry                                        retry.Policy // zero = retry.Default
	Logger                                       *slog.Logger // nil = discard
	// Guard is the IP block guard of the account host, shared with the
	// REST Client (Options.Guard); nil = a guard of this call's own.
	Guard *Guard
}

// TokenResponse is a token pair. The refresh token is single-use: persist the
// new pair before using the access token.
type TokenResponse struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"` // seconds
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ServerTime   int64  `json:"server_time"`
}

// Exchange trades an authorization code (valid 20 minutes, single-use) for a
// token pair.
//
// https://developers.kommo.com/reference/get-token
func (a OAuthApp) Exchange(ctx context.Context, code string) (*TokenResponse, error) {
	if code == "" {
		return nil, errors.New("kommo: the authorization code is empty: pass --code CODE from the integration's Keys and scopes tab")
	}
	return a.token(ctx, map[string]string{"grant_type": "authorization_code", "code": code})
}

// Refresh trades a refresh token for a new pair. The old refresh token is
// dead once Kommo has answered, which is why this call is never retried
// after the request may have reached the server.
//
// https://developers.kommo.com/reference/get-token
func (a OAuthApp) Refresh(ctx context.Context, refreshToken string) (*TokenResponse, error) {
	if refreshToken == "" {
		return nil, &AuthError{Err: errors.New("there is no refresh token")}
	}
	return a.token(ctx, map[string]string{"grant_type": "refresh_token", "refresh_token": refreshToken})
}

func (a OAuthApp) token(ctx context.Context, grant map[string]string) (*TokenResponse, error) {
	base, err := parseBaseURL(a.BaseURL)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct{ key, value string }{
		{"kommo.client_id", a.ClientID}, {"kommo.client_secret", a.ClientSecret}, {"kommo.redirect_uri", a.RedirectURI},
	} {
		if f.value == "" {
			return nil, fmt.Errorf("kommo: the OAuth app is incomplete: set %s", f.key)
		}
	}
	body := map[string]string{"client_id": a.ClientID, "client_secret": a.ClientSecret, "redirect_uri": a.RedirectURI}
	for k, v := range grant {
		body[k] = v
	}
	u := *base
	u.Path = base.Path + "/oauth2/access_token"
	// The token endpoint is on the account host: the same request path as
	// the REST API, the same pacer and the same IP block guard. Without a
	// TokenSource that path sends no bearer and reads a 400 or 401 as dead
	// credentials. A refresh token dies once Kommo has answered, so the
	// call is retried only when it surely did not reach Kommo.
	c := &Client{base: base, hc: a.HTTPClient, pacer: a.Pacer, retry: a.Retry, log: a.Logger, guard: a.Guard}
	c.defaults()
	const method = http.MethodPost
	ans, err := c.exchange(ctx, method, &u, body, notIdempotent)
	if err != nil {
		return nil, err
	}
	var t TokenResponse
	if err := decode(method, &u, ans, &t); err != nil {
		return nil, err
	}
	if t.AccessToken == "" {
		return nil, fmt.Errorf("kommo: %s %s: %d: the answer has no access_token", method, httpx.CleanURL(&u), ans.Status)
	}
	return &t, nil
}
