package kommotest

import (
	"context"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommohook"
)

// The account webhook delivery engine (fake -> serve), per kommo-webhooks.md
// §2 and §7.2: form bodies in Kommo's key set, several messages per body, a 2 s
// client timeout, retries after 5, 15, 15 and 60 minutes (the last two only
// after a 499 or 5xx), the hook disabled after more than 100 invalid answers
// in 2 hours, no signature. Only native chats (Options.NativeLeads) send
// webhooks, and only to loopback addresses.

const (
	webhookUserAgent = "amoCRM-Webhooks/3.0"
	// disableWindow is the auto-disable window in retry units (2 hours).
	disableWindow = 120
)

// retryDelays are the waits before attempts 2..5, in retry units.
var retryDelays = []int{5, 15, 15, 60}

var errNotLoopback = errors.New("kommotest: refused to send a webhook to a non-loopback address")

// WebhookAttempt is one POST the fake made to a webhook destination.
type WebhookAttempt struct {
	Destination string
	RequestID   string     // X-Amocrm-Requestid: a new UUID on every attempt
	Form        url.Values // the body
	Attempt     int        // 1 for the first send, 2..5 for retries
	Duplicate   bool       // a delivered body sent once more
	Status      int        // 0: no answer (timeout, connection error, refused)
	Err         string
}

// hookEvent is one message or talk waiting for a body.
type hookEvent struct {
	msg  *kommohook.Message
	talk *kommohook.Talk
}

// hookJob is one body on its way to one hook.
type hookJob struct {
	hookID    int64
	form      url.Values
	attempt   int
	duplicate bool
	due       time.Time
	seq       int64
}

// deliveries is the engine's state; all of it is guarded by Server.mu.
type deliveries struct {
	started, stopped bool
	stop, wake, done chan struct{}
	ctx              context.Context
	cancel           context.CancelFunc
	client           *http.Client
	rng              *mrand.Rand

	pending  map[int64][]hookEvent // per hook, not yet in a body
	jobs     []*hookJob            // bodies waiting for their time or their hook
	busy     map[int64]bool        // hooks with a body in flight (one at a time, in order)
	inflight int
	seq      int64
	attempts []WebhookAttempt
	// wg counts running senders; Add happens under Server.mu and only before
	// stopped is set, so Close can Wait once it has set stopped.
	wg sync.WaitGroup
}

// NativeLeads returns the leads whose chats are native (Options.NativeLeads),
// in id order, with their chat ids.
func (s *Server) NativeLeads() []Lead {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Lead
	for _, l := range s.acct.leads {
		for _, c := range s.acct.leadChats(l) {
			if c.origin != "" {
				out = append(out, s.publicLead(l))
				break
			}
		}
	}
	return out
}

// ChatOrigin returns the channel of a native chat (waba, telegram, ...), or ""
// for a chat of our own channel or an unknown chat.
func (s *Server) ChatOrigin(chatID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.acct.chats[chatID]; c != nil {
		return c.origin
	}
	return ""
}

// AddNativeMessage appends a text message, sent now, to a native chat and
// queues its webhooks: talk[add] first when the chat has no open talk, then
// message[add] (from the client) or outgoing_message[add] (from a manager, a
// bot or the phone app; about 1 in 4 without element_id) followed by a noisy
// talk[update] with is_in_work=1. It returns the message id (the webhook's
// message id, the dedupe key) and panics on a chat that is not native.
func (s *Server) AddNativeMessage(chatID, text string, fromClient bool) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.nativeChat(chatID, "AddNativeMessage")
	at := s.now().UTC().Truncate(time.Second)
	if n := len(c.msgs); n > 0 && !c.msgs[n-1].at.Before(at) {
		at = c.msgs[n-1].at.Add(time.Second).Truncate(time.Second)
	}
	m := &message{id: s.acct.newUUID(), clientID: fmt.Sprintf("added-%d", len(c.msgs)+1), at: at,
		fromClient: fromClient, typ: "text", text: text}
	c.msgs = append(c.msgs, m)
	s.emitMessage(c, m, at)
	return m.id
}

// ReplayNative queues the webhooks of every message already in the lead's
// native chats, as if they were all sent now (one second apart, the last one
// now), with their original ids: replaying twice sends the same messages
// twice. It panics on a lead without native chats.
func (s *Server) ReplayNative(leadID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.acct.leadByID[leadID]
	var chats []*chat
	if l != nil {
		for _, c := range s.acct.leadChats(l) {
			if c.origin != "" {
				chats = append(chats, c)
			}
		}
	}
	if len(chats) == 0 {
		panic(fmt.Sprintf("kommotest: ReplayNative on lead %d, which has no native chats", leadID))
	}
	now := s.now().UTC().Truncate(time.Second)
	for _, c := range chats {
		for k, m := range c.msgs {
			s.emitMessage(c, m, now.Add(-time.Duration(len(c.msgs)-1-k)*time.Second))
		}
	}
}

