package cli

import (
	"context"

	"github.com/spf13/cobra"
)

func newSummarizeCmd(io IO, g *globalOptions, runF func(context.Context, *sweepOptions) error) *cobra.Command {
	opts := &sweepOptions{IO: io, Global: g, Command: "summarize"}
	var lead int64
	cmd := &cobra.Command{
		Use:   "summarize --lead ID",
		Short: "Summarise one lead now",
		Long: `Summarise one lead's chats and write the summary on its card, as a sweep would.
Without --force a lead with nothing new since its last summary is skipped.
With --dry-run the summary is printed and nothing is written, in Kommo or the store.`,
		Example: `  kommo-summarizer summarize --config cfg.yaml --lead 10000001
  kommo-summarizer summarize --config cfg.yaml --lead 10000001 --force --dry-run`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if lead <= 0 {
				return usagef("--lead: a lead id is required")
			}
			opts.LeadIDs = []int64{lead}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return sweepRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().Int64Var(&lead, "lead", 0, "the lead's id (required)")
	cmd.Flags().BoolVar(&opts.Force, "force", false, "summarise even when nothing changed since the last summary")
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "print the summary, write nothing in Kommo or the store")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the report as one JSON object")
	return cmd
}
