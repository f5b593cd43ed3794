package sweep

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/digest"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommo"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/summarize"
)

// leadWork travels down the pipeline, one per lead.
type leadWork struct {
	lead    *kommo.Lead
	started time.Time
	chats   []chatFetch
	prev    map[string]store.ChatState
	version int64 // the lead's summary version the chats were read at
}

func (w *leadWork) messages() int {
	n := 0
	for _, c := range w.chats {
		n += c.chat.Total
	}
	return n
}

func (w *leadWork) outcome(outcome string, err error) LeadOutcome {
	lo := LeadOutcome{LeadID: w.lead.ID, Outcome: outcome, Messages: w.messages(), DurationMS: time.Since(w.started).Milliseconds()}
	if err != nil {
		lo.Error = err.Error()
	}
	return lo
}

// execute settles what an earlier run left half-written, then runs the
// pipeline. Stages stop when ctx ends; the writer finishes what reached it.
func (r *run) execute(parent context.Context) error {
	if !r.req.DryRun {
		if err := r.recoverPending(parent); err != nil {
			if parent.Err() != nil {
				return ErrInterrupted
			}
			return err
		}
	}

	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	// Writes already under way finish even after a signal; only a fatal
	// error stops them.
	wctx, wcancel := context.WithCancelCause(context.WithoutCancel(parent))
	defer wcancel(nil)
	abort := func(err error) {
		cancel(err)
		wcancel(err)
	}

	leads := make(chan *kommo.Lead, r.o.FetchWorkers)
	fetched := make(chan *leadWork, r.o.LLMWorkers)
	written := make(chan *writeItem, r.o.BatchSize)

	go func() {
		// Abort before closing: the stages must not drain and finish as if
		// the listing had ended well.
		if err := r.list(ctx, leads); err != nil && ctx.Err() == nil {
			abort(err)
		}
		close(leads)
	}()

	var fetchWG, llmWG sync.WaitGroup
	for range r.o.FetchWorkers {
		fetchWG.Go(func() {
			for lead := range leads {
				if ctx.Err() != nil {
					continue
				}
				if w := r.fetch(ctx, lead, abort); w != nil {
					fetched <- w
				}
			}
		})
	}
	go func() { fetchWG.Wait(); close(fetched) }()

	for range r.o.LLMWorkers {
		llmWG.Go(func() {
			for w := range fetched {
				if ctx.Err() != nil {
					continue
				}
				if item, ok := r.summarize(ctx, w, abort); ok {
					written <- item
				}
			}
		})
	}
	go func() { llmWG.Wait(); close(written) }()

	r.writer(wctx, written, abort)

	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	if cause := context.Cause(wctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	if parent.Err() != nil {
		return ErrInterrupted
	}
	return nil
}

// list streams the leads of the run into out, from the run's producer; the
// caller closes it.
func (r *run) list(ctx context.Context, out chan<- *kommo.Lead) error {
	send := func(l *kommo.Lead) bool {
		select {
		case out <- l:
			return true
		case <-ctx.Done():
			return false
		}
	}
	return r.producer().produce(ctx, r, send)
}

// fetch finds the lead's conversations in every source and reads what is
// new in each. It returns nil when the lead is done here (skipped or
// failed).
func (r *run) fetch(ctx context.Context, lead *kommo.Lead, abort func(error)) *leadWork {
	w := &leadWork{lead: lead, started: time.Now()}
	fail := func(err error) *leadWork {
		if ctx.Err() != nil {
			return nil
		}
		if Fatal(err) {
			abort(err)
			return nil
		}
		r.done(ctx, w.outcome(OutcomeFailed, err), [2]int64{})
		return nil
	}

	// The version first: a summary that completes after this read makes
	// ours stale, and AddPending refuses it.
	version, err := r.o.DB.LeadVersion(ctx, lead.ID)
	if err != nil {
		return fail(storeErr(err))
	}
	w.version = version

	type sourced struct {
		ref ChatRef
		src Source
	}
	var chats []sourced
	t0 := time.Now()
	for _, src := range r.o.Sources {
		refs, err := src.Chats(ctx, lead)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", src.Name(), err))
		}
		for _, ref := range refs {
			if !slices.ContainsFunc(chats, func(c sourced) bool { return c.ref.ID == ref.ID }) {
				chats = append(chats, sourced{ref, src})
			}
		}
	}
	r.step("find chats", lead.ID, time.Since(t0))
	if len(chats) == 0 {
		if len(lead.ContactIDs()) > 0 {
			r.count(func(rep *Report) { rep.Unreadable++ })
		}
		r.done(ctx, w.outcome(OutcomeNoChats, nil), [2]int64{})
		return nil
	}

	states, err := r.o.DB.ChatStates(ctx, lead.ID)
	if err != nil {
		return fail(storeErr(err))
	}
	w.prev = map[string]store.ChatState{}
	for _, st := range states {
		w.prev[st.ChatID] = st
	}

	t0 = time.Now()
	changed := len(states) != len(chats)
	for _, c := range chats {
		var prev *store.ChatState
		if st, ok := w.prev[c.ref.ID]; ok && !r.req.Force {
			prev = &st
		}
		f, err := fetchChat(ctx, c.src, lead.ID, c.ref, prev, r.o.Head, r.o.Tail)
		r.count(func(rep *Report) { rep.ConversationsChecked++ })
		if err != nil {
			return fail(fmt.Errorf("history of chat %s (%s): %w", c.ref.ID, c.src.Name(), err))
		}
		if f.chat.Total == 0 {
			continue
		}
		if _, ok := w.prev[c.ref.ID]; !ok {
			changed = true
		}
		changed = changed || f.changed
		w.chats = append(w.chats, f)
	}
	r.step("fetch history", lead.ID, time.Since(t0))
	switch {
	case len(w.chats) == 0:
		r.done(ctx, w.outcome(OutcomeNoChats, nil), [2]int64{})
		return nil
	case !changed && !r.req.Force:
		r.done(ctx, w.outcome(OutcomeUnchanged, nil), [2]int64{})
		return nil
	case !slices.ContainsFunc(w.chats, func(c chatFetch) bool { return hasText(c.chat) }):
		// Pictures and voice messages alone give the model nothing to
		// summarise: no LLM call, no note about nothing.
		r.done(ctx, w.outcome(OutcomeNoText, nil), [2]int64{})
		return nil
	}
	return w
}

