package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/config"
)

type authOptions struct {
	IO     IO
	Global *globalOptions
	Code   string
}

func newAuthCmd(io IO, g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "auth",
		Short: "Manage the Kommo OAuth 2.0 tokens",
		Long: `The token pair lives in the store (store.path). Refresh tokens are single-use: every refresh
is serialised across processes and the new pair is committed before it is used.
With kommo.long_lived_token set, that token is used as is and never refreshed.`,
		Args: noArgs,
	}
	opts := &authOptions{IO: io, Global: g}
	login := &cobra.Command{
		Use:   "login --code CODE",
		Short: "Exchange an authorization code for the first token pair",
		Long:  `Exchange an authorization code (from the integration's settings or the OAuth redirect) for a token pair and store it. Needs kommo.client_id, kommo.client_secret and kommo.redirect_uri.`,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Code == "" {
				return usagef("--code: an authorization code is required")
			}
			return authLogin(cmd.Context(), opts)
		},
	}
	login.Flags().StringVar(&opts.Code, "code", "", "the authorization code (valid 20 minutes, single use)")
	refresh := &cobra.Command{
		Use:   "refresh",
		Short: "Refresh the token pair now",
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return authRefresh(cmd.Context(), opts) },
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the token's expiry and check it with GET /api/v4/account",
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return authStatus(cmd.Context(), opts) },
	}
	connect := &cobra.Command{
		Use:   "connect-channel",
		Short: "Connect the Chats API channel to the account and print its scope_id",
		Long: `Connect the chat channel (chats.channel_id, signed with chats.channel_secret) to the Kommo account:
POST /v2/origin/custom/{channel_id}/connect with the account's amojo_id. Kommo requires it after every
install of the integration, and disabling the integration disconnects the channel: chat history then
fails with "the channel is not connected". Connecting a connected channel changes nothing.
It prints the scope_id the Chats API returns; chats.scope_id must be that value or empty.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return authConnectChannel(cmd.Context(), opts) },
	}
	cmd.AddCommand(login, refresh, status, connect)
	return cmd
}

func authConnectChannel(ctx context.Context, opts *authOptions) error {
	cfg, err := loadConfig(opts.IO, opts.Global, config.NeedKommo|config.NeedChats)
	if err != nil {
		return err
	}
	a, err := build(ctx, opts.IO, cfg, config.NeedKommo|config.NeedChats)
	if err != nil {
		return err
	}
	defer a.Close()
	acc, err := a.kommo.Account(ctx, "amojo_id")
	if err != nil {
		return fmt.Errorf("read the account's amojo_id (GET /api/v4/account?with=amojo_id): %w", err)
	}
	if acc.AmojoID == "" {
		return fmt.Errorf("kommo did not return the account's amojo_id: the channel cannot be connected")
	}
	scope, err := a.amojo.Connect(ctx, cfg.Chats.ChannelID, acc.AmojoID, "kommo-summarizer")
	if err != nil {
		return err
	}
	out := opts.IO.Out
	fmt.Fprintf(out, "Channel %s connected to account %s: scope_id %s\n", cfg.Chats.ChannelID, acc.Subdomain, scope)
	switch derived := cfg.Chats.ChannelID + "_" + acc.AmojoID; {
	case cfg.Chats.ScopeID == scope:
		fmt.Fprintln(out, "chats.scope_id already holds it.")
	case cfg.Chats.ScopeID != "":
		fmt.Fprintf(out, "chats.scope_id is %s: set it to %s (or leave it empty)\n", cfg.Chats.ScopeID, scope)
	case scope == derived:
		fmt.Fprintln(out, "chats.scope_id is empty and derived as channel_id + \"_\" + amojo_id, which is this scope_id: nothing to set.")
	default:
		fmt.Fprintf(out, "Set chats.scope_id: %s (the one derived from channel_id and amojo_id, %s, is not it)\n", scope, derived)
	}
	return nil
}

// authApp builds what an auth command needs. login and refresh need the
// OAuth app, which a long-lived token makes pointless: that is said first.
func authApp(ctx context.Context, opts *authOptions, need config.Need) (*app, error) {
	cfg, err := loadConfig(opts.IO, opts.Global, config.NeedKommo)
	if err != nil {
		return nil, err
	}
	if need&config.NeedOAuthApp != 0 {
		if cfg.Kommo.LongLivedToken != "" {
			return nil, &config.Error{Key: "kommo.long_lived_token", Problem: "is set, so OAuth tokens are not used: a long-lived token is never refreshed; remove it to log in with a code"}
		}
		if err := cfg.Validate(need); err != nil {
			return nil, err
		}
	}
	return build(ctx, opts.IO, cfg, need)
}

func authLogin(ctx context.Context, opts *authOptions) error {
	a, err := authApp(ctx, opts, config.NeedKommo|config.NeedOAuthApp)
	if err != nil {
		return err
	}
	defer a.Close()
	t, err := a.tokens.Login(ctx, opts.Code)
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "Logged in: access token valid until %s, stored in %s\n", t.ExpiresAt.UTC().Format(time.RFC3339), a.cfg.Store.Path)
	return nil
}

func authRefresh(ctx context.Context, opts *authOptions) error {
	a, err := authApp(ctx, opts, config.NeedKommo|config.NeedOAuthApp)
	if err != nil {
		return err
	}
	defer a.Close()
	t, err := a.tokens.ForceRefresh(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "Refreshed: access token valid until %s\n", t.ExpiresAt.UTC().Format(time.RFC3339))
	return nil
}

func authStatus(ctx context.Context, opts *authOptions) error {
	a, err := authApp(ctx, opts, config.NeedKommo)
	if err != nil {
		return err
	}
	defer a.Close()
	out := opts.IO.Out
	if a.tokens == nil {
		fmt.Fprintln(out, "Token: kommo.long_lived_token (never refreshed)")
	} else {
		t, err := a.db.Token(ctx)
		if err != nil {
			return err
		}
		left := time.Until(t.ExpiresAt).Round(time.Minute)
		fmt.Fprintf(out, "Access token: expires %s (%s)\n", t.ExpiresAt.UTC().Format(time.RFC3339), humanLeft(left))
		fmt.Fprintf(out, "Token pair stored: %s (refresh tokens live 3 months and are single-use)\n", t.UpdatedAt.UTC().Format(time.RFC3339))
	}
	acc, err := a.kommo.Account(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Kommo account: %s (id %d, subdomain %s): credentials work\n", acc.Name, acc.ID, acc.Subdomain)
	return nil
}

func humanLeft(d time.Duration) string {
	if d <= 0 {
		return "expired: it is refreshed on the next call"
	}
	return "in " + d.String()
}
