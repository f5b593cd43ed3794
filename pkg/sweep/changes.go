package sweep

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommo"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
)

// Changes is the producer of `sweep`: the leads whose chats got messages
// since the last completed sweep, as the Events API tells (about 2 requests
// when nothing changed, instead of 1.6 per lead), with the leads whose
// message log (webhooks) changed since and the leads the last sweep failed. The first sweep, a sweep
// with full set, a sweep when Options.FullEvery has passed since the last
// full pass, and a sweep whose token may not read events (403) walk every
// active lead instead: the full pass catches what the events missed
// (retention, clock skew, an outage).
//
// The feed's cursor is the start of the last completed sweep; a sweep reads
// the events from Options.EventsMargin before it. It moves only when the
// sweep that used it completed (failed leads included: they are taken
// again by the next sweep), never after a failed page of events, an
// interrupted or limited run, or a dry run.
//
// A Changes value serves one run.
func Changes(full bool) Producer { return &changes{forceFull: full} }

type changes struct {
	forceFull bool

	// What produce did, for settle.
	used      bool
	full      bool
	keep      string // why the cursor stays, when it does
	truncated bool
}

// logMargin is how far before the cursor the message log is read again.
const logMargin = time.Second

// The event types the feed reads in one walk.
var feedTypes = []string{kommo.EventIncomingChatMessage, kommo.EventOutgoingChatMessage, kommo.EventLeadStatusChanged}

// feedLead is what the events said about one lead.
type feedLead struct {
	talks map[int64]int64 // talk id -> the event's contact (0: not given)
}

// statusSeen is the latest status change of a lead the events named.
type statusSeen struct {
	at     int64
	id     string
	status int64
}

func (p *changes) produce(ctx context.Context, r *run, send func(*kommo.Lead) bool) error {
	p.used = true
	feed, err := r.o.DB.Feed(ctx)
	if err != nil {
		return storeErr(err)
	}
	start := r.report.StartedAt
	reason := ""
	switch {
	case p.forceFull:
		reason = "asked for (--full or --force)"
	case feed.Cursor.IsZero():
		reason = "first sweep"
	case start.Sub(feed.FullAt) >= r.o.FullEvery:
		reason = "sweep.full_every has passed since the last full pass"
	}
	if reason == "" {
		err := p.incremental(ctx, r, feed, send)
		var ke *kommo.Error
		if err == nil || !errors.As(err, &ke) || ke.Status != http.StatusForbidden || Fatal(err) {
			return err
		}
		r.log.Warn("the token may not read the Events API (403), so this sweep walks every active lead, and so will the next ones until it may: give the integration's user the rights to see the account's events",
			"err", err)
		reason = "the Events API answered 403"
	}
	p.full = true
	r.count(func(rep *Report) { rep.Mode = "full" })
	r.log.Info("full pass: every active lead", "reason", reason)
	n, err := r.walkActive(ctx, send)
	p.truncated = n < 0
	return err
}