// hasText reports whether a chat's shown messages have any text to
// summarise.
func hasText(c summarize.Chat) bool {
	for _, ms := range [][]summarize.Message{c.Head, c.Tail} {
		for _, m := range ms {
			if strings.TrimSpace(m.Text) != "" || m.Location != nil || m.Contact != nil {
				return true
			}
		}
	}
	return false
}

// writeItem is a summary on its way to Kommo.
type writeItem struct {
	p       store.Pending
	started time.Time
	msgs    int
}

// summarize asks the model for the lead's structured summary (a rolling
// update when the chats grew, see input), checks the budget first, decides
// whether the field may be written, and stores the summary as pending.
func (r *run) summarize(ctx context.Context, w *leadWork, abort func(error)) (*writeItem, bool) {
	fail := func(err error, tokens [2]int64) (*writeItem, bool) {
		if ctx.Err() != nil {
			return nil, false
		}
		if Fatal(err) {
			abort(err)
			return nil, false
		}
		r.done(ctx, w.outcome(OutcomeFailed, err), tokens)
		return nil, false
	}
	dg, prev, err := r.previous(ctx, w.lead.ID)
	if err != nil {
		return fail(storeErr(err), [2]int64{})
	}
	in, rolling := r.input(w, dg, prev)
	plan := digest.NewPlan(in, r.o.digestOptions())
	hash := plan.InputHash
	if !r.req.Force && len(w.prev) == len(w.chats) && allHashes(w.prev, hash) {
		r.done(ctx, w.outcome(OutcomeUnchanged, nil), [2]int64{})
		return nil, false
	}
	ok, err := r.reserve(ctx, plan.EstimateUSD)
	if err != nil {
		return fail(err, [2]int64{})
	}
	if !ok {
		r.done(ctx, w.outcome(OutcomeBudget, nil), [2]int64{})
		return nil, false
	}

	t0 := time.Now()
	res, err := plan.Run(ctx, r.o.LLM)
	r.step("llm", w.lead.ID, time.Since(t0))
	r.spend(ctx, plan.EstimateUSD, res)
	var tokens [2]int64
	if res != nil {
		tokens = [2]int64{res.Usage.PromptTokens, res.Usage.CompletionTokens}
	}
	r.count(func(rep *Report) {
		rep.PlannedCostUSD += plan.EstimateUSD
		if res == nil {
			return
		}
		rep.LLMCalls += res.Calls
		rep.PromptTokens += res.Usage.PromptTokens
		rep.CompletionTokens += res.Usage.CompletionTokens
		if res.Retried {
			rep.SchemaRetries++
		}
		if res.Fallback {
			rep.PlainFallbacks++
		}
		if rolling && err == nil && !res.Fallback {
			rep.RollingUpdates++
		}
		rep.UnverifiedFacts += len(res.Rendered.Unverified)
		for k, n := range plan.Redacted {
			if rep.Redacted == nil {
				rep.Redacted = map[string]int{}
			}
			rep.Redacted[k] += n
		}
	})
	if err != nil {
		return fail(err, tokens)
	}
	if !rolling && prev != nil && res.Summary != nil {
		// A full rebuild still says what changed since the last summary.
		res.Rendered.Changes, res.Rendered.Since = summarize.Diff(prev, res.Summary), dg.MadeAt
	}
	body := res.Rendered.Note()
	if r.req.DryRun {
		lo := w.outcome(OutcomeDryRun, nil)
		lo.Summary = body
		r.done(ctx, lo, tokens)
		return nil, false
	}

	states := make([]store.ChatState, len(w.chats))
	for i, c := range w.chats {
		states[i] = c.state
		states[i].InputHash = hash
	}
	field := res.Rendered.Field(r.o.FieldMaxChars)
	next := &store.Digest{MadeAt: r.o.Now(), FieldHash: store.FieldHash(field)}
	if res.Summary != nil {
		next.Summary, _ = json.Marshal(res.Summary)
		if rolling {
			next.Updates = dg.Updates + 1
		}
	}
	if r.humanEdited(ctx, w.lead, dg) {
		field, next.KeepField = "", true
		r.log.Info("a person edited the lead's summary field: the note is posted, the field left alone (summary.field_overwrite: always overrides)", "lead_id", w.lead.ID)
		r.count(func(rep *Report) { rep.FieldKeptHuman = append(rep.FieldKeptHuman, w.lead.ID) })
	}
	reqID := newRequestID()
	p := store.Pending{
		RequestID: reqID, LeadID: w.lead.ID, RunID: r.id, CreatedAt: r.o.Now(), State: store.StatePending,
		NoteText:  noteText(body, r.o.Now(), r.o.Prompt.Location, w.chats, reqID),
		FieldText: field,
		Model:     res.Model, PromptTokens: tokens[0], CompletionTokens: tokens[1], InputHash: hash,
		Chats: states, BaseVersion: w.version, Digest: next,
	}
	if err := r.fence.check(); err != nil {
		abort(err)
		return nil, false
	}
	if err := r.o.DB.AddPending(ctx, p); err != nil {
		if ctx.Err() != nil {
			return nil, false
		}
		if errors.Is(err, store.ErrPendingExists) || errors.Is(err, store.ErrStale) {
			// Another process is writing, or wrote, a summary of this
			// change: one note per change.
			lo := w.outcome(OutcomeBusy, nil)
			lo.Error = err.Error()
			r.done(ctx, lo, tokens)
			return nil, false
		}
		r.done(ctx, w.outcome(OutcomeFailed, storeErr(err)), tokens)
		return nil, false
	}
	return &writeItem{p: p, started: w.started, msgs: w.messages()}, true
}

