package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/admin"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/config"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/salesbot"
)

// salesbotService builds the Salesbot widget from the config. The app must
// have the store, the Kommo client and the LLM (config.NeedKommo |
// config.NeedLLM | config.NeedStore).
func (a *app) salesbotService() (*salesbot.Service, error) {
	c := a.cfg
	if c.Kommo.ClientSecret == "" {
		return nil, &config.Error{Key: "kommo.client_secret", Problem: "required for the Salesbot widget: Kommo signs widget_request with it"}
	}
	if a.db == nil || a.kommo == nil || a.llm == nil {
		return nil, fmt.Errorf("salesbot: the store, the Kommo client and the LLM are needed (a bug: build with NeedKommo|NeedLLM|NeedStore)")
	}
	kc := a.kommo
	svc, err := salesbot.New(salesbot.Options{
		DB: a.db, LLM: a.llm, Kommo: kc, ClientSecret: c.Kommo.ClientSecret,
		AccountLookup: func(ctx context.Context) (int64, error) {
			acc, err := kc.Account(ctx)
			if err != nil {
				return 0, err
			}
			return acc.ID, nil
		},
		InstructionsFile: c.Bot.InstructionsFile, HandoffKeywords: c.Bot.HandoffKeywords,
		HandoffQuiet: c.Bot.HandoffQuiet, FallbackText: c.Bot.FallbackText,
		MaxBodyBytes: c.Serve.MaxBodyBytes, Logger: a.log,
	})
	if errors.Is(err, salesbot.ErrInstructionsFile) {
		return nil, &config.Error{Key: "bot.instructions_file", Problem: strings.TrimPrefix(err.Error(), "salesbot: bot.instructions_file: ")}
	}
	if err != nil {
		return nil, err
	}
	return svc, nil
}

type botOptions struct {
	IO      IO
	Global  *globalOptions
	LeadID  int64
	Message string
}

func newBotCmd(io IO, g *globalOptions, runTest, runClear func(context.Context, *botOptions) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bot",
		Short: "Try the Salesbot AI reply, and give a chat back to the bot after a handoff",
		Long: `The Salesbot widget (served by 'serve' at /salesbot/widget_request) answers clients with the LLM
following bot.instructions_file. 'bot test' shows what it would send for a message; 'bot
clear-handoff' ends a lead's handoff to a manager before bot.handoff_quiet runs out.`,
	}
	cmd.AddCommand(newBotTestCmd(io, g, runTest), newBotClearHandoffCmd(io, g, runClear))
	return cmd
}

func newBotTestCmd(io IO, g *globalOptions, runF func(context.Context, *botOptions) error) *cobra.Command {
	opts := &botOptions{IO: io, Global: g}
	cmd := &cobra.Command{
		Use:   `test "MESSAGE" [--lead ID]`,
		Short: "Print the continue call the bot would send for a client's message, without sending it",
		Long: `Build the reply to MESSAGE as the Salesbot widget would (instructions, handoff keywords, and with
--lead the lead's latest summary, recent messages and handoff) and print the body of the
continue call as JSON on stdout. Nothing is sent to Kommo and nothing is stored.`,
		Example: `  kommo-summarizer bot test --config cfg.yaml "How much is delivery?"
  kommo-summarizer bot test --config cfg.yaml --lead 10000001 "Can I talk to a manager?"`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("bot test takes one argument, the client's message in quotes")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.LeadID < 0 {
				return usagef("--lead: a lead id is a positive number, not %d", opts.LeadID)
			}
			opts.Message = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return botTestRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().Int64Var(&opts.LeadID, "lead", 0, "the lead whose summary, messages and handoff the reply sees")
	return cmd
}

func botTestRun(ctx context.Context, opts *botOptions) error {
	cfg, err := loadConfig(opts.IO, opts.Global, config.NeedKommo|config.NeedLLM|config.NeedStore)
	if err != nil {
		return err
	}
	a, err := build(ctx, opts.IO, cfg, config.NeedKommo|config.NeedLLM|config.NeedStore)
	if err != nil {
		return err
	}
	defer a.Close()
	svc, err := a.salesbotService()
	if err != nil {
		return err
	}
	body, err := svc.Test(ctx, opts.LeadID, opts.Message)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(opts.IO.Out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(body)
}

func newBotClearHandoffCmd(io IO, g *globalOptions, runF func(context.Context, *botOptions) error) *cobra.Command {
	opts := &botOptions{IO: io, Global: g}
	cmd := &cobra.Command{
		Use:   "clear-handoff --lead ID",
		Short: "Let the bot answer a lead again after it was handed to a manager",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.LeadID <= 0 {
				return usagef("--lead: a lead id is required")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return botClearHandoffRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().Int64Var(&opts.LeadID, "lead", 0, "the lead's id (required)")
	return cmd
}

func botClearHandoffRun(ctx context.Context, opts *botOptions) error {
	_, db, err := openStore(ctx, opts.IO, opts.Global)
	if err != nil {
		return err
	}
	defer db.Close()
	found, err := db.ClearBotHandoff(ctx, opts.LeadID)
	if err != nil {
		return err
	}
	if found {
		fmt.Fprintf(opts.IO.Out, "Lead %d: handoff cleared, the bot answers it again.\n", opts.LeadID)
	} else {
		fmt.Fprintf(opts.IO.Out, "Lead %d had no handoff: nothing to clear.\n", opts.LeadID)
	}
	return nil
}

// adminHandler builds the admin page (mount it at admin.Prefix, /admin/).
// It returns nil, nil when serve.admin_token is unset: then there is no
// page to mount. svc may be nil (no bot configured): the page then shows
// runs and summaries only.
func (a *app) adminHandler(svc *salesbot.Service) (http.Handler, error) {
	c := a.cfg
	if c.Serve.AdminToken == "" {
		return nil, nil
	}
	o := admin.Options{
		Token: c.Serve.AdminToken, DB: a.db, Logger: a.log,
		SecureCookie: strings.HasPrefix(strings.ToLower(c.Serve.PublicURL), "https://"),
	}
	if svc != nil {
		o.Bot = svc
	}
	h, err := admin.New(o)
	if err != nil {
		return nil, &config.Error{Key: "serve.admin_token", Problem: err.Error()}
	}
	return h, nil
}