// incremental reads the events since the cursor and sends the leads they
// name, with the leads the last sweep failed.
func (p *changes) incremental(ctx context.Context, r *run, feed store.Feed, send func(*kommo.Lead) bool) error {
	from := feed.Cursor.Add(-r.o.EventsMargin)
	leads := map[int64]*feedLead{}
	statuses := map[int64]statusSeen{}
	read, other := 0, 0
	t0 := time.Now()
	// Up to the run's start, as Kommo's own example bounds both ends: what
	// comes later is the next sweep's (its window starts a margin before).
	to := r.report.StartedAt
	for e, err := range r.o.Kommo.Events(ctx, kommo.EventsQuery{Types: feedTypes, From: from, To: to}) {
		if err != nil {
			var ke *kommo.Error
			if Fatal(err) || ctx.Err() != nil || (read == 0 && errors.As(err, &ke) && ke.Status == http.StatusForbidden) {
				return err
			}
			// The leads found so far are swept; the cursor stays, so the
			// next sweep reads this window again.
			p.keep = "a page of events failed: " + err.Error()
			r.count(func(rep *Report) { rep.FeedError = err.Error() })
			if read == 0 {
				r.log.Warn("could not read the Events API: this sweep finds no changed lead there (the message log and the leads to retry are still swept); the next sweep reads the same window again, and a full pass comes every sweep.full_every",
					"err", err)
			} else {
				r.log.Warn("reading the events failed part way: the leads found so far are swept, and the next sweep reads the same events again",
					"events_read", read, "err", err)
			}
			break
		}
		read++
		if e.EntityType != "lead" {
			// contact: the lead was deleted, or the chat is on no lead yet;
			// customer: not a lead.
			other++
			continue
		}
		switch e.Type {
		case kommo.EventIncomingChatMessage, kommo.EventOutgoingChatMessage:
			fl := leads[e.EntityID]
			if fl == nil {
				fl = &feedLead{talks: map[int64]int64{}}
				leads[e.EntityID] = fl
			}
			if m := e.Message(); m != nil && m.TalkID != 0 {
				if c := e.Embedded.Entity.LinkedTalkContactID; c != 0 || fl.talks[m.TalkID] == 0 {
					fl.talks[m.TalkID] = c
				}
			}
		case kommo.EventLeadStatusChanged:
			// Events come in no documented order: the latest one wins.
			s := statusSeen{at: e.CreatedAt, id: e.ID, status: e.StatusAfter()}
			if cur, ok := statuses[e.EntityID]; !ok || cmp.Or(cmp.Compare(s.at, cur.at), cmp.Compare(s.id, cur.id)) > 0 {
				statuses[e.EntityID] = s
			}
		}
	}
	r.step("read events", 0, time.Since(t0))

	// The message log is a source too: webhooks may bring messages the
	// events showed long ago (a hook installed late, retried deliveries).
	// Its times are this host's clock and its writes short transactions,
	// so it needs no margin for Kommo's clock: a second covers the clock.
	logged, err := r.o.DB.LoggedLeadsSince(ctx, feed.Cursor.Add(-logMargin))
	if err != nil {
		return storeErr(err)
	}
	ids := map[int64]bool{}
	for id := range leads {
		ids[id] = true
	}
	for _, id := range slices.Concat(feed.Retry, logged) {
		ids[id] = true
	}
	closed := 0
	for id, s := range statuses {
		if ids[id] && (s.status == kommo.StatusWon || s.status == kommo.StatusLost) {
			delete(ids, id)
			closed++
		}
	}
	order := slices.Sorted(maps.Keys(ids))
	r.count(func(rep *Report) { rep.Mode, rep.EventsRead = "changes", read })
	r.log.Info("sweeping the leads the events named", "since", from, "events", read, "leads", len(order),
		"retried", len(feed.Retry), "logged", len(logged), "dropped_closed", closed, "not_on_a_lead", other)

	sent := 0
	for chunk := range slices.Chunk(order, 50) {
		var batch []*kommo.Lead
		seen := map[int64]bool{}
		t0 := time.Now()
		for lead, err := range r.o.Kommo.Leads(ctx, kommo.LeadsQuery{With: []string{"contacts"}, IDs: chunk}) {
			if err != nil {
				return err
			}
			seen[lead.ID] = true
			r.count(func(rep *Report) { rep.LeadsScanned++ })
			if lead.Closed() {
				continue
			}
			batch = append(batch, lead)
		}
		r.step("get leads", 0, time.Since(t0))
		for _, id := range chunk {
			if !seen[id] {
				// Deleted or merged into another lead since its event: nothing
				// to summarise, nothing missed.
				r.count(func(rep *Report) { rep.LeadsGone++ })
				r.log.Debug("a lead the events named is gone (deleted or merged)", "lead_id", id)
			}
		}
		if err := p.seeTalks(ctx, r, batch, leads); err != nil {
			return err
		}
		for _, lead := range batch {
			if r.req.Limit > 0 && sent >= r.req.Limit {
				p.truncated = true
				return nil
			}
			if !send(lead) {
				return nil
			}
			sent++
		}
	}
	return nil
}

// seeTalks records the talks the events named for these leads: a talk not
// seen before may be a new chat, so the cached chats of its contact (or, when
// the event did not name one, of every contact of the lead) are dropped.
func (p *changes) seeTalks(ctx context.Context, r *run, batch []*kommo.Lead, leads map[int64]*feedLead) error {
	var talks []store.Talk
	for _, lead := range batch {
		fl := leads[lead.ID]
		if fl == nil {
			continue
		}
		for _, talk := range slices.Sorted(maps.Keys(fl.talks)) {
			t := store.Talk{ID: talk, Contacts: lead.ContactIDs()}
			if c := fl.talks[talk]; c != 0 {
				t.Contacts = []int64{c}
			}
			talks = append(talks, t)
		}
	}
	if _, err := r.o.DB.SeeTalks(ctx, talks); err != nil {
		return storeErr(err)
	}
	return nil
}

func (p *changes) settle(ctx context.Context, r *run, err error) {
	if !p.used || r.req.DryRun {
		return
	}
	var fl *FailedLeadsError
	switch {
	case err != nil && !errors.As(err, &fl):
		return
	case p.keep != "":
		return // warned already
	case p.truncated:
		r.log.Info("the change feed stays where it was: --limit stopped the sweep before its last lead")
		return
	}
	r.mu.Lock()
	var failed []int64
	for _, f := range r.report.Failures {
		failed = append(failed, f.LeadID)
	}
	start := r.report.StartedAt
	r.mu.Unlock()
	if err := r.o.DB.AdvanceFeed(ctx, r.id, start, p.full, failed); err != nil {
		r.log.Error("could not move the change feed: the next sweep reads the same events again", "err", err)
	}
}