// noteRef is the short reference of a summary's request id that its note
// carries, so that recovery adopts exactly this note and never an earlier
// note with the same text.
func noteRef(requestID string) string { return "ref " + requestID[:min(len(requestID), 12)] }

// noteText is the note: the summary, where the message log's record of a
// chat starts, and the reference.
func noteText(summary string, at time.Time, loc *time.Location, chats []chatFetch, requestID string) string {
	var b strings.Builder
	b.WriteString(summarize.NoteText(summary, at, loc))
	if loc == nil {
		loc = time.UTC
	}
	for _, c := range chats {
		if !c.ref.Since.IsZero() {
			fmt.Fprintf(&b, "\n\nThe %s chat is covered from %s, when its messages started reaching kommo-summarizer's webhook; earlier messages are not included.",
				cmp.Or(c.ref.Origin, "messenger"), c.ref.Since.In(loc).Format("02.01.2006 15:04"))
		}
	}
	b.WriteString("\n\n" + noteRef(requestID))
	return b.String()
}

func allHashes(prev map[string]store.ChatState, hash string) bool {
	for _, st := range prev {
		if st.InputHash != hash {
			return false
		}
	}
	return len(prev) > 0
}

// writer collects summaries into batches: a batch goes out when it is full,
// when its first summary has waited BatchMaxWait, or when the stream ends.
func (r *run) writer(ctx context.Context, in <-chan *writeItem, abort func(error)) {
	var batch []*writeItem
	var timer <-chan time.Time
	flush := func() {
		if len(batch) > 0 && ctx.Err() == nil {
			r.writeBatch(ctx, batch, OutcomeSummarized, abort)
		}
		batch, timer = nil, nil
	}
	for {
		select {
		case it, ok := <-in:
			if !ok {
				flush()
				return
			}
			batch = append(batch, it)
			if len(batch) == 1 {
				timer = time.After(r.o.BatchMaxWait)
			}
			if len(batch) >= r.o.BatchSize {
				flush()
			}
		case <-timer:
			flush()
		}
	}
}

