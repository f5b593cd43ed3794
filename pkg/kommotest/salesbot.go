package kommotest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
	"unicode/utf8"
)

// The Salesbot side of the fake (kommo-webhooks.md §4, §7.4): it sends
// widget_request to a widget's URL with a JWT signed by the integration's
// client secret, and it serves the continue endpoint that resumes the bot.

const (
	// WidgetRequestTimeout is how long Kommo waits for the 200 of a widget_request.
	WidgetRequestTimeout = 2 * time.Second
	maxHandlers          = 10
	maxShowRunes         = 80
	maxButtons           = 25
)

type botState struct {
	nextContinue int64
	waiting      map[string]bool // continue_id -> still waiting for its continue call
	calls        []ContinueCall
	failed       int
}

// WidgetRequest is what the fake Salesbot sends. The zero value (plus URL)
// is a valid request for the account's first lead.
type WidgetRequest struct {
	URL       string // the widget handler's URL (required)
	Message   string // data.message, what {{message_text}} gives
	LeadID    int64  // the JWT's entity_id and data.lead_id; default the first lead
	ContactID int64  // data.contact_id; default the lead's main contact
	// Data replaces the whole data object when not nil.
	Data map[string]any
	// BotType is "salesbot" (default) or "marketingbot"; BotID defaults to 321.
	BotType string
	BotID   int64
	// Alg is "HS512" (default, what Kommo signs with), "HS256" or "none".
	Alg string
	// Secret signs the token; default the integration's client secret.
	Secret string
	// Expired makes a token whose exp passed 10 minutes ago.
	Expired bool
	// AccountID is the account_id claim; default the account's id.
	AccountID int64
	// Claims are set on top of the standard claims (nil deletes one).
	Claims map[string]any
	// OmitReturnURL leaves return_url out of the body; ReturnURL, when set,
	// replaces the real one (a foreign host, say).
	OmitReturnURL bool
	ReturnURL     string
	// RawBody, when not nil, is sent as is instead of the JSON body.
	RawBody []byte
}

// WidgetDelivery is how a widget_request went.
type WidgetDelivery struct {
	Status   int
	Body     []byte
	Duration time.Duration
	// Failed is true for a non-200 answer, an answer slower than 2 s or none:
	// Kommo counts such a hook as failed (and does not retry it).
	Failed     bool
	Err        error // no answer at all
	ContinueID string
	ReturnURL  string
	Token      string
}

// SendWidgetRequest makes Salesbot reach a widget step: it POSTs
// {token, data, return_url} to req.URL once, never retrying, with a fresh
// continue_id that the continue endpoint then waits for.
func (s *Server) SendWidgetRequest(ctx context.Context, req WidgetRequest) *WidgetDelivery {
	s.mu.Lock()
	if s.bots.waiting == nil {
		s.bots.waiting = map[string]bool{}
	}
	s.bots.nextContinue++
	continueID := strconv.FormatInt(4000+s.bots.nextContinue, 10)
	s.bots.waiting[continueID] = true
	s.stats.WidgetRequests++
	lead := req.LeadID
	contact := req.ContactID
	if lead == 0 && len(s.acct.leads) > 0 {
		lead = s.acct.leads[0].id
	}
	if contact == 0 {
		if l := s.acct.leadByID[lead]; l != nil {
			if ids := l.contactIDsMainFirst(); len(ids) > 0 {
				contact = ids[0]
			}
		}
	}
	now := s.now()
	s.mu.Unlock()

	botType := req.BotType
	if botType == "" {
		botType = "salesbot"
	}
	botID := req.BotID
	if botID == 0 {
		botID = 321
	}
	returnURL := fmt.Sprintf("%s/api/v4/%s/%d/continue/%s", s.KommoURL, botType, botID, continueID)

	aud := req.URL
	if u, err := url.Parse(req.URL); err == nil {
		aud = u.Scheme + "://" + u.Host
	}
	iat := now
	if req.Expired {
		iat = now.Add(-25 * time.Minute)
	}
	claims := map[string]any{
		"iss": s.KommoURL, "aud": aud, "jti": s.newJTI(), "iat": iat.Unix(), "nbf": iat.Unix(),
		"exp": iat.Add(15 * time.Minute).Unix(), "account_id": int64(accountID), "subdomain": "kommotest",
		"client_uuid": s.opts.ClientID, "entity_id": lead, "entity_type": 2, "bot_type": botType,
	}
	if req.AccountID != 0 {
		claims["account_id"] = req.AccountID
	}
	for k, v := range req.Claims {
		if v == nil {
			delete(claims, k)
			continue
		}
		claims[k] = v
	}
	secret := req.Secret
	if secret == "" {
		secret = s.opts.ClientSecret
	}
	token := SignJWT(req.Alg, secret, claims)

	data := req.Data
	if data == nil {
		data = map[string]any{"message": req.Message, "lead_id": strconv.FormatInt(lead, 10), "contact_id": strconv.FormatInt(contact, 10)}
	}
	body := req.RawBody
	if body == nil {
		ru := returnURL
		if req.ReturnURL != "" {
			ru = req.ReturnURL
		}
		obj := map[string]any{"token": token, "data": data, "return_url": ru}
		if req.OmitReturnURL {
			delete(obj, "return_url")
		}
		body, _ = json.Marshal(obj)
	}

	d := &WidgetDelivery{ContinueID: continueID, ReturnURL: returnURL, Token: token}
	ctx, cancel := context.WithTimeout(ctx, WidgetRequestTimeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, req.URL, bytes.NewReader(body))
	if err != nil {
		d.Err, d.Failed = err, true
		return d
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("User-Agent", "amoCRM-Webhooks/3.0")
	start := time.Now()
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		d.Err, d.Failed, d.Duration = err, true, time.Since(start)
		return d
	}
	d.Body, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	d.Duration = time.Since(start)
	d.Status = resp.StatusCode
	d.Failed = resp.StatusCode != http.StatusOK || d.Duration > WidgetRequestTimeout
	return d
}

