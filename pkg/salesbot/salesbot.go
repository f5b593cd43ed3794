// Package salesbot answers Salesbot's widget_request with the LLM.
//
// Kommo's Salesbot reaches the widget's step and POSTs {token, data,
// return_url} (kommo-webhooks.md §4). The handler checks the token and
// stores a job before it answers 200 (Kommo waits 2 s), so a restart does
// not drop it; the worker (Run) builds the reply from the operator's
// instructions, the lead's latest summary, its recent messages and the new
// one, logs both messages, and resumes the bot by POSTing return_url with
// {"data": {"status", "reply"}, "execute_handlers": [show, ...]}. When the
// client asks for a person (a keyword, or the model's own flag) the lead is
// handed to a manager and gets no AI reply for a while.
package salesbot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/llm"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
)

// Model is the LLM: a structured answer to a system and a user message.
// *llm.Client is one.
type Model interface {
	CompleteJSON(ctx context.Context, system, user string, schema llm.Schema) (*llm.Completion, error)
}

// Kommo resumes bots. *kommo.Client is one.
type Kommo interface {
	// CheckReturnURL fails for a return_url that is not the account's
	// continue endpoint.
	CheckReturnURL(raw string) (*url.URL, error)
	// ContinueBot POSTs body to return_url with the access token; a 404
	// matches errors.Is(err, kommo.ErrNotFound).
	ContinueBot(ctx context.Context, returnURL string, body any) error
}

// Defaults for zero Options fields.
const (
	DefaultLeeway          = 60 * time.Second
	DefaultWorkers         = 64
	DefaultHistory         = 20
	DefaultMaxBodyBytes    = 1 << 20
	DefaultMaxMessageChars = 4000
	DefaultReplyTimeout    = 45 * time.Second
	DefaultLease           = 2 * time.Minute
	DefaultRetryBase       = 5 * time.Second
	DefaultMaxAttempts     = 6
	DefaultShutdownGrace   = 15 * time.Second
	DefaultHandoffQuiet    = 24 * time.Hour
	DefaultFallbackText    = "Thank you! A manager will answer you shortly"
)

// DefaultHandoffKeywords are the phrases that hand a chat to a manager when
// Options.HandoffKeywords is nil.
var DefaultHandoffKeywords = []string{"operator", "manager", "human", "real person", "оператор", "менеджер", "живой человек", "человек"}

// Options configure a Service.
type Options struct {
	DB    *store.DB // required
	LLM   Model     // required
	Kommo Kommo     // required

	// ClientSecret signs the widget_request tokens (kommo.client_secret); required.
	ClientSecret string
	// AccountID is the Kommo account's id; tokens of other accounts are
	// refused. When 0, AccountLookup finds it once (GET /api/v4/account).
	AccountID     int64
	AccountLookup func(ctx context.Context) (int64, error)

	// InstructionsFile holds the operator's instructions for the model,
	// read again when it changes; empty or missing means none.
	InstructionsFile string
	// HandoffKeywords hand the chat to a manager when the client's message
	// has one (case-insensitive, at the start of a word); nil means
	// DefaultHandoffKeywords, an empty non-nil slice none.
	HandoffKeywords []string
	HandoffQuiet    time.Duration // no AI reply after a handoff; default 24h
	FallbackText    string        // the reply when the model fails

	Leeway          time.Duration // for exp, nbf and iat; default 60 s
	Workers         int           // jobs worked on at once (LLM calls in flight); default 64
	History         int           // recent logged messages in the prompt; default 20
	MaxBodyBytes    int64         // of a widget_request; default 1 MiB
	MaxMessageChars int           // longer client messages get status fail; default 4000
	ReplyTimeout    time.Duration // for the LLM call; default 45 s
	Lease           time.Duration // a job's hold by a worker; default 2 min
	RetryBase       time.Duration // first wait before a continue call is retried; default 5 s
	MaxAttempts     int           // continue attempts before giving up; default 6
	ShutdownGrace   time.Duration // what Run gives jobs in hand once its context ends; default 15 s

	Logger *slog.Logger
	Now    func() time.Time
}

// Service is the Salesbot widget: the widget_request handler, the job
// worker, and a dry run for tests. It is safe for concurrent use.
type Service struct {
	o      Options
	secret []byte
	log    *slog.Logger
	wake   chan struct{}
	instr  instructions
	jobs   jobBatcher

	acctMu sync.Mutex   // one lookup at a time
	acctID atomic.Int64 // 0 until known
}

