package kommo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

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
	payload, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	u := *base
	u.Path = base.Path + "/oauth2/access_token"
	hc := a.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	log := a.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	policy := a.Retry
	if policy == (retry.Policy{}) {
		policy = retry.Default
	}
	const method = http.MethodPost
	op := func() (*answer, error) {
		if err := a.Pacer.Wait(ctx); err != nil {
			return nil, retry.Permanent(err)
		}
		req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(payload))
		if err != nil {
			return nil, retry.Permanent(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", "kommo-summarizer")
		ans, err := roundTrip(hc, log, req)
		if err != nil {
			if ctx.Err() == nil && neverSent(err) {
				return nil, err
			}
			return nil, retry.Permanent(err)
		}
		switch s := ans.Status; {
		case s >= 200 && s < 300:
			return ans, nil
		case s == http.StatusTooManyRequests:
			err := &RateLimitError{Method: method, URL: httpx.CleanURL(&u)}
			if d := httpx.RetryAfter(ans.Header, maxRetryAfter); d > 0 {
				return nil, retry.After(d, err)
			}
			return nil, err
		case s == http.StatusBadRequest || s == http.StatusUnauthorized:
			return nil, retry.Permanent(&AuthError{Err: apiError(method, &u, ans)})
		default:
			return nil, retry.Permanent(apiError(method, &u, ans))
		}
	}
	ans, err := retry.Do(ctx, policy, op, retryLogger(log, method, &u))
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
