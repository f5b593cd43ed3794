package kommotest

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The Chats API (amojo) fake: every request is signed with the channel secret
// (kommo-api.md §1), history pages hold at most 50 messages, newest first (§2).

const dateSkew = 15 * time.Minute // "The signature will be valid for 15 minutes from this Date."

func chatsError(w http.ResponseWriter, status int, typ, desc string) {
	writeJSON(w, status, "application/json", map[string]any{
		"error_code": status, "error_type": typ, "error_description": desc,
	})
}

// expectedSignature is the verifier's own computation of X-Signature:
// lowercase hex HMAC-SHA1 keyed with the secret's ASCII bytes over
// METHOD\nContent-MD5\nContent-Type\nDate\nPATH.
func expectedSignature(secret, method, contentMD5, contentType, date, path string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	_, _ = io.WriteString(mac, strings.Join([]string{strings.ToUpper(method), contentMD5, contentType, date, path}, "\n"))
	return hex.EncodeToString(mac.Sum(nil))
}

// checkSignature returns why the request's signature headers are not valid, or "".
func (s *Server) checkSignature(r *http.Request, body []byte) string {
	date := r.Header.Get("Date")
	ctype := r.Header.Get("Content-Type")
	cmd5 := r.Header.Get("Content-MD5")
	sig := r.Header.Get("X-Signature")
	switch {
	case date == "":
		return "the Date header is missing"
	case ctype == "":
		return "the Content-Type header is missing"
	case cmd5 == "":
		return "the Content-MD5 header is missing"
	case sig == "":
		return "the X-Signature header is missing"
	}
	at, err := time.Parse(time.RFC1123Z, date)
	if err != nil {
		return "the Date header is not in RFC 2822 format (Mon, 02 Jan 2006 15:04:05 -0700)"
	}
	if d := s.now().Sub(at); d > dateSkew || d < -dateSkew {
		return "the Date header is more than 15 minutes away from the server time"
	}
	if ctype != "application/json" {
		return "Content-Type must be application/json"
	}
	sum := md5.Sum(body)
	if cmd5 != hex.EncodeToString(sum[:]) {
		return "Content-MD5 is not the lowercase hex MD5 of the request body"
	}
	want := expectedSignature(s.opts.ChannelSecret, r.Method, cmd5, ctype, date, r.URL.EscapedPath())
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return "X-Signature does not match the request"
	}
	return ""
}

func (s *Server) serveChats(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.ChatsRequests++
	count := s.chatsWin.add(s.now())
	limited := s.opts.ChatsRateLimit > 0 && float64(count) > s.opts.ChatsRateLimit
	fail := 0
	switch {
	case limited:
		s.stats.Chats429++
	case s.opts.FailRate > 0 && s.chatsFail.Float64() < s.opts.FailRate:
		s.stats.Injected5xx++
		fail = http.StatusBadGateway
		if s.chatsFail.IntN(2) == 1 {
			fail = http.StatusServiceUnavailable
		}
	}
	s.mu.Unlock()

	if limited {
		chatsError(w, http.StatusTooManyRequests, "TOO_MANY_REQUESTS", "too many requests")
		return
	}
	sleepCtx(r, s.opts.Latency)
	switch fail {
	case http.StatusBadGateway:
		gatewayError(w, fail)
		return
	case http.StatusServiceUnavailable:
		chatsError(w, fail, "SERVICE_UNAVAILABLE", "service temporarily unavailable")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		chatsError(w, http.StatusBadRequest, "BAD_REQUEST", "cannot read the request body")
		return
	}
	seg := strings.Split(strings.TrimPrefix(r.URL.Path, "/v2/origin/custom/"), "/")
	route := ""
	switch {
	case !strings.HasPrefix(r.URL.Path, "/v2/origin/custom/"):
	case r.Method == http.MethodGet && len(seg) == 4 && seg[1] == "chats" && seg[3] == "history":
		route = "history"
	case r.Method == http.MethodPost && len(seg) == 2 && seg[1] == "connect":
		route = "connect"
	}
	if route == "" {
		// Recorded before the signature check: a request to a route that
		// does not exist is a bug whatever its signature.
		s.unknownRoute(r)
	}
	if why := s.checkSignature(r, body); why != "" {
		chatsError(w, http.StatusForbidden, "INVALID_SIGNATURE", "invalid request signature: "+why)
		return
	}
	switch route {
	case "history":
		s.history(w, r, seg[0], seg[2])
	case "connect":
		s.connect(w, seg[0], body)
	default:
		chatsError(w, http.StatusNotFound, "NOT_FOUND", "no such endpoint")
	}
}