// recoverPending settles the summaries that dead runs made but did not see
// confirmed: it claims them (a live run's are left alone), and a note Kommo
// already has is not posted again.
func (r *run) recoverPending(ctx context.Context) error {
	if err := r.fence.check(); err != nil {
		return err
	}
	ps, err := r.o.DB.ClaimPendings(ctx, r.id, r.o.LockStaleAfter)
	if err != nil {
		return storeErr(err)
	}
	if len(ps) == 0 {
		return nil
	}
	r.log.Info("settling summaries left by runs that died", "count", len(ps))
	var items []*writeItem
	for _, p := range ps {
		it := &writeItem{p: p, started: time.Now()}
		if p.State == store.StatePending {
			id, err := r.findNote(ctx, p)
			if err != nil {
				if Fatal(err) || ctx.Err() != nil {
					return err
				}
				r.log.Warn("could not check a lead's notes; the next run tries again", "lead_id", p.LeadID, "err", err)
				continue
			}
			if id != 0 {
				if err := r.markNoted(ctx, it, id); err != nil {
					return err
				}
			}
		}
		items = append(items, it)
	}
	var fatal error
	for chunk := range slices.Chunk(items, r.o.BatchSize) {
		r.writeBatch(ctx, chunk, OutcomeRecovered, func(err error) { fatal = err })
		if fatal != nil {
			return fatal
		}
	}
	return nil
}

