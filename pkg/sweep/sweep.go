// Package sweep is the summary engine that `sweep`, `summarize` and `serve`
// share: take leads from a producer (Producer: the account's open stages, a
// list of ids, the chat-close queue, or Changes, the Events API's change feed
// with its full pass), find their conversations in every source, fetch
// what is new, summarise, write the summary back to Kommo exactly once, and
// record the outcome.
//
// The stages run concurrently and talk through bounded channels, so a run
// of any size holds only a few leads in memory:
//
//	leads -> fetch chats and history (FetchWorkers) -> LLM (LLMWorkers) -> batched write-back
//
// Exactly once: a summary is stored as pending, with a request id, before its
// note is posted; the watermark moves only when Kommo confirmed the note and
// the field. A run that died mid-write is settled by the next run, which
// looks for the note among the lead's latest notes before posting it again.
// Several processes may run at once (serve and a cron sweep): a lead's
// summary is made from a version of the lead and stored only if no other
// summary completed since, and a run settles only the pending summaries of
// runs that are dead. A run that finds itself taken for dead (its heartbeat
// failed or came too late) stops writing at once.
package sweep

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/amojo"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/digest"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommo"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/llm"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/summarize"
)

// Kommo is what a sweep needs from the REST API.
type Kommo interface {
	Leads(ctx context.Context, q kommo.LeadsQuery) iter.Seq2[*kommo.Lead, error]
	Lead(ctx context.Context, id int64, with ...string) (*kommo.Lead, error)
	ContactChats(ctx context.Context, contactID int64) ([]kommo.ContactChat, error)
	AddLeadNotes(ctx context.Context, notes []kommo.NewNote) ([]kommo.Note, error)
	LeadNotes(ctx context.Context, leadID int64, q kommo.NotesQuery) ([]kommo.Note, error)
	UpdateLeads(ctx context.Context, leads []kommo.LeadUpdate) error
	Events(ctx context.Context, q kommo.EventsQuery) iter.Seq2[*kommo.Event, error]
	Pipelines(ctx context.Context) ([]kommo.Pipeline, error)
}

// LLM writes the summaries: structured (CompleteStructured), or plain text when
// the structured answer failed twice.
type LLM = digest.LLM

