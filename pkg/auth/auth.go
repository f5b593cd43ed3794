// Package auth keeps the Kommo OAuth token pair in the store and refreshes it
// safely: refresh tokens are single-use, so every refresh runs inside the
// store's write lock and the new pair is committed before anyone uses it.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommo"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
)

// Skew refreshes a token this long before Kommo would reject it, so a
// request started just before expiry does not bounce.
const Skew = 5 * time.Minute

// Source is a kommo.TokenSource backed by the store.
type Source struct {
	DB     *store.DB
	App    kommo.OAuthApp
	Now    func() time.Time
	Logger *slog.Logger
}

func (s *Source) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Source) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Token returns the stored access token, refreshing it first when it is
// about to expire.
func (s *Source) Token(ctx context.Context) (string, error) {
	t, err := s.DB.Token(ctx)
	if err != nil {
		if errors.Is(err, store.ErrNoToken) {
			return "", &kommo.AuthError{Err: err, Hint: "or set kommo.long_lived_token"}
		}
		return "", err
	}
	if s.now().Add(Skew).Before(t.ExpiresAt) {
		return t.AccessToken, nil
	}
	return s.Refresh(ctx, t.AccessToken)
}

// Refresh exchanges the stored refresh token for a new pair. When another
// goroutine or process already replaced the rejected token, the new one is
// returned without a second refresh: that would burn a single-use token.
func (s *Source) Refresh(ctx context.Context, rejected string) (string, error) {
	t, err := s.DB.UpdateToken(ctx, func(cur store.Token, found bool) (store.Token, bool, error) {
		if !found {
			return cur, false, &kommo.AuthError{Err: store.ErrNoToken, Hint: "or set kommo.long_lived_token"}
		}
		if cur.AccessToken != rejected && s.now().Add(Skew).Before(cur.ExpiresAt) {
			return cur, false, nil
		}
		if cur.RefreshToken == "" {
			return cur, false, &kommo.AuthError{Err: errors.New("the stored access token expired and there is no refresh token")}
		}
		next, err := s.refresh(ctx, cur.RefreshToken)
		return next, err == nil, err
	})
	if err != nil {
		return "", err
	}
	return t.AccessToken, nil
}

// ForceRefresh refreshes the pair whatever its expiry (`auth refresh`).
func (s *Source) ForceRefresh(ctx context.Context) (store.Token, error) {
	return s.DB.UpdateToken(ctx, func(cur store.Token, found bool) (store.Token, bool, error) {
		if !found || cur.RefreshToken == "" {
			return cur, false, &kommo.AuthError{Err: store.ErrNoToken, Hint: "or set kommo.long_lived_token"}
		}
		next, err := s.refresh(ctx, cur.RefreshToken)
		return next, err == nil, err
	})
}

// Login exchanges an authorization code for the first pair and stores it.
func (s *Source) Login(ctx context.Context, code string) (store.Token, error) {
	return s.DB.UpdateToken(ctx, func(cur store.Token, found bool) (store.Token, bool, error) {
		resp, err := s.App.Exchange(ctx, code)
		if err != nil {
			return cur, false, err
		}
		return s.pair(resp), true, nil
	})
}

// Seed stores a pair from the config when the store has none yet. Once the
// store holds a pair it wins: the config's refresh token goes stale at the
// first refresh, because Kommo rotates it.
func (s *Source) Seed(ctx context.Context, access, refresh string) error {
	if access == "" && refresh == "" {
		return nil
	}
	_, err := s.DB.UpdateToken(ctx, func(cur store.Token, found bool) (store.Token, bool, error) {
		if found {
			return cur, false, nil
		}
		t := store.Token{AccessToken: access, RefreshToken: refresh, UpdatedAt: s.now()}
		if access != "" {
			// Its real expiry is unknown: use it until Kommo answers 401.
			t.ExpiresAt = s.now().Add(24 * time.Hour)
		}
		s.log().Info("stored the token pair from the config")
		return t, true, nil
	})
	return err
}

func (s *Source) refresh(ctx context.Context, refreshToken string) (store.Token, error) {
	resp, err := s.App.Refresh(ctx, refreshToken)
	if err != nil {
		return store.Token{}, fmt.Errorf("refresh the Kommo token: %w", err)
	}
	s.log().Info("refreshed the Kommo access token", "expires_in_s", resp.ExpiresIn)
	return s.pair(resp), nil
}

func (s *Source) pair(resp *kommo.TokenResponse) store.Token {
	now := s.now()
	return store.Token{
		AccessToken:  resp.AccessToken,
		RefreshToken: resp.RefreshToken,
		ExpiresAt:    now.Add(time.Duration(resp.ExpiresIn) * time.Second),
		UpdatedAt:    now,
	}
}
