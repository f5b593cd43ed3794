package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
)

// printSpend writes the cost ledger's last 14 days, for `status`.
func printSpend(ctx context.Context, out io.Writer, db *store.DB) error {
	days, err := db.Spend(ctx, 14)
	if err != nil || len(days) == 0 {
		return err
	}
	fmt.Fprintln(out, "\nLLM spend per day (UTC, at llm.price_*):")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  DAY\tUSD\tCALLS\tPROMPT TOKENS\tCOMPLETION TOKENS")
	for _, d := range days {
		fmt.Fprintf(tw, "  %s\t%.4f\t%d\t%d\t%d\n", d.Day, d.USD, d.Calls, d.PromptTokens, d.CompletionTokens)
	}
	return tw.Flush()
}
