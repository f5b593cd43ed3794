//go:build unix

package main

import (
	"strings"
	"testing"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommo"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommotest"
)

// The change feed end to end: after the first (full) sweep an unchanged
// sweep costs a couple of requests and a sweep where 1% of the leads got a
// message costs a few per changed lead; won leads and deleted leads are
// dropped without a failure; a message whose event Kommo lost is caught by
// the next full pass; no note is written twice.
func TestChangeFeedRequestCounts(t *testing.T) {
	opts := fastFakes
	opts.Leads = 200
	w := newWorld(t, opts, fast)
	w.login()
	open := w.srv.OpenLeadsWithChats()
	if rep, res := w.sweep(); res.code != 0 || rep.Mode != "full" || rep.Summarized != len(open) {
		t.Fatalf("first sweep: exit %d, mode %q, summarized %d of %d\n%s", res.code, rep.Mode, rep.Summarized, len(open), tail(res.stderr))
	}

	w.srv.ResetStats()
	rep, res := w.sweep()
	st := w.srv.Stats()
	total := st.RESTRequests + st.ChatsRequests + st.OAuthRequests
	t.Logf("unchanged sweep of %d leads: %d requests (%d REST, of which %d events; %d Chats API)", opts.Leads, total, st.RESTRequests, st.EventsCalls, st.ChatsRequests)
	if res.code != 0 || rep.Mode != "changes" || total > 5 || rep.LLMCalls != 0 {
		t.Fatalf("unchanged sweep: exit %d, mode %q, %d requests, %d LLM calls; want 0, changes, at most 5, 0", res.code, rep.Mode, total, rep.LLMCalls)
	}

	changed := []kommotest.Lead{open[3], open[40]} // 1% of 200
	for _, l := range changed {
		w.srv.AddMessage(l.ChatIDs[0], "Can we move the delivery to Friday?", true)
	}
	w.srv.ResetStats()
	rep, res = w.sweep()
	st = w.srv.Stats()
	total = st.RESTRequests + st.ChatsRequests + st.OAuthRequests
	t.Logf("1%% changed (%d leads): %d requests (%d REST: %d events, %d lead lists, %d contacts/chats, %d note posts, %d patches; %d Chats API)",
		len(changed), total, st.RESTRequests, st.EventsCalls, st.LeadListCalls, st.ContactChatsCalls, st.NotesPosts, st.LeadPatches, st.ChatsRequests)
	if res.code != 0 || rep.Summarized != len(changed) || total > 5+3*len(changed) {
		t.Fatalf("1%% changed: exit %d, summarized %d, %d requests; want 0, %d, at most %d", res.code, rep.Summarized, total, len(changed), 5+3*len(changed))
	}

	lostEvent, won, deleted := open[5], open[6], open[7]
	w.srv.AddMessage(lostEvent.ChatIDs[0], "Is the offer still valid?", true)
	w.srv.DeleteLeadEvents(lostEvent.ID)
	w.srv.AddMessage(won.ChatIDs[0], "Paid, thank you", true)
	w.srv.SetLeadStatus(won.ID, kommo.StatusWon)
	w.srv.AddMessage(deleted.ChatIDs[0], "Please remove my data", true)
	w.srv.DeleteLead(deleted.ID)
	rep, res = w.sweep()
	if res.code != 0 || rep.Summarized != 0 || rep.Failed != 0 {
		t.Fatalf("sweep with a lost event, a won and a deleted lead: exit %d, summarized %d, failed %d; want 0, 0, 0\n%s",
			res.code, rep.Summarized, rep.Failed, tail(res.stderr))
	}
	rep, res = w.sweep("--full")
	if res.code != 0 || rep.Mode != "full" || rep.Summarized != 1 || len(w.srv.Notes(lostEvent.ID)) != 2 {
		t.Fatalf("--full: exit %d, mode %q, summarized %d, %d notes on lead %d; want 0, full, 1, 2",
			res.code, rep.Mode, rep.Summarized, len(w.srv.Notes(lostEvent.ID)), lostEvent.ID)
	}
	for _, l := range open {
		want := 1
		if l.ID == changed[0].ID || l.ID == changed[1].ID || l.ID == lostEvent.ID {
			want = 2
		}
		if got := len(w.srv.Notes(l.ID)); got != want {
			t.Errorf("lead %d has %d notes, want %d", l.ID, got, want)
		}
	}
}

// A token that may not read the Events API: every sweep walks every lead,
// with one warning that says why and what to do.
func TestChangeFeedWithoutEventsAccess(t *testing.T) {
	opts := fastFakes
	opts.EventsForbidden = true
	w := newWorld(t, opts, fast)
	w.login()
	if _, res := w.sweep(); res.code != 0 {
		t.Fatalf("first sweep: exit %d\n%s", res.code, tail(res.stderr))
	}
	target := w.srv.OpenLeadsWithChats()[0]
	w.srv.AddMessage(target.ChatIDs[0], "Hello again", true)
	rep, res := w.sweep()
	if res.code != 0 || rep.Mode != "full" || rep.Summarized != 1 {
		t.Fatalf("second sweep: exit %d, mode %q, summarized %d; want 0, full, 1\n%s", res.code, rep.Mode, rep.Summarized, tail(res.stderr))
	}
	if n := strings.Count(res.stderr, "may not read the Events API (403)"); n != 1 {
		t.Errorf("%d warnings about the Events API, want 1:\n%s", n, tail(res.stderr))
	}
	for _, l := range w.srv.OpenLeadsWithChats() {
		want := 1
		if l.ID == target.ID {
			want = 2
		}
		if got := len(w.srv.Notes(l.ID)); got != want {
			t.Errorf("lead %d has %d notes, want %d", l.ID, got, want)
		}
	}
}
