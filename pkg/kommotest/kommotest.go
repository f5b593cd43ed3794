// Package kommotest runs faithful fakes of the services kommo-summarizer talks
// to: the Kommo REST API v4 with its OAuth token endpoint, the Kommo Chats API
// (amojo) and an OpenAI-compatible chat completions API.
//
// The fakes are real HTTP servers on 127.0.0.1. They hold a deterministic
// synthetic account (leads, contacts, chats in Russian and English) and they
// reject what the real services reject: unknown "with" values, limits over the
// maximum, expired or reused tokens, bad Chats API signatures, more than the
// allowed requests per second (with the IP block that follows repeated 429s).
// A client that passes against these fakes has met the documented contract,
// not the fake's good will. The sources are Kommo's documentation:
// https://www.kommo.com/developers/ (REST API v4, OAuth, the Chats API) and
// https://developers.kommo.com/reference/ (the Chats API reference).
//
// The REST fake also keeps the account webhooks registry, and sends account
// webhooks (form bodies, as Kommo does, to loopback destinations only) for
// chats on other integrations' channels (Options.NativeLeads): see
// webhooks.go and delivery.go.
package kommotest

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"
)

// Options configure the fakes. The zero value is a usable default account.
type Options struct {
	// Seed makes the synthetic data and the injected failures deterministic; default 1.
	Seed int64
	// Leads is the number of synthetic leads; default 60.
	Leads int

	// ClientID, ClientSecret and RedirectURI describe the one OAuth integration the
	// account knows; defaults "fake-client-id", "fake-client-secret", "https://example.com/oauth".
	ClientID, ClientSecret, RedirectURI string
	// ChannelID and ChannelSecret are the Chats API channel; the defaults are the
	// ones of Kommo's own signing example, so the official test vector verifies.
	ChannelID, ChannelSecret string
	// LLMAPIKey is the bearer the fake LLM accepts; default "sk-fake".
	LLMAPIKey string

	// SummaryFieldID is the textarea custom field every lead accepts in PATCH; default 900001.
	SummaryFieldID int64
	// AccessTokenTTL is the lifetime of OAuth access tokens; default 24h (Kommo's expires_in 86400).
	AccessTokenTTL time.Duration

	// RESTRateLimit and ChatsRateLimit are the requests allowed in any 1-second
	// window (Kommo documents 7); default 7; negative means no limit.
	RESTRateLimit, ChatsRateLimit float64
	// BlockAfter429s is how many 429 answers within 60 s make Kommo block the IP
	// (403 on every request to KommoURL); default 10; negative never blocks.
	BlockAfter429s int
	// BlockFor is how long the IP block lasts; default 10 min.
	BlockFor time.Duration

	// Latency is added to every Kommo and Chats request, LLMLatency to every LLM request.
	Latency, LLMLatency time.Duration
	// FailRate is the fraction of REST (not OAuth) and Chats requests answered
	// 502 or 503 before the server acts on them.
	FailRate float64
	// NotesFailAfterActRate is the fraction of successful POST notes requests that
	// store the notes and then answer 502, as a gateway timeout after the fact would.
	NotesFailAfterActRate float64
	// LLM429First makes the first N chat completion calls answer 429.
	LLM429First int
	// LLMAnswer, when set, is the content of every chat completion answer,
	// given the system and user messages (each message's text followed by a
	// newline). Tests use it for long, handoff or malformed answers.
	LLMAnswer func(system, user string) string
	// LLMAnswerBytes, when > 0, makes every completion's text that many
	// bytes long whatever max_tokens says, as a server that ignores the
	// limit would.
	LLMAnswerBytes int
	// LLMFinishReason, when set, is the finish_reason of every completion:
	// "content_filter" answers no text, "length" the first half of the
	// summary, any other value the whole summary.
	LLMFinishReason string

	// BeforeNotes is called when a POST notes request arrives (authenticated),
	// before anything is stored.
	BeforeNotes func()
	// AfterNotes is called after the notes are stored, before the answer is written.
	AfterNotes func()
	// BeforeLeadsPatch is called when a PATCH of leads arrives, before anything is stored.
	BeforeLeadsPatch func()
	// ContinueFailFirst makes the first N Salesbot continue calls answer 503
	// before acting on them.
	ContinueFailFirst int
	// HistoryOldestFirst makes chat history pages oldest first (offset
	// counts from the oldest message). Kommo's only example is newest first,
	// but its docs do not promise an order.
	HistoryOldestFirst bool
	// ChannelDisconnected starts the Chats API channel disconnected, as after
	// an install or once the integration was disabled: history answers 404
	// "channel not found" (the only code Kommo documents for it) until a
	// connect call.
	ChannelDisconnected bool
	// NotesForbidden lists leads whose notes the token's user has no rights
	// for: listing or adding their notes answers a 403 problem document
	// about rights (not the IP block's), and a batch with one of them
	// stores nothing.
	NotesForbidden []int64
	// BadChats makes the history of these chats answer with the given status,
	// as a chat with data the Chats API cannot serve would.
	BadChats map[string]int

	// NativeLeads is how many open leads chat on channels of other
	// integrations (WhatsApp, Telegram, Instagram, ...) instead of our Chats
	// API channel: GET /api/v4/contacts/chats does not list their chats, the
	// Chats API history answers 204 for them, and only account webhooks
	// carry their messages (see delivery.go); default 0.
	NativeLeads int
	// WebhookRetryUnit is Kommo's minute in the webhook retry schedule (5, 15,
	// 15, 60 units) and the auto-disable window (120 units); default 1 min.
	WebhookRetryUnit time.Duration
	// WebhookTimeout is how long a webhook POST may take to be answered; default 2 s.
	WebhookTimeout time.Duration
	// WebhookBatch is the most messages and talks one webhook body carries; default 10.
	WebhookBatch int
	// WebhookDuplicateRate is the fraction of delivered bodies sent once more,
	// one unit later, as Kommo's retries after a slow 200 do.
	WebhookDuplicateRate float64
	// WebhookDisableAfter: more invalid answers than this within 120 units
	// disable the webhook; default 100.
	WebhookDisableAfter int
}