func (s *Server) newJTI() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acct.newUUID()
}

// SignJWT makes a compact JWS of claims: alg "HS512" (the default when
// empty) or "HS256" signed with secret, or "none" with an empty signature.
func SignJWT(alg, secret string, claims map[string]any) string {
	if alg == "" {
		alg = "HS512"
	}
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"typ": "JWT", "alg": alg})
	c, _ := json.Marshal(claims)
	signing := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	return signing + "." + hmacSign(alg, secret, signing)
}

// hmacSign is the base64url signature of signing; empty for alg "none".
func hmacSign(alg, secret, signing string) string {
	var fn func() hash.Hash
	switch alg {
	case "HS512":
		fn = sha512.New
	case "HS256":
		fn = sha256.New
	default:
		return ""
	}
	m := hmac.New(fn, []byte(secret))
	m.Write([]byte(signing))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// ContinueCall is a continue call the fake accepted (202).
type ContinueCall struct {
	BotType    string
	BotID      int64
	ContinueID string
	Data       map[string]any
	Handlers   []Handler
	Body       []byte
	At         time.Time
}

// Handler is one of execute_handlers.
type Handler struct {
	Handler string         `json:"handler"`
	Params  map[string]any `json:"params"`
}

// ContinueCalls returns the accepted continue calls, oldest first.
func (s *Server) ContinueCalls() []ContinueCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ContinueCall(nil), s.bots.calls...)
}

// Continued returns the accepted continue call of a continue_id.
func (s *Server) Continued(continueID string) (ContinueCall, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.bots.calls {
		if c.ContinueID == continueID {
			return c, true
		}
	}
	return ContinueCall{}, false
}

// ExpireContinue makes the bot stop waiting for continueID, as when it has
// moved on: its continue call gets 404.
func (s *Server) ExpireContinue(continueID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.bots.waiting, continueID)
}

