package auth_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/auth"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommo"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommotest"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
)

func setup(t *testing.T) (*kommotest.Server, *auth.Source, *kommo.Client) {
	t.Helper()
	srv := kommotest.StartT(t, kommotest.Options{RESTRateLimit: -1, ChatsRateLimit: -1})
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	o := srv.Options()
	src := &auth.Source{DB: db, App: kommo.OAuthApp{BaseURL: srv.KommoURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret, RedirectURI: o.RedirectURI}}
	c, err := kommo.New(kommo.Options{BaseURL: srv.KommoURL, Tokens: src})
	if err != nil {
		t.Fatal(err)
	}
	return srv, src, c
}

func TestLoginStoresThePairAndCallsWork(t *testing.T) {
	srv, src, c := setup(t)
	ctx := context.Background()
	if _, err := c.Account(ctx); err == nil {
		t.Fatal("a call without a stored token succeeded")
	} else if ae := (*kommo.AuthError)(nil); !errors.As(err, &ae) {
		t.Fatalf("without a token: %v, want an AuthError", err)
	}
	tok, err := src.Login(ctx, srv.AuthCode())
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" || time.Until(tok.ExpiresAt) < 23*time.Hour {
		t.Fatalf("stored pair %+v", tok)
	}
	if _, err := c.Account(ctx); err != nil {
		t.Fatalf("after login: %v", err)
	}
}

// A 401 (the access token died early) refreshes once and the call goes
// through; the rotated pair is what the store holds.
func TestRejectedTokenIsRefreshedOnce(t *testing.T) {
	srv, src, c := setup(t)
	ctx := context.Background()
	first, err := src.Login(ctx, srv.AuthCode())
	if err != nil {
		t.Fatal(err)
	}
	srv.ExpireAccessTokens()
	before := srv.Stats().OAuthRequests
	if _, err := c.Account(ctx); err != nil {
		t.Fatalf("after the token expired: %v", err)
	}
	if n := srv.Stats().OAuthRequests - before; n != 1 {
		t.Errorf("%d token requests, want 1 refresh", n)
	}
	stored, err := src.DB.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stored.RefreshToken == first.RefreshToken || stored.AccessToken == first.AccessToken {
		t.Error("the store still holds the old pair after a refresh")
	}
}

// Many goroutines hit the same dead token at once: one refresh, not one
// each (the second would burn the single-use refresh token).
func TestConcurrentRefreshesSpendOneRefreshToken(t *testing.T) {
	srv, src, c := setup(t)
	ctx := context.Background()
	if _, err := src.Login(ctx, srv.AuthCode()); err != nil {
		t.Fatal(err)
	}
	srv.ExpireAccessTokens()
	before := srv.Stats().OAuthRequests
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			if _, err := c.Account(ctx); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a concurrent call failed: %v", err)
	}
	if n := srv.Stats().OAuthRequests - before; n != 1 {
		t.Errorf("%d token requests for 8 concurrent calls, want 1", n)
	}
}

// An expired token is refreshed before the call, not after a 401.
func TestExpiredTokenRefreshedBeforeUse(t *testing.T) {
	srv, src, c := setup(t)
	ctx := context.Background()
	if _, err := src.Login(ctx, srv.AuthCode()); err != nil {
		t.Fatal(err)
	}
	src.Now = func() time.Time { return time.Now().Add(25 * time.Hour) }
	before := srv.Stats()
	if _, err := c.Account(ctx); err != nil {
		t.Fatal(err)
	}
	after := srv.Stats()
	if after.OAuthRequests-before.OAuthRequests != 1 || after.RESTRequests-before.RESTRequests != 1 {
		t.Errorf("token requests %d, REST requests %d; want 1 refresh and 1 call with no 401",
			after.OAuthRequests-before.OAuthRequests, after.RESTRequests-before.RESTRequests)
	}
}

func TestRevokedRefreshTokenIsAnAuthErrorAndKeepsThePair(t *testing.T) {
	srv, src, c := setup(t)
	ctx := context.Background()
	first, err := src.Login(ctx, srv.AuthCode())
	if err != nil {
		t.Fatal(err)
	}
	srv.RevokeRefreshTokens()
	srv.ExpireAccessTokens()
	_, err = c.Account(ctx)
	var ae *kommo.AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want an AuthError", err)
	}
	stored, _ := src.DB.Token(ctx)
	if stored.RefreshToken != first.RefreshToken {
		t.Error("a failed refresh changed the stored pair")
	}
}

func TestSeedOnlyWhenTheStoreIsEmpty(t *testing.T) {
	_, src, _ := setup(t)
	ctx := context.Background()
	if err := src.Seed(ctx, "a1", "r1"); err != nil {
		t.Fatal(err)
	}
	if err := src.Seed(ctx, "a2", "r2"); err != nil {
		t.Fatal(err)
	}
	tok, err := src.DB.Token(ctx)
	if err != nil || tok.AccessToken != "a1" || tok.RefreshToken != "r1" {
		t.Fatalf("stored %+v, %v; want the first seed (the store wins once it holds a pair)", tok, err)
	}
}
