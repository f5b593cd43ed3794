package kommotest

import (
	"cmp"
	"crypto/sha1"
	"encoding/base32"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The Events API fake: GET /api/v4/events as kommo-webhooks.md §6 and §7.5
// describe it. Every chat message has its event (seeded messages at their
// times, messages added by AddMessage at the moment they are added), for
// the chats of our channel and of other integrations (Options.NativeLeads)
// alike: Kommo records chat events for every channel. Events carry no text.
//
// Chat message events are not stored: they are derived from the messages,
// so an account of 10,000 leads costs no more memory than its chats. Status
// changes (SetLeadStatus) are stored.

// Event types the fake records.
const (
	evIncoming     = "incoming_chat_message"
	evOutgoing     = "outgoing_chat_message"
	evLeadStatus   = "lead_status_changed"
	maxEventsLimit = 100 // amoCRM's documented maximum; Kommo's pages say 250
)

var eventsWith = map[string]bool{
	"contact_name": true, "lead_name": true, "company_name": true,
	"catalog_element_name": true, "customer_name": true, "catalog_name": true,
}

// eventLog is the fake's state of the Events API.
type eventLog struct {
	addedAt  map[string]time.Time // message id -> when AddMessage added it
	deleted  map[string]bool      // message ids whose events DeleteLeadEvents deleted
	statuses []statusEvent
	gone     []*lead // leads deleted by DeleteLead: their chats' events stay, on the contact
	failPage int     // page answered 502 ...
	failLeft int     // ... this many more times
}

type statusEvent struct {
	id               string
	leadID           int64
	before, after    int64
	createdAt        time.Time
	createdBy        int64
	pipeline, oldPip int64
}

// event is one event as the handler filters and serves it.
type event struct {
	id        string
	typ       string
	createdAt time.Time
	createdBy int64
	// entityType and entityID: the lead, or the contact when the lead was
	// deleted; contactID is the chat's contact (linked_talk_contact_id).
	entityType string
	entityID   int64
	contactID  int64
	msgID      string
	talkID     int64
	origin     string
	status     *statusEvent
}

func (e *event) chat() bool { return e.typ == evIncoming || e.typ == evOutgoing }

// eventID makes a stable Kommo-style id (26 lowercase base32 characters) from
// what the event is about.
func eventID(parts ...string) string {
	sum := sha1.Sum([]byte(strings.Join(parts, "\x00")))
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:]))[:26]
}

// talkOf is the talk a chat's messages belong to. Our channel's chats have
// one talk each, numbered by the chat's link id (far from native talks); a
// native chat's messages are given its current talk (the fake does not keep
// the talk of each message).
func talkOf(c *chat) int64 {
	if c.origin != "" && c.talkID != 0 {
		return c.talkID
	}
	return c.linkID
}

// originOf is the origin events give a chat's messages.
func originOf(c *chat) string {
	if c.origin != "" {
		return c.origin
	}
	return ourOrigin
}

// ourOrigin is the origin events give the messages of our own Chats API channel.
const ourOrigin = "com.kommo.summarizer"

