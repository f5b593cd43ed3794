package sweep

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/digest"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommo"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/summarize"
)

// digestOptions are the engine's options for pkg/digest.
func (o Options) digestOptions() digest.Options {
	return digest.Options{Prompt: o.Prompt, Redact: o.Redact, MaxOutputTokens: o.MaxOutputTokens,
		PriceInputPer1M: o.PriceInputPer1M, PriceOutputPer1M: o.PriceOutputPer1M}
}

// previous returns the lead's stored digest and its structured summary; a
// summary that does not parse is as good as none (a full rebuild).
func (r *run) previous(ctx context.Context, leadID int64) (*store.Digest, *summarize.Structured, error) {
	dg, err := r.o.DB.LeadDigest(ctx, leadID)
	if err != nil || dg == nil || len(dg.Summary) == 0 {
		return dg, nil, err
	}
	var s summarize.Structured
	if err := json.Unmarshal(dg.Summary, &s); err != nil {
		r.log.Warn("the lead's previous summary is unreadable: building it afresh", "lead_id", leadID, "err", err)
		return dg, nil, nil
	}
	return dg, &s, nil
}

// labelled returns the chats as the prompt names them.
func labelled(chats []chatFetch, view func(chatFetch) (summarize.Chat, bool)) []summarize.Chat {
	var out []summarize.Chat
	for i, c := range chats {
		ch, ok := view(c)
		if !ok {
			continue
		}
		if len(chats) > 1 {
			ch.Label = fmt.Sprintf("chat %d", i+1)
			if c.ref.Origin != "" {
				ch.Label = fmt.Sprintf("chat %d, %s", i+1, c.ref.Origin)
			}
		}
		out = append(out, ch)
	}
	return out
}

// input decides between a rolling update and a full build. A rolling
// update needs a previous summary, fewer than RebuildEvery updates since
// the last full build, and every chat either new or read from its
// watermark; it shows only what is new (the first Head and last Tail
// messages of it).
func (r *run) input(w *leadWork, dg *store.Digest, prev *summarize.Structured) (summarize.Input, bool) {
	full := summarize.Input{Chats: labelled(w.chats, func(c chatFetch) (summarize.Chat, bool) { return c.chat, true })}
	if prev == nil || r.req.Force || dg.Updates >= r.o.RebuildEvery {
		return full, false
	}
	for _, c := range w.chats {
		if _, known := w.prev[c.ref.ID]; known && !c.found {
			return full, false
		}
	}
	chats := labelled(w.chats, func(c chatFetch) (summarize.Chat, bool) {
		if _, known := w.prev[c.ref.ID]; !known {
			return c.chat, true
		}
		if len(c.fresh) == 0 {
			return summarize.Chat{}, false
		}
		return summarize.NewChat("", c.fresh, r.o.Head, r.o.Tail), true
	})
	if len(chats) == 0 {
		return full, false
	}
	return summarize.Input{Chats: chats, Previous: prev, PreviousAt: dg.MadeAt}, true
}

// fieldValue returns the lead's value of a custom field as the listing
// gave it.
func fieldValue(lead *kommo.Lead, fieldID int64) (string, bool) {
	for _, f := range lead.CustomFieldsValues {
		if f.FieldID == fieldID && len(f.Values) > 0 {
			if s, ok := f.Values[0].Value.(string); ok {
				return s, true
			}
			return fmt.Sprint(f.Values[0].Value), true
		}
	}
	return "", false
}

// humanEdited reports whether a person changed the lead's summary field
// since we last wrote it: the value the listing brought (no extra request)
// is neither empty, nor the text whose hash we stored, nor part of the
// lead's latest note (a field written before hashes were kept).
func (r *run) humanEdited(ctx context.Context, lead *kommo.Lead, dg *store.Digest) bool {
	if r.o.FieldID == 0 || !r.o.KeepHumanField {
		return false
	}
	cur, ok := fieldValue(lead, r.o.FieldID)
	cur = strings.TrimSpace(cur)
	if !ok || cur == "" {
		return false
	}
	if dg != nil && dg.FieldHash != "" && store.FieldHash(cur) == dg.FieldHash {
		return false
	}
	sums, err := r.o.DB.Summaries(ctx, lead.ID, 1)
	if err == nil && len(sums) > 0 && strings.Contains(sums[0].Text, strings.TrimSuffix(cur, "…")) {
		return false
	}
	return true
}

// budget tracks what the run spent and reserved, and whether a cap was hit.
type budget struct {
	mu       sync.Mutex
	spent    float64 // this run's calls, as the server counted them
	reserved float64 // estimates of calls in flight
	out      string  // why the budget is spent; "" while it is not
}

// reserve admits a call estimated at est USD, or says why not. Once a cap
// is hit every later call is refused: the rest of the leads wait for the
// next run.
func (r *run) reserve(ctx context.Context, est float64) (bool, error) {
	b := &r.budget
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.out != "" {
		return false, nil
	}
	if m := r.o.MaxUSDPerRun; m > 0 && b.spent+b.reserved+est > m {
		b.out = fmt.Sprintf("budget.max_usd_per_run $%.4f reached ($%.4f spent, the next call is estimated at $%.4f): the rest of the leads are left for the next run", m, b.spent, est)
	} else if m := r.o.MaxUSDPerDay; m > 0 {
		day, err := r.o.DB.DaySpendUSD(ctx, r.o.Now())
		if err != nil {
			return false, storeErr(err)
		}
		// A dry run records nothing, so its own calls count here.
		if r.req.DryRun {
			day += b.spent
		}
		if day+b.reserved+est > m {
			b.out = fmt.Sprintf("budget.max_usd_per_day $%.4f reached ($%.4f spent today, UTC; the next call is estimated at $%.4f): the rest of the leads are left for the next run", m, day, est)
		}
	}
	if b.out != "" {
		r.log.Warn("LLM budget reached", "why", b.out)
		r.count(func(rep *Report) { rep.BudgetWarning = b.out })
		return false, nil
	}
	b.reserved += est
	return true, nil
}

// spend settles a reservation with what the calls cost, and records it in
// the store's ledger (not in a dry run).
func (r *run) spend(ctx context.Context, est float64, res *digest.Result) {
	usd := 0.0
	if res != nil {
		usd = res.CostUSD(r.o.digestOptions())
	}
	r.budget.mu.Lock()
	r.budget.reserved -= est
	r.budget.spent += usd
	r.budget.mu.Unlock()
	if r.req.DryRun || res == nil || res.Calls == 0 {
		return
	}
	if err := r.o.DB.AddSpend(context.WithoutCancel(ctx), r.o.Now(), usd, res.Calls, res.Usage.PromptTokens, res.Usage.CompletionTokens); err != nil {
		r.log.Error("could not record the LLM cost in the ledger", "err", err)
	}
}