func (o Options) withDefaults() Options {
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Leads <= 0 {
		o.Leads = 60
	}
	if o.ClientID == "" {
		o.ClientID = "fake-client-id"
	}
	if o.ClientSecret == "" {
		o.ClientSecret = "fake-client-secret"
	}
	if o.RedirectURI == "" {
		o.RedirectURI = "https://example.com/oauth"
	}
	if o.ChannelID == "" {
		o.ChannelID = "f62a0162-46a7-430e-b06c-0ef798d76a21"
	}
	if o.ChannelSecret == "" {
		o.ChannelSecret = "fb50586ff7b68cd831fe0ef356345903f644c0d2"
	}
	if o.LLMAPIKey == "" {
		o.LLMAPIKey = "sk-fake"
	}
	if o.SummaryFieldID == 0 {
		o.SummaryFieldID = 900001
	}
	if o.AccessTokenTTL <= 0 {
		o.AccessTokenTTL = 24 * time.Hour
	}
	if o.RESTRateLimit == 0 {
		o.RESTRateLimit = 7
	}
	if o.ChatsRateLimit == 0 {
		o.ChatsRateLimit = 7
	}
	if o.BlockAfter429s == 0 {
		o.BlockAfter429s = 10
	}
	if o.BlockFor <= 0 {
		o.BlockFor = 10 * time.Minute
	}
	if o.WebhookRetryUnit <= 0 {
		o.WebhookRetryUnit = time.Minute
	}
	if o.WebhookTimeout <= 0 {
		o.WebhookTimeout = 2 * time.Second
	}
	if o.WebhookBatch <= 0 {
		o.WebhookBatch = 10
	}
	if o.WebhookDisableAfter <= 0 {
		o.WebhookDisableAfter = 100
	}
	return o
}

