package sweep

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

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
	written := make(chan writeItem, r.o.BatchSize)

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

// list streams the leads of the run into out; the caller closes it.
func (r *run) list(ctx context.Context, out chan<- *kommo.Lead) error {
	send := func(l *kommo.Lead) bool {
		select {
		case out <- l:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if r.req.Single {
		for _, id := range r.req.LeadIDs {
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

	// --lead-ids asks for those leads in chunks; seen (only then) tells
	// which ids Kommo does not know.
	queries := []kommo.LeadsQuery{{With: []string{"contacts"}}}
	var seen map[int64]bool
	if len(r.req.LeadIDs) > 0 {
		queries, seen = nil, map[int64]bool{}
		for chunk := range slices.Chunk(r.req.LeadIDs, 50) {
			queries = append(queries, kommo.LeadsQuery{With: []string{"contacts"}, IDs: chunk})
		}
	}
	sent := 0
	for _, q := range queries {
		t0 := time.Now()
		for lead, err := range r.o.Kommo.Leads(ctx, q) {
			if err != nil {
				return fmt.Errorf("list leads: %w", err)
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
				return nil
			}
			if !send(lead) {
				return nil
			}
			sent++
			t0 = time.Now()
		}
	}
	for _, id := range r.req.LeadIDs {
		if !seen[id] {
			w := &leadWork{lead: &kommo.Lead{ID: id}, started: time.Now()}
			r.done(ctx, w.outcome(OutcomeFailed, fmt.Errorf("lead %d not found in Kommo: check the id", id)), [2]int64{})
		}
	}
	return nil
}

// fetch finds the lead's chats and reads what is new in each. It returns nil
// when the lead is done here (skipped or failed).
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

	var chatIDs []string
	t0 := time.Now()
	for _, cid := range lead.ContactIDs() {
		links, err := r.o.Kommo.ContactChats(ctx, cid)
		if err != nil {
			return fail(fmt.Errorf("chats of contact %d: %w", cid, err))
		}
		for _, l := range links {
			if !slices.Contains(chatIDs, l.ChatID) {
				chatIDs = append(chatIDs, l.ChatID)
			}
		}
	}
	r.step("find chats", lead.ID, time.Since(t0))
	if len(chatIDs) == 0 {
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
	changed := len(states) != len(chatIDs)
	for _, id := range chatIDs {
		var prev *store.ChatState
		if st, ok := w.prev[id]; ok && !r.req.Force {
			prev = &st
		}
		f, err := fetchChat(ctx, r.o.History, lead.ID, id, prev, r.o.Head, r.o.Tail)
		r.count(func(rep *Report) { rep.ConversationsChecked++ })
		if err != nil {
			return fail(fmt.Errorf("history of chat %s: %w", id, err))
		}
		if f.chat.Total == 0 {
			continue
		}
		if _, ok := w.prev[id]; !ok {
			changed = true
		}
		changed = changed || f.changed
		w.chats = append(w.chats, f)
	}
	r.step("fetch history", lead.ID, time.Since(t0))
	if len(w.chats) == 0 {
		r.done(ctx, w.outcome(OutcomeNoChats, nil), [2]int64{})
		return nil
	}
	if !changed && !r.req.Force {
		r.done(ctx, w.outcome(OutcomeUnchanged, nil), [2]int64{})
		return nil
	}
	return w
}

// writeItem is a summary on its way to Kommo.
type writeItem struct {
	p       store.Pending
	started time.Time
	msgs    int
}

// summarize asks the model and stores the summary as pending.
func (r *run) summarize(ctx context.Context, w *leadWork, abort func(error)) (writeItem, bool) {
	chats := make([]summarize.Chat, len(w.chats))
	for i, c := range w.chats {
		chats[i] = c.chat
		if len(w.chats) > 1 {
			chats[i].Label = fmt.Sprintf("chat %d", i+1)
		}
	}
	system, user := summarize.Prompt(chats, r.o.Prompt)
	hash := summarize.InputHash(system, user)
	if !r.req.Force && len(w.prev) == len(w.chats) && allHashes(w.prev, hash) {
		r.done(ctx, w.outcome(OutcomeUnchanged, nil), [2]int64{})
		return writeItem{}, false
	}

	t0 := time.Now()
	comp, err := r.o.LLM.Complete(ctx, system, user)
	r.step("llm", w.lead.ID, time.Since(t0))
	r.count(func(rep *Report) {
		rep.LLMCalls++
		if comp != nil {
			rep.PromptTokens += comp.Usage.PromptTokens
			rep.CompletionTokens += comp.Usage.CompletionTokens
		}
	})
	if err != nil {
		if ctx.Err() != nil {
			return writeItem{}, false
		}
		if Fatal(err) {
			abort(err)
			return writeItem{}, false
		}
		r.done(ctx, w.outcome(OutcomeFailed, err), [2]int64{})
		return writeItem{}, false
	}
	tokens := [2]int64{comp.Usage.PromptTokens, comp.Usage.CompletionTokens}
	text, err := summarize.ParseAnswer(comp.Text)
	if err != nil {
		r.done(ctx, w.outcome(OutcomeFailed, err), tokens)
		return writeItem{}, false
	}
	if r.req.DryRun {
		lo := w.outcome(OutcomeDryRun, nil)
		lo.Summary = text
		r.done(ctx, lo, tokens)
		return writeItem{}, false
	}

	states := make([]store.ChatState, len(w.chats))
	for i, c := range w.chats {
		states[i] = c.state
		states[i].InputHash = hash
	}
	p := store.Pending{
		RequestID: newRequestID(), LeadID: w.lead.ID, RunID: r.id, CreatedAt: r.o.Now(), State: "pending",
		NoteText:  summarize.NoteText(text, r.o.Now(), r.o.Prompt.Location),
		FieldText: summarize.Cut(text, r.o.FieldMaxChars),
		Model:     comp.Model, PromptTokens: tokens[0], CompletionTokens: tokens[1], InputHash: hash,
		Chats: states,
	}
	if err := r.o.DB.AddPending(ctx, p); err != nil {
		if ctx.Err() != nil {
			return writeItem{}, false
		}
		r.done(ctx, w.outcome(OutcomeFailed, fmt.Errorf("an earlier summary of this lead is still being written (%v): the next run settles it", err)), tokens)
		return writeItem{}, false
	}
	return writeItem{p: p, started: w.started, msgs: w.messages()}, true
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
func (r *run) writer(ctx context.Context, in <-chan writeItem, abort func(error)) {
	var batch []writeItem
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

// recoverPending settles the summaries that an earlier run made but did not
// see confirmed: a note Kommo already has is not posted again.
func (r *run) recoverPending(ctx context.Context) error {
	ps, err := r.o.DB.Pendings(ctx)
	if err != nil {
		return storeErr(err)
	}
	if len(ps) == 0 {
		return nil
	}
	r.log.Info("settling summaries left by an earlier run", "count", len(ps))
	var items []writeItem
	for _, p := range ps {
		if p.State == "pending" {
			id, err := r.findNote(ctx, p)
			if err != nil {
				if Fatal(err) || ctx.Err() != nil {
					return err
				}
				r.log.Warn("could not check a lead's notes; the next run tries again", "lead_id", p.LeadID, "err", err)
				continue
			}
			if id != 0 {
				if err := r.o.DB.MarkNoted(ctx, p.RequestID, id); err != nil {
					return storeErr(err)
				}
				p.State, p.NoteID = "noted", id
			}
		}
		items = append(items, writeItem{p: p, started: time.Now()})
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

// findNote looks for the pending note among the lead's latest notes.
func (r *run) findNote(ctx context.Context, p store.Pending) (int64, error) {
	notes, err := r.o.Kommo.LeadNotes(ctx, p.LeadID, kommo.NotesQuery{NoteTypes: []string{r.o.NoteType}, Limit: 50})
	if err != nil {
		return 0, err
	}
	want := strings.TrimSpace(p.NoteText)
	for _, n := range notes {
		if strings.TrimSpace(n.Params.Text) == want {
			return n.ID, nil
		}
	}
	return 0, nil
}

// writeBatch posts the notes that are not confirmed yet, updates the field,
// and completes each lead whose writes were confirmed, with the outcome
// given (summarized, or recovered from an earlier run).
func (r *run) writeBatch(ctx context.Context, batch []writeItem, outcome string, abort func(error)) {
	t0 := time.Now()
	defer func() { r.step("write back", 0, time.Since(t0)) }()
	failed := map[string]error{}

	var toPost []writeItem
	for _, it := range batch {
		if it.p.State != "noted" {
			toPost = append(toPost, it)
		}
	}
	if len(toPost) > 0 {
		if err := r.postNotes(ctx, toPost, failed); err != nil {
			abort(err)
			return
		}
		for i := range batch {
			for _, it := range toPost {
				if it.p.RequestID == batch[i].p.RequestID {
					batch[i].p = it.p
				}
			}
		}
	}

	var noted []writeItem
	for _, it := range batch {
		if _, bad := failed[it.p.RequestID]; !bad && it.p.State == "noted" {
			noted = append(noted, it)
		}
	}
	if r.o.FieldID != 0 && len(noted) > 0 {
		if err := r.patchFields(ctx, noted, failed); err != nil {
			abort(err)
			return
		}
	}

	for _, it := range batch {
		lo := LeadOutcome{LeadID: it.p.LeadID, Messages: it.msgs, NoteID: it.p.NoteID, DurationMS: time.Since(it.started).Milliseconds()}
		tokens := [2]int64{it.p.PromptTokens, it.p.CompletionTokens}
		if err, bad := failed[it.p.RequestID]; bad {
			lo.Outcome, lo.Error = OutcomeFailed, err.Error()
			r.done(ctx, lo, tokens)
			continue
		}
		if err := r.o.DB.Complete(ctx, it.p.RequestID); err != nil {
			abort(storeErr(err))
			return
		}
		lo.Outcome = outcome
		if r.req.Single {
			lo.Summary = it.p.FieldText
		}
		r.done(ctx, lo, tokens)
	}
}

// postNotes posts the batch's notes in one request. When Kommo rejects the
// batch for one bad note, the notes go one by one so the others still land.
// When the answer is lost (5xx, timeout), the lead's latest notes are
// checked before a note is posted again. It returns only fatal errors.
func (r *run) postNotes(ctx context.Context, items []writeItem, failed map[string]error) error {
	return r.postNotesTry(ctx, items, failed, 0)
}

func (r *run) postNotesTry(ctx context.Context, items []writeItem, failed map[string]error, attempt int) error {
	notes := make([]kommo.NewNote, len(items))
	for i, it := range items {
		notes[i] = r.newNote(it.p)
	}
	got, err := r.o.Kommo.AddLeadNotes(ctx, notes)
	if err == nil {
		return r.markNoted(ctx, items, got, failed)
	}
	if Fatal(err) || ctx.Err() != nil {
		return err
	}
	var kerr *kommo.Error
	if errors.As(err, &kerr) && kerr.Status >= 400 && kerr.Status < 500 {
		if len(items) == 1 {
			failed[items[0].p.RequestID] = fmt.Errorf("post note: %w", err)
			if derr := r.o.DB.DropPending(ctx, items[0].p.RequestID); derr != nil {
				return storeErr(derr)
			}
			return nil
		}
		for i := range items {
			if err := r.postNotesTry(ctx, items[i:i+1], failed, attempt); err != nil {
				return err
			}
		}
		return nil
	}
	// The answer was lost: Kommo may or may not have the notes.
	r.log.Warn("posting notes failed; checking which landed before posting again", "notes", len(items), "err", err)
	var rest []writeItem
	for _, it := range items {
		id, ferr := r.findNote(ctx, it.p)
		if ferr != nil {
			if Fatal(ferr) || ctx.Err() != nil {
				return ferr
			}
			failed[it.p.RequestID] = fmt.Errorf("post note: %w (the next run checks whether it landed)", err)
			continue
		}
		if id != 0 {
			if merr := r.o.DB.MarkNoted(ctx, it.p.RequestID, id); merr != nil {
				return storeErr(merr)
			}
			it.p.State, it.p.NoteID = "noted", id
			r.setItem(items, it)
			continue
		}
		rest = append(rest, it)
	}
	if len(rest) == 0 {
		return nil
	}
	if attempt >= 2 {
		for _, it := range rest {
			failed[it.p.RequestID] = fmt.Errorf("post note: %w (the next run tries again)", err)
		}
		return nil
	}
	if err := r.postNotesTry(ctx, rest, failed, attempt+1); err != nil {
		return err
	}
	for _, it := range rest {
		r.setItem(items, it)
	}
	return nil
}

func (r *run) setItem(items []writeItem, it writeItem) {
	for i := range items {
		if items[i].p.RequestID == it.p.RequestID {
			items[i] = it
		}
	}
}

func (r *run) newNote(p store.Pending) kommo.NewNote {
	n := kommo.NewNote{EntityID: p.LeadID, NoteType: r.o.NoteType, Params: kommo.NoteParams{Text: p.NoteText}, RequestID: p.RequestID}
	if r.o.NoteType != "common" {
		n.Params.Service = r.o.NoteService
	}
	return n
}

// markNoted records the ids Kommo gave the notes. Kommo echoes request_id;
// the answer's order is the request's order when it does not.
func (r *run) markNoted(ctx context.Context, items []writeItem, got []kommo.Note, failed map[string]error) error {
	byReq := map[string]int64{}
	for i, n := range got {
		if n.RequestID != "" {
			byReq[n.RequestID] = n.ID
		} else if i < len(items) {
			byReq[items[i].p.RequestID] = n.ID
		}
	}
	for i := range items {
		id, ok := byReq[items[i].p.RequestID]
		if !ok || id == 0 {
			failed[items[i].p.RequestID] = errors.New("post note: Kommo's answer did not include this note (the next run checks whether it landed)")
			continue
		}
		if err := r.o.DB.MarkNoted(ctx, items[i].p.RequestID, id); err != nil {
			return storeErr(err)
		}
		items[i].p.State, items[i].p.NoteID = "noted", id
	}
	return nil
}

// patchFields writes the latest summary into the lead's textarea field. The
// update is idempotent, so the client retries it; a batch that Kommo rejects
// for one lead is split so the others still land.
func (r *run) patchFields(ctx context.Context, items []writeItem, failed map[string]error) error {
	ups := make([]kommo.LeadUpdate, len(items))
	for i, it := range items {
		ups[i] = kommo.LeadUpdate{ID: it.p.LeadID, CustomFieldsValues: []kommo.CustomFieldValue{{
			FieldID: r.o.FieldID, Values: []kommo.FieldValue{{Value: it.p.FieldText}},
		}}}
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
		failed[it.p.RequestID] = fmt.Errorf("update field %d (the note landed; the next run updates the field): %w", r.o.FieldID, err)
	}
	return nil
}
