package cli

import (
	"context"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
)

type statusOptions struct {
	IO     IO
	Global *globalOptions
	Runs   int
}

func newStatusCmd(io IO, g *globalOptions) *cobra.Command {
	opts := &statusOptions{IO: io, Global: g}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the last runs and the latest failures from the store",
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return statusRun(cmd.Context(), opts) },
	}
	cmd.Flags().IntVar(&opts.Runs, "runs", 10, "how many runs to show")
	return cmd
}

func statusRun(ctx context.Context, opts *statusOptions) error {
	cfg, db, err := openStore(ctx, opts.IO, opts.Global)
	if err != nil {
		return err
	}
	defer db.Close()
	runs, err := db.Runs(ctx, opts.Runs)
	if err != nil {
		return err
	}
	out := opts.IO.Out
	if len(runs) == 0 {
		fmt.Fprintf(out, "No runs recorded in %s yet.\n", cfg.Store.Path)
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tCOMMAND\tSTARTED\tDURATION\tSTATUS\tEXIT")
	for _, r := range runs {
		dur := "-"
		if !r.FinishedAt.IsZero() {
			dur = r.FinishedAt.Sub(r.StartedAt).Round(time.Millisecond).String()
		}
		exit := strconv.Itoa(r.ExitCode)
		if r.Status == store.RunRunning || r.Status == store.RunKilled {
			exit = "-" // none yet, or never recorded
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Command, r.StartedAt.UTC().Format(time.RFC3339), dur, r.Status, exit)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := printSpend(ctx, out, db); err != nil {
		return err
	}
	fails, err := db.Failures(ctx, 20)
	if err != nil {
		return err
	}
	if len(fails) > 0 {
		fmt.Fprintln(out, "\nLatest failures:")
		for _, f := range fails {
			fmt.Fprintf(out, "  %s run %s lead %d: %s\n", f.At.UTC().Format(time.RFC3339), f.RunID, f.LeadID, f.Error)
		}
	}
	return nil
}