// Options wires an engine. Zero values take the defaults in withDefaults.
type Options struct {
	Kommo   Kommo
	Sources []Source // where conversations come from, in order of preference
	LLM     LLM
	DB      *store.DB

	Prompt        summarize.Options
	Head, Tail    int    // first and last messages of a chat that the prompt shows (5, 40)
	NoteType      string // common, service_message or extended_service_message
	NoteService   string // params.service of the service note types
	FieldID       int64  // the lead's textarea field for the latest summary; 0 = notes only
	FieldMaxChars int

	BatchSize    int           // notes or lead updates per request (50)
	BatchMaxWait time.Duration // a batch is written at the latest this long after its first summary (10 s)
	FetchWorkers int           // leads whose chats are fetched at once (4)
	LLMWorkers   int           // LLM calls at once (4)

	PriceInputPer1M, PriceOutputPer1M float64 // USD per million tokens, for the cost estimate

	// Redact hides phones, e-mails, card numbers and IBANs from the LLM.
	Redact bool
	// RebuildEvery: after this many rolling updates a lead's summary is
	// built afresh (5).
	RebuildEvery int
	// KeepHumanField leaves the summary field alone when a person edited it
	// since we last wrote it (the note is still posted).
	KeepHumanField bool
	// MaxUSDPerRun and MaxUSDPerDay cap the LLM's cost (0 = no cap); a call
	// whose estimate would pass a cap is not made, and the rest of the
	// leads are skipped.
	MaxUSDPerRun, MaxUSDPerDay float64
	// MaxOutputTokens is llm.max_tokens, for the pre-call estimate.
	MaxOutputTokens int

	// LockStaleAfter: a run whose heartbeat is older than this is taken for
	// dead, its lock and pending summaries taken over (2 min). A run whose
	// own heartbeat is half as old stops writing.
	LockStaleAfter time.Duration
	// FullEvery: the Changes producer walks every active lead when this long
	// has passed since the last full pass (24 h).
	FullEvery time.Duration
	// EventsMargin: the Changes producer reads the events from this long
	// before the last completed sweep's start, for clock skew and events
	// Kommo records late (5 min).
	EventsMargin time.Duration
	// ExitCode maps Run's error to the process exit code recorded with the run.
	ExitCode func(error) int
	// OnLead is told of every lead's outcome as it happens (progress).
	OnLead func(LeadOutcome)

	Now    func() time.Time
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Head <= 0 {
		o.Head = 5
	}
	if o.Tail <= 0 {
		o.Tail = 40
	}
	if o.NoteType == "" {
		o.NoteType = "common"
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 50
	}
	if o.BatchMaxWait <= 0 {
		o.BatchMaxWait = 10 * time.Second
	}
	if o.FetchWorkers <= 0 {
		o.FetchWorkers = 4
	}
	if o.LLMWorkers <= 0 {
		o.LLMWorkers = 4
	}
	if o.LockStaleAfter <= 0 {
		o.LockStaleAfter = 2 * time.Minute
	}
	if o.FullEvery <= 0 {
		o.FullEvery = 24 * time.Hour
	}
	if o.EventsMargin <= 0 {
		o.EventsMargin = 5 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RebuildEvery <= 0 {
		o.RebuildEvery = 5
	}
	if o.ExitCode == nil {
		o.ExitCode = func(err error) int {
			if err != nil {
				return 1
			}
			return 0
		}
	}
	return o
}

// Request says which leads a run covers and how.
type Request struct {
	// Command is recorded with the run: "sweep", "summarize", "close".
	Command string
	// RunID names the run; when set, the engine's Logger already carries it
	// as run_id (the CLI sets it before it builds the API clients, so their
	// lines carry it too). Empty: Run makes one and logs it.
	RunID string
	// Lock takes the run lock: one cron sweep at a time. Other runs rely on
	// the per-lead exclusion alone.
	Lock bool

	LeadIDs []int64 // only these leads, whatever their status
	Limit   int     // at most this many leads are processed (0 = all)
	Force   bool    // summarise even when nothing changed, reading every chat afresh
	DryRun  bool    // write nothing, in Kommo or the store; summaries land in the report
	Single  bool    // fetch each of LeadIDs by id (summarize, the close queue); keep the summary in the report

	// Producer gives the run's leads; nil means ByID(LeadIDs) with Single,
	// LeadIDs(LeadIDs) with ids, and Listing() without. `sweep` uses
	// Changes.
	Producer Producer
}

// Outcomes of one lead, as the store records them.
const (
	OutcomeSummarized = store.OutcomeSummarized
	OutcomeRecovered  = store.OutcomeRecovered
	OutcomeUnchanged  = store.OutcomeUnchanged
	OutcomeNoChats    = store.OutcomeNoChats
	OutcomeNoText     = store.OutcomeNoText
	OutcomeBusy       = store.OutcomeBusy
	OutcomeFailed     = store.OutcomeFailed
	OutcomeDryRun     = store.OutcomeDryRun
	OutcomeBudget     = store.OutcomeBudget
)

// LeadOutcome is what happened to one lead.
type LeadOutcome struct {
	LeadID     int64  `json:"lead_id"`
	Outcome    string `json:"outcome"`
	Messages   int    `json:"messages"`
	Summary    string `json:"summary,omitempty"`
	NoteID     int64  `json:"note_id,omitempty"`
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

// Step is one timed piece of work, for the report's slowest step.
type Step struct {
	Name   string `json:"name"`
	LeadID int64  `json:"lead_id,omitempty"`
	MS     int64  `json:"ms"`
}

// Report is the run report printed on stdout.
type Report struct {
	RunID                string    `json:"run_id"`
	Command              string    `json:"command"`
	StartedAt            time.Time `json:"started_at"`
	DryRun               bool      `json:"dry_run,omitempty"`
	LeadsScanned         int       `json:"leads_scanned"`
	ConversationsChecked int       `json:"conversations_checked"`
	Summarized           int       `json:"summarized"`
	SkippedUnchanged     int       `json:"skipped_unchanged"`
	SkippedNoChats       int       `json:"skipped_no_chats"`
	SkippedNoText        int       `json:"skipped_no_text"`
	SkippedBusy          int       `json:"skipped_busy"`
	// SkippedBudget counts the leads left for the next run because the
	// LLM budget ran out; BudgetWarning says which cap.
	SkippedBudget int    `json:"skipped_budget"`
	BudgetWarning string `json:"budget_warning,omitempty"`
	// FieldKeptHuman lists the leads whose summary field a person had
	// edited: the note was posted, the field left alone.
	FieldKeptHuman []int64 `json:"field_kept_human,omitempty"`
	// RollingUpdates counts summaries made from the previous summary and
	// the new messages; SchemaRetries the answers that failed validation
	// once; PlainFallbacks those that failed twice (a plain-text note);
	// UnverifiedFacts the facts whose cited message was not in the prompt.
	RollingUpdates  int `json:"rolling_updates"`
	SchemaRetries   int `json:"schema_retries"`
	PlainFallbacks  int `json:"plain_text_fallbacks"`
	UnverifiedFacts int `json:"unverified_facts"`
	// Redacted counts the values hidden from the LLM, per kind.
	Redacted map[string]int `json:"redacted,omitempty"`
	// PlannedCostUSD sums the pre-call estimates (the prompt's tokens and
	// llm.max_tokens of answer): an upper bound of what the calls cost.
	PlannedCostUSD float64 `json:"planned_cost_usd"`
	// Unreadable counts the leads that have contacts but no conversation
	// any source can read: WhatsApp, Telegram or Instagram chats of other
	// integrations, which need the message log (webhooks install, serve).
	Unreadable int `json:"unreadable_leads"`
	// Mode is how the Changes producer chose the leads: "changes" (the
	// leads the Events API named) or "full" (every active lead).
	Mode string `json:"mode,omitempty"`
	// EventsRead is how many events a "changes" sweep read; LeadsGone how
	// many leads they named that Kommo no longer has (deleted or merged).
	EventsRead int `json:"events_read,omitempty"`
	LeadsGone  int `json:"leads_gone,omitempty"`
	// FeedError says why the change feed stays where it was (a page of
	// events failed): the next sweep reads the same window again.
	FeedError        string           `json:"feed_error,omitempty"`
	Failed           int              `json:"failed"`
	Recovered        int              `json:"recovered"`
	LLMCalls         int              `json:"llm_calls"`
	PromptTokens     int64            `json:"prompt_tokens"`
	CompletionTokens int64            `json:"completion_tokens"`
	EstimatedCostUSD float64          `json:"estimated_cost_usd"`
	DurationMS       int64            `json:"duration_ms"`
	PeakRSSMiB       float64          `json:"peak_rss_mib,omitempty"` // filled in by the command
	SlowestStep      *Step            `json:"slowest_step,omitempty"`
	StepTotalsMS     map[string]int64 `json:"step_totals_ms"`
	Interrupted      bool             `json:"interrupted,omitempty"`
	Error            string           `json:"error,omitempty"`
	Failures         []LeadOutcome    `json:"failures,omitempty"`
	Leads            []LeadOutcome    `json:"leads,omitempty"`
}

// FailedLeadsError says that the run finished but some leads failed.
type FailedLeadsError struct {
	Failed, Total int
	First         LeadOutcome // the first failure, named in the message
}

func (e *FailedLeadsError) Error() string {
	return fmt.Sprintf("%d of %d leads failed (lead %d: %s): see the report's failures or `kommo-summarizer status`",
		e.Failed, e.Total, e.First.LeadID, e.First.Error)
}

// ErrInterrupted is returned when a signal stopped the run; in-flight writes
// were finished and the run was recorded.
var ErrInterrupted = errors.New("interrupted: in-flight writes finished, the rest is left for the next run")

// Fatal reports whether err stops the whole run rather than one lead: dead
// credentials, a blocked IP, a store that cannot be written.
func Fatal(err error) bool {
	var ae *kommo.AuthError
	var ib *kommo.IPBlockedError
	var se *storeError
	return errors.As(err, &ae) || errors.As(err, &ib) || errors.Is(err, amojo.ErrSignature) || errors.Is(err, amojo.ErrNotConnected) || llm.IsAuth(err) || errors.As(err, &se) ||
		errors.Is(err, store.ErrLockLost) || errors.Is(err, store.ErrNotOwner)
}

type storeError struct{ err error }

// Error starts with "store: " once: pkg/store's errors already do, and a full
// disk read "store: store: commit to ...".
func (e *storeError) Error() string {
	msg := e.err.Error()
	if strings.HasPrefix(msg, "store: ") {
		return msg
	}
	return "store: " + msg
}
func (e *storeError) Unwrap() error { return e.err }

func storeErr(err error) error {
	if err == nil {
		return nil
	}
	return &storeError{err}
}

// Engine runs the summary pipeline. It is built once and may run many
// times, one after another or at once (serve's close queue beside a cron
// sweep in another process).
type Engine struct{ o Options }

// New returns an engine; zero Options fields take their defaults.
func New(o Options) *Engine { return &Engine{o: o.withDefaults()} }

// Run runs once with o; see Engine.Run.
func Run(ctx context.Context, o Options, req Request) (*Report, error) {
	return New(o).Run(ctx, req)
}

// Run runs the leads req names and records the run in the store. It returns
// the report and nil, a *FailedLeadsError, ErrInterrupted, or the error that
// stopped it.
func (e *Engine) Run(ctx context.Context, req Request) (*Report, error) {
	o := e.o
	if req.Command == "" {
		req.Command = "sweep"
	}
	r := &run{o: o, req: req, id: req.RunID, log: o.Logger}
	if r.id == "" {
		r.id = NewRunID(o.Now())
		r.log = o.Logger.With("run_id", r.id)
	}
	r.report = &Report{RunID: r.id, Command: req.Command, StartedAt: o.Now().UTC(), DryRun: req.DryRun, StepTotalsMS: map[string]int64{}}
	start := time.Now()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if !req.DryRun {
		host, _ := os.Hostname()
		h := store.LockHolder{RunID: r.id, PID: os.Getpid(), Host: host, StartedAt: o.Now()}
		if req.Lock {
			if err := o.DB.AcquireLock(ctx, h, o.LockStaleAfter); err != nil {
				return r.report, err
			}
			defer func() {
				if err := o.DB.ReleaseLock(context.WithoutCancel(ctx), r.id); err != nil {
					r.log.Warn("could not release the run lock", "err", err)
				}
			}()
		}
		if err := o.DB.StartRun(ctx, store.Run{ID: r.id, Command: req.Command, Host: h.Host, PID: h.PID, StartedAt: h.StartedAt}); err != nil {
			return r.report, storeErr(err)
		}
		r.fence = newFence(o.LockStaleAfter)
		stop := r.heartbeat(ctx, cancel)
		defer stop()
	}

	r.log.Info("run started", "command", req.Command, "dry_run", req.DryRun, "force", req.Force, "lead_ids", len(req.LeadIDs), "limit", req.Limit)
	err := r.execute(ctx)
	if lost := r.fence.lost(); lost != nil {
		err = lost
	}
	rep := r.finish(time.Since(start), err)
	if err == nil && rep.Failed > 0 {
		err = &FailedLeadsError{Failed: rep.Failed, Total: rep.Failed + rep.Summarized + rep.SkippedUnchanged + rep.SkippedNoChats + rep.SkippedNoText + rep.SkippedBusy + rep.SkippedBudget, First: rep.Failures[0]}
	}
	r.producer().settle(context.WithoutCancel(ctx), r, err)
	if err != nil {
		rep.Error = err.Error()
	}
	if rep.Unreadable > 0 {
		r.log.Warn("leads have contacts but no chat that any source can read: their WhatsApp, Telegram or Instagram chats belong to other integrations; run `kommo-summarizer webhooks install` and keep `kommo-summarizer serve` running to log them",
			"leads", rep.Unreadable)
	}
	if !req.DryRun {
		r.record(ctx, rep, err)
	}
	r.log.Info("run finished", "summarized", rep.Summarized, "skipped_unchanged", rep.SkippedUnchanged, "failed", rep.Failed,
		"llm_calls", rep.LLMCalls, "duration_ms", rep.DurationMS, "err", errString(err))
	return rep, err
}

// record stores how the run ended. A run taken for dead leaves its record
// as the run that took over wrote it.
func (r *run) record(ctx context.Context, rep *Report, err error) {
	if errors.Is(err, store.ErrLockLost) || errors.Is(err, store.ErrNotOwner) {
		return
	}
	status := "ok"
	switch {
	case errors.Is(err, ErrInterrupted):
		status = "interrupted"
	case errors.As(err, new(*FailedLeadsError)):
		status = "partial"
	case err != nil:
		status = "error"
	}
	body, _ := json.Marshal(rep)
	if ferr := r.o.DB.FinishRun(context.WithoutCancel(ctx), r.id, status, r.o.ExitCode(err), body); ferr != nil {
		r.log.Error("could not record the run", "err", ferr)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// NewRunID returns a run id: the start time and a random suffix.
func NewRunID(now time.Time) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return now.UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b)
}

func newRequestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// run is the state of one run of the engine.
type run struct {
	o     Options
	req   Request
	id    string
	log   *slog.Logger
	fence *fence // nil in a dry run: nothing is written

	mu     sync.Mutex
	report *Report

	budget budget
}

// heartbeat tells other processes that the run is alive, and keeps its lock
// fresh. When the store says the run was taken for dead, the run stops at
// once: cancel ends every stage, and the fence refuses every write after it.
func (r *run) heartbeat(ctx context.Context, cancel context.CancelCauseFunc) (stop func()) {
	ctx, stopBeat := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(r.o.LockStaleAfter / 8)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if r.fence.lost() != nil {
					return
				}
				err := r.o.DB.Beat(ctx, r.id, r.req.Lock)
				switch {
				case err == nil:
					r.fence.beat()
				case errors.Is(err, store.ErrLockLost):
					r.fence.lose(err)
					r.log.Error("this run was taken for dead and another took its work over: it stops writing now", "err", err)
					cancel(err)
					return
				case ctx.Err() == nil:
					r.log.Warn("could not refresh the run's heartbeat", "err", err)
				}
			}
		}
	}()
	return func() { stopBeat(); <-done }
}

