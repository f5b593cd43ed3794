package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/sweep"
)

// printReport writes the run report on stdout: one JSON object, or text for
// a person.
func printReport(w io.Writer, rep *sweep.Report, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	title := "Sweep"
	if rep.Command == "summarize" {
		title = "Summarize"
	}
	state := "finished"
	if rep.Interrupted {
		state = "interrupted"
	}
	dry := ""
	if rep.DryRun {
		dry = " (dry run: nothing written)"
	}
	fmt.Fprintf(w, "%s %s %s in %s%s\n", title, rep.RunID, state, time.Duration(rep.DurationMS)*time.Millisecond, dry)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "  %s\t%v\n", k, v) }
	switch rep.Mode {
	case "full":
		row("mode", "full pass (every active lead)")
	case "changes":
		row("mode", fmt.Sprintf("changes (%d events read)", rep.EventsRead))
	}
	row("leads scanned", rep.LeadsScanned)
	row("conversations checked", rep.ConversationsChecked)
	row("summarized", rep.Summarized)
	row("skipped, unchanged", rep.SkippedUnchanged)
	row("skipped, no chats", rep.SkippedNoChats)
	if rep.SkippedNoText > 0 {
		row("skipped, only media", rep.SkippedNoText)
	}
	if rep.SkippedBusy > 0 {
		row("skipped, another run had it", rep.SkippedBusy)
	}
	if rep.SkippedBudget > 0 {
		row("skipped, budget reached", rep.SkippedBudget)
	}
	row("failed", rep.Failed)
	if n := len(rep.FieldKeptHuman); n > 0 {
		row("field left alone (edited by a person)", fmt.Sprintf("%d: leads %s", n, joinIDs(rep.FieldKeptHuman)))
	}
	if rep.RollingUpdates > 0 {
		row("rolling updates", rep.RollingUpdates)
	}
	if rep.SchemaRetries > 0 || rep.PlainFallbacks > 0 {
		row("schema retries / plain-text fallbacks", fmt.Sprintf("%d / %d", rep.SchemaRetries, rep.PlainFallbacks))
	}
	if rep.UnverifiedFacts > 0 {
		row("unverified facts (note only)", rep.UnverifiedFacts)
	}
	if rep.Recovered > 0 {
		row("settled from an earlier run", rep.Recovered)
	}
	row("LLM calls", rep.LLMCalls)
	row("tokens", fmt.Sprintf("%d prompt + %d completion", rep.PromptTokens, rep.CompletionTokens))
	row("estimated cost", fmt.Sprintf("$%.4f (at most $%.4f by the pre-call estimates)", rep.EstimatedCostUSD, rep.PlannedCostUSD))
	if rep.PeakRSSMiB > 0 {
		row("peak memory", fmt.Sprintf("%.1f MiB", rep.PeakRSSMiB))
	}
	if s := rep.SlowestStep; s != nil {
		lead := ""
		if s.LeadID != 0 {
			lead = fmt.Sprintf(" (lead %d)", s.LeadID)
		}
		row("slowest step", fmt.Sprintf("%s%s %s", s.Name, lead, time.Duration(s.MS)*time.Millisecond))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if rep.FeedError != "" {
		fmt.Fprintf(w, "  the events could not all be read; the next sweep reads them again: %s\n", rep.FeedError)
	}
	if rep.BudgetWarning != "" {
		fmt.Fprintf(w, "  warning: %s\n", rep.BudgetWarning)
	}
	for _, f := range rep.Failures {
		fmt.Fprintf(w, "  failed: lead %d: %s\n", f.LeadID, f.Error)
	}
	if rep.Unreadable > 0 {
		fmt.Fprintf(w, "\n%s contacts but no chat any source can read. WhatsApp, Telegram and Instagram\n"+
			"chats of other integrations reach kommo-summarizer only through Kommo's webhooks: run\n"+
			"'kommo-summarizer webhooks install' and keep 'kommo-summarizer serve' running, and their\n"+
			"messages reach the message log from then on.\n", plural(rep.Unreadable, "lead has", "leads have"))
	}
	for _, l := range rep.Leads {
		if l.Summary == "" {
			continue
		}
		fmt.Fprintf(w, "\nLead %d (%s):\n%s\n", l.LeadID, l.Outcome, indent(l.Summary))
	}
	return nil
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n")
}

func joinIDs(ids []int64) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprint(id)
	}
	return strings.Join(parts, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