// Server is a running set of fakes. Its methods are safe for concurrent use.
type Server struct {
	// KommoURL is the account base URL ("https://sub.kommo.com" in production):
	// /api/v4/... and /oauth2/access_token live under it.
	KommoURL string
	// ChatsURL is the Chats API host ("https://amojo.kommo.com" in production).
	ChatsURL string
	// LLMURL is the OpenAI-compatible base URL; it ends with /v1.
	LLMURL string

	opts    Options
	now     func() time.Time
	servers []*http.Server

	mu   sync.Mutex
	acct *account

	longLived string
	access    map[string]*tokenPair
	refresh   map[string]*tokenPair
	codes     map[string]*authCode

	nextNoteID int64
	notes      []*note // every note, seeded and created, id order

	kommoWin, chatsWin window
	recent429          []time.Time
	blockedUntil       time.Time

	restFail, chatsFail, notesFail *mrand.Rand
	llmCalls                       int

	bots       botState
	hooks      []*webhook // account webhooks, id order
	nextHookID int64
	dl         deliveries

	// unknown lists the requests that matched no route of any fake.
	unknown []string
	// disconnected is the channel's state: set by ChannelDisconnected,
	// cleared by connect.
	disconnected bool

	stats Stats
}

// Stats counts what the fakes saw since Start or the last ResetStats.
type Stats struct {
	RESTRequests, ChatsRequests, OAuthRequests, LLMCalls int
	REST429, Chats429, LLM429, Injected5xx, Blocked403   int
	// PeakRESTPerSecond and PeakChatsPerSecond are the most requests that arrived
	// in any 1-second sliding window (OAuth requests count towards REST: Kommo
	// limits the account host as a whole).
	PeakRESTPerSecond, PeakChatsPerSecond               int
	NotesPosts, NotesCreated, LeadPatches, LeadsPatched int
	HistoryCalls, ContactChatsCalls, LeadListCalls      int
	// WidgetRequests counts widget_request deliveries sent; ContinueCalls the
	// continue calls received, ContinueRejected those answered 4xx or 503.
	WidgetRequests, ContinueCalls, ContinueRejected int

	// Account webhooks sent by the fake: POST attempts; bodies answered 2xx;
	// attempts after a failure; attempts not answered 2xx in time (refused
	// ones included); delivered bodies scheduled to be sent once more;
	// bodies given up (retries exhausted, hook deleted or disabled); sends
	// refused because the destination is not loopback; hooks disabled.
	WebhookAttempts, WebhookDeliveries, WebhookRetries, WebhookFailures int
	WebhookDuplicates, WebhookDropped, WebhookRefused, WebhooksDisabled int
}

// Lead is a synthetic lead as tests see it.
type Lead struct {
	ID       int64
	Name     string
	StatusID int64
	// ContactIDs lists the linked contacts, main contact first.
	ContactIDs []int64
	// ChatIDs lists the amojo chat ids of those contacts, in ContactIDs order.
	ChatIDs []string
}

// Note is a note created through the API.
type Note struct {
	ID, EntityID                       int64
	NoteType, Text, Service, RequestID string
	CreatedAt                          time.Time
}

// Start generates the account and starts the three servers on 127.0.0.1.
func Start(opts Options) (*Server, error) {
	return start(opts, time.Now)
}

