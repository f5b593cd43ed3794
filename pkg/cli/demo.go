package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/config"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommotest"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/serve"
)

type demoOptions struct {
	IO     IO
	Global *globalOptions
	Leads  int
	JSON   bool
}

func newDemoCmd(io IO, g *globalOptions) *cobra.Command {
	opts := &demoOptions{IO: io, Global: g}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a sweep against built-in fakes of Kommo and the LLM",
		Long: `Start fakes of Kommo (REST API, OAuth, Chats API) and of an OpenAI-compatible LLM on
127.0.0.1, log in with an OAuth code, run a sweep, and print what landed on each deal card.
The fakes are strict like the real services (signatures, limits, 7 requests per second).
With OPENAI_API_KEY set, the summaries come from the real model (llm.model on OpenAI).
Nothing outside a temporary directory is written.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Leads < 1 || opts.Leads > 5000 {
				return usagef("--leads must be between 1 and 5000, not %d", opts.Leads)
			}
			return demoRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().IntVar(&opts.Leads, "leads", 12, "how many leads the fake account has")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the sweep report as JSON")
	return cmd
}

func demoRun(ctx context.Context, opts *demoOptions) error {
	srv, err := kommotest.Start(kommotest.Options{Seed: 1, Leads: opts.Leads, NativeLeads: min(2, opts.Leads/3)})
	if err != nil {
		return fmt.Errorf("start the fakes: %w", err)
	}
	defer srv.Close()
	dir, err := os.MkdirTemp("", "kommo-summarizer-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	fo := srv.Options()
	cfg := config.Default()
	cfg.Kommo.BaseURL = srv.KommoURL
	cfg.Kommo.ClientID, cfg.Kommo.ClientSecret, cfg.Kommo.RedirectURI = fo.ClientID, fo.ClientSecret, fo.RedirectURI
	cfg.Kommo.SummaryFieldID = fo.SummaryFieldID
	cfg.Chats.BaseURL, cfg.Chats.ChannelID, cfg.Chats.ChannelSecret = srv.ChatsURL, fo.ChannelID, fo.ChannelSecret
	cfg.LLM.BaseURL, cfg.LLM.APIKey = srv.LLMURL, fo.LLMAPIKey
	realLLM := false
	for _, kv := range opts.IO.Environ {
		if key, ok := strings.CutPrefix(kv, "OPENAI_API_KEY="); ok && key != "" {
			cfg.LLM.BaseURL, cfg.LLM.APIKey, realLLM = config.Default().LLM.BaseURL, key, true
		}
	}
	cfg.Store.Path = filepath.Join(dir, "demo.db")
	cfg.Log.Level = "warn"
	if opts.Global.LogLevel != "" {
		cfg.Log.Level = opts.Global.LogLevel
	}
	if err := cfg.Validate(config.NeedKommo | config.NeedOAuthApp | config.NeedChats | config.NeedLLM | config.NeedStore); err != nil {
		return err
	}

	out := opts.IO.Out
	llmName := "the fake LLM"
	if realLLM {
		llmName = cfg.LLM.Model + " (OPENAI_API_KEY is set)"
	}
	fmt.Fprintf(out, "Demo: a fake Kommo account with %d leads at %s, summaries from %s.\n\n", opts.Leads, srv.KommoURL, llmName)

	a, err := build(ctx, opts.IO, &cfg, config.NeedKommo|config.NeedOAuthApp)
	if err != nil {
		return err
	}
	defer a.Close()
	if _, err := a.tokens.Login(ctx, srv.AuthCode()); err != nil {
		return err
	}
	if err := a.buildChats(ctx); err != nil {
		return err
	}
	if err := a.buildLLM(); err != nil {
		return err
	}
	if err := demoWebhooks(ctx, out, a, srv); err != nil {
		return err
	}
	so := &sweepOptions{IO: opts.IO, Global: opts.Global, Command: "sweep", JSON: opts.JSON}
	if err := runSweep(ctx, a, so); err != nil {
		return err
	}

	fmt.Fprintln(out, "\nWhat landed on the deal cards:")
	for _, l := range srv.Leads() {
		notes := srv.Notes(l.ID)
		field, ok := srv.FieldValue(l.ID, fo.SummaryFieldID)
		if len(notes) == 0 && !ok {
			continue
		}
		via := "Chats API"
		if len(l.ChatIDs) > 0 && srv.ChatOrigin(l.ChatIDs[0]) != "" {
			via = srv.ChatOrigin(l.ChatIDs[0]) + " chat from the message log (webhooks)"
		}
		fmt.Fprintf(out, "\n── Lead %d «%s» (%s): %d note(s); field %d:\n%s\n", l.ID, l.Name, via, len(notes), fo.SummaryFieldID, indent(field))
	}

	// A second sweep shows the watermarks at work: nothing new, nothing spent.
	rep2 := *so
	rep2.JSON = false
	fmt.Fprintln(out, "\nA second sweep right away (nothing new in any chat):")
	return runSweep(ctx, a, &rep2)
}

// demoWebhooks runs serve's webhook endpoint in this process, registers it
// with the fake Kommo as `webhooks install` would, and lets the fake deliver
// its WhatsApp and Telegram chats, which the Chats API cannot read, into the
// message log.
func demoWebhooks(ctx context.Context, out io.Writer, a *app, srv *kommotest.Server) error {
	native := srv.NativeLeads()
	if len(native) == 0 {
		return nil
	}
	acc, err := a.kommo.Account(ctx)
	if err != nil {
		return err
	}
	const secret = "demo-webhook-secret-0001"
	hs, err := serve.New(serve.Options{DB: a.db, AccountID: acc.ID, WebhookSecret: secret, Logger: a.log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- hs.Serve(sctx, ln) }()
	defer func() { stop(); <-done }()
	dest := "http://" + ln.Addr().String() + "/webhooks/kommo/" + secret + "/"
	if err := srv.RegisterWebhook(dest, webhookEvents...); err != nil {
		return err
	}
	for _, l := range native {
		srv.ReplayNative(l.ID)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := srv.WaitWebhooks(wctx); err != nil {
		return fmt.Errorf("the fake's webhooks: %w", err)
	}
	fmt.Fprintf(out, "%d leads chat on WhatsApp or Telegram through other integrations: the Chats API cannot read them,\n"+
		"so the fake Kommo delivered their messages to serve's webhook (%d deliveries) and the sweep reads them from the log.\n\n",
		len(native), srv.Stats().WebhookDeliveries)
	return nil
}
