//go:build unix

package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommotest"
)

// The main job, end to end, at Kommo's real limit: sweep twice (the second
// makes no LLM call and no write), add a message, sweep again (only that
// conversation is summarised, with one history call per chat).
func TestSweepTwiceThenNewMessage(t *testing.T) {
	w := newWorld(t, kommotest.Options{Seed: 1, Leads: 16}, nil)
	w.login()
	// Kommo counts every request in a one-second window; let the login's
	// leave it, so the sweep's own pacing is what the peak measures.
	time.Sleep(1100 * time.Millisecond)
	open := w.srv.OpenLeadsWithChats()
	if len(open) < 5 {
		t.Fatalf("the fake account has only %d open leads with chats", len(open))
	}

	rep, res := w.sweep()
	if res.code != 0 {
		t.Fatalf("first sweep: exit %d\n%s", res.code, tail(res.stderr))
	}
	if rep.Summarized != len(open) || rep.LLMCalls != len(open) || rep.Failed != 0 {
		t.Fatalf("first sweep: summarized %d, llm calls %d, failed %d; want %d, %d, 0", rep.Summarized, rep.LLMCalls, rep.Failed, len(open), len(open))
	}
	if rep.PromptTokens == 0 || rep.CompletionTokens == 0 {
		t.Errorf("first sweep recorded no tokens: %+v", rep)
	}
	assertNotes(t, w.srv, 1)
	fid := w.srv.Options().SummaryFieldID
	for _, l := range open {
		v, ok := w.srv.FieldValue(l.ID, fid)
		if !ok || !strings.Contains(v, "FAKE LLM") {
			t.Errorf("lead %d: field %d = %q, want the summary", l.ID, fid, v)
		}
		n := w.srv.Notes(l.ID)[0]
		if !strings.HasPrefix(n.Text, "AI summary (") || n.NoteType != "common" {
			t.Errorf("lead %d: note %q (%s) is not an AI summary note", l.ID, n.Text, n.NoteType)
		}
	}
	if st := w.srv.Stats(); st.REST429 != 0 || st.Chats429 != 0 || st.PeakRESTPerSecond > 7 || st.PeakChatsPerSecond > 7 {
		t.Errorf("pacing: %d REST 429s, %d Chats 429s, peaks %d and %d per second; want 0, 0, <= 7, <= 7",
			st.REST429, st.Chats429, st.PeakRESTPerSecond, st.PeakChatsPerSecond)
	}

	w.srv.ResetStats()
	rep, res = w.sweep()
	if res.code != 0 {
		t.Fatalf("second sweep: exit %d\n%s", res.code, tail(res.stderr))
	}
	st := w.srv.Stats()
	if rep.LLMCalls != 0 || rep.Summarized != 0 || rep.SkippedUnchanged != len(open) || st.LLMCalls != 0 || st.NotesPosts != 0 || st.LeadPatches != 0 {
		t.Fatalf("second sweep: %d LLM calls (fake saw %d), %d summarized, %d unchanged, %d note posts, %d patches; want 0, 0, 0, %d, 0, 0",
			rep.LLMCalls, st.LLMCalls, rep.Summarized, rep.SkippedUnchanged, st.NotesPosts, st.LeadPatches, len(open))
	}
	chats := 0
	for _, l := range open {
		chats += len(l.ChatIDs)
	}
	if st.HistoryCalls != chats {
		t.Errorf("an unchanged sweep made %d history calls for %d chats, want one each", st.HistoryCalls, chats)
	}

	target := open[len(open)/2]
	w.srv.AddMessage(target.ChatIDs[0], "We approved the budget, please send the contract today", true)
	w.srv.ResetStats()
	rep, res = w.sweep()
	if res.code != 0 {
		t.Fatalf("third sweep: exit %d\n%s", res.code, tail(res.stderr))
	}
	if rep.Summarized != 1 || rep.LLMCalls != 1 || rep.SkippedUnchanged != len(open)-1 {
		t.Fatalf("third sweep: summarized %d, llm calls %d, unchanged %d; want 1, 1, %d", rep.Summarized, rep.LLMCalls, rep.SkippedUnchanged, len(open)-1)
	}
	if st := w.srv.Stats(); st.HistoryCalls != chats {
		t.Errorf("after one new message the sweep made %d history calls for %d chats, want one each", st.HistoryCalls, chats)
	}
	for _, l := range open {
		want := 1
		if l.ID == target.ID {
			want = 2
		}
		if got := len(w.srv.Notes(l.ID)); got != want {
			t.Errorf("lead %d has %d notes, want %d", l.ID, got, want)
		}
	}
	last := w.srv.Notes(target.ID)[1]
	if v, _ := w.srv.FieldValue(target.ID, fid); !strings.Contains(last.Text, strings.TrimSpace(v[:min(len(v), 40)])) {
		t.Errorf("the field %q does not hold the latest summary %q", v, last.Text)
	}
}