// start is Start with an injectable clock, so the package's own tests can move
// time (token expiry, rate windows, IP blocks, signature dates) without sleeping.
func start(opts Options, now func() time.Time) (*Server, error) {
	opts = opts.withDefaults()
	s := &Server{
		opts:      opts,
		now:       now,
		acct:      generate(opts),
		access:    map[string]*tokenPair{},
		refresh:   map[string]*tokenPair{},
		codes:     map[string]*authCode{},
		longLived: randomToken("ll"),
		restFail:  mrand.New(mrand.NewPCG(uint64(opts.Seed), 0xfa11)),
		chatsFail: mrand.New(mrand.NewPCG(uint64(opts.Seed), 0xc4a7)),
		notesFail: mrand.New(mrand.NewPCG(uint64(opts.Seed), 0x0e7e)),

		nextHookID:   firstHookID,
		disconnected: opts.ChannelDisconnected,
	}
	s.notes = s.acct.seededNotes
	s.nextNoteID = s.acct.nextNoteID
	s.acct.markNative(opts.NativeLeads)

	handlers := []http.Handler{
		http.HandlerFunc(s.serveKommo),
		http.HandlerFunc(s.serveChats),
		http.HandlerFunc(s.serveLLM),
	}
	urls := make([]string, 0, len(handlers))
	for _, h := range handlers {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("kommotest: listen on 127.0.0.1: %w", err)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		s.servers = append(s.servers, srv)
		go func() { _ = srv.Serve(ln) }()
		urls = append(urls, "http://"+ln.Addr().String())
	}
	s.KommoURL, s.ChatsURL, s.LLMURL = urls[0], urls[1], urls[2]+"/v1"
	return s, nil
}

// Close stops webhook deliveries, shuts the three servers down and drops their open connections.
func (s *Server) Close() {
	s.stopDeliveries()
	for _, srv := range s.servers {
		_ = srv.Close() // only listener errors, nothing a test could act on
	}
}

// Options returns the options in use, defaults filled in.
func (s *Server) Options() Options { return s.opts }

// AmojoAccountID is the account's amojo_id (GET /api/v4/account?with=amojo_id).
func (s *Server) AmojoAccountID() string { return s.acct.amojoID }

// ScopeID is ChannelID + "_" + AmojoAccountID, what connect returns.
func (s *Server) ScopeID() string { return s.opts.ChannelID + "_" + s.acct.amojoID }

// ChannelConnected reports whether the Chats API channel is connected.
func (s *Server) ChannelConnected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.disconnected
}

// LongLivedToken returns a bearer that never expires and cannot be refreshed.
func (s *Server) LongLivedToken() string { return s.longLived }

// Leads returns every lead in id order.
func (s *Server) Leads() []Lead {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Lead, 0, len(s.acct.leads))
	for _, l := range s.acct.leads {
		out = append(out, s.publicLead(l))
	}
	return out
}

// OpenLeadsWithChats returns the leads that are not won or lost (142/143) and
// have at least one chat with messages on our own channel (native chats, see
// NativeLeads, do not count), in id order.
func (s *Server) OpenLeadsWithChats() []Lead {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Lead
	for _, l := range s.acct.leads {
		if l.closed() {
			continue
		}
		for _, c := range s.acct.leadChats(l) {
			if len(c.msgs) > 0 && c.origin == "" {
				out = append(out, s.publicLead(l))
				break
			}
		}
	}
	return out
}

func (s *Server) publicLead(l *lead) Lead {
	pl := Lead{ID: l.id, Name: l.name, StatusID: l.statusID}
	for _, cid := range l.contactIDsMainFirst() {
		pl.ContactIDs = append(pl.ContactIDs, cid)
		for _, ch := range s.acct.contacts[cid].chats {
			pl.ChatIDs = append(pl.ChatIDs, ch.id)
		}
	}
	return pl
}

// MessageCount returns how many messages the chat has (0 for an unknown chat).
func (s *Server) MessageCount(chatID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.acct.chats[chatID]; c != nil {
		return len(c.msgs)
	}
	return 0
}

// AddMessage appends a new newest text message to the chat, one minute after
// the previous one. It panics on an unknown chat id: that is a bug in the test.
func (s *Server) AddMessage(chatID, text string, fromClient bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.acct.chats[chatID]
	if c == nil {
		panic("kommotest: AddMessage on unknown chat " + chatID)
	}
	at := baseTime
	if n := len(c.msgs); n > 0 {
		at = c.msgs[n-1].at.Add(time.Minute)
	}
	c.msgs = append(c.msgs, &message{
		id:         s.acct.newUUID(),
		clientID:   fmt.Sprintf("added-%d", len(c.msgs)+1),
		at:         at,
		fromClient: fromClient,
		typ:        "text",
		text:       text,
	})
}