// findNote looks for the pending note among the lead's latest notes, by the
// reference it carries.
func (r *run) findNote(ctx context.Context, p store.Pending) (int64, error) {
	notes, err := r.o.Kommo.LeadNotes(ctx, p.LeadID, kommo.NotesQuery{NoteTypes: []string{r.o.NoteType}, Limit: 50})
	if err != nil {
		return 0, err
	}
	ref := noteRef(p.RequestID)
	for _, n := range notes {
		if strings.HasSuffix(strings.TrimSpace(n.Params.Text), ref) {
			return n.ID, nil
		}
	}
	return 0, nil
}

// markNoted records the id Kommo gave the item's note, in the store and in
// the item.
func (r *run) markNoted(ctx context.Context, it *writeItem, noteID int64) error {
	if err := r.fence.check(); err != nil {
		return err
	}
	if err := r.o.DB.MarkNoted(ctx, r.id, it.p.RequestID, noteID); err != nil {
		return storeErr(err)
	}
	it.p.State, it.p.NoteID = store.StateNoted, noteID
	return nil
}

// writeBatch posts the notes that are not confirmed yet, updates the field,
// and completes each lead whose writes were confirmed, with the outcome
// given (summarized, or recovered from an earlier run).
func (r *run) writeBatch(ctx context.Context, batch []*writeItem, outcome string, abort func(error)) {
	t0 := time.Now()
	defer func() { r.step("write back", 0, time.Since(t0)) }()
	failed := map[*writeItem]error{}

	var toPost []*writeItem
	for _, it := range batch {
		if it.p.State != store.StateNoted {
			toPost = append(toPost, it)
		}
	}
	if len(toPost) > 0 {
		if err := r.postNotes(ctx, toPost, failed, 0); err != nil {
			abort(err)
			return
		}
	}

	var noted []*writeItem
	for _, it := range batch {
		if _, bad := failed[it]; !bad && it.p.State == store.StateNoted {
			noted = append(noted, it)
		}
	}
	// A field a person edited is left alone: its pending summary has no
	// field text.
	noted = slices.DeleteFunc(noted, func(it *writeItem) bool { return it.p.FieldText == "" })
	if r.o.FieldID != 0 && len(noted) > 0 {
		if err := r.patchFields(ctx, noted, failed); err != nil {
			abort(err)
			return
		}
	}

	for _, it := range batch {
		lo := LeadOutcome{LeadID: it.p.LeadID, Messages: it.msgs, NoteID: it.p.NoteID, DurationMS: time.Since(it.started).Milliseconds()}
		tokens := [2]int64{it.p.PromptTokens, it.p.CompletionTokens}
		if err, bad := failed[it]; bad {
			lo.Outcome, lo.Error = OutcomeFailed, err.Error()
			r.done(ctx, lo, tokens)
			continue
		}
		if err := r.fence.check(); err != nil {
			abort(err)
			return
		}
		if err := r.o.DB.Complete(ctx, r.id, it.p.RequestID); err != nil {
			abort(storeErr(err))
			return
		}
		lo.Outcome = outcome
		if r.req.Single {
			lo.Summary = cmp.Or(it.p.FieldText, it.p.NoteText)
		}
		r.done(ctx, lo, tokens)
	}
}

