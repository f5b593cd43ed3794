package sweep_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/amojo"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommo"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommotest"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/llm"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/pace"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/retry"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/sweep"
)

var fastRetry = retry.Policy{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond, Multiplier: 2, Tries: 4}

// env is a sweep wired to the fakes over real HTTP on 127.0.0.1.
type env struct {
	srv   *kommotest.Server
	db    *store.DB
	rest  *kommo.Client
	opts  sweep.Options
	kommo sweep.Kommo
}

func newEnv(t *testing.T, fo kommotest.Options, rps float64) *env {
	t.Helper()
	srv := kommotest.StartT(t, fo)
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	o := srv.Options()
	rest, err := kommo.New(kommo.Options{BaseURL: srv.KommoURL, Tokens: kommo.StaticToken(srv.LongLivedToken()), Pacer: pace.New(rps), Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	chats, err := amojo.New(amojo.Options{BaseURL: srv.ChatsURL, ScopeID: srv.ScopeID(), ChannelSecret: o.ChannelSecret, Pacer: pace.New(rps), Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	model, err := llm.New(llm.Options{BaseURL: srv.LLMURL, APIKey: o.LLMAPIKey, Model: "gpt-4o-mini", Temperature: 0.3, MaxTokens: 300, RetryBase: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{srv: srv, db: db, rest: rest, kommo: rest}
	e.opts = sweep.Options{
		Sources: []sweep.Source{sweep.ChatsAPI(rest, chats), sweep.MessageLog(db)}, LLM: model, DB: db,
		FieldID: o.SummaryFieldID, FieldMaxChars: 4000, BatchMaxWait: time.Minute,
	}
	return e
}

func (e *env) run(t *testing.T, req sweep.Request) (*sweep.Report, error) {
	t.Helper()
	o := e.opts
	o.Kommo = e.kommo
	return sweep.Run(context.Background(), o, req)
}

var fastFakes = kommotest.Options{Seed: 5, Leads: 20, RESTRateLimit: 100, ChatsRateLimit: 100}

// Notes and field updates go out in batches, not one request per lead.
func TestWritesAreBatched(t *testing.T) {
	e := newEnv(t, fastFakes, 80)
	e.opts.BatchSize = 4
	rep, err := e.run(t, sweep.Request{})
	if err != nil {
		t.Fatal(err)
	}
	n := len(e.srv.OpenLeadsWithChats())
	st := e.srv.Stats()
	wantPosts := (n + 3) / 4
	if rep.Summarized != n || st.NotesCreated != n || st.NotesPosts != wantPosts || st.LeadPatches != wantPosts || st.LeadsPatched != n {
		t.Fatalf("summarized %d, notes %d in %d posts, %d leads in %d patches; want %d, %d in %d, %d in %d",
			rep.Summarized, st.NotesCreated, st.NotesPosts, st.LeadsPatched, st.LeadPatches, n, n, wantPosts, n, wantPosts)
	}
	// Every lead's outcome is in the run log.
	results, err := e.db.LeadResults(context.Background(), rep.RunID)
	if err != nil {
		t.Fatal(err)
	}
	byOutcome := map[string]int{}
	for _, r := range results {
		byOutcome[r.Outcome]++
	}
	if byOutcome[sweep.OutcomeSummarized] != n || byOutcome[sweep.OutcomeNoChats] != rep.SkippedNoChats || len(results) != n+rep.SkippedNoChats {
		t.Errorf("run log %v, want %d summarized and %d without chats", byOutcome, n, rep.SkippedNoChats)
	}
	if rep.SkippedNoChats == 0 {
		t.Error("the fake account has no lead without chats: the test lost a case")
	}
}

// A chat that gained k messages costs about k/50 history calls.
func TestIncrementalFetchCostsAboutKOver50(t *testing.T) {
	e := newEnv(t, fastFakes, 80)
	if _, err := e.run(t, sweep.Request{}); err != nil {
		t.Fatal(err)
	}
	open := e.srv.OpenLeadsWithChats()
	target := open[0]
	for i := range 70 {
		e.srv.AddMessage(target.ChatIDs[0], "new message "+string(rune('a'+i%26)), i%2 == 0)
	}
	chats := 0
	for _, l := range open {
		chats += len(l.ChatIDs)
	}
	e.srv.ResetStats()
	rep, err := e.run(t, sweep.Request{})
	if err != nil {
		t.Fatal(err)
	}
	// 70 new messages: the first page holds 50 new ones, the second the other
	// 20 and the watermark. Every other chat costs its one probe.
	if got, want := e.srv.Stats().HistoryCalls, chats-1+2; got != want {
		t.Errorf("%d history calls, want %d", got, want)
	}
	if rep.Summarized != 1 || rep.LLMCalls != 1 {
		t.Errorf("summarized %d with %d LLM calls, want 1 and 1", rep.Summarized, rep.LLMCalls)
	}
	notes := e.srv.Notes(target.ID)
	if len(notes) != 2 {
		t.Fatalf("the changed lead has %d notes, want 2", len(notes))
	}
}

// badNoteKommo makes one lead's note invalid, as bad data would, so Kommo
// rejects the whole batch.
type badNoteKommo struct {
	*kommo.Client
	bad int64
}

func (b badNoteKommo) AddLeadNotes(ctx context.Context, notes []kommo.NewNote) ([]kommo.Note, error) {
	for i := range notes {
		if notes[i].EntityID == b.bad {
			notes[i].Params.Text = ""
		}
	}
	return b.Client.AddLeadNotes(ctx, notes)
}

// One bad note does not sink its batch: the batch is split, the others land,
// the bad lead is a recorded failure and its watermark does not move.
func TestBadNoteIsolatedFromItsBatch(t *testing.T) {
	e := newEnv(t, fastFakes, 80)
	open := e.srv.OpenLeadsWithChats()
	bad := open[2].ID
	e.kommo = badNoteKommo{e.rest, bad}
	rep, err := e.run(t, sweep.Request{})
	var fe *sweep.FailedLeadsError
	if !errors.As(err, &fe) || rep.Failed != 1 || rep.Summarized != len(open)-1 {
		t.Fatalf("err %v, failed %d, summarized %d; want a FailedLeadsError, 1, %d", err, rep.Failed, rep.Summarized, len(open)-1)
	}
	if rep.Failures[0].LeadID != bad {
		t.Errorf("failed lead %d, want %d", rep.Failures[0].LeadID, bad)
	}
	for _, l := range open {
		want := 1
		if l.ID == bad {
			want = 0
		}
		if got := len(e.srv.Notes(l.ID)); got != want {
			t.Errorf("lead %d has %d notes, want %d", l.ID, got, want)
		}
	}
	if st, _ := e.db.ChatStates(context.Background(), bad); len(st) != 0 {
		t.Errorf("the failed lead's watermark moved: %+v", st)
	}
	// The next run, with good data, summarises only the failed lead.
	e.kommo = e.rest
	rep, err = e.run(t, sweep.Request{})
	if err != nil || rep.Summarized != 1 || len(e.srv.Notes(bad)) != 1 {
		t.Fatalf("rerun: err %v, summarized %d, notes on the bad lead %d; want nil, 1, 1", err, rep.Summarized, len(e.srv.Notes(bad)))
	}
}

// Kommo blocks the IP after repeated 429s: the run ends at once with a
// clear error instead of hammering on.
func TestIPBlockEndsTheRun(t *testing.T) {
	fo := fastFakes
	fo.RESTRateLimit = 3
	fo.BlockAfter429s = 3
	e := newEnv(t, fo, 0) // no pacing: this client ignores the limit
	e.opts.FetchWorkers = 8
	start := time.Now()
	_, err := e.run(t, sweep.Request{})
	var ib *kommo.IPBlockedError
	if !errors.As(err, &ib) {
		t.Fatalf("err = %v, want an IPBlockedError", err)
	}
	if !sweep.Fatal(err) {
		t.Error("an IP block is not fatal")
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the run went on for %s after the block", d)
	}
	if n := len(e.srv.AllNotes()); n != 0 {
		t.Logf("%d notes landed before the block", n)
	}
}

// At Kommo's real limit the sweep itself never causes a 429.
func TestPacedSweepCausesNo429(t *testing.T) {
	fo := kommotest.Options{Seed: 9, Leads: 12}
	e := newEnv(t, fo, 7)
	if _, err := e.run(t, sweep.Request{}); err != nil {
		t.Fatal(err)
	}
	st := e.srv.Stats()
	if st.REST429 != 0 || st.Chats429 != 0 || st.PeakRESTPerSecond > 7 || st.PeakChatsPerSecond > 7 {
		t.Fatalf("429s %d/%d, peaks %d/%d per second; want 0/0 and <= 7", st.REST429, st.Chats429, st.PeakRESTPerSecond, st.PeakChatsPerSecond)
	}
}

// A second run while one holds the lock gets a LockedError naming it.
func TestLockedWhileAnotherRunHoldsIt(t *testing.T) {
	e := newEnv(t, fastFakes, 80)
	h := store.LockHolder{RunID: "other-run", PID: 1, Host: "another-host", StartedAt: time.Now(), HeartbeatAt: time.Now()}
	if err := e.db.AcquireLock(context.Background(), h, time.Minute); err != nil {
		t.Fatal(err)
	}
	_, err := e.run(t, sweep.Request{Lock: true})
	var le *store.LockedError
	if !errors.As(err, &le) || le.Holder.RunID != "other-run" {
		t.Fatalf("err = %v, want a LockedError naming other-run", err)
	}
	if e.srv.Stats().RESTRequests != 0 {
		t.Error("a locked-out run called Kommo")
	}
}
