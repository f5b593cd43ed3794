package kommotest

import (
	"fmt"
	"net/url"
	"strconv"
	"testing"
	"time"
)

func eventsURL(s *Server, q url.Values) string { return s.KommoURL + "/api/v4/events?" + q.Encode() }

func chatTypes() url.Values {
	return url.Values{"filter[type][]": {evIncoming, evOutgoing}}
}

// Every seeded message has its event at its time, with the message id and
// talk and no text; the pages follow _links.next, the last has none.
func TestEventsSeededAndPaged(t *testing.T) {
	c := newClock()
	s := startTest(t, Options{Leads: 6, RESTRateLimit: -1}, c)
	tok := bearer(s.LongLivedToken())
	lead := s.OpenLeadsWithChats()[0]
	want := s.MessageCount(lead.ChatIDs[0])
	evs := s.Events(lead.ID)
	if len(evs) < want {
		t.Fatalf("lead %d has %d events for %d messages in its first chat", lead.ID, len(evs), want)
	}

	total := 0
	for _, l := range s.Leads() {
		for _, ch := range l.ChatIDs {
			total += s.MessageCount(ch)
		}
	}
	q := chatTypes()
	q.Set("limit", "100")
	u := eventsURL(s, q)
	seen := map[string]bool{}
	for pages := 0; u != ""; pages++ {
		if pages > total {
			t.Fatal("the pages never end")
		}
		r := send(t, "GET", u, nil, tok...)
		wantStatus(t, r, 200)
		m := r.json(t)
		items, _ := dig(m, "_embedded", "events").([]any)
		if len(items) == 0 || len(items) > 100 {
			t.Fatalf("page of %d events", len(items))
		}
		for _, it := range items {
			id, _ := dig(it, "id").(string)
			if seen[id] || len(id) != 26 {
				t.Fatalf("event id %q repeated or not Kommo-like", id)
			}
			seen[id] = true
			if dig(it, "value_after", 0, "message", "id") == nil || dig(it, "value_after", 0, "message", "text") != nil {
				t.Fatalf("event %v: want a message id and no text", it)
			}
			if dig(it, "entity_type") != "lead" || dig(it, "_embedded", "entity", "linked_talk_contact_id") == nil {
				t.Fatalf("event %v: want a lead with linked_talk_contact_id", it)
			}
		}
		u, _ = dig(m, "_links", "next", "href").(string)
	}
	if len(seen) != total {
		t.Errorf("walked %d events, the account has %d messages", len(seen), total)
	}

	// created_at: after the seeded data nothing; AddMessage adds one, now.
	since := strconv.FormatInt(baseTime.Unix(), 10)
	q = chatTypes()
	q.Set("filter[created_at][from]", since)
	wantStatus(t, send(t, "GET", eventsURL(s, q), nil, tok...), 204)
	s.AddMessage(lead.ChatIDs[0], "new", true)
	r := send(t, "GET", eventsURL(s, q), nil, tok...)
	wantStatus(t, r, 200)
	items, _ := dig(r.json(t), "_embedded", "events").([]any)
	if len(items) != 1 || dig(items[0], "entity_id") != float64(lead.ID) || dig(items[0], "created_at") != float64(c.Now().Unix()) {
		t.Fatalf("after AddMessage: %s", r.body)
	}
	if dig(items[0], "value_after", 0, "message", "talk_id") == nil {
		t.Errorf("no talk_id: %s", r.body)
	}
	// A scalar created_at means "after it".
	q = chatTypes()
	q.Set("filter[created_at]", strconv.FormatInt(c.Now().Unix(), 10))
	wantStatus(t, send(t, "GET", eventsURL(s, q), nil, tok...), 204)
}

// The quirk: filter[entity]=lead drops chat events; filter[entity]=contact
// with the contact's id finds them, served on the lead.
func TestEventsEntityQuirk(t *testing.T) {
	s := startTest(t, Options{Leads: 6, RESTRateLimit: -1}, newClock())
	tok := bearer(s.LongLivedToken())
	lead := s.OpenLeadsWithChats()[0]

	q := chatTypes()
	q.Set("filter[entity]", "lead")
	q.Set("filter[entity_id][]", fmt.Sprint(lead.ID))
	wantStatus(t, send(t, "GET", eventsURL(s, q), nil, tok...), 204)

	q = chatTypes()
	q.Set("filter[entity]", "contact")
	q.Set("filter[entity_id][]", fmt.Sprint(lead.ContactIDs[0]))
	r := send(t, "GET", eventsURL(s, q), nil, tok...)
	wantStatus(t, r, 200)
	if dig(r.json(t), "_embedded", "events", 0, "entity_type") != "lead" {
		t.Errorf("contact filter: %s", r.body)
	}

	q = chatTypes()
	q.Set("filter[entity_id][]", "1")
	validation(t, send(t, "GET", eventsURL(s, q), nil, tok...))
	q.Set("filter[entity]", "lead,contact")
	validation(t, send(t, "GET", eventsURL(s, q), nil, tok...))
}

// Status changes, deleted leads, deleted events, a failing page, a token
// without rights.
func TestEventsStatusDeleteAndFaults(t *testing.T) {
	c := newClock()
	s := startTest(t, Options{Leads: 8, RESTRateLimit: -1}, c)
	tok := bearer(s.LongLivedToken())
	open := s.OpenLeadsWithChats()
	a, b := open[0], open[1]

	s.SetLeadStatus(a.ID, statusWon)
	q := url.Values{"filter[type][]": {evLeadStatus}}
	r := send(t, "GET", eventsURL(s, q), nil, tok...)
	wantStatus(t, r, 200)
	if dig(r.json(t), "_embedded", "events", 0, "value_after", 0, "lead_status", "id") != float64(statusWon) {
		t.Fatalf("status event: %s", r.body)
	}

	s.DeleteLead(b.ID)
	wantStatus(t, send(t, "GET", s.KommoURL+"/api/v4/leads/"+fmt.Sprint(b.ID), nil, tok...), 204)
	q = chatTypes()
	q.Set("filter[entity]", "contact")
	q.Set("filter[entity_id][]", fmt.Sprint(b.ContactIDs[0]))
	r = send(t, "GET", eventsURL(s, q), nil, tok...)
	wantStatus(t, r, 200)
	if dig(r.json(t), "_embedded", "events", 0, "entity_type") != "contact" {
		t.Fatalf("a deleted lead's chat event: %s", r.body)
	}

	if n := s.DeleteLeadEvents(a.ID); n == 0 {
		t.Fatal("DeleteLeadEvents deleted nothing")
	}
	for _, e := range s.Events(a.ID) {
		if e.Type != evLeadStatus {
			t.Fatalf("a chat event is left: %+v", e)
		}
	}

	s.FailEventsPage(1, 1)
	q = chatTypes()
	q.Set("page", "1")
	wantStatus(t, send(t, "GET", eventsURL(s, q), nil, tok...), 502)
	wantStatus(t, send(t, "GET", eventsURL(s, q), nil, tok...), 200)

	s2 := startTest(t, Options{Leads: 2, RESTRateLimit: -1, EventsForbidden: true}, c)
	wantStatus(t, send(t, "GET", eventsURL(s2, chatTypes()), nil, bearer(s2.LongLivedToken())...), 403)
	c.Advance(time.Second)
}