// postNotes posts the items' notes in one request. When Kommo rejects the
// batch for one bad note, the notes go one by one so the others still land.
// When the answer is lost (5xx, timeout), the lead's latest notes are
// checked before a note is posted again. It returns only fatal errors.
func (r *run) postNotes(ctx context.Context, items []*writeItem, failed map[*writeItem]error, attempt int) error {
	notes := make([]kommo.NewNote, len(items))
	for i, it := range items {
		notes[i] = r.newNote(it.p)
	}
	if err := r.fence.check(); err != nil {
		return err
	}
	got, err := r.o.Kommo.AddLeadNotes(ctx, notes)
	if err == nil {
		return r.notesPosted(ctx, items, got, failed)
	}
	if Fatal(err) || ctx.Err() != nil {
		return err
	}
	var kerr *kommo.Error
	if errors.As(err, &kerr) && kerr.Status >= 400 && kerr.Status < 500 {
		if len(items) == 1 {
			failed[items[0]] = fmt.Errorf("post note: %w", err)
			if derr := r.o.DB.DropPending(ctx, r.id, items[0].p.RequestID); derr != nil {
				return storeErr(derr)
			}
			return nil
		}
		for _, it := range items {
			if err := r.postNotes(ctx, []*writeItem{it}, failed, attempt); err != nil {
				return err
			}
		}
		return nil
	}
	// The answer was lost: Kommo may or may not have the notes.
	r.log.Warn("posting notes failed; checking which landed before posting again", "notes", len(items), "err", err)
	var rest []*writeItem
	for _, it := range items {
		id, ferr := r.findNote(ctx, it.p)
		if ferr != nil {
			if Fatal(ferr) || ctx.Err() != nil {
				return ferr
			}
			failed[it] = fmt.Errorf("post note: %w (the next run checks whether it landed)", err)
			continue
		}
		if id != 0 {
			if merr := r.markNoted(ctx, it, id); merr != nil {
				return merr
			}
			continue
		}
		rest = append(rest, it)
	}
	if len(rest) == 0 {
		return nil
	}
	if attempt >= 2 {
		for _, it := range rest {
			failed[it] = fmt.Errorf("post note: %w (the next run tries again)", err)
		}
		return nil
	}
	return r.postNotes(ctx, rest, failed, attempt+1)
}

func (r *run) newNote(p store.Pending) kommo.NewNote {
	n := kommo.NewNote{EntityID: p.LeadID, NoteType: r.o.NoteType, Params: kommo.NoteParams{Text: p.NoteText}, RequestID: p.RequestID}
	if r.o.NoteType != "common" {
		n.Params.Service = r.o.NoteService
	}
	return n
}

// notesPosted records the ids Kommo gave the notes. Kommo echoes request_id;
// the answer's order is the request's order when it does not.
func (r *run) notesPosted(ctx context.Context, items []*writeItem, got []kommo.Note, failed map[*writeItem]error) error {
	byReq := map[string]int64{}
	for i, n := range got {
		if n.RequestID != "" {
			byReq[n.RequestID] = n.ID
		} else if i < len(items) {
			byReq[items[i].p.RequestID] = n.ID
		}
	}
	for _, it := range items {
		id, ok := byReq[it.p.RequestID]
		if !ok || id == 0 {
			failed[it] = errors.New("post note: Kommo's answer did not include this note (the next run checks whether it landed)")
			continue
		}
		if err := r.markNoted(ctx, it, id); err != nil {
			return err
		}
	}
	return nil
}

// patchFields writes the latest summary into the lead's textarea field. The
// update is idempotent, so the client retries it; a batch that Kommo rejects
// for one lead is split so the others still land.
func (r *run) patchFields(ctx context.Context, items []*writeItem, failed map[*writeItem]error) error {
	ups := make([]kommo.LeadUpdate, len(items))
	for i, it := range items {
		ups[i] = kommo.LeadUpdate{ID: it.p.LeadID, CustomFieldsValues: []kommo.CustomFieldValue{{
			FieldID: r.o.FieldID, Values: []kommo.FieldValue{{Value: it.p.FieldText}},
		}}}
	}
	if err := r.fence.check(); err != nil {
		return err
	}
	err := r.o.Kommo.UpdateLeads(ctx, ups)
	if err == nil {
		return nil
	}
	if Fatal(err) || ctx.Err() != nil {
		return err
	}
	var kerr *kommo.Error
	if len(items) > 1 && errors.As(err, &kerr) && kerr.Status >= 400 && kerr.Status < 500 {
		for i := range items {
			if err := r.patchFields(ctx, items[i:i+1], failed); err != nil {
				return err
			}
		}
		return nil
	}
	for _, it := range items {
		failed[it] = fmt.Errorf("update field %d (the note landed; the next run updates the field): %w", r.o.FieldID, err)
	}
	return nil
}
