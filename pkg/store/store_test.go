package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable Now for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// pendingFor returns the lead's pending summary, or nil.
func pendingFor(t *testing.T, db *DB, leadID int64) (*Pending, error) {
	t.Helper()
	ps, err := db.Pendings(context.Background())
	for _, p := range ps {
		if p.LeadID == leadID {
			return &p, err
		}
	}
	return nil, err
}

// saveToken replaces the saved pair, as `auth login` does.
func saveToken(ctx context.Context, db *DB, tok Token) error {
	_, err := db.UpdateToken(ctx, func(Token, bool) (Token, bool, error) { return tok, true, nil })
	return err
}

func openTest(t *testing.T, path string) *DB {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "state.db")
	}
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a", "b", "state.db")
	db := openTest(t, path)

	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("database mode = %v, want 0600 (it holds tokens)", fi.Mode().Perm())
		}
	}

	for pragma, want := range map[string]string{
		"journal_mode": "wal", "synchronous": "1", "foreign_keys": "1", "busy_timeout": "10000",
	} {
		var got string
		if err := db.db.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}

	versions := func(db *DB) []int {
		rows, err := db.db.QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var vs []int
		for rows.Next() {
			var v int
			rows.Scan(&v)
			vs = append(vs, v)
		}
		return vs
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if got := versions(db); len(got) != len(ms) || got[0] != 1 {
		t.Fatalf("applied migrations = %v, want 1..%d", got, len(ms))
	}
	for _, table := range []string{"tokens", "chat_states", "pending", "summaries", "runs", "lead_results", "run_lock"} {
		var n int
		if err := db.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, table).Scan(&n); err != nil || n != 1 {
			t.Errorf("table %s: %d, %v", table, n, err)
		}
	}

	// Reopening applies nothing twice and keeps the data.
	if err := saveToken(ctx, db, Token{AccessToken: "a", RefreshToken: "r"}); err != nil {
		t.Fatal(err)
	}
	db2 := openTest(t, path)
	if got := versions(db2); len(got) != len(ms) {
		t.Fatalf("after reopen: migrations %v", got)
	}
	if tok, err := db2.Token(ctx); err != nil || tok.RefreshToken != "r" {
		t.Fatalf("after reopen: Token = %+v, %v", tok, err)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	// A directory that cannot be created: its parent is a file.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(file, "sub", "state.db")
	_, err := Open(ctx, path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "create the directory") {
		t.Fatalf("Open(%s) = %v, want an error naming the path", path, err)
	}

	// The path is a directory.
	_, err = Open(ctx, dir)
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Open(dir) = %v, want an error naming the path", err)
	}

	if _, err := Open(ctx, ""); err == nil || !strings.Contains(err.Error(), "store.path") {
		t.Fatalf("Open(\"\") = %v", err)
	}
	if _, err := Open(ctx, filepath.Join(dir, "a?b.db")); err == nil || !strings.Contains(err.Error(), "a?b.db") {
		t.Fatalf("Open(a?b.db) = %v", err)
	}

	// A database written by a newer program.
	newer := filepath.Join(dir, "newer.db")
	db := openTest(t, newer)
	if _, err := db.db.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, '0999_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, newer)
	if err == nil || !strings.Contains(err.Error(), newer) || !strings.Contains(err.Error(), "schema version 999") {
		t.Fatalf("Open(newer) = %v", err)
	}
}