// fence tells whether the run may still write. Another process takes the
// run for dead when its heartbeat is older than staleAfter; the run stops
// on its own well before that (a pause such as SIGSTOP or a suspended VM
// shows as a late heartbeat), and for good once the store said so.
type fence struct {
	staleAfter time.Duration
	mu         sync.Mutex
	last       time.Time
	err        error
}

func newFence(staleAfter time.Duration) *fence {
	return &fence{staleAfter: staleAfter, last: time.Now()}
}

func (f *fence) beat() {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.last = time.Now()
	}
}

func (f *fence) lose(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

// lost returns why the run may no longer write, or nil.
func (f *fence) lost() error {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// check is called before every write to Kommo or the store. The clock is
// the monotonic one: a paused process sees the pause.
func (f *fence) check() error {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil && time.Since(f.last) > f.staleAfter/2 {
		f.err = fmt.Errorf("%w: no heartbeat for %s (the process was paused or the store was unreachable); another run may have taken this one's work over",
			store.ErrLockLost, time.Since(f.last).Round(time.Second))
	}
	return f.err
}

// step records how long a piece of work took.
func (r *run) step(name string, leadID int64, d time.Duration) {
	ms := d.Milliseconds()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.report.StepTotalsMS[name] += ms
	if r.report.SlowestStep == nil || ms > r.report.SlowestStep.MS {
		r.report.SlowestStep = &Step{Name: name, LeadID: leadID, MS: ms}
	}
}

func (r *run) count(f func(rep *Report)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r.report)
}

// done records a lead's outcome in the report, the store and the progress.
func (r *run) done(ctx context.Context, lo LeadOutcome, tokens [2]int64) {
	r.mu.Lock()
	switch lo.Outcome {
	case OutcomeSummarized:
		r.report.Summarized++
	case OutcomeRecovered:
		r.report.Recovered++
	case OutcomeUnchanged:
		r.report.SkippedUnchanged++
	case OutcomeNoChats:
		r.report.SkippedNoChats++
	case OutcomeNoText:
		r.report.SkippedNoText++
	case OutcomeBusy:
		r.report.SkippedBusy++
	case OutcomeBudget:
		r.report.SkippedBudget++
	case OutcomeFailed:
		r.report.Failed++
		r.report.Failures = append(r.report.Failures, lo)
	}
	if r.req.Single || r.req.DryRun {
		r.report.Leads = append(r.report.Leads, lo)
	}
	r.mu.Unlock()
	if lo.Outcome == OutcomeFailed {
		r.log.Warn("lead failed", "lead_id", lo.LeadID, "err", lo.Error)
	} else {
		r.log.Debug("lead done", "lead_id", lo.LeadID, "outcome", lo.Outcome, "messages", lo.Messages)
	}
	if !r.req.DryRun {
		err := r.o.DB.AddLeadResult(context.WithoutCancel(ctx), store.LeadResult{
			RunID: r.id, LeadID: lo.LeadID, Messages: lo.Messages, PromptTokens: tokens[0], CompletionTokens: tokens[1],
			DurationMS: lo.DurationMS, Outcome: lo.Outcome, Error: lo.Error, At: r.o.Now(),
		})
		if err != nil {
			r.log.Error("could not record a lead's outcome", "lead_id", lo.LeadID, "err", err)
		}
	}
	if r.o.OnLead != nil {
		r.o.OnLead(lo)
	}
}

func (r *run) finish(d time.Duration, err error) *Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := r.report
	rep.DurationMS = d.Milliseconds()
	rep.EstimatedCostUSD = float64(rep.PromptTokens)/1e6*r.o.PriceInputPer1M + float64(rep.CompletionTokens)/1e6*r.o.PriceOutputPer1M
	rep.Interrupted = errors.Is(err, ErrInterrupted)
	return rep
}