// eachEvent calls keep with every event the account has, in no order, and
// returns those it kept. An event's id is made only for the events whose
// time and type keep accepts first (pre), so that a walk over an account of
// 10,000 leads hashes only what it serves. The caller holds s.mu.
func (s *Server) eachEvent(pre func(typ string, at time.Time) bool, keep func(e *event) bool) []event {
	var out []event
	chatEvents := func(l *lead, entityType string) {
		for _, cid := range l.contactIDsMainFirst() {
			c := s.acct.contacts[cid]
			if c == nil {
				continue
			}
			for _, ch := range c.chats {
				for _, m := range ch.msgs {
					typ, at := evIncoming, m.at
					if !m.fromClient {
						typ = evOutgoing
					}
					if t, ok := s.events.addedAt[m.id]; ok {
						at = t
					}
					if !pre(typ, at) || s.events.deleted[m.id] {
						continue
					}
					e := event{
						id: eventID("msg", m.id), typ: typ, createdAt: at, msgID: m.id, talkID: talkOf(ch), origin: originOf(ch),
						entityType: entityType, entityID: l.id, contactID: cid,
					}
					if !m.fromClient {
						e.createdBy = l.responsible
					}
					if entityType == "contact" {
						e.entityID = cid
					}
					if keep(&e) {
						out = append(out, e)
					}
				}
			}
		}
	}
	for _, l := range s.acct.leads {
		chatEvents(l, "lead")
	}
	for _, l := range s.events.gone {
		chatEvents(l, "contact")
	}
	for i := range s.events.statuses {
		st := &s.events.statuses[i]
		if s.acct.leadByID[st.leadID] == nil || !pre(evLeadStatus, st.createdAt) {
			continue
		}
		e := event{id: st.id, typ: evLeadStatus, createdAt: st.createdAt, createdBy: st.createdBy,
			entityType: "lead", entityID: st.leadID, status: st}
		if keep(&e) {
			out = append(out, e)
		}
	}
	return out
}

func anyEvent(string, time.Time) bool { return true }

func (s *Server) eventJSON(e *event) map[string]any {
	m := map[string]any{
		"id": e.id, "type": e.typ, "entity_id": e.entityID, "entity_type": e.entityType,
		"created_by": e.createdBy, "created_at": e.createdAt.Unix(), "account_id": accountID,
		"value_before": []any{}, "value_after": []any{},
		"_links": map[string]any{"self": s.href("/api/v4/events/" + e.id)},
	}
	entity := map[string]any{"id": e.entityID}
	switch {
	case e.chat():
		m["value_after"] = []any{map[string]any{"message": map[string]any{"id": e.msgID, "talk_id": e.talkID, "origin": e.origin}}}
		if e.entityType == "lead" {
			entity["linked_talk_contact_id"] = e.contactID
			entity["_links"] = map[string]any{"self": s.href("/api/v4/leads/" + strconv.FormatInt(e.entityID, 10))}
		} else {
			entity["_links"] = map[string]any{"self": s.href("/api/v4/contacts/" + strconv.FormatInt(e.entityID, 10))}
		}
	case e.status != nil:
		m["value_before"] = []any{map[string]any{"lead_status": map[string]any{"id": e.status.before, "pipeline_id": e.status.oldPip}}}
		m["value_after"] = []any{map[string]any{"lead_status": map[string]any{"id": e.status.after, "pipeline_id": e.status.pipeline}}}
		entity["_links"] = map[string]any{"self": s.href("/api/v4/leads/" + strconv.FormatInt(e.entityID, 10))}
	}
	m["_embedded"] = map[string]any{"entity": entity}
	return m
}

// eventsFilter is a parsed GET /api/v4/events query.
type eventsFilter struct {
	ids, types, entities []string
	entityIDs            []int64
	from, to             int64 // inclusive unix seconds; after = from-1
}

// pre is the part of match that needs no event id.
func (f *eventsFilter) pre(typ string, at time.Time) bool {
	if len(f.types) > 0 && !slices.Contains(f.types, typ) {
		return false
	}
	sec := at.Unix()
	return sec >= f.from && sec <= f.to
}

func (f *eventsFilter) match(e *event) bool {
	if len(f.ids) > 0 && !slices.Contains(f.ids, e.id) {
		return false
	}
	if len(f.entities) == 0 {
		return true
	}
	if e.chat() {
		// The quirk (kommo-webhooks.md §6): chat message events are found
		// by contact, never by lead; filter[entity]=lead silently drops them.
		if !slices.Contains(f.entities, "contact") {
			return false
		}
		return len(f.entityIDs) == 0 || slices.Contains(f.entityIDs, e.contactID)
	}
	if !slices.Contains(f.entities, e.entityType) {
		return false
	}
	return len(f.entityIDs) == 0 || slices.Contains(f.entityIDs, e.entityID)
}