func TestToken(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "")
	clk := newClock(t0)
	db.Now = clk.Now

	if _, err := db.Token(ctx); !errors.Is(err, ErrNoToken) {
		t.Fatalf("Token on an empty store = %v, want ErrNoToken", err)
	}
	// Nothing to keep and nothing saved: still no token.
	if _, err := db.UpdateToken(ctx, func(cur Token, found bool) (Token, bool, error) {
		if found {
			t.Errorf("found a token in an empty store: %+v", cur)
		}
		return Token{}, false, nil
	}); !errors.Is(err, ErrNoToken) {
		t.Fatalf("UpdateToken(save=false) on an empty store = %v, want ErrNoToken", err)
	}

	exp := t0.Add(24 * time.Hour)
	if err := saveToken(ctx, db, Token{AccessToken: "a1", RefreshToken: "r1", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	want := Token{AccessToken: "a1", RefreshToken: "r1", ExpiresAt: exp, UpdatedAt: t0}
	if got, err := db.Token(ctx); err != nil || got != want {
		t.Fatalf("Token = %+v, %v, want %+v", got, err, want)
	}

	// save=false keeps the pair.
	clk.Add(time.Minute)
	got, err := db.UpdateToken(ctx, func(cur Token, found bool) (Token, bool, error) {
		if !found || cur != want {
			t.Errorf("fn got %+v, %v", cur, found)
		}
		return Token{AccessToken: "ignored"}, false, nil
	})
	if err != nil || got != want {
		t.Fatalf("UpdateToken(save=false) = %+v, %v, want %+v", got, err, want)
	}

	// An error from fn comes back as is, and nothing is saved.
	errDead := errors.New("refresh token revoked")
	if _, err := db.UpdateToken(ctx, func(Token, bool) (Token, bool, error) {
		return Token{AccessToken: "a2", RefreshToken: "r2"}, true, errDead
	}); err != errDead {
		t.Fatalf("UpdateToken error = %v, want fn's error unwrapped", err)
	}
	if got, _ := db.Token(ctx); got != want {
		t.Fatalf("after a failed fn: Token = %+v", got)
	}

	// save=true stores and returns the new pair, stamped now.
	got, err = db.UpdateToken(ctx, func(cur Token, _ bool) (Token, bool, error) {
		return Token{AccessToken: "a2", RefreshToken: "r2", ExpiresAt: exp.Add(time.Hour)}, true, nil
	})
	want2 := Token{AccessToken: "a2", RefreshToken: "r2", ExpiresAt: exp.Add(time.Hour), UpdatedAt: t0.Add(time.Minute)}
	if err != nil || got != want2 {
		t.Fatalf("UpdateToken = %+v, %v, want %+v", got, err, want2)
	}
	if got, _ := db.Token(ctx); got != want2 {
		t.Fatalf("Token after UpdateToken = %+v, want %+v", got, want2)
	}
}

func TestPendingLifecycle(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "")
	clk := newClock(t0)
	db.Now = clk.Now

	chatA := ChatState{ChatID: "chat-a", LastMsgID: "m9", LastMsgAt: t0.Add(-time.Hour), Total: 12,
		Head: []byte(`[{"id":"m1"}]`), Tail: []byte(`[{"id":"m9"}]`), InputHash: "ha"}
	chatB := ChatState{ChatID: "chat-b", LastMsgID: "x2", LastMsgAt: t0.Add(-2 * time.Hour), Total: 2, InputHash: "hb"}
	p1 := Pending{RequestID: "r1", LeadID: 42, RunID: "run-1", NoteText: "AI summary\n\nhello", FieldText: "hello",
		Model: "gpt-4o-mini", PromptTokens: 100, CompletionTokens: 20, InputHash: "in1", Chats: []ChatState{chatA, chatB}}
	if err := db.AddPending(ctx, p1); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Second)
	p2 := Pending{RequestID: "r2", LeadID: 43, RunID: "run-1", NoteText: "n2", FieldText: "f2", Model: "m"}
	if err := db.AddPending(ctx, p2); err != nil {
		t.Fatal(err)
	}

	// What comes back is what went in, with the defaults filled.
	want1 := p1
	want1.State, want1.CreatedAt = StatePending, t0
	want1.Chats = []ChatState{chatA, chatB}
	for i := range want1.Chats {
		want1.Chats[i].LeadID = 42
	}
	got, err := pendingFor(t, db, 42)
	if err != nil || !reflect.DeepEqual(got, &want1) {
		t.Fatalf("PendingFor(42) = %+v, %v\nwant %+v", got, err, &want1)
	}
	if got, err := pendingFor(t, db, 7); got != nil || err != nil {
		t.Fatalf("PendingFor(7) = %+v, %v, want nil, nil", got, err)
	}
	all, err := db.Pendings(ctx)
	if err != nil || len(all) != 2 || all[0].RequestID != "r1" || all[1].RequestID != "r2" {
		t.Fatalf("Pendings = %+v, %v, want r1 then r2", all, err)
	}

	// One pending summary per lead, and request ids are unique.
	err = db.AddPending(ctx, Pending{RequestID: "r3", LeadID: 42})
	if !errors.Is(err, ErrPendingExists) || !strings.Contains(err.Error(), "request r1") {
		t.Fatalf("second AddPending for lead 42 = %v, want ErrPendingExists naming r1", err)
	}
	if err := db.AddPending(ctx, Pending{RequestID: "r1", LeadID: 44}); err == nil || errors.Is(err, ErrPendingExists) {
		t.Fatalf("AddPending with a used request id = %v", err)
	}
	if err := db.AddPending(ctx, Pending{RequestID: "r5", LeadID: 45, State: "done"}); err == nil {
		t.Fatal("AddPending accepted state \"done\"")
	}
	if err := db.AddPending(ctx, Pending{RequestID: "r6", LeadID: 46, Chats: []ChatState{{LeadID: 1, ChatID: "c"}}}); err == nil {
		t.Fatal("AddPending accepted a chat of another lead")
	}
	if got, _ := pendingFor(t, db, 42); got.RequestID != "r1" {
		t.Fatalf("the failed AddPending replaced r1: %+v", got)
	}

	// The note is not confirmed: Complete must refuse.
	if err := db.Complete(ctx, "run-1", "r1"); err == nil || !strings.Contains(err.Error(), "MarkNoted") {
		t.Fatalf("Complete before MarkNoted = %v", err)
	}
	if err := db.MarkNoted(ctx, "run-1", "nope", 1); !errors.Is(err, ErrNoPending) {
		t.Fatalf("MarkNoted(nope) = %v, want ErrNoPending", err)
	}
	if err := db.MarkNoted(ctx, "run-1", "r1", 777); err != nil {
		t.Fatal(err)
	}
	if got, _ := pendingFor(t, db, 42); got.State != StateNoted || got.NoteID != 777 {
		t.Fatalf("after MarkNoted: %+v", got)
	}

	// Complete is one transaction: make its last-but-one step fail and check
	// that nothing of it stays.
	if _, err := db.db.ExecContext(ctx, `CREATE TRIGGER fail_summary BEFORE INSERT ON summaries BEGIN SELECT RAISE(ABORT, 'injected'); END`); err != nil {
		t.Fatal(err)
	}
	if err := db.Complete(ctx, "run-1", "r1"); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("Complete with a failing summaries insert = %v", err)
	}
	if states, _ := db.ChatStates(ctx, 42); len(states) != 0 {
		t.Fatalf("a failed Complete left chat states: %+v", states)
	}
	if got, _ := pendingFor(t, db, 42); got == nil {
		t.Fatal("a failed Complete deleted the pending row")
	}
	if _, err := db.db.ExecContext(ctx, `DROP TRIGGER fail_summary`); err != nil {
		t.Fatal(err)
	}

	clk.Add(time.Second)
	if err := db.Complete(ctx, "run-1", "r1"); err != nil {
		t.Fatal(err)
	}
	states, err := db.ChatStates(ctx, 42)
	wantA, wantB := chatA, chatB
	wantA.LeadID, wantB.LeadID = 42, 42
	wantA.UpdatedAt, wantB.UpdatedAt = t0.Add(2*time.Second), t0.Add(2*time.Second)
	if err != nil || !reflect.DeepEqual(states, []ChatState{wantA, wantB}) {
		t.Fatalf("ChatStates(42) = %+v, %v\nwant %+v", states, err, []ChatState{wantA, wantB})
	}
	sums, err := db.Summaries(ctx, 42, 0)
	wantSum := Summary{ID: sums[0].ID, LeadID: 42, CreatedAt: t0, RunID: "run-1", Model: "gpt-4o-mini", Text: p1.NoteText,
		InputHash: "in1", PromptTokens: 100, CompletionTokens: 20, NoteID: 777}
	if err != nil || len(sums) != 1 || sums[0] != wantSum {
		t.Fatalf("Summaries(42) = %+v, %v\nwant %+v", sums, err, wantSum)
	}
	if got, _ := pendingFor(t, db, 42); got != nil {
		t.Fatalf("Complete left the pending row: %+v", got)
	}
	if err := db.Complete(ctx, "run-1", "r1"); !errors.Is(err, ErrNoPending) {
		t.Fatalf("second Complete = %v, want ErrNoPending", err)
	}

	// The next summary of the lead moves chat-a on and leaves chat-b alone.
	clk.Add(time.Minute)
	chatA2 := chatA
	chatA2.LastMsgID, chatA2.Total, chatA2.Tail = "m10", 13, []byte(`[{"id":"m10"}]`)
	chatA2.UpdatedAt = t0.Add(-time.Second) // set by the caller: kept
	if err := db.AddPending(ctx, Pending{RequestID: "r4", LeadID: 42, RunID: "run-2", NoteText: "second", Chats: []ChatState{chatA2}, BaseVersion: 1}); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkNoted(ctx, "run-2", "r4", 778); err != nil {
		t.Fatal(err)
	}
	if err := db.Complete(ctx, "run-2", "r4"); err != nil {
		t.Fatal(err)
	}
	states, _ = db.ChatStates(ctx, 42)
	chatA2.LeadID = 42
	if len(states) != 2 || !reflect.DeepEqual(states[0], chatA2) || !reflect.DeepEqual(states[1], wantB) {
		t.Fatalf("ChatStates after the second summary = %+v", states)
	}
	sums, _ = db.Summaries(ctx, 42, 0)
	if len(sums) != 2 || sums[0].Text != "second" || sums[0].NoteID != 778 || sums[1].Text != p1.NoteText {
		t.Fatalf("Summaries(42) = %+v, want newest first", sums)
	}
	if sums, _ := db.Summaries(ctx, 42, 1); len(sums) != 1 || sums[0].Text != "second" {
		t.Fatalf("Summaries(42, 1) = %+v", sums)
	}
	if sums, _ := db.Summaries(ctx, 43, 0); len(sums) != 0 {
		t.Fatalf("Summaries(43) = %+v", sums)
	}

	if err := db.DropPending(ctx, "another-run", "r2"); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("dropping another run's pending summary: %v, want ErrNotOwner", err)
	}
	if err := db.DropPending(ctx, "run-1", "r2"); err != nil {
		t.Fatal(err)
	}
	if err := db.DropPending(ctx, "run-1", "r2"); err != nil {
		t.Fatalf("dropping a dropped pending summary: %v", err)
	}
	if all, _ := db.Pendings(ctx); len(all) != 0 {
		t.Fatalf("Pendings after drop = %+v", all)
	}
}

