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
	cmd.AddCommand(login, refresh, status)
	return cmd
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
