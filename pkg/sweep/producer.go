package sweep

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommo"
)

// Producer says which leads a run covers: it streams them into the
// pipeline, and is told how the run ended. The engine's stages after it
// (fetch, summarise, write) are the same whatever the producer.
//
// The producers are Listing (every active lead), LeadIDs (those leads, in
// pages), ByID (those leads one by one) and Changes (the sweep's change
// feed, with its full pass).
type Producer interface {
	// produce hands the run's leads to send, which reports false when the
	// run is stopping. It returns a fatal error, or nil.
	produce(ctx context.Context, r *run, send func(*kommo.Lead) bool) error
	// settle is told how the run ended: nil or a *FailedLeadsError when it
	// completed.
	settle(ctx context.Context, r *run, err error)
}

// Listing sends every active lead (not won, not lost): the full pass. It
// asks for the leads of each open stage (see walkActive).
func Listing() Producer { return listing{} }

// LeadIDs sends those leads, whatever their status, asking for them 50 at a
// time; an id Kommo does not know is a failed lead that names it.
func LeadIDs(ids []int64) Producer { return leadIDs(ids) }

// ByID gets each lead by its id (`summarize`, serve's close queue).
func ByID(ids []int64) Producer { return byID(ids) }

// producer is the run's producer: the request's, or the one its LeadIDs
// and Single imply.
func (r *run) producer() Producer {
	switch {
	case r.req.Producer != nil:
		return r.req.Producer
	case r.req.Single:
		return byID(r.req.LeadIDs)
	case len(r.req.LeadIDs) > 0:
		return leadIDs(r.req.LeadIDs)
	}
	return listing{}
}

type listing struct{}

func (listing) produce(ctx context.Context, r *run, send func(*kommo.Lead) bool) error {
	_, err := r.walkActive(ctx, send)
	return err
}

// walkActive sends every active lead. It lists the pipelines and asks for
// the leads of each open stage, one stage a query (Kommo's leads-list
// reference: one stage of one pipeline per filter), so won and lost leads,
// most of an old account, are never read. When the pipelines cannot be
// listed it walks every lead and skips the won and lost ones itself. A lead
// that moves to a stage already walked during the walk waits for its next
// event or full pass. It returns the leads sent, or -1 when the run's Limit
// was reached or the run is stopping.
func (r *run) walkActive(ctx context.Context, send func(*kommo.Lead) bool) (int, error) {
	all := kommo.LeadsQuery{With: []string{"contacts"}}
	t0 := time.Now()
	pipes, err := r.o.Kommo.Pipelines(ctx)
	r.step("list pipelines", 0, time.Since(t0))
	if err != nil && (Fatal(err) || ctx.Err() != nil) {
		return 0, err
	}
	if err != nil || len(pipes) == 0 {
		r.log.Warn("could not list the pipelines, so this pass reads every lead and skips the won and lost ones itself", "err", err)
		return r.walkLeads(ctx, all, nil, 0, send)
	}
	sent := 0
	for _, p := range pipes {
		for _, s := range p.Embedded.Statuses {
			if s.ID == kommo.StatusWon || s.ID == kommo.StatusLost {
				continue
			}
			q := all
			q.Statuses = []kommo.StatusFilter{{PipelineID: p.ID, StatusID: s.ID}}
			n, err := r.walkLeads(ctx, q, nil, sent, send)
			if err != nil || n < 0 {
				return n, err
			}
			sent = n
		}
	}
	return sent, nil
}

func (listing) settle(context.Context, *run, error) {}

type leadIDs []int64

func (ids leadIDs) produce(ctx context.Context, r *run, send func(*kommo.Lead) bool) error {
	seen := map[int64]bool{}
	sent := 0
	for chunk := range slices.Chunk([]int64(ids), 50) {
		n, err := r.walkLeads(ctx, kommo.LeadsQuery{With: []string{"contacts"}, IDs: chunk}, seen, sent, send)
		if err != nil || n < 0 {
			return err
		}
		sent = n
	}
	for _, id := range ids {
		if !seen[id] {
			w := &leadWork{lead: &kommo.Lead{ID: id}, started: time.Now()}
			r.done(ctx, w.outcome(OutcomeFailed, fmt.Errorf("lead %d not found in Kommo: check the id", id)), [2]int64{})
		}
	}
	return nil
}

func (leadIDs) settle(context.Context, *run, error) {}

// walkLeads sends the leads of one listing query. With seen (a list of
// ids) every lead is sent and marked; without, won and lost leads are
// skipped. sent is how many leads the run sent before; it returns the new
// count, or -1 when the run's Limit was reached or the run is stopping.
func (r *run) walkLeads(ctx context.Context, q kommo.LeadsQuery, seen map[int64]bool, sent int, send func(*kommo.Lead) bool) (int, error) {
	t0 := time.Now()
	for lead, err := range r.o.Kommo.Leads(ctx, q) {
		if err != nil {
			return sent, fmt.Errorf("list leads: %w", err)
		}
		r.step("list leads", 0, time.Since(t0))
		r.count(func(rep *Report) { rep.LeadsScanned++ })
		if seen != nil {
			seen[lead.ID] = true
		} else if lead.Closed() {
			t0 = time.Now()
			continue
		}
		if r.req.Limit > 0 && sent >= r.req.Limit {
			return -1, nil
		}
		if !send(lead) {
			return -1, nil
		}
		sent++
		t0 = time.Now()
	}
	return sent, nil
}

type byID []int64

func (ids byID) produce(ctx context.Context, r *run, send func(*kommo.Lead) bool) error {
	for _, id := range ids {
		t0 := time.Now()
		lead, err := r.o.Kommo.Lead(ctx, id, "contacts")
		r.step("get lead", id, time.Since(t0))
		r.count(func(rep *Report) { rep.LeadsScanned++ })
		if err != nil {
			if Fatal(err) || ctx.Err() != nil {
				return err
			}
			if errors.Is(err, kommo.ErrNotFound) {
				err = fmt.Errorf("lead %d not found in Kommo: check the id", id)
			}
			w := &leadWork{lead: &kommo.Lead{ID: id}, started: t0}
			r.done(ctx, w.outcome(OutcomeFailed, err), [2]int64{})
			continue
		}
		if !send(lead) {
			return nil
		}
	}
	return nil
}

func (byID) settle(context.Context, *run, error) {}