func TestSummarizeOneLead(t *testing.T) {
	w := newWorld(t, fastFakes, fast)
	w.login()
	lead := w.srv.OpenLeadsWithChats()[0]
	id := itoa(lead.ID)

	res := w.run("summarize", "--lead", id, "--dry-run")
	if res.code != 0 || !strings.Contains(res.stdout, "FAKE LLM") {
		t.Fatalf("dry run: exit %d, stdout %q\n%s", res.code, res.stdout, tail(res.stderr))
	}
	if n := len(w.srv.AllNotes()); n != 0 {
		t.Fatalf("a dry run wrote %d notes", n)
	}
	if res := w.run("status"); !strings.Contains(res.stdout, "No runs recorded") {
		t.Errorf("a dry run was recorded in the store:\n%s", res.stdout)
	}

	res = w.run("summarize", "--lead", id)
	if res.code != 0 || len(w.srv.Notes(lead.ID)) != 1 {
		t.Fatalf("summarize: exit %d, %d notes\n%s", res.code, len(w.srv.Notes(lead.ID)), tail(res.stderr))
	}
	// The text report always has a "summarized" row: read its count, and
	// the lead's summary block under it.
	if !regexp.MustCompile(`(?m)^  summarized +1$`).MatchString(res.stdout) ||
		!strings.Contains(res.stdout, "\nLead "+id+" (summarized):\n") {
		t.Errorf("the report does not say that lead %s was summarized:\n%s", id, res.stdout)
	}
	res = w.run("summarize", "--lead", id)
	if res.code != 0 || len(w.srv.Notes(lead.ID)) != 1 {
		t.Fatalf("unchanged summarize: exit %d, %d notes, want 0 and 1", res.code, len(w.srv.Notes(lead.ID)))
	}
	res = w.run("summarize", "--lead", id, "--force")
	if res.code != 0 || len(w.srv.Notes(lead.ID)) != 2 {
		t.Fatalf("forced summarize: exit %d, %d notes, want 0 and 2", res.code, len(w.srv.Notes(lead.ID)))
	}
	if others := len(w.srv.AllNotes()) - 2; others != 0 {
		t.Errorf("summarize --lead wrote %d notes on other leads", others)
	}
}

