package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/config"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommo"
)

// webhookEvents are the account webhook events serve needs: incoming and
// outgoing chat messages (add_outgoing_message exists only through the API),
// and the talk events that tell a chat was closed (kommo-webhooks.md §1.2).
var webhookEvents = []string{"add_message", "add_outgoing_message", "add_talk", "update_talk"}

// webhookPath is where serve takes Kommo's webhooks; the secret follows it.
const webhookPath = "/webhooks/kommo/"

type webhooksOptions struct {
	IO     IO
	Global *globalOptions
	Action string // install, status or remove
	URL    string // overrides serve.public_url
}

func newWebhooksCmd(io IO, g *globalOptions, runF func(context.Context, *webhooksOptions) error) *cobra.Command {
	opts := &webhooksOptions{IO: io, Global: g}
	if runF == nil {
		runF = webhooksRun
	}
	cmd := &cobra.Command{
		Use:   "webhooks",
		Short: "Install, check or remove the Kommo account webhook that feeds serve",
		Long: `Kommo's account webhook sends serve every chat message of the account (WhatsApp, Telegram,
Instagram and the other channels whose history the Chats API cannot read) from the moment it is
installed: there is no backfill. The destination is {serve.public_url}/webhooks/kommo/{serve.webhook_secret}/;
--url replaces serve.public_url. Managing webhooks needs an administrator's token and, on Kommo,
the Advanced plan or higher.`,
		Args: noArgs,
	}
	cmd.PersistentFlags().StringVar(&opts.URL, "url", "", "the address Kommo reaches serve at (default: serve.public_url)")
	sub := func(action, short string) *cobra.Command {
		return &cobra.Command{
			Use:   action,
			Short: short,
			Args:  noArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				opts.Action = action
				return runF(c.Context(), opts)
			},
		}
	}
	cmd.AddCommand(
		sub("install", "Subscribe serve to "+strings.Join(webhookEvents, ", ")+", keeping the hook's other events"),
		sub("status", "Show whether the webhook is installed, its events, whether Kommo disabled it, and the last delivery"),
		sub("remove", "Delete the webhook"),
	)
	return cmd
}

func webhooksRun(ctx context.Context, opts *webhooksOptions) error {
	cfg, err := loadConfig(opts.IO, opts.Global, config.NeedKommo|config.NeedServe)
	if err != nil {
		return err
	}
	dest, err := webhookDestination(opts.URL, cfg.Serve.PublicURL, cfg.Serve.WebhookSecret)
	if err != nil {
		return err
	}
	a, err := build(ctx, opts.IO, cfg, config.NeedKommo)
	if err != nil {
		return err
	}
	defer a.Close()
	shown := maskDestination(dest, cfg.Serve.WebhookSecret)
	switch opts.Action {
	case "install":
		return webhooksInstall(ctx, opts, a, dest, shown)
	case "status":
		return webhooksStatus(ctx, opts, a, dest, shown)
	case "remove":
		return webhooksRemove(ctx, opts, a, dest, shown)
	}
	return usagef("webhooks: unknown action %q", opts.Action)
}

// webhookDestination builds the hook's URL. Kommo reportedly refuses a URL
// without a trailing slash ("Invalid URL"), so it always ends with one.
func webhookDestination(flagURL, publicURL, secret string) (string, error) {
	base, key := flagURL, "--url"
	if base == "" {
		base, key = publicURL, "serve.public_url"
	}
	if base == "" {
		return "", &config.Error{Key: "serve.public_url", Problem: "required: the https address Kommo reaches serve at (or pass --url)"}
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		problem := "must be an absolute http(s) URL without query, like https://bot.example.com"
		if key == "--url" {
			return "", usagef("--url: %s", problem)
		}
		return "", &config.Error{Key: key, Problem: problem}
	}
	return strings.TrimRight(base, "/") + webhookPath + secret + "/", nil
}

// maskDestination hides all but the first 4 characters of the secret.
func maskDestination(dest, secret string) string {
	shown := secret
	if len(shown) > 4 {
		shown = shown[:4]
	}
	return strings.Replace(dest, webhookPath+secret+"/", webhookPath+shown+"…/", 1)
}

func missingEvents(settings []string) []string {
	var out []string
	for _, e := range webhookEvents {
		if !slices.Contains(settings, e) {
			out = append(out, e)
		}
	}
	return out
}

func findWebhook(hooks []kommo.Webhook, dest string) *kommo.Webhook {
	for i := range hooks {
		if hooks[i].Destination == dest {
			return &hooks[i]
		}
	}
	return nil
}