// listEvents: GET /api/v4/events (developers.kommo.com/reference/events-list;
// amocrm.ru/developers/content/crm_platform/events-and-notes).
func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	s.stats.EventsCalls++
	forbidden := s.opts.EventsForbidden
	fail := false
	page := q.Get("page")
	if s.events.failLeft > 0 && (page == strconv.Itoa(s.events.failPage) || (page == "" && s.events.failPage == 1)) {
		s.events.failLeft--
		s.stats.Injected5xx++
		fail = true
	}
	s.mu.Unlock()
	if forbidden {
		rightsProblem(w)
		return
	}
	if fail {
		gatewayError(w, http.StatusBadGateway)
		return
	}
	if _, ok := parseWith(w, q, eventsWith); !ok {
		return
	}
	pg, limit, ok := pageParams(w, q)
	if !ok {
		return
	}
	limit = min(limit, maxEventsLimit)
	f := eventsFilter{from: 0, to: 1<<62 - 1}
	for k, vs := range q {
		p := bracketKey(k)
		if p[0] != "filter" {
			continue
		}
		if len(p) < 2 {
			queryProblem(w, "InvalidValue", k, "Invalid filter.")
			return
		}
		switch p[1] {
		case "id":
			for _, v := range vs {
				f.ids = append(f.ids, strings.Split(v, ",")...)
			}
		case "type":
			for _, v := range vs {
				f.types = append(f.types, strings.Split(v, ",")...)
			}
		case "entity":
			for _, v := range vs {
				for _, e := range strings.Split(v, ",") {
					if !validEventEntity(e) {
						queryProblem(w, "NotSupportedChoice", k, "The value you selected is not a valid choice.")
						return
					}
					f.entities = append(f.entities, e)
				}
			}
		case "entity_id":
			n, ok := intValues(vs)
			if !ok {
				queryProblem(w, "InvalidType", k, "This value should be of type int.")
				return
			}
			f.entityIDs = append(f.entityIDs, n...)
		case "created_at":
			n, ok := intValues(vs)
			if !ok || len(n) != 1 {
				queryProblem(w, "InvalidType", k, "This value should be of type int.")
				return
			}
			switch {
			case len(p) == 2:
				f.from = n[0] + 1 // a timestamp alone means "created after it"
			case p[2] == "from":
				f.from = n[0]
			case p[2] == "to":
				f.to = n[0]
			default:
				queryProblem(w, "InvalidValue", k, "Use from and to.")
				return
			}
		default:
			// created_by, value_before and value_after exist in Kommo; the fake
			// refuses them rather than ignore them.
			queryProblem(w, "NotSupportedChoice", k, "kommotest does not implement filter["+p[1]+"] for events")
			return
		}
	}
	if len(f.entityIDs) > 0 {
		switch {
		case len(f.entities) != 1:
			queryProblem(w, "InvalidValue", "filter[entity_id]", "filter[entity_id] needs exactly one filter[entity].")
			return
		case len(f.entityIDs) > 10:
			queryProblem(w, "InvalidValue", "filter[entity_id]", "Pass at most 10 ids in filter[entity_id].")
			return
		}
	}

	s.mu.Lock()
	match := s.eachEvent(f.pre, f.match)
	// Newest first, as Kommo's event feed shows them; its API does not
	// document an order, so clients must not rely on one.
	slices.SortFunc(match, func(a, b event) int {
		return cmp.Or(b.createdAt.Compare(a.createdAt), cmp.Compare(b.id, a.id))
	})
	start := (pg - 1) * limit
	if start >= len(match) {
		s.mu.Unlock()
		noContent(w)
		return
	}
	end := min(start+limit, len(match))
	out := make([]any, 0, end-start)
	for i := start; i < end; i++ {
		out = append(out, s.eventJSON(&match[i]))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, halJSON, map[string]any{
		"_page":     pg,
		"_links":    pageLinks(s, "/api/v4/events", q, pg, limit, end < len(match)),
		"_embedded": map[string]any{"events": out},
	})
}