// Notes returns the notes created through the API on one lead, oldest first.
func (s *Server) Notes(leadID int64) []Note {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Note
	for _, n := range s.notes {
		if n.api && n.entityID == leadID {
			out = append(out, n.public())
		}
	}
	return out
}

// AllNotes returns every note created through the API, oldest first.
func (s *Server) AllNotes() []Note {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Note
	for _, n := range s.notes {
		if n.api {
			out = append(out, n.public())
		}
	}
	return out
}

// FieldValue returns the value of a lead's custom field, if one was set.
func (s *Server) FieldValue(leadID, fieldID int64) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.acct.leadByID[leadID]
	if l == nil {
		return "", false
	}
	v, ok := l.fields[fieldID]
	return v, ok
}

// UnknownRequests returns "METHOD URL" of every request, to any of the
// three fakes, that matched none of their routes, oldest first. The fakes
// answer such a request as the real service would (404), but a client that
// sends one has a bug the 404 may hide: tests check this list with
// VerifyNoUnknown.
func (s *Server) UnknownRequests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.unknown...)
}

// Reporter is the part of testing.TB that VerifyNoUnknown uses. It and TB
// keep the testing package out of the demo binary.
type Reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

// TB is the part of testing.TB that StartT uses; *testing.T and *testing.B
// have it.
type TB interface {
	Reporter
	Fatal(args ...any)
	Cleanup(func())
}

// StartT starts the fakes for a test: they close when the test ends, and
// the test fails if a client sent a request to a route they do not know.
func StartT(t TB, opts Options) *Server {
	t.Helper()
	srv, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	t.Cleanup(func() { srv.VerifyNoUnknown(t) })
	return srv
}

// VerifyNoUnknown fails t when any fake got a request for a route it does
// not know (see UnknownRequests). Register it when the fakes start:
//
//	t.Cleanup(func() { srv.VerifyNoUnknown(t) })
func (s *Server) VerifyNoUnknown(t Reporter) {
	t.Helper()
	for _, r := range s.UnknownRequests() {
		t.Errorf("kommotest: a request to an unknown route: %s", r)
	}
}

// unknownRoute records a request that matched no route.
func (s *Server) unknownRoute(r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unknown = append(s.unknown, r.Method+" "+r.URL.RequestURI())
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.PeakRESTPerSecond = s.kommoWin.peak
	st.PeakChatsPerSecond = s.chatsWin.peak
	return st
}

// ResetStats zeroes the counters and peaks. Rate-limit state (the windows, the
// recent 429s, an IP block) is not statistics and stays as it is.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = Stats{}
	s.kommoWin.peak = 0
	s.chatsWin.peak = 0
}

// window counts arrivals in the last second. The peak seen at arrivals is the
// peak over every sliding window: a window's count only grows at an arrival.
type window struct {
	ts   []time.Time
	peak int
}

func (w *window) add(now time.Time) int {
	cut := now.Add(-time.Second)
	i := 0
	for i < len(w.ts) && !w.ts[i].After(cut) {
		i++
	}
	w.ts = append(w.ts[i:], now)
	if len(w.ts) > w.peak {
		w.peak = len(w.ts)
	}
	return len(w.ts)
}

func randomToken(prefix string) string {
	b := make([]byte, 33)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return prefix + "_" + base64.RawURLEncoding.EncodeToString(b)
}

// sleepCtx waits d or until the request is gone (client gave up, server closed).
func sleepCtx(r *http.Request, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

func sortedNotes(ns []*note, less func(a, b *note) bool) []*note {
	out := append([]*note(nil), ns...)
	sort.SliceStable(out, func(i, j int) bool { return less(out[i], out[j]) })
	return out
}