// webhooksInstall reads the hook, adds the events serve needs to the ones it
// has (a POST replaces the list), saves it and reads it back.
func webhooksInstall(ctx context.Context, opts *webhooksOptions, a *app, dest, shown string) error {
	hooks, err := a.kommo.Webhooks(ctx, dest)
	if err != nil {
		return fmt.Errorf("read the account's webhooks: %w", err)
	}
	out := opts.IO.Out
	old := findWebhook(hooks, dest)
	var settings []string
	if old != nil {
		settings = slices.Clone(old.Settings)
	}
	missing := missingEvents(settings)
	if old != nil && len(missing) == 0 && !old.Disabled {
		fmt.Fprintf(out, "Webhook already installed: %s\nEvents: %s\n", shown, strings.Join(old.Settings, ", "))
		return nil
	}
	settings = append(settings, missing...)
	if _, err := a.kommo.AddWebhook(ctx, dest, settings); err != nil {
		return fmt.Errorf("register the webhook: %w", err)
	}
	hooks, err = a.kommo.Webhooks(ctx, dest)
	if err != nil {
		return fmt.Errorf("read the webhook back: %w", err)
	}
	got := findWebhook(hooks, dest)
	switch {
	case got == nil:
		return fmt.Errorf("kommo accepted the webhook %s but does not list it", shown)
	case got.Disabled:
		return fmt.Errorf("kommo lists the webhook %s as disabled after saving it: enable it in Kommo's settings", shown)
	case len(missingEvents(got.Settings)) > 0:
		return fmt.Errorf("kommo did not keep the events %s on %s", strings.Join(missingEvents(got.Settings), ", "), shown)
	}
	verb := "Webhook installed"
	switch {
	case old != nil && old.Disabled:
		verb = "Webhook enabled again (Kommo had disabled it)"
	case old != nil:
		verb = "Webhook updated"
	}
	fmt.Fprintf(out, "%s: %s\nEvents: %s\n", verb, shown, strings.Join(got.Settings, ", "))
	fmt.Fprintln(out, "Kommo sends the messages from now on; earlier ones are not sent.")
	return nil
}

// maskAnySecret masks the path segment after /webhooks/kommo/ of any URL:
// another kommo-summarizer's hook, or ours under an old secret.
func maskAnySecret(dest string) string {
	i := strings.Index(dest, webhookPath)
	if i < 0 {
		return dest
	}
	rest := dest[i+len(webhookPath):]
	secret, _, _ := strings.Cut(rest, "/")
	return maskDestination(dest, secret)
}

func webhooksStatus(ctx context.Context, opts *webhooksOptions, a *app, dest, shown string) error {
	// All of them, not just ours: a hook left behind under an old secret or
	// address is worth a line.
	hooks, err := a.kommo.Webhooks(ctx, "")
	if err != nil {
		return fmt.Errorf("read the account's webhooks: %w", err)
	}
	out := opts.IO.Out
	last, err := a.db.LastWebhookAt(ctx)
	if err != nil {
		return err
	}
	lastLine := "never"
	if !last.IsZero() {
		lastLine = last.UTC().Format(time.RFC3339) + " (" + time.Since(last).Round(time.Second).String() + " ago)"
	}
	for _, o := range hooks {
		if o.Destination != dest && strings.Contains(o.Destination, webhookPath) {
			fmt.Fprintf(out, "Another serve webhook on the account: %s (events: %s): delete it in Kommo's settings if it is stale\n",
				maskAnySecret(o.Destination), strings.Join(o.Settings, ", "))
		}
	}
	h := findWebhook(hooks, dest)
	if h == nil {
		fmt.Fprintf(out, "Webhook: not installed (%s)\nLast delivery: %s\nTry: kommo-summarizer webhooks install\n", shown, lastLine)
		return nil
	}
	state := "enabled"
	if h.Disabled {
		state = "DISABLED by Kommo after invalid answers: nothing is delivered; run 'kommo-summarizer webhooks install' to enable it"
	}
	fmt.Fprintf(out, "Webhook: %s\nState: %s\nEvents: %s\n", shown, state, strings.Join(h.Settings, ", "))
	if m := missingEvents(h.Settings); len(m) > 0 {
		fmt.Fprintf(out, "Missing events: %s (run 'kommo-summarizer webhooks install')\n", strings.Join(m, ", "))
	}
	fmt.Fprintf(out, "Last delivery: %s\n", lastLine)
	return nil
}

func webhooksRemove(ctx context.Context, opts *webhooksOptions, a *app, dest, shown string) error {
	err := a.kommo.DeleteWebhook(ctx, dest)
	switch {
	case errors.Is(err, kommo.ErrNotFound):
		fmt.Fprintf(opts.IO.Out, "Webhook not installed, nothing to remove: %s\n", shown)
		return nil
	case err != nil:
		return fmt.Errorf("delete the webhook: %w", err)
	}
	fmt.Fprintf(opts.IO.Out, "Webhook removed: %s\n", shown)
	return nil
}