// Every bad input: one clear line naming the thing to fix, the right exit
// code, nothing written in Kommo.
func TestBadInputs(t *testing.T) {
	notJSON := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html><body>502 Bad Gateway</body></html>"))
	}))
	defer notJSON.Close()

	cases := []struct {
		name     string
		edit     func(cfg map[string]map[string]any)
		setup    func(w *world)
		args     []string
		rawYAML  string
		wantCode int
		wantText string
	}{
		{name: "missing key", edit: func(c map[string]map[string]any) { delete(c["kommo"], "base_url") },
			args: []string{"sweep"}, wantCode: 2, wantText: "kommo.base_url"},
		{name: "bad YAML", rawYAML: "kommo:\n  base_url: [unclosed\n", args: []string{"sweep"}, wantCode: 2, wantText: "config.yaml"},
		{name: "wrong channel secret", edit: func(c map[string]map[string]any) {
			c["chats"]["channel_secret"] = "0000000000000000000000000000000000000000"
		},
			args: []string{"sweep"}, wantCode: 4, wantText: "chats.channel_secret"},
		{name: "revoked refresh token", setup: func(w *world) { w.srv.RevokeRefreshTokens(); w.srv.ExpireAccessTokens() },
			args: []string{"sweep"}, wantCode: 4, wantText: "auth login"},
		{name: "LLM 401", edit: func(c map[string]map[string]any) { c["llm"]["api_key"] = "sk-wrong" },
			args: []string{"sweep"}, wantCode: 4, wantText: "llm.api_key"},
		{name: "unknown lead", args: []string{"summarize", "--lead", "999"}, wantCode: 3, wantText: "999"},
		{name: "Kommo answer not JSON", setup: func(w *world) { w.cfg["kommo"]["base_url"] = notJSON.URL; w.writeConfig() },
			args: []string{"sweep"}, wantCode: 1, wantText: "not JSON"},
		{name: "bad flag", args: []string{"sweep", "--limit", "many"}, wantCode: 2, wantText: "--limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			edit := func(c map[string]map[string]any) {
				fast(c)
				if tc.edit != nil {
					tc.edit(c)
				}
			}
			w := newWorld(t, fastFakes, edit)
			if tc.wantCode != 2 || tc.name == "bad flag" {
				w.login()
			}
			if tc.rawYAML != "" {
				if err := os.WriteFile(w.cfgPath, []byte(tc.rawYAML), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if tc.setup != nil {
				tc.setup(w)
			}
			res := w.run(tc.args...)
			if res.code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstderr:\n%s", res.code, tc.wantCode, tail(res.stderr))
			}
			line := errorLine(t, res.stderr)
			if !strings.Contains(line, tc.wantText) {
				t.Errorf("error line %q does not name %q", line, tc.wantText)
			}
			if n := len(w.srv.AllNotes()); n != 0 {
				t.Errorf("%d notes were written", n)
			}
			for _, l := range w.srv.Leads() {
				if _, ok := w.srv.FieldValue(l.ID, w.srv.Options().SummaryFieldID); ok {
					t.Errorf("lead %d's field was written", l.ID)
				}
			}
		})
	}
}

// One lead with bad data among good ones: recorded, reported, exit 3, the
// rest done; `status` shows the failure.
func TestOneBadLeadAmongGood(t *testing.T) {
	opts := fastFakes
	w0 := newWorld(t, opts, fast)
	bad := w0.srv.OpenLeadsWithChats()[1]
	opts.BadChats = map[string]int{bad.ChatIDs[0]: http.StatusBadRequest}
	w := newWorld(t, opts, fast)
	w.login()
	rep, res := w.sweep()
	if res.code != 3 {
		t.Fatalf("exit %d, want 3\n%s", res.code, tail(res.stderr))
	}
	open := w.srv.OpenLeadsWithChats()
	if rep.Failed != 1 || rep.Summarized != len(open)-1 || len(rep.Failures) != 1 || rep.Failures[0].LeadID != bad.ID {
		t.Fatalf("failed %d (%+v), summarized %d; want 1 (lead %d) and %d", rep.Failed, rep.Failures, rep.Summarized, bad.ID, len(open)-1)
	}
	if n := len(w.srv.Notes(bad.ID)); n != 0 {
		t.Errorf("the bad lead got %d notes", n)
	}
	st := w.run("status")
	if !strings.Contains(st.stdout, itoa(bad.ID)) || !strings.Contains(st.stdout, "partial") {
		t.Errorf("status does not show the partial run and the failed lead:\n%s", st.stdout)
	}
}

func TestRunLock(t *testing.T) {
	opts := fastFakes
	opts.LLMLatency = 400 * time.Millisecond
	w := newWorld(t, opts, fast)
	w.login()

	first := w.command("sweep", "--json")
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first sweep's LLM calls", 20*time.Second, func() bool { return w.srv.Stats().LLMCalls > 0 })
	res := w.run("sweep")
	if res.code != 11 {
		t.Fatalf("second sweep: exit %d, want 11\n%s", res.code, tail(res.stderr))
	}
	if line := errorLine(t, res.stderr); !strings.Contains(line, "pid") || !strings.Contains(line, itoa(int64(first.Process.Pid))) {
		t.Errorf("the lock message does not name the running sweep (pid %d): %q", first.Process.Pid, line)
	}

	// A lock left by a dead process is taken over.
	_ = first.Process.Signal(syscall.SIGKILL)
	_ = first.Wait()
	w.srv.ResetStats()
	rep, res := w.sweep()
	if res.code != 0 {
		t.Fatalf("sweep after a killed one: exit %d\n%s", res.code, tail(res.stderr))
	}
	if rep.Failed != 0 {
		t.Errorf("failed %d", rep.Failed)
	}
	assertNotes(t, w.srv, 1)
}

