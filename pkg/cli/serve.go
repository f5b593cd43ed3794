package cli

import (
	"context"
	"fmt"
	"net"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/admin"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/config"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/salesbot"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/serve"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/sweep"
)

type serveOptions struct {
	IO     IO
	Global *globalOptions
}

func newServeCmd(io IO, g *globalOptions, runF func(context.Context, *serveOptions) error) *cobra.Command {
	opts := &serveOptions{IO: io, Global: g}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Take Kommo's webhooks into the message log and summarise chats when they close",
		Long: `Run the HTTP server (serve.listen, behind a reverse proxy with TLS at serve.public_url):

  GET  /healthz                               200 once the server listens and the store is open
  POST /webhooks/kommo/{serve.webhook_secret}  Kommo's account webhooks (register them with
                                              'kommo-summarizer webhooks install')
  POST /salesbot/widget_request               Salesbot's AI reply step (with kommo.client_secret;
                                              'widget pack' builds the widget)
  GET  /admin/                                the operator's page (with serve.admin_token)

Webhook messages of WhatsApp, Telegram and Instagram chats go into the message log, which
'sweep' and 'summarize' read with no API call. When a chat closes, its lead is summarised
serve.close_debounce after its last event, if it has new messages. A cron 'sweep' may run
beside it: each change gets one note. SIGTERM stops accepting, finishes what it holds, exits 0.`,
		Example: `  kommo-summarizer serve --config /etc/kommo-summarizer.yaml`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return serveRun(cmd.Context(), opts)
		},
	}
	return cmd
}

func serveRun(ctx context.Context, opts *serveOptions) error {
	need := config.NeedKommo | config.NeedLLM | config.NeedStore | config.NeedServe
	cfg, err := loadConfig(opts.IO, opts.Global, need)
	if err != nil {
		return err
	}
	if cfg.ChatsEnabled() {
		need |= config.NeedChats
	}
	a, err := build(ctx, opts.IO, cfg, need)
	if err != nil {
		return err
	}
	defer a.Close()
	acc, err := a.kommo.Account(ctx)
	if err != nil {
		return fmt.Errorf("find the account id (GET /api/v4/account): %w", err)
	}
	eo, err := a.engineOptions()
	if err != nil {
		return err
	}
	mounts := map[string]http.Handler{}
	var workers []func(context.Context) error
	// The Salesbot widget needs the client secret that signs its requests;
	// without it serve takes webhooks only.
	var bot *salesbot.Service
	if cfg.Kommo.ClientSecret != "" {
		if bot, err = a.salesbotService(); err != nil {
			return err
		}
		mounts["POST /salesbot/widget_request"] = bot.Handler()
		workers = append(workers, bot.Run)
	} else {
		a.log.Info("the Salesbot widget is off: set kommo.client_secret to serve /salesbot/widget_request")
	}
	adminPage, err := a.adminHandler(bot)
	if err != nil {
		return err
	}
	if adminPage != nil {
		mounts[admin.Prefix] = adminPage
	}
	srv, err := serve.New(serve.Options{
		DB: a.db, AccountID: acc.ID, WebhookSecret: cfg.Serve.WebhookSecret,
		MaxBodyBytes: cfg.Serve.MaxBodyBytes, CloseDebounce: cfg.Serve.CloseDebounce, Retention: cfg.Serve.MessageRetention,
		Engine: sweep.New(eo), Mounts: mounts, Workers: workers, Logger: a.log,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Serve.Listen)
	if err != nil {
		return &config.Error{Key: "serve.listen", Problem: err.Error()}
	}
	return srv.Serve(ctx, ln)
}
