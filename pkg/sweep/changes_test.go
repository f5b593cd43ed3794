package sweep_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/amojo"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommo"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommotest"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/sweep"
)

// changesEnv is an env whose Chats API source caches contacts' chats, as
// `sweep` wires it.
func changesEnv(t *testing.T, fo kommotest.Options) *env {
	t.Helper()
	e := newEnv(t, fo, 200)
	chats, err := amojo.New(amojo.Options{BaseURL: e.srv.ChatsURL, ScopeID: e.srv.ScopeID(), ChannelSecret: e.srv.Options().ChannelSecret, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	e.opts.Sources[0] = sweep.ChatsAPI(sweep.CachedContactChats(e.rest, e.db, time.Hour, nil), chats)
	return e
}

func (e *env) changes(t *testing.T, full bool) *sweep.Report {
	t.Helper()
	e.srv.ResetStats()
	rep, err := e.run(t, sweep.Request{Producer: sweep.Changes(full)})
	if err != nil {
		t.Fatalf("sweep: %v (%+v)", err, rep)
	}
	return rep
}

// The feed: a full first pass, then only what the events name.
func TestChangesSweepsOnlyWhatTheEventsName(t *testing.T) {
	e := changesEnv(t, fastFakes)
	open := e.srv.OpenLeadsWithChats()

	rep := e.changes(t, false)
	if rep.Mode != "full" || rep.Summarized != len(open) {
		t.Fatalf("first sweep: mode %q, summarized %d; want full and %d", rep.Mode, rep.Summarized, len(open))
	}

	rep = e.changes(t, false)
	st := e.srv.Stats()
	if rep.Mode != "changes" || rep.LeadsScanned != 0 || st.RESTRequests != 1 || st.ChatsRequests != 0 {
		t.Fatalf("unchanged sweep: mode %q, %d leads, %d REST and %d Chats requests; want changes, 0, 1, 0",
			rep.Mode, rep.LeadsScanned, st.RESTRequests, st.ChatsRequests)
	}

	a, won, lost := open[0], open[1], open[2]
	e.srv.AddMessage(a.ChatIDs[0], "Please send the invoice", true)
	e.srv.AddMessage(won.ChatIDs[0], "Signed!", true)
	e.srv.SetLeadStatus(won.ID, kommo.StatusWon)
	e.srv.AddMessage(lost.ChatIDs[0], "We chose another vendor", true)
	e.srv.SetLeadStatus(lost.ID, 7100002) // moved on, then lost: the latest status wins
	e.srv.SetLeadStatus(lost.ID, kommo.StatusLost)
	rep = e.changes(t, false)
	st = e.srv.Stats()
	if rep.Summarized != 1 || rep.LeadsScanned != 1 || len(e.srv.Notes(a.ID)) != 2 {
		t.Fatalf("after one message: summarized %d, scanned %d, %d notes on lead %d; want 1, 1, 2", rep.Summarized, rep.LeadsScanned, len(e.srv.Notes(a.ID)), a.ID)
	}
	if st.HistoryCalls != len(a.ChatIDs) || st.ContactChatsCalls > len(a.ContactIDs) {
		t.Errorf("a changed lead cost %d history and %d contacts/chats calls; want %d and at most %d",
			st.HistoryCalls, st.ContactChatsCalls, len(a.ChatIDs), len(a.ContactIDs))
	}
	if len(e.srv.Notes(won.ID)) != 1 || len(e.srv.Notes(lost.ID)) != 1 {
		t.Error("a won or lost lead was summarised")
	}

	// The same talk again: the cached chats serve.
	e.srv.AddMessage(a.ChatIDs[0], "And the contract", true)
	rep = e.changes(t, false)
	if st := e.srv.Stats(); rep.Summarized != 1 || st.ContactChatsCalls != 0 {
		t.Errorf("a known talk: summarized %d, %d contacts/chats calls; want 1 and 0", rep.Summarized, st.ContactChatsCalls)
	}
}

// A failed page of events: the leads found so far are swept and the cursor
// stays, so the next sweep reads the window again. Events lost by Kommo are
// caught by the next full pass. A deleted lead is no failure.
func TestChangesFaults(t *testing.T) {
	e := changesEnv(t, fastFakes)
	open := e.srv.OpenLeadsWithChats()
	e.changes(t, false)

	a, b, gone := open[0], open[1], open[2]
	e.srv.AddMessage(a.ChatIDs[0], "Any news?", true)
	e.srv.FailEventsPage(1, 4) // every try of the first page
	rep := e.changes(t, false)
	if rep.FeedError == "" || rep.Summarized != 0 {
		t.Fatalf("failed page: feed error %q, summarized %d", rep.FeedError, rep.Summarized)
	}
	e.srv.AddMessage(gone.ChatIDs[0], "Hello?", true)
	e.srv.DeleteLead(gone.ID)
	rep = e.changes(t, false)
	if rep.Summarized != 1 || len(e.srv.Notes(a.ID)) != 2 || rep.Failed != 0 {
		t.Fatalf("the next sweep: summarized %d, failed %d, %d notes; want 1, 0, 2", rep.Summarized, rep.Failed, len(e.srv.Notes(a.ID)))
	}

	e.srv.AddMessage(b.ChatIDs[0], "Lost in the events", true)
	if e.srv.DeleteLeadEvents(b.ID) == 0 {
		t.Fatal("no event deleted")
	}
	if rep = e.changes(t, false); rep.Summarized != 0 {
		t.Fatalf("a lead without events was summarised by a changes sweep: %+v", rep)
	}
	if rep = e.changes(t, true); rep.Mode != "full" || rep.Summarized != 1 || len(e.srv.Notes(b.ID)) != 2 {
		t.Fatalf("the full pass: mode %q, summarized %d, %d notes on lead %d; want full, 1, 2", rep.Mode, rep.Summarized, len(e.srv.Notes(b.ID)), b.ID)
	}
	for _, l := range open {
		want := 1
		if l.ID == a.ID || l.ID == b.ID {
			want = 2
		}
		if got := len(e.srv.Notes(l.ID)); got != want {
			t.Errorf("lead %d has %d notes, want %d", l.ID, got, want)
		}
	}
}

// A token that may not read events: every sweep is a full pass.
func TestChangesWithoutEventsFallsBackToFull(t *testing.T) {
	fo := fastFakes
	fo.EventsForbidden = true
	e := changesEnv(t, fo)
	e.changes(t, false)
	rep := e.changes(t, false)
	if rep.Mode != "full" || rep.SkippedUnchanged == 0 {
		t.Fatalf("second sweep without events: mode %q, %+v", rep.Mode, rep)
	}
}

// A lead that failed is taken again by the next sweep without an event; a
// limited or dry run leaves the feed where it was.
func TestChangesRetriesFailuresAndKeepsTheCursor(t *testing.T) {
	probe := newEnv(t, fastFakes, 200)
	bad := probe.srv.OpenLeadsWithChats()[2]
	fo := fastFakes
	fo.BadChats = map[string]int{bad.ChatIDs[0]: 400}
	e := changesEnv(t, fo)

	var fl *sweep.FailedLeadsError
	rep, err := e.run(t, sweep.Request{Producer: sweep.Changes(false), Limit: 2})
	if (err != nil && !errors.As(err, &fl)) || rep.Mode != "full" {
		t.Fatalf("limited first sweep: %v, mode %q", err, rep.Mode)
	}
	if rep, _ = e.run(t, sweep.Request{Producer: sweep.Changes(false), DryRun: true}); rep.Mode != "full" {
		t.Fatalf("after a limited sweep the next is %q, want full", rep.Mode)
	}
	rep, err = e.run(t, sweep.Request{Producer: sweep.Changes(false)})
	if !errors.As(err, &fl) || rep.Mode != "full" || rep.Failed != 1 || rep.Failures[0].LeadID != bad.ID {
		t.Fatalf("full sweep: %v, mode %q, failures %+v; want lead %d failed", err, rep.Mode, rep.Failures, bad.ID)
	}
	rep, err = e.run(t, sweep.Request{Producer: sweep.Changes(false)})
	if !errors.As(err, &fl) || rep.Mode != "changes" || rep.LeadsScanned != 1 || rep.Failures[0].LeadID != bad.ID {
		t.Fatalf("next sweep: %v, mode %q, scanned %d, failures %+v; want the failed lead again", err, rep.Mode, rep.LeadsScanned, rep.Failures)
	}
}

// A page in the middle of the events walk fails: the leads of the pages
// read are swept, the cursor stays, and the next sweep reads the whole
// window again: every changed lead gets exactly one more note.
func TestChangesPageFailsMidWalk(t *testing.T) {
	e := changesEnv(t, fastFakes)
	open := e.srv.OpenLeadsWithChats()
	e.changes(t, false)
	for i := range 120 { // more than a page of 100 events
		l := open[i%len(open)]
		e.srv.AddMessage(l.ChatIDs[0], fmt.Sprintf("message %d", i), i%2 == 0)
	}
	e.srv.FailEventsPage(2, 4)
	rep := e.changes(t, false)
	if rep.FeedError == "" || rep.EventsRead != 100 || rep.Summarized == 0 {
		t.Fatalf("page 2 failed: feed error %q, %d events read, %d summarized", rep.FeedError, rep.EventsRead, rep.Summarized)
	}
	first := rep.Summarized
	rep = e.changes(t, false)
	if rep.FeedError != "" || rep.EventsRead != 120 || rep.Summarized+first != len(open) {
		t.Fatalf("the next sweep: feed error %q, %d events read, %d summarized after %d; want all %d leads once",
			rep.FeedError, rep.EventsRead, rep.Summarized, first, len(open))
	}
	for _, l := range open {
		if n := len(e.srv.Notes(l.ID)); n != 2 {
			t.Errorf("lead %d has %d notes, want 2", l.ID, n)
		}
	}
}