// history: GET /v2/origin/custom/{scope_id}/chats/{chat_id}/history?offset=&limit=
// (developers.kommo.com/reference/chat-history).
func (s *Server) history(w http.ResponseWriter, r *http.Request, scope, chatID string) {
	s.mu.Lock()
	s.stats.HistoryCalls++
	disconnected := s.disconnected
	s.mu.Unlock()
	// Kommo documents 404 as "channel not found" and nothing else for a
	// scope that is not connected (kommo-api.md §1.3): a wrong scope_id and
	// a channel disconnected since get the same answer.
	if scope != s.ScopeID() || disconnected {
		chatsError(w, http.StatusNotFound, "NOT_FOUND", "channel not found: the scope_id is not connected to this account")
		return
	}
	if status, bad := s.opts.BadChats[chatID]; bad {
		chatsError(w, status, "BAD_REQUEST", "the chat's data cannot be served")
		return
	}
	q := r.URL.Query()
	limit, offset := 50, 0
	if v, ok := q["limit"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 || n > 50 {
			chatsError(w, http.StatusBadRequest, "BAD_REQUEST", "limit must be an integer from 1 to 50")
			return
		}
		limit = n
	}
	if v, ok := q["offset"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 0 {
			chatsError(w, http.StatusBadRequest, "BAD_REQUEST", "offset must be a non-negative integer")
			return
		}
		offset = n
	}

	s.mu.Lock()
	c := s.acct.chats[chatID]
	var out []any
	switch {
	// A native chat is not in our channel's scope: for the channel it does not
	// exist, which the history answers with 204 (kommo-webhooks.md §7.6).
	case c == nil || c.origin != "":
	case s.opts.HistoryOldestFirst:
		for i := offset; i < len(c.msgs) && len(out) < limit; i++ {
			out = append(out, messageJSON(c, c.msgs[i]))
		}
	default:
		// Newest first, as in Kommo's only example.
		for i := len(c.msgs) - 1 - offset; i >= 0 && len(out) < limit; i-- {
			out = append(out, messageJSON(c, c.msgs[i]))
		}
	}
	s.mu.Unlock()
	if len(out) == 0 {
		noContent(w) // "the chat does not exist or has no messages"
		return
	}
	writeJSON(w, http.StatusOK, "application/json", map[string]any{"messages": out})
}

func messageJSON(c *chat, m *message) map[string]any {
	body := map[string]any{"id": m.id, "client_id": m.clientID, "type": m.typ, "text": m.text}
	// Manager messages carry every field, as in the official example; client
	// messages omit empty ones ("Empty values may be omitted").
	if !m.fromClient || m.media != "" {
		body["media"] = m.media
		body["thumbnail"] = m.thumbnail
		body["file_name"] = m.fileName
		body["file_size"] = m.fileSize
	}
	switch m.typ {
	case "location":
		body["location"] = map[string]any{"lon": m.lon, "lat": m.lat}
	case "contact":
		body["contact"] = map[string]any{"name": m.contactName, "phone": m.contactPhone}
	}
	client := map[string]any{"id": c.client.id, "client_id": c.client.clientID, "name": c.client.name, "phone": c.client.phone}
	out := map[string]any{
		"timestamp":      m.at.Unix(),
		"msec_timestamp": m.at.UnixMilli(),
		"message":        body,
	}
	if m.fromClient {
		out["sender"] = client
	} else {
		out["sender"] = map[string]any{"id": c.manager.id, "name": c.manager.name}
		out["receiver"] = client
	}
	return out
}

// connect: POST /v2/origin/custom/{channel_id}/connect (developers.kommo.com/reference/connect-channel).
func (s *Server) connect(w http.ResponseWriter, channelID string, body []byte) {
	if channelID != s.opts.ChannelID {
		chatsError(w, http.StatusNotFound, "NOT_FOUND", "channel not found")
		return
	}
	var req struct {
		AccountID      string `json:"account_id"`
		Title          string `json:"title"`
		HookAPIVersion string `json:"hook_api_version"`
		NoTimeWindow   bool   `json:"is_time_window_disabled"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		chatsError(w, http.StatusBadRequest, "BAD_REQUEST", "the body is not a valid connect request: "+err.Error())
		return
	}
	if req.AccountID != s.acct.amojoID {
		chatsError(w, http.StatusBadRequest, "BAD_REQUEST", "account_id must be the account's amojo_id")
		return
	}
	if req.HookAPIVersion != "" && req.HookAPIVersion != "v1" && req.HookAPIVersion != "v2" {
		chatsError(w, http.StatusBadRequest, "BAD_REQUEST", "hook_api_version must be v1 or v2")
		return
	}
	s.mu.Lock()
	s.disconnected = false
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, "application/json", map[string]any{
		"account_id": s.acct.amojoID, "scope_id": s.ScopeID(), "title": req.Title,
		"hook_api_version": "v2", "is_time_window_disabled": req.NoTimeWindow,
	})
}