// CloseTalk closes the open talk of a native chat, as a manager closing the
// conversation does: it queues talk[update] with is_in_work=0, and the chat's
// next message opens a new talk_id. A chat without an open talk is left alone;
// a chat that is not native panics.
func (s *Server) CloseTalk(chatID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.nativeChat(chatID, "CloseTalk")
	if !c.talkOpen {
		return
	}
	c.talkOpen = false
	s.queueEvent("update_talk", hookEvent{talk: s.talkEvent(c, "update", false, true, s.now().UTC().Truncate(time.Second))})
}

// WebhookAttempts returns every webhook POST made so far, in the order they were answered.
func (s *Server) WebhookAttempts() []WebhookAttempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.dl.attempts)
}

// WaitWebhooks returns when no webhook event is queued, no body waits for
// its time (retries and duplicates included) and none is in flight; or with
// the context's error, or an error once the server is closed.
func (s *Server) WaitWebhooks(ctx context.Context) error {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		idle := len(s.dl.pending) == 0 && len(s.dl.jobs) == 0 && s.dl.inflight == 0
		stopped := s.dl.stopped
		s.mu.Unlock()
		switch {
		case idle:
			return nil
		case stopped:
			return errors.New("kommotest: the server is closed, webhooks are not delivered any more")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (s *Server) nativeChat(chatID, method string) *chat {
	c := s.acct.chats[chatID]
	if c == nil || c.origin == "" {
		panic("kommotest: " + method + " on " + chatID + ", which is not a native chat")
	}
	return c
}

// emitMessage queues the webhooks of one message of a native chat (s.mu held).
func (s *Server) emitMessage(c *chat, m *message, at time.Time) {
	if !c.talkOpen {
		c.talkID = s.acct.nextTalkID
		s.acct.nextTalkID++
		c.talkOpen, c.talkCreated = true, at
		s.queueEvent("add_talk", hookEvent{talk: s.talkEvent(c, "add", true, false, at)})
	}
	rng := s.deliveryRand()
	hm := &kommohook.Message{
		ID: m.id, ChatID: c.id, TalkID: c.talkID, ContactID: c.contactID, LeadID: c.leadID,
		Outgoing: !m.fromClient, Type: m.typ, Text: m.text, CreatedAt: at, Origin: c.origin,
	}
	if m.media != "" {
		hm.AttachmentType, hm.AttachmentName, hm.AttachmentLink = m.typ, m.fileName, m.media
	}
	if m.fromClient {
		hm.AuthorID, hm.AuthorType, hm.AuthorName = c.client.id, "external", c.client.name
		s.queueEvent("add_message", hookEvent{msg: hm})
		return
	}
	hm.AuthorType, hm.RecipientID = "internal", c.client.id
	switch n := rng.IntN(10); {
	case n == 0:
		hm.AuthorID, hm.AuthorName = uuidFrom(rng), "Salesbot"
	case n == 1 && phoneApp[c.origin] != "":
		hm.AuthorID, hm.AuthorName = uuidFrom(rng), phoneApp[c.origin]
	default:
		hm.AuthorID, hm.AuthorName = c.manager.id, c.manager.name
		hm.AuthorUserID = s.acct.leadByID[c.leadID].responsible
	}
	if rng.IntN(4) == 0 {
		hm.LeadID = 0 // Kommo leaves element_id out of about 1 in 4 outgoing messages
	}
	s.queueEvent("add_outgoing_message", hookEvent{msg: hm})
	s.queueEvent("update_talk", hookEvent{talk: s.talkEvent(c, "update", true, true, at)})
}

// phoneApp is the author name of replies typed in the phone app, per channel.
var phoneApp = map[string]string{
	"waba": "WhatsApp Business", "com.amocrm.amocrmwa": "WhatsApp Lite", "com.wazzup24.whatsapp": "Wazzup",
}

func (s *Server) talkEvent(c *chat, action string, inWork, read bool, at time.Time) *kommohook.Talk {
	return &kommohook.Talk{Action: action, TalkID: c.talkID, ChatID: c.id, ContactID: c.contactID, LeadID: c.leadID,
		InWork: inWork, Read: read, CreatedAt: c.talkCreated, UpdatedAt: at, Origin: c.origin}
}

func (s *Server) deliveryRand() *mrand.Rand {
	if s.dl.rng == nil {
		s.dl.rng = mrand.New(mrand.NewPCG(uint64(s.opts.Seed), 0x400c))
	}
	return s.dl.rng
}

// queueEvent gives an event to every enabled hook subscribed to it (s.mu held).
func (s *Server) queueEvent(setting string, ev hookEvent) {
	queued := false
	for _, h := range s.hooks {
		if h.subscribed(setting) {
			if s.dl.pending == nil {
				s.dl.pending = map[int64][]hookEvent{}
			}
			s.dl.pending[h.id] = append(s.dl.pending[h.id], ev)
			queued = true
		}
	}
	if queued {
		s.startDeliveries()
		s.wakeDeliveries()
	}
}

// startDeliveries starts the engine on first use (s.mu held), so that servers
// that never send a webhook run no goroutine for it.
func (s *Server) startDeliveries() {
	d := &s.dl
	if d.started || d.stopped {
		return
	}
	d.started = true
	d.stop, d.wake, d.done = make(chan struct{}), make(chan struct{}, 1), make(chan struct{})
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.busy = map[int64]bool{}
	dialer := &net.Dialer{Timeout: s.opts.WebhookTimeout, Control: loopbackOnly}
	d.client = &http.Client{
		Timeout:       s.opts.WebhookTimeout,
		Transport:     &http.Transport{DialContext: dialer.DialContext, Proxy: nil, MaxIdleConnsPerHost: 4},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	go s.deliveryLoop()
}

func (s *Server) wakeDeliveries() {
	if s.dl.wake == nil {
		return
	}
	select {
	case s.dl.wake <- struct{}{}:
	default:
	}
}

// stopDeliveries stops the engine and waits for its senders (s.mu not held).
func (s *Server) stopDeliveries() {
	s.mu.Lock()
	d := &s.dl
	if d.stopped {
		s.mu.Unlock()
		return
	}
	d.stopped = true
	started := d.started
	if started {
		close(d.stop)
		d.cancel()
	}
	s.mu.Unlock()
	if !started {
		return
	}
	<-d.done
	d.wg.Wait()
	d.client.CloseIdleConnections()
}

func (s *Server) deliveryLoop() {
	d := &s.dl
	defer close(d.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		now := time.Now()
		s.batchPending(now)
		next := s.startDue(now)
		s.mu.Unlock()
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		timer.Reset(wait)
		select {
		case <-d.stop:
			return
		case <-d.wake:
		case <-timer.C:
		}
	}
}

// batchPending turns each hook's queued events into bodies of at most
// WebhookBatch entries (s.mu held).
func (s *Server) batchPending(now time.Time) {
	d := &s.dl
	ids := make([]int64, 0, len(d.pending))
	for id := range d.pending {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		evs := d.pending[id]
		for len(evs) > 0 {
			n := min(len(evs), s.opts.WebhookBatch)
			dv := &kommohook.Delivery{AccountID: accountID, Subdomain: "kommotest", AccountLink: "https://kommotest.kommo.com"}
			for _, ev := range evs[:n] {
				if ev.msg != nil {
					dv.Messages = append(dv.Messages, *ev.msg)
				} else {
					dv.Talks = append(dv.Talks, *ev.talk)
				}
			}
			evs = evs[n:]
			d.seq++
			d.jobs = append(d.jobs, &hookJob{hookID: id, form: kommohook.Encode(dv), attempt: 1, due: now, seq: d.seq})
		}
	}
	clear(d.pending)
}

// startDue sends the due bodies of idle hooks, oldest first, and returns when
// the next waiting body is due (zero: none waits) (s.mu held).
func (s *Server) startDue(now time.Time) time.Time {
	d := &s.dl
	if d.stopped {
		return time.Time{}
	}
	slices.SortFunc(d.jobs, func(a, b *hookJob) int {
		if c := a.due.Compare(b.due); c != 0 {
			return c
		}
		return int(a.seq - b.seq)
	})
	var next time.Time
	kept := d.jobs[:0]
	for _, j := range d.jobs {
		switch {
		case j.due.After(now):
			if next.IsZero() || j.due.Before(next) {
				next = j.due
			}
			kept = append(kept, j)
		case d.busy[j.hookID]:
			kept = append(kept, j)
		default:
			d.busy[j.hookID] = true
			d.inflight++
			d.wg.Add(1)
			go s.send(j)
		}
	}
	clear(d.jobs[len(kept):])
	d.jobs = kept
	return next
}

// send makes one attempt at one body and decides what follows it.
func (s *Server) send(j *hookJob) {
	d := &s.dl
	s.mu.Lock()
	h := s.hookByID(j.hookID)
	if h == nil || h.disabled {
		s.stats.WebhookDropped++
		s.sent(j)
		s.mu.Unlock()
		return
	}
	dest, reqID := h.destination, uuidFrom(s.deliveryRand())
	s.stats.WebhookAttempts++
	if j.attempt > 1 {
		s.stats.WebhookRetries++
	}
	s.mu.Unlock()

	status, err := s.post(d.ctx, dest, reqID, j.form)

	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.sent(j)
	a := WebhookAttempt{Destination: dest, RequestID: reqID, Form: j.form, Attempt: j.attempt,
		Duplicate: j.duplicate, Status: status}
	if err != nil {
		a.Err = err.Error()
	}
	d.attempts = append(d.attempts, a)
	unit := s.opts.WebhookRetryUnit
	now := time.Now()
	switch {
	case errors.Is(err, errNotLoopback):
		s.stats.WebhookFailures++
		s.stats.WebhookRefused++
		s.stats.WebhookDropped++
		return
	case d.stopped:
		return
	case err == nil && status >= 100 && status < 300:
		s.stats.WebhookDeliveries++
		if !j.duplicate && s.opts.WebhookDuplicateRate > 0 && s.deliveryRand().Float64() < s.opts.WebhookDuplicateRate {
			s.stats.WebhookDuplicates++
			d.seq++
			d.jobs = append(d.jobs, &hookJob{hookID: j.hookID, form: j.form, attempt: 1, duplicate: true,
				due: now.Add(unit), seq: d.seq})
		}
		return
	}
	s.stats.WebhookFailures++
	h = s.hookByID(j.hookID)
	if h == nil {
		s.stats.WebhookDropped++
		return
	}
	cut := now.Add(-disableWindow * unit)
	h.invalid = append(slices.DeleteFunc(h.invalid, func(t time.Time) bool { return t.Before(cut) }), now)
	if len(h.invalid) > s.opts.WebhookDisableAfter && !h.disabled {
		h.disabled = true
		s.stats.WebhooksDisabled++
		s.stats.WebhookDropped++
		s.dropQueued(h.id)
		return
	}
	// Attempts 2 and 3 follow any failure; 4 and 5 only a 499 or a 5xx.
	n := j.attempt + 1
	if n > len(retryDelays)+1 || (n >= 4 && status != 499 && (status < 500 || status > 599)) {
		s.stats.WebhookDropped++
		return
	}
	d.seq++
	d.jobs = append(d.jobs, &hookJob{hookID: j.hookID, form: j.form, attempt: n, duplicate: j.duplicate,
		due: now.Add(time.Duration(retryDelays[n-2]) * unit), seq: d.seq})
}

// sent marks a body's attempt finished (s.mu held).
func (s *Server) sent(j *hookJob) {
	d := &s.dl
	d.busy[j.hookID] = false
	d.inflight--
	d.wg.Done()
	s.wakeDeliveries()
}

// post sends one body; status 0 means no answer.
func (s *Server) post(ctx context.Context, dest, reqID string, form url.Values) (int, error) {
	u, err := url.Parse(dest)
	if err != nil {
		return 0, err
	}
	if !isLoopbackHost(u.Hostname()) {
		return 0, fmt.Errorf("%w: %s", errNotLoopback, u.Host)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dest, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", webhookUserAgent)
	req.Header.Set("X-Amocrm-Requestid", reqID)
	resp, err := s.dl.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, nil
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loopbackOnly refuses to connect anywhere but loopback, whatever a name resolved to.
func loopbackOnly(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%w: %s", errNotLoopback, address)
	}
	return nil
}

func (s *Server) hookByID(id int64) *webhook {
	for _, h := range s.hooks {
		if h.id == id {
			return h
		}
	}
	return nil
}

// dropQueued forgets what was queued for a deleted or disabled webhook (s.mu
// held); a body in flight finishes.
func (s *Server) dropQueued(hookID int64) {
	d := &s.dl
	delete(d.pending, hookID)
	n := len(d.jobs)
	d.jobs = slices.DeleteFunc(d.jobs, func(j *hookJob) bool { return j.hookID == hookID })
	s.stats.WebhookDropped += n - len(d.jobs)
}
