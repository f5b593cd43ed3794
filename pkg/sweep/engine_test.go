package sweep_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/sweep"
)

// Kommo does not promise the order of a history page: with the fake
// answering oldest first, a new message is still found and summarised, and
// an unchanged chat still costs no LLM call.
func TestHistoryOldestFirst(t *testing.T) {
	fo := fastFakes
	fo.HistoryOldestFirst = true
	e := newEnv(t, fo, 80)
	if _, err := e.run(t, sweep.Request{}); err != nil {
		t.Fatal(err)
	}
	rep, err := e.run(t, sweep.Request{})
	if err != nil || rep.LLMCalls != 0 {
		t.Fatalf("unchanged sweep: %d LLM calls, err %v; want 0", rep.LLMCalls, err)
	}
	target := e.srv.OpenLeadsWithChats()[0]
	e.srv.AddMessage(target.ChatIDs[0], "We signed the contract", true)
	rep, err = e.run(t, sweep.Request{})
	if err != nil || rep.Summarized != 1 {
		t.Fatalf("after a new message: summarized %d, err %v; want 1", rep.Summarized, err)
	}
	if n := e.srv.Notes(target.ID); len(n) != 2 || !strings.Contains(n[1].Text, "We signed the contract") {
		t.Fatalf("the new message is not in the lead's second note: %+v", n)
	}
}

// logOnly is the engine with the message log as its only source, as on an
// account without a Chats API channel.
func logOnly(e *env) {
	e.opts.Sources = []sweep.Source{sweep.MessageLog(e.db)}
}

func logChat(t *testing.T, db *store.DB, lead int64, chat string, msgs ...store.LogMessage) {
	t.Helper()
	at := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	for i := range msgs {
		msgs[i].ID = fmt.Sprintf("%s-%d", chat, i)
		msgs[i].ChatID, msgs[i].LeadID, msgs[i].Origin = chat, lead, "waba"
		msgs[i].CreatedAt = at.Add(time.Duration(i) * time.Minute)
		if msgs[i].Direction == "" {
			msgs[i].Direction = store.DirectionIn
		}
	}
	if _, err := db.Ingest(context.Background(), []store.Delivery{{Messages: msgs}}, store.IngestOptions{}); err != nil {
		t.Fatal(err)
	}
}

// A chat of only pictures and voice messages costs no LLM call and writes
// no note; the report counts it.
func TestMediaOnlyChatIsSkipped(t *testing.T) {
	e := newEnv(t, fastFakes, 80)
	logOnly(e)
	open := e.srv.OpenLeadsWithChats()
	media, text := open[0].ID, open[1].ID
	logChat(t, e.db, media, "wa-media",
		store.LogMessage{Type: "picture", AttachmentType: "picture", AttachmentName: "a.jpg"},
		store.LogMessage{Type: "voice", AttachmentType: "voice"})
	logChat(t, e.db, text, "wa-text",
		store.LogMessage{Type: "text", Text: "How much is the premium plan?"},
		store.LogMessage{Type: "text", Text: "120 USD a month", Direction: store.DirectionOut})
	rep, err := e.run(t, sweep.Request{LeadIDs: []int64{media, text}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.SkippedNoText != 1 || rep.Summarized != 1 || rep.LLMCalls != 1 {
		t.Fatalf("skipped for no text %d, summarized %d, LLM calls %d; want 1, 1, 1", rep.SkippedNoText, rep.Summarized, rep.LLMCalls)
	}
	if n := len(e.srv.Notes(media)); n != 0 {
		t.Errorf("the media-only lead got %d notes", n)
	}
	if st := e.srv.Stats(); st.HistoryCalls != 0 || st.ContactChatsCalls != 0 {
		t.Errorf("a sweep of logged chats made %d history and %d contacts/chats calls, want 0", st.HistoryCalls, st.ContactChatsCalls)
	}
}

// Recovery adopts a note only by the reference of its own request: an
// earlier note with the very same text (a --force on an unchanged chat) is
// not taken for the pending one, which is then posted.
func TestRecoveryMatchesTheNoteReference(t *testing.T) {
	e := newEnv(t, fastFakes, 80)
	lead := e.srv.OpenLeadsWithChats()[0].ID
	if _, err := e.run(t, sweep.Request{LeadIDs: []int64{lead}}); err != nil {
		t.Fatal(err)
	}
	first := e.srv.Notes(lead)
	if len(first) != 1 {
		t.Fatalf("%d notes after the first run", len(first))
	}
	// A run that died after storing its summary, before its note landed;
	// its text is the first note's, to the letter.
	v, err := e.db.LeadVersion(context.Background(), lead)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if err := e.db.StartRun(context.Background(), store.Run{ID: "dead-run", PID: 1 << 30, Host: host}); err != nil {
		t.Fatal(err)
	}
	p := store.Pending{RequestID: "feedfacecafe0001", LeadID: lead, RunID: "dead-run", NoteText: first[0].Text, FieldText: "x", Model: "m", BaseVersion: v}
	if err := e.db.AddPending(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	rep, err := e.run(t, sweep.Request{LeadIDs: []int64{lead}})
	if err != nil {
		t.Fatal(err)
	}
	notes := e.srv.Notes(lead)
	if rep.Recovered != 1 || len(notes) != 2 || notes[1].RequestID != "feedfacecafe0001" {
		t.Fatalf("recovered %d, notes %+v; want the pending note posted as a second note", rep.Recovered, notes)
	}
	runs, err := e.db.Runs(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		if r.ID == "dead-run" && r.Status != store.RunKilled {
			t.Errorf("the dead run is recorded as %q, want %q", r.Status, store.RunKilled)
		}
	}
}

// A run that has been taken for dead (its runs row marked killed by the run
// that took its work over) refuses to write.
func TestRunTakenForDeadStopsWriting(t *testing.T) {
	e := newEnv(t, fastFakes, 80)
	e.opts.LockStaleAfter = 800 * time.Millisecond
	calls := 0
	e.opts.OnLead = func(sweep.LeadOutcome) {
		calls++
		if calls == 1 {
			// Another run claims this one's work, as after a long pause.
			runs, _ := e.db.Runs(context.Background(), 1)
			if _, err := e.db.ClaimPendings(context.Background(), "thief", 0); err != nil {
				t.Error(err)
			}
			_ = e.db.FinishRun(context.Background(), runs[0].ID, store.RunKilled, -1, nil)
		}
	}
	_, err := e.run(t, sweep.Request{})
	if err == nil || !strings.Contains(err.Error(), "no longer ours") {
		t.Fatalf("err = %v, want the run to stop as taken over", err)
	}
	if n := len(e.srv.AllNotes()); n > 4 {
		t.Errorf("%d notes written after the run was taken over", n)
	}
}
