package cli

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/config"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/sweep"
)

// sweepOptions are the flags of `sweep` and `summarize`.
type sweepOptions struct {
	IO      IO
	Global  *globalOptions
	Command string

	JSON    bool
	Limit   int
	LeadIDs []int64
	Force   bool
	DryRun  bool
	RunID   string // set before the clients are built, so their log lines carry it

	reported bool // the report is on stdout
}

func newSweepCmd(io IO, g *globalOptions, runF func(context.Context, *sweepOptions) error) *cobra.Command {
	opts := &sweepOptions{IO: io, Global: g, Command: "sweep"}
	var leadIDs string
	cmd := &cobra.Command{
		Use:   "sweep",
		Short: "Summarise every active lead whose chats have new messages",
		Long: `Walk the account's active leads (not won 142, not lost 143), read each lead's chats, and
summarise the leads whose chats have messages newer than the last summary. A lead with nothing
new costs no LLM call and no write. Each summary lands once: a note on the lead and the
kommo.summary_field_id textarea field. One sweep runs at a time (a lock in the store).

Logs go to stderr (JSON unless stderr is a terminal); the run report goes to stdout.`,
		Example: `  kommo-summarizer sweep --config /etc/kommo-summarizer.yaml
  kommo-summarizer sweep --config cfg.yaml --json --limit 20
  kommo-summarizer sweep --config cfg.yaml --lead-ids 101,102`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Limit < 0 {
				return usagef("--limit must be 0 or more, not %d", opts.Limit)
			}
			ids, err := parseIDs(leadIDs)
			if err != nil {
				return err
			}
			opts.LeadIDs = ids
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return sweepRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the report as one JSON object")
	cmd.Flags().IntVar(&opts.Limit, "limit", 0, "process at most N leads (0 = all)")
	cmd.Flags().StringVar(&leadIDs, "lead-ids", "", "only these leads, comma-separated ids")
	cmd.Flags().BoolVar(&opts.Force, "force", false, "summarise even leads with nothing new")
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "print summaries, write nothing in Kommo or the store")
	return cmd
}

func parseIDs(s string) ([]int64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var ids []int64
	for _, part := range strings.Split(s, ",") {
		id, err := strconv.ParseInt(strings.TrimSpace(part), 10, 64)
		if err != nil || id <= 0 {
			return nil, usagef("--lead-ids: %q is not a lead id", strings.TrimSpace(part))
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func sweepRun(ctx context.Context, opts *sweepOptions) (err error) {
	if opts.JSON {
		// A cron job that parses stdout gets a report also when the run
		// could not start: the error says why.
		defer func() {
			if err != nil && !opts.reported {
				rep := &sweep.Report{RunID: opts.RunID, Command: opts.Command, StartedAt: time.Now().UTC(), DryRun: opts.DryRun, Error: oneLine(err.Error())}
				if perr := printReport(opts.IO.Out, rep, true); perr != nil {
					err = errors.Join(err, perr)
				}
			}
		}()
	}
	need := config.NeedKommo | config.NeedLLM | config.NeedStore
	cfg, err := loadConfig(opts.IO, opts.Global, need)
	if err != nil {
		return err
	}
	if cfg.ChatsEnabled() {
		need |= config.NeedChats
	}
	opts.RunID = sweep.NewRunID(time.Now())
	a, err := build(ctx, opts.IO, cfg, need, "run_id", opts.RunID)
	if err != nil {
		return err
	}
	defer a.Close()
	return runSweep(ctx, a, opts)
}

// runSweep runs the sweep on a built app and prints its report.
func runSweep(ctx context.Context, a *app, opts *sweepOptions) error {
	so, err := a.engineOptions()
	if err != nil {
		return err
	}
	bar := progressbar.NewOptions(-1,
		progressbar.OptionSetWriter(opts.IO.ErrOut),
		progressbar.OptionSetVisibility(opts.IO.IsTTY && !opts.Global.Quiet),
		progressbar.OptionSetDescription("leads"),
		progressbar.OptionShowCount(),
		progressbar.OptionClearOnFinish(),
	)
	so.OnLead = func(sweep.LeadOutcome) { _ = bar.Add(1) }
	req := sweep.Request{
		Command: opts.Command, RunID: opts.RunID, Lock: opts.Command == "sweep",
		LeadIDs: opts.LeadIDs, Limit: opts.Limit, Force: opts.Force, DryRun: opts.DryRun, Single: opts.Command == "summarize",
	}
	rep, runErr := sweep.Run(ctx, so, req)
	_ = bar.Finish()
	if rep != nil {
		rep.PeakRSSMiB = peakRSSMiB()
	}
	if rep != nil && opts.JSON && runErr != nil && rep.Error == "" {
		rep.Error = oneLine(runErr.Error())
	}
	if rep != nil && rep.RunID != "" && (opts.JSON || rep.LeadsScanned > 0 || runErr == nil || rep.Interrupted) {
		if err := printReport(opts.IO.Out, rep, opts.JSON); err != nil {
			return err
		}
		opts.reported = true
	}
	return runErr
}