// continueBot: POST /api/v4/{salesbot|marketingbot}/{bot_id}/continue/{continue_id}
// (developers.kommo.com/reference/salesbot-widget-block-execution-confirmation).
// The Bearer was checked by serveKommo.
func (s *Server) continueBot(w http.ResponseWriter, r *http.Request, botType, botIDStr, continueID string) {
	reject := func(status int, detail string) {
		s.mu.Lock()
		s.stats.ContinueRejected++
		s.mu.Unlock()
		problem(w, status, detail)
	}
	botID, err := strconv.ParseInt(botIDStr, 10, 64)
	if err != nil || botID <= 0 {
		reject(http.StatusNotFound, "No such endpoint")
		return
	}
	s.mu.Lock()
	s.stats.ContinueCalls++
	fail := s.bots.failed < s.opts.ContinueFailFirst
	if fail {
		s.bots.failed++
	}
	s.mu.Unlock()
	if fail {
		s.mu.Lock()
		s.stats.ContinueRejected++
		s.mu.Unlock()
		gatewayError(w, http.StatusServiceUnavailable)
		return
	}
	raw, ok := readJSONBody(w, r)
	if !ok {
		s.mu.Lock()
		s.stats.ContinueRejected++
		s.mu.Unlock()
		return
	}
	var body struct {
		Data     json.RawMessage `json:"data"`
		Handlers json.RawMessage `json:"execute_handlers"`
	}
	var handlers []json.RawMessage
	if jsonKind(raw) != '{' || json.Unmarshal(raw, &body) != nil {
		reject(http.StatusBadRequest, "The request body must be an object with data and execute_handlers")
		return
	}
	call := ContinueCall{BotType: botType, BotID: botID, ContinueID: continueID, Body: raw}
	if len(body.Data) > 0 && !isNull(body.Data) {
		if jsonKind(body.Data) != '{' || json.Unmarshal(body.Data, &call.Data) != nil {
			reject(http.StatusBadRequest, "data must be an object")
			return
		}
	}
	if len(body.Handlers) > 0 && !isNull(body.Handlers) {
		if jsonKind(body.Handlers) != '[' || json.Unmarshal(body.Handlers, &handlers) != nil {
			reject(http.StatusBadRequest, "execute_handlers must be an array")
			return
		}
		if len(handlers) > maxHandlers {
			reject(http.StatusBadRequest, fmt.Sprintf("execute_handlers: at most %d handlers, got %d", maxHandlers, len(handlers)))
			return
		}
		for i, h := range handlers {
			hd, problem := parseHandler(h)
			if problem != "" {
				reject(http.StatusBadRequest, fmt.Sprintf("execute_handlers[%d]: %s", i, problem))
				return
			}
			call.Handlers = append(call.Handlers, hd)
		}
	}
	s.mu.Lock()
	if !s.bots.waiting[continueID] {
		s.stats.ContinueRejected++
		s.mu.Unlock()
		problem(w, http.StatusNotFound, "No widget awaiting an execution result was found")
		return
	}
	delete(s.bots.waiting, continueID)
	call.At = s.now()
	s.bots.calls = append(s.bots.calls, call)
	s.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

func parseHandler(raw json.RawMessage) (Handler, string) {
	var h Handler
	if jsonKind(raw) != '{' || json.Unmarshal(raw, &h) != nil {
		return h, "must be an object {handler, params}"
	}
	str := func(k string) (string, bool) {
		v, ok := h.Params[k].(string)
		return v, ok
	}
	switch h.Handler {
	case "show":
		typ, _ := str("type")
		switch typ {
		case "text", "buttons", "buttons_url":
		default:
			return h, fmt.Sprintf("show: params.type must be text, buttons or buttons_url, got %q", typ)
		}
		v, ok := str("value")
		if !ok {
			return h, "show: params.value must be a string"
		}
		if n := utf8.RuneCountInString(v); n > maxShowRunes {
			return h, fmt.Sprintf("show: params.value is %d characters, at most %d", n, maxShowRunes)
		}
		if typ != "text" {
			bs, ok := h.Params["buttons"].([]any)
			if !ok || len(bs) == 0 {
				return h, "show: params.buttons must be a non-empty array"
			}
			if len(bs) > maxButtons {
				return h, fmt.Sprintf("show: at most %d buttons, got %d", maxButtons, len(bs))
			}
		}
	case "goto":
		typ, _ := str("type")
		switch typ {
		case "question", "answer", "finish":
		default:
			return h, fmt.Sprintf("goto: params.type must be question, answer or finish, got %q", typ)
		}
		step, ok := h.Params["step"].(float64)
		if !ok || step != float64(int64(step)) {
			return h, "goto: params.step must be an integer"
		}
	default:
		return h, fmt.Sprintf("handler must be show or goto, got %q", h.Handler)
	}
	return h, ""
}