func TestRuns(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "")
	clk := newClock(t0)
	db.Now = clk.Now
	host, _ := os.Hostname()

	for _, id := range []string{"run-1", "run-2", "run-3"} {
		if err := db.StartRun(ctx, Run{ID: id, Command: "sweep"}); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Minute)
	}
	if err := db.StartRun(ctx, Run{ID: "run-1"}); err == nil {
		t.Fatal("StartRun accepted a used id")
	}
	report, _ := json.Marshal(map[string]int{"summarized": 3})
	if err := db.FinishRun(ctx, "run-2", "ok", 0, report); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishRun(ctx, "run-3", "failed", 3, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishRun(ctx, "nope", "ok", 0, nil); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("FinishRun(nope) = %v", err)
	}
	if err := db.FinishRun(ctx, "run-1", RunRunning, 0, nil); err == nil {
		t.Fatal("FinishRun accepted status running")
	}

	runs, err := db.Runs(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []Run{
		{ID: "run-3", Command: "sweep", Host: host, PID: os.Getpid(), Status: "failed", ExitCode: 3, StartedAt: t0.Add(2 * time.Minute), FinishedAt: t0.Add(3 * time.Minute)},
		{ID: "run-2", Command: "sweep", Host: host, PID: os.Getpid(), Status: "ok", StartedAt: t0.Add(time.Minute), FinishedAt: t0.Add(3 * time.Minute), Report: report},
		{ID: "run-1", Command: "sweep", Host: host, PID: os.Getpid(), Status: RunRunning, StartedAt: t0},
	}
	if !reflect.DeepEqual(runs, want) {
		t.Fatalf("Runs =\n%+v\nwant\n%+v", runs, want)
	}
	if runs, _ := db.Runs(ctx, 2); len(runs) != 2 || runs[0].ID != "run-3" || runs[1].ID != "run-2" {
		t.Fatalf("Runs(2) = %+v", runs)
	}

	add := func(r LeadResult) {
		t.Helper()
		if err := db.AddLeadResult(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	add(LeadResult{RunID: "run-1", LeadID: 1, Messages: 10, PromptTokens: 100, CompletionTokens: 10, DurationMS: 1500, Outcome: OutcomeSummarized})
	clk.Add(time.Second)
	add(LeadResult{RunID: "run-1", LeadID: 2, Outcome: OutcomeFailed, Error: "kommo: 500"})
	clk.Add(time.Second)
	add(LeadResult{RunID: "run-1", LeadID: 3, Outcome: OutcomeUnchanged})
	add(LeadResult{RunID: "run-2", LeadID: 4, Outcome: OutcomeFailed, Error: "llm: 429", At: t0.Add(time.Hour)})
	// Given an older At than run-1's failure: Failures orders by At.
	add(LeadResult{RunID: "run-2", LeadID: 5, Outcome: OutcomeFailed, Error: "old", At: t0})
	if err := db.AddLeadResult(ctx, LeadResult{RunID: "run-1", LeadID: 6, Outcome: "exploded"}); err == nil {
		t.Fatal("AddLeadResult accepted outcome \"exploded\"")
	}

	fails, err := db.Failures(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, f := range fails {
		ids = append(ids, f.LeadID)
	}
	if !reflect.DeepEqual(ids, []int64{4, 2, 5}) {
		t.Fatalf("Failures lead ids = %v, want [4 2 5] (newest first)", ids)
	}
	if fails[1] != (LeadResult{RunID: "run-1", LeadID: 2, Outcome: OutcomeFailed, Error: "kommo: 500", At: t0.Add(3*time.Minute + time.Second)}) {
		t.Fatalf("Failures[1] = %+v", fails[1])
	}
	if fails, _ := db.Failures(ctx, 1); len(fails) != 1 || fails[0].LeadID != 4 {
		t.Fatalf("Failures(1) = %+v", fails)
	}
	res, err := db.LeadResults(ctx, "run-1")
	if err != nil || len(res) != 3 || res[0].LeadID != 1 || res[1].LeadID != 2 || res[2].LeadID != 3 {
		t.Fatalf("LeadResults(run-1) = %+v, %v", res, err)
	}
	if res[0] != (LeadResult{RunID: "run-1", LeadID: 1, Messages: 10, PromptTokens: 100, CompletionTokens: 10, DurationMS: 1500,
		Outcome: OutcomeSummarized, At: t0.Add(3 * time.Minute)}) {
		t.Fatalf("LeadResults(run-1)[0] = %+v", res[0])
	}
}

func TestLockStaleHeartbeat(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	a, b := openTest(t, path), openTest(t, path)
	clk := newClock(t0)
	a.Now, b.Now = clk.Now, clk.Now
	const stale = 2 * time.Minute

	// A holder on another host: its pid means nothing here.
	holder := LockHolder{RunID: "run-a", PID: 999999, Host: "other-host"}
	if err := a.AcquireLock(ctx, holder, stale); err != nil {
		t.Fatal(err)
	}
	clk.Add(5 * time.Second)
	err := b.AcquireLock(ctx, LockHolder{RunID: "run-b"}, stale)
	var le *LockedError
	if !errors.As(err, &le) {
		t.Fatalf("AcquireLock while held = %v, want *LockedError", err)
	}
	want := LockHolder{RunID: "run-a", PID: 999999, Host: "other-host", StartedAt: t0, HeartbeatAt: t0}
	if le.Holder != want {
		t.Fatalf("Holder = %+v, want %+v", le.Holder, want)
	}
	if got := err.Error(); got != "another run holds the lock: run run-a (pid 999999 on host other-host) started 2026-11-21T12:00:00Z, last seen 5s ago" {
		t.Fatalf("Error() = %q", got)
	}

	// A heartbeat keeps it fresh.
	clk.Add(stale - 5*time.Second)
	if err := a.Heartbeat(ctx, "run-a"); err != nil {
		t.Fatal(err)
	}
	clk.Add(stale) // exactly staleAfter: not yet stale
	if err := b.AcquireLock(ctx, LockHolder{RunID: "run-b"}, stale); !errors.As(err, &le) {
		t.Fatalf("AcquireLock at exactly staleAfter = %v, want *LockedError", err)
	}
	if err := b.AcquireLock(ctx, LockHolder{RunID: "run-b"}, 0); !errors.As(err, &le) {
		t.Fatalf("AcquireLock with staleAfter 0 = %v, want *LockedError", err)
	}
	clk.Add(time.Millisecond)
	if err := b.AcquireLock(ctx, LockHolder{RunID: "run-b"}, stale); err != nil {
		t.Fatalf("AcquireLock after staleAfter = %v, want a takeover", err)
	}

	// The old holder learns it lost the lock, and cannot release b's.
	err = a.Heartbeat(ctx, "run-a")
	if !errors.Is(err, ErrLockLost) || !strings.Contains(err.Error(), "run run-b") {
		t.Fatalf("Heartbeat after takeover = %v, want ErrLockLost naming run-b", err)
	}
	if err := a.ReleaseLock(ctx, "run-a"); err != nil {
		t.Fatal(err)
	}
	if err := a.AcquireLock(ctx, LockHolder{RunID: "run-c"}, stale); !errors.As(err, &le) || le.Holder.RunID != "run-b" {
		t.Fatalf("run-a's release freed run-b's lock: %v", err)
	}
	// Acquiring again renews; releasing frees.
	if err := b.AcquireLock(ctx, LockHolder{RunID: "run-b"}, stale); err != nil {
		t.Fatalf("re-acquiring our own lock: %v", err)
	}
	if err := b.ReleaseLock(ctx, "run-b"); err != nil {
		t.Fatal(err)
	}
	if err := b.Heartbeat(ctx, "run-b"); !errors.Is(err, ErrLockLost) {
		t.Fatalf("Heartbeat after release = %v, want ErrLockLost", err)
	}
	if err := a.AcquireLock(ctx, LockHolder{RunID: "run-c"}, stale); err != nil {
		t.Fatalf("AcquireLock after release = %v", err)
	}
}

func TestLockLiveHolderOnThisHost(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "")
	// This process is alive, so only the heartbeat could free its lock.
	if err := db.AcquireLock(ctx, LockHolder{RunID: "run-a"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	err := db.AcquireLock(ctx, LockHolder{RunID: "run-b"}, time.Hour)
	var le *LockedError
	host, _ := os.Hostname()
	if !errors.As(err, &le) || le.Holder.PID != os.Getpid() || le.Holder.Host != host {
		t.Fatalf("AcquireLock = %v, want *LockedError with this pid and host", err)
	}
}

// TestConcurrentWriters checks that writers from two handles (two pools of
// connections, as two processes would have) queue on the lock instead of
// failing with "database is locked".
func TestConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	dbs := []*DB{openTest(t, path), openTest(t, path)}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for w := range 8 {
		wg.Go(func() {
			for i := range 25 {
				errs <- dbs[w%2].AddLeadResult(ctx, LeadResult{RunID: "r", LeadID: int64(w*100 + i), Outcome: OutcomeUnchanged})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	res, err := dbs[0].LeadResults(ctx, "r")
	if err != nil || len(res) != 200 {
		t.Fatalf("LeadResults = %d rows, %v; want 200", len(res), err)
	}
}

// writeLockHeld reports whether another connection holds the write lock of
// the database at path: BEGIN IMMEDIATE without waiting fails with
// SQLITE_BUSY exactly then.
func writeLockHeld(ctx context.Context, path string) (bool, error) {
	raw, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(0)")
	if err != nil {
		return false, err
	}
	defer raw.Close()
	conn, err := raw.Conn(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		if strings.Contains(err.Error(), "SQLITE_BUSY") || strings.Contains(err.Error(), "database is locked") {
			return true, nil
		}
		return false, err
	}
	_, err = conn.ExecContext(ctx, "ROLLBACK")
	return false, err
}

func TestWriteLockHeldProbe(t *testing.T) {
	// The probe itself must be able to say both yes and no.
	ctx := context.Background()
	db := openTest(t, "")
	if held, err := writeLockHeld(ctx, db.path); err != nil || held {
		t.Fatalf("probe on an idle database = %v, %v", held, err)
	}
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if held, err := writeLockHeld(ctx, db.path); err != nil || !held {
		t.Fatalf("probe during a write transaction = %v, %v", held, err)
	}
}