// New checks o and returns a Service.
func New(o Options) (*Service, error) {
	switch {
	case o.DB == nil:
		return nil, errors.New("salesbot: no store")
	case o.LLM == nil:
		return nil, errors.New("salesbot: no LLM")
	case o.Kommo == nil:
		return nil, errors.New("salesbot: no Kommo client")
	case o.ClientSecret == "":
		return nil, errors.New("salesbot: kommo.client_secret is required: widget_request tokens are signed with it")
	case o.AccountID == 0 && o.AccountLookup == nil:
		return nil, errors.New("salesbot: the account id is unknown")
	}
	if o.HandoffKeywords == nil {
		o.HandoffKeywords = DefaultHandoffKeywords
	}
	if o.HandoffQuiet <= 0 {
		o.HandoffQuiet = DefaultHandoffQuiet
	}
	if strings.TrimSpace(o.FallbackText) == "" {
		o.FallbackText = DefaultFallbackText
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Leeway, DefaultLeeway)
	def(&o.ReplyTimeout, DefaultReplyTimeout)
	def(&o.Lease, DefaultLease)
	def(&o.RetryBase, DefaultRetryBase)
	def(&o.ShutdownGrace, DefaultShutdownGrace)
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.History <= 0 {
		o.History = DefaultHistory
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxMessageChars <= 0 {
		o.MaxMessageChars = DefaultMaxMessageChars
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Service{
		o: o, secret: []byte(o.ClientSecret), log: o.Logger, wake: make(chan struct{}, 1),
		instr: instructions{path: o.InstructionsFile}, jobs: jobBatcher{db: o.DB},
	}
	s.acctID.Store(o.AccountID)
	if _, err := s.instr.get(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Service) now() time.Time { return s.o.Now() }

// accountID returns the account's id, looking it up the first time.
func (s *Service) accountID(ctx context.Context) (int64, error) {
	if id := s.acctID.Load(); id != 0 {
		return id, nil
	}
	s.acctMu.Lock()
	defer s.acctMu.Unlock()
	if id := s.acctID.Load(); id != 0 {
		return id, nil
	}
	id, err := s.o.AccountLookup(ctx)
	if err != nil {
		return 0, fmt.Errorf("salesbot: find the account id: %w", err)
	}
	if id <= 0 {
		return 0, errors.New("salesbot: find the account id: Kommo returned none")
	}
	s.acctID.Store(id)
	return id, nil
}

// Handler serves POST /salesbot/widget_request (whatever path it is
// mounted at). It answers 200 once the job is stored, before any LLM or
// Kommo call; 401 for a bad token, 4xx for a bad request, each with a
// one-line JSON {"error": ...} and a warn log line.
func (s *Service) Handler() http.Handler {
	return http.HandlerFunc(s.serveWidgetRequest)
}

// widgetRequest is Kommo's body.
type widgetRequest struct {
	Token     string          `json:"token"`
	Data      json.RawMessage `json:"data"`
	ReturnURL string          `json:"return_url"`
}

func (s *Service) serveWidgetRequest(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	reject := func(status int, msg string, args ...any) {
		s.log.Warn("salesbot: widget_request refused", append([]any{"status", status, "reason", msg, "remote", r.RemoteAddr}, args...)...)
		writeJSON(w, status, map[string]string{"error": msg})
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		reject(http.StatusMethodNotAllowed, "use POST")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			reject(http.StatusUnsupportedMediaType, "the body must be application/json")
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.o.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			reject(http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over %d bytes", s.o.MaxBodyBytes))
			return
		}
		reject(http.StatusBadRequest, "cannot read the body")
		return
	}
	var req widgetRequest
	if err := json.Unmarshal(body, &req); err != nil {
		reject(http.StatusBadRequest, "the body is not a JSON object {token, data, return_url}")
		return
	}
	acct, err := s.accountID(r.Context())
	if err != nil {
		s.log.Error("salesbot: widget_request cannot be checked", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "the account id is unknown"})
		return
	}
	c, err := s.verifyToken(req.Token, acct)
	if err != nil {
		reject(http.StatusUnauthorized, err.Error())
		return
	}
	if req.ReturnURL == "" {
		reject(http.StatusBadRequest, "no return_url")
		return
	}
	if _, err := s.o.Kommo.CheckReturnURL(req.ReturnURL); err != nil {
		// Never a token to a foreign host: no job, no continue call.
		s.log.Error("salesbot: widget_request with a foreign return_url: not answered", "err", err)
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	data, message, contactID, leadFromData, ok := parseData(req.Data)
	if !ok {
		reject(http.StatusBadRequest, "data must be an object")
		return
	}
	lead := c.leadID()
	if lead == 0 {
		lead = leadFromData
	}
	if lead <= 0 {
		reject(http.StatusBadRequest, "the token names no lead (entity_id) and data has no lead_id")
		return
	}
	id, err := s.jobs.add(r.Context(), store.BotJob{
		ReturnURL: req.ReturnURL, LeadID: lead, ContactID: contactID, Message: message, Data: data,
	})
	if err != nil {
		s.log.Error("salesbot: cannot store the widget_request", "lead_id", lead, "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "cannot store the request"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "accepted", "job_id": id})
	s.log.Info("salesbot: widget_request accepted", "lead_id", lead, "job_id", id, "duration", time.Since(start))
	s.Wake()
}

// parseData reads the request's data object: the message ({{message_text}}),
// and contact_id and lead_id when the widget sends them.
func parseData(raw json.RawMessage) (data, message string, contactID, leadID int64, ok bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return "{}", "", 0, 0, true
	}
	var obj map[string]any
	if json.Unmarshal(raw, &obj) != nil {
		return "", "", 0, 0, false
	}
	num := func(k string) int64 {
		switch v := obj[k].(type) {
		case float64:
			return int64(v)
		case string:
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
		return 0
	}
	switch v := obj["message"].(type) {
	case string:
		message = v
	case float64:
		message = strconv.FormatFloat(v, 'f', -1, 64)
	}
	return string(raw), message, num("contact_id"), num("lead_id"), true
}

// Wake tells the worker a job is due.
func (s *Service) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