func TestSIGTERMFinishesWritesAndRecordsTheRun(t *testing.T) {
	opts := fastFakes
	opts.LLMLatency = 300 * time.Millisecond
	w := newWorld(t, opts, func(c map[string]map[string]any) {
		fast(c)
		c["kommo"]["batch_size"] = 2
		c["llm"]["concurrency"] = 1
	})
	w.login()
	cmd := w.command("sweep", "--json")
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a first note batch", 30*time.Second, func() bool { return w.srv.Stats().NotesPosts > 0 })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("exit %d (%v), want 130", code, err)
	}
	if !strings.Contains(out.String(), `"interrupted": true`) {
		t.Errorf("the report does not say interrupted:\n%s", out.String())
	}
	st := w.run("status")
	if !strings.Contains(st.stdout, "interrupted") {
		t.Errorf("status does not show the interrupted run:\n%s", st.stdout)
	}
	for _, l := range w.srv.OpenLeadsWithChats() {
		if n := len(w.srv.Notes(l.ID)); n > 1 {
			t.Errorf("lead %d has %d notes", l.ID, n)
		}
	}
	// The next run finishes the job: exactly one note per lead.
	if _, res := w.sweep(); res.code != 0 {
		t.Fatalf("next sweep: exit %d\n%s", res.code, tail(res.stderr))
	}
	assertNotes(t, w.srv, 1)
}

// SIGKILL before, during and after the note POST; the next run leaves
// exactly one note per changed conversation, by the fake Kommo's record.
func TestKillAtEveryWritePoint(t *testing.T) {
	points := []string{"before notes", "during notes", "after notes", "before field"}
	for _, point := range points {
		t.Run(point, func(t *testing.T) {
			opts := fastFakes
			var victim *os.Process
			started := make(chan struct{})
			exited := make(chan struct{})
			var once sync.Once
			// kill stops the sweep with SIGKILL and returns once it is dead, so a
			// hook inside the fake answers only to a dead client.
			kill := func() {
				once.Do(func() {
					<-started
					_ = victim.Signal(syscall.SIGKILL)
					<-exited
				})
			}
			switch point {
			case "before notes":
				opts.LLMLatency = 200 * time.Millisecond
			case "during notes":
				opts.BeforeNotes = kill
			case "after notes":
				opts.AfterNotes = kill
			case "before field":
				opts.BeforeLeadsPatch = kill
			}
			w := newWorld(t, opts, fast)
			w.login()
			cmd := w.command("sweep")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			victim = cmd.Process
			close(started)
			go func() { _ = cmd.Wait(); close(exited) }()
			if point == "before notes" {
				// Summaries are made and stored as pending; no note is posted yet.
				waitFor(t, "LLM calls", 20*time.Second, func() bool { return w.srv.Stats().LLMCalls >= 6 })
				kill()
				if n := w.srv.Stats().NotesPosts; n != 0 {
					t.Fatalf("the sweep posted %d note batches before the kill", n)
				}
			}
			select {
			case <-exited:
			case <-time.After(60 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatal("the kill point was never reached")
			}
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("the sweep was not killed by SIGKILL: %v", cmd.ProcessState)
			}
			rep, res := w.sweep()
			if res.code != 0 {
				t.Fatalf("the run after the kill: exit %d\n%s", res.code, tail(res.stderr))
			}
			if point != "before notes" && rep.Recovered == 0 {
				t.Errorf("the run after the kill settled nothing from the killed run: %+v", rep)
			}
			assertNotes(t, w.srv, 1)
			fid := w.srv.Options().SummaryFieldID
			for _, l := range w.srv.OpenLeadsWithChats() {
				if _, ok := w.srv.FieldValue(l.ID, fid); !ok {
					t.Errorf("lead %d's field was never written", l.ID)
				}
			}
		})
	}
}

