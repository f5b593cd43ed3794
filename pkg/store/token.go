package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Token is the account's OAuth pair.
type Token struct {
	AccessToken, RefreshToken string
	// ExpiresAt is when the access token stops working.
	ExpiresAt time.Time
	// UpdatedAt is when the pair was saved; the store sets it.
	UpdatedAt time.Time
}

// ErrNoToken means no OAuth pair was ever saved.
var ErrNoToken = errors.New("no OAuth token in the store: run `kommo-summarizer auth login --code CODE`")

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func getToken(ctx context.Context, q queryRower) (Token, bool, error) {
	var t Token
	var exp, upd int64
	err := q.QueryRowContext(ctx, `SELECT access_token, refresh_token, expires_at, updated_at FROM tokens WHERE id = 1`).
		Scan(&t.AccessToken, &t.RefreshToken, &exp, &upd)
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, false, nil
	}
	if err != nil {
		return Token{}, false, fmt.Errorf("store: read the token: %w", err)
	}
	t.ExpiresAt, t.UpdatedAt = fromMS(exp), fromMS(upd)
	return t, true, nil
}

func putToken(ctx context.Context, tx *sql.Tx, t Token, now time.Time) (Token, error) {
	t.ExpiresAt = fromMS(ms64(t.ExpiresAt))
	t.UpdatedAt = fromMS(ms64(now))
	_, err := tx.ExecContext(ctx, `INSERT INTO tokens (id, access_token, refresh_token, expires_at, updated_at)
		VALUES (1, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET access_token = excluded.access_token, refresh_token = excluded.refresh_token,
			expires_at = excluded.expires_at, updated_at = excluded.updated_at`,
		t.AccessToken, t.RefreshToken, ms64(t.ExpiresAt), ms64(t.UpdatedAt))
	if err != nil {
		return Token{}, fmt.Errorf("store: save the token: %w", err)
	}
	return t, nil
}

// Token returns the saved OAuth pair, or ErrNoToken.
func (db *DB) Token(ctx context.Context) (Token, error) {
	t, found, err := getToken(ctx, db.db)
	if err != nil {
		return Token{}, err
	}
	if !found {
		return Token{}, ErrNoToken
	}
	return t, nil
}

// UpdateToken runs fn inside one IMMEDIATE transaction, which holds the
// database's write lock until fn's pair is committed. A refresh token works
// once, so two processes that refresh at the same time must not both send
// the same one: the second waits here, and its fn sees the pair the first
// one saved (and can then skip its own refresh).
//
// fn gets the current pair (found is false when there is none) and returns
// the pair to save, or save=false to keep the current one. UpdateToken
// returns the pair that is saved when it returns; ErrNoToken when there is
// none and fn saved nothing. An error from fn is returned as is and nothing
// is saved.
//
// Other writers, in this process too, wait while fn runs (up to the busy
// timeout, 10 s, then they fail): keep fn to the token request, and never
// write to the store from fn, which would wait for itself. Goroutines of one
// process should still share one refresh (a mutex in the token source);
// this lock is for separate processes.
func (db *DB) UpdateToken(ctx context.Context, fn func(cur Token, found bool) (next Token, save bool, err error)) (Token, error) {
	var out Token
	err := db.write(ctx, func(tx *sql.Tx) error {
		cur, found, err := getToken(ctx, tx)
		if err != nil {
			return err
		}
		next, save, err := fn(cur, found)
		if err != nil {
			return err
		}
		if !save {
			if !found {
				return ErrNoToken
			}
			out = cur
			return nil
		}
		out, err = putToken(ctx, tx, next, db.now())
		return err
	})
	if err != nil {
		return Token{}, err
	}
	return out, nil
}
