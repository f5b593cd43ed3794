package kommotest

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The OAuth token endpoint: POST /oauth2/access_token (developers.kommo.com/reference/get-token).
// Codes and refresh tokens are single-use; using a refresh token kills the
// access token issued with it (kommo-api.md §5).

const (
	refreshTokenTTL = 90 * 24 * time.Hour // three months
	authCodeTTL     = 20 * time.Minute
	oauthProblem    = "https://developers.amocrm.ru/v3/errors/OAuthProblemJson"
)

type tokenPair struct {
	access, refresh string
	accessExp       time.Time
	refreshExp      time.Time
	accessDead      bool // replaced through its refresh token
	refreshUsed     bool
	refreshRevoked  bool
}

type authCode struct {
	exp  time.Time
	used bool
}

// IssueTokens returns a fresh valid access/refresh pair, as after a login.
func (s *Server) IssueTokens() (access, refresh string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.newPair()
	return p.access, p.refresh
}

func (s *Server) newPair() *tokenPair {
	now := s.now()
	p := &tokenPair{
		access: randomToken("at"), refresh: randomToken("rt"),
		accessExp: now.Add(s.opts.AccessTokenTTL), refreshExp: now.Add(refreshTokenTTL),
	}
	s.access[p.access] = p
	s.refresh[p.refresh] = p
	return p
}

// AuthCode returns a new single-use authorization code, valid for 20 minutes.
func (s *Server) AuthCode() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	code := randomToken("code")
	s.codes[code] = &authCode{exp: s.now().Add(authCodeTTL)}
	return code
}

// ExpireAccessTokens makes every access token issued so far expired. The long-lived token is not affected.
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	past := s.now().Add(-time.Second)
	for _, p := range s.access {
		p.accessExp = past
	}
}

// RevokeRefreshTokens revokes every refresh token issued so far, as when the
// integration is disconnected from the account.
func (s *Server) RevokeRefreshTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.refresh {
		p.refreshRevoked = true
	}
}

func (s *Server) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if tok == s.longLived {
		return true
	}
	p := s.access[tok]
	return p != nil && !p.accessDead && s.now().Before(p.accessExp)
}

func oauthError(w http.ResponseWriter, status int, title, detail, hint string) {
	writeJSON(w, status, problemJSON, problemBody{Hint: hint, Title: title, Type: oauthProblem, Status: status, Detail: detail})
}

func (s *Server) serveOAuth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		s.unknownRoute(r)
		problem(w, http.StatusNotFound, "No such endpoint")
		return
	}
	form, ok := oauthForm(w, r)
	if !ok {
		return
	}
	if form.Get("client_id") != s.opts.ClientID || form.Get("client_secret") != s.opts.ClientSecret {
		oauthError(w, http.StatusUnauthorized, "Invalid client", "Client authentication failed", "")
		return
	}
	redirect := form.Get("redirect_uri")

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	switch form.Get("grant_type") {
	case "authorization_code":
		code := form.Get("code")
		if code == "" {
			oauthError(w, http.StatusBadRequest, "Invalid request", "The request is missing a required parameter", "Check the `code` parameter")
			return
		}
		if redirect != s.opts.RedirectURI {
			oauthError(w, http.StatusBadRequest, "Invalid request", "The request is missing a required parameter or a parameter is invalid",
				"redirect_uri does not match the integration's redirect URI")
			return
		}
		c := s.codes[code]
		switch {
		case c == nil || c.used:
			oauthError(w, http.StatusBadRequest, "Invalid request", "The request is missing a required parameter or a parameter is invalid",
				"Authorization code has been revoked")
			return
		case !now.Before(c.exp):
			oauthError(w, http.StatusBadRequest, "Invalid request", "The request is missing a required parameter or a parameter is invalid",
				"Authorization code has expired")
			return
		}
		c.used = true
	case "refresh_token":
		rt := form.Get("refresh_token")
		if rt == "" {
			oauthError(w, http.StatusBadRequest, "Invalid request", "The request is missing a required parameter", "Check the `refresh_token` parameter")
			return
		}
		if redirect != "" && redirect != s.opts.RedirectURI {
			oauthError(w, http.StatusBadRequest, "Invalid request", "The request is missing a required parameter or a parameter is invalid",
				"redirect_uri does not match the integration's redirect URI")
			return
		}
		p := s.refresh[rt]
		if p == nil || p.refreshUsed || p.refreshRevoked || !now.Before(p.refreshExp) {
			oauthError(w, http.StatusBadRequest, "Invalid request", "The request is missing a required parameter or a parameter is invalid",
				"Token has been revoked")
			return
		}
		p.refreshUsed = true
		p.accessDead = true
	default:
		oauthError(w, http.StatusBadRequest, "Unsupported grant type", "The authorization grant type is not supported by the authorization server",
			"Check that all required parameters have been provided")
		return
	}
	p := s.newPair()
	writeJSON(w, http.StatusOK, "application/json", map[string]any{
		"token_type":    "Bearer",
		"expires_in":    int64(s.opts.AccessTokenTTL / time.Second),
		"access_token":  p.access,
		"refresh_token": p.refresh,
		"server_time":   now.Unix(),
	})
}

// oauthForm reads the token request, sent as JSON (as Kommo's examples do) or as a form.
func oauthForm(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		problem(w, http.StatusBadRequest, "Cannot read the request body")
		return nil, false
	}
	switch mt {
	case "application/x-www-form-urlencoded":
		v, err := url.ParseQuery(string(body))
		if err != nil {
			problem(w, http.StatusBadRequest, "The form body does not parse")
			return nil, false
		}
		return v, true
	case "application/json":
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			problem(w, http.StatusBadRequest, "Syntax error: the request body is not a JSON object")
			return nil, false
		}
		v := url.Values{}
		for k, raw := range m {
			if isNull(raw) {
				continue
			}
			str, ok := jsonString(raw)
			if !ok {
				oauthError(w, http.StatusBadRequest, "Invalid request", "The request is missing a required parameter or a parameter is invalid",
					"Check the `"+k+"` parameter: it must be a string")
				return nil, false
			}
			v.Set(k, str)
		}
		return v, true
	}
	problem(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json or application/x-www-form-urlencoded")
	return nil, false
}