func validEventEntity(e string) bool {
	switch e {
	case "lead", "contact", "company", "customer", "task":
		return true
	}
	return strings.HasPrefix(e, "catalog_")
}

// Event is an event as tests see it.
type Event struct {
	ID, Type   string
	EntityType string
	EntityID   int64
	MessageID  string
	TalkID     int64
	StatusID   int64 // lead_status_changed: the status after
	CreatedAt  time.Time
}

// Events returns every event the account has for a lead, oldest first.
func (s *Server) Events(leadID int64) []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Event
	for _, e := range s.eachEvent(anyEvent, func(e *event) bool { return e.entityType == "lead" && e.entityID == leadID }) {
		pe := Event{ID: e.id, Type: e.typ, EntityType: e.entityType, EntityID: e.entityID, MessageID: e.msgID, TalkID: e.talkID, CreatedAt: e.createdAt}
		if e.status != nil {
			pe.StatusID = e.status.after
		}
		out = append(out, pe)
	}
	slices.SortFunc(out, func(a, b Event) int { return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID)) })
	return out
}

// DeleteLeadEvents deletes the lead's chat message events, as if Kommo had
// lost them (retention, an outage): a sweep that reads only the events does
// not see the lead's messages; the next full pass must. It returns how many
// were deleted. Messages added later get events again.
func (s *Server) DeleteLeadEvents(leadID int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.events.deleted == nil {
		s.events.deleted = map[string]bool{}
	}
	gone := s.eachEvent(anyEvent, func(e *event) bool { return e.chat() && e.entityType == "lead" && e.entityID == leadID })
	for _, e := range gone {
		s.events.deleted[e.msgID] = true
	}
	return len(gone)
}

// SetLeadStatus moves a lead to another status (142 won, 143 lost, or one
// of the pipeline's open stages) and records its lead_status_changed event
// now. It panics on an unknown lead: that is a bug in the test.
func (s *Server) SetLeadStatus(leadID, statusID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.acct.leadByID[leadID]
	if l == nil {
		panic("kommotest: SetLeadStatus on unknown lead " + strconv.FormatInt(leadID, 10))
	}
	now := s.now()
	s.events.statuses = append(s.events.statuses, statusEvent{
		id: eventID("status", strconv.FormatInt(leadID, 10), strconv.Itoa(len(s.events.statuses))), leadID: leadID,
		before: l.statusID, after: statusID, createdAt: now, createdBy: currentUserID, pipeline: pipelineID, oldPip: pipelineID,
	})
	l.statusID = statusID
	l.updatedAt = now.Unix()
	l.closedAt = 0
	if l.closed() {
		l.closedAt = l.updatedAt
	}
}

// DeleteLead deletes a lead, as a manager deleting it or merging it into
// another does: it is gone from the listing and by id, and the events of
// its chats stay, on the contact (entity_type "contact"), as Kommo shows
// them. It panics on an unknown lead.
func (s *Server) DeleteLead(leadID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.acct.leadByID[leadID]
	if l == nil {
		panic("kommotest: DeleteLead on unknown lead " + strconv.FormatInt(leadID, 10))
	}
	delete(s.acct.leadByID, leadID)
	s.acct.leads = slices.DeleteFunc(s.acct.leads, func(x *lead) bool { return x == l })
	s.events.gone = append(s.events.gone, l)
}

// FailEventsPage makes the next times requests for page (1 = the first)
// of GET /api/v4/events answer 502, as a gateway failing in the middle of a
// walk would.
func (s *Server) FailEventsPage(page, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events.failPage, s.events.failLeft = page, times
}

// recordAdded notes when AddMessage added message id: its event's time.
// The caller holds s.mu.
func (s *Server) recordAdded(id string) {
	if s.events.addedAt == nil {
		s.events.addedAt = map[string]time.Time{}
	}
	s.events.addedAt[id] = s.now()
}