// 10% of REST and Chats API calls fail with 5xx (some notes land but their
// answer is lost), and the LLM answers 429 first: after at most one rerun
// every lead is summarised, once.
func TestFaultsSettleWithinOneRerun(t *testing.T) {
	opts := fastFakes
	opts.Leads = 24
	opts.FailRate = 0.10
	opts.NotesFailAfterActRate = 0.3
	opts.LLM429First = 3
	w := newWorld(t, opts, func(c map[string]map[string]any) {
		fast(c)
		c["kommo"]["batch_size"] = 5
	})
	w.login()
	rep, res := w.sweep()
	if res.code != 0 && res.code != 3 {
		t.Fatalf("first sweep: exit %d\n%s", res.code, tail(res.stderr))
	}
	if w.srv.Stats().Injected5xx == 0 || w.srv.Stats().LLM429 != 3 {
		t.Fatalf("no faults were injected: %+v", w.srv.Stats())
	}
	if res.code == 3 {
		rep, res = w.sweep()
		if res.code != 0 {
			t.Fatalf("rerun: exit %d, failures %+v\n%s", res.code, rep.Failures, tail(res.stderr))
		}
	}
	assertNotes(t, w.srv, 1)
}

func TestDemo(t *testing.T) {
	cmd := exec_(binPath, "demo", "--leads", "6")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	s := string(out)
	for _, want := range []string{"What landed on the deal cards", "FAKE LLM", "A second sweep", "llm calls"} {
		if !strings.Contains(strings.ToLower(s), strings.ToLower(want)) {
			t.Errorf("demo output lacks %q:\n%s", want, s)
		}
	}
}

// Partial runs: --lead-ids does exactly those leads (an unknown id is a
// failure that names it), --limit stops after N leads.
func TestPartialRuns(t *testing.T) {
	w := newWorld(t, fastFakes, fast)
	w.login()
	open := w.srv.OpenLeadsWithChats()
	a, b := open[0].ID, open[1].ID
	rep, res := w.sweep("--lead-ids", itoa(a)+","+itoa(b)+",999")
	if res.code != 3 || rep.Summarized != 2 || rep.Failed != 1 || rep.Failures[0].LeadID != 999 {
		t.Fatalf("--lead-ids: exit %d, summarized %d, failures %+v; want 3, 2, lead 999", res.code, rep.Summarized, rep.Failures)
	}
	if n := len(w.srv.AllNotes()); n != 2 {
		t.Errorf("--lead-ids wrote %d notes, want 2", n)
	}
	rep, res = w.sweep("--limit", "3")
	done := rep.Summarized + rep.SkippedUnchanged + rep.SkippedNoChats + rep.Failed
	if res.code != 0 || done != 3 {
		t.Fatalf("--limit 3: exit %d, %d leads done (%+v)", res.code, done, rep)
	}
}

// A sweep paused longer than the lock's stale time (Ctrl-Z, a suspended VM)
// is taken for dead: the next sweep takes its lock and its pending
// summaries over, and the paused one, resumed, writes nothing more. Every
// lead ends with exactly one note.
func TestPausedSweepStopsWritingAfterTakeover(t *testing.T) {
	opts := kommotest.Options{Seed: 7, Leads: 40, RESTRateLimit: 50, ChatsRateLimit: 50, LLMLatency: 150 * time.Millisecond}
	w := newWorld(t, opts, func(cfg map[string]map[string]any) {
		fast(cfg)
		cfg["sweep"] = map[string]any{"lock_stale_after": "2s"}
	})
	w.login()

	a := w.command("sweep", "--json")
	var aErr bytes.Buffer
	a.Stderr = &aErr
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first sweep's LLM calls", 20*time.Second, func() bool { return w.srv.Stats().LLMCalls >= 6 })
	if err := a.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)

	rep, res := w.sweep()
	if res.code != 0 {
		t.Fatalf("the sweep that took over: exit %d\n%s", res.code, tail(res.stderr))
	}
	notesAfterB := len(w.srv.AllNotes())
	if err := a.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	err := a.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if code != 11 {
		t.Errorf("the resumed sweep: exit %d, want 11 (its run was taken over)\n%s", code, tail(aErr.String()))
	}
	if got := len(w.srv.AllNotes()); got != notesAfterB {
		t.Errorf("the resumed sweep posted %d notes after it was taken over", got-notesAfterB)
	}
	assertNotes(t, w.srv, 1)
	if rep.Recovered+rep.Summarized == 0 {
		t.Errorf("the second sweep neither recovered nor summarised anything: %+v", rep)
	}
	st := w.run("status")
	if !strings.Contains(st.stdout, "killed") {
		t.Errorf("status does not show the paused run as killed:\n%s", st.stdout)
	}
}
