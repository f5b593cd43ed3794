// Package retry runs an operation again after errors its caller calls
// retryable, waiting with exponential backoff and honouring the context.
//
// Which errors are retryable is decided by each API client at its call site
// (see kommo, amojo and llm); this package only does the waiting.
package retry

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v7"
)

// Policy says how long to wait between attempts and how many to make.
type Policy struct {
	// Initial is the first wait; each later wait grows by Multiplier up to Max.
	Initial    time.Duration
	Max        time.Duration
	Multiplier float64
	// Tries is the total number of attempts, the first included.
	Tries uint
}

// Default is a policy for REST calls: 0.5 s, 1 s, 2 s, 4 s, 8 s.
var Default = Policy{Initial: 500 * time.Millisecond, Max: 8 * time.Second, Multiplier: 2, Tries: 6}

// Permanent marks err as not worth another attempt.
func Permanent(err error) error { return backoff.Permanent(err) }

// After asks for the next attempt after d instead of the policy's wait
// (a server's Retry-After).
func After(d time.Duration, err error) error { return backoff.RetryAfter(d, err) }

// Do runs op until it succeeds, returns a Permanent error, runs out of tries,
// or ctx ends. notify, when not nil, is told of each error that will be
// retried and the wait before the next attempt. The error returned is the
// operation's own last error (typed errors stay visible to errors.As), or the
// context's error when ctx ended first.
func Do[T any](ctx context.Context, p Policy, op func() (T, error), notify func(err error, wait time.Duration)) (T, error) {
	b := backoff.NewExponentialBackOff()
	if p.Initial > 0 {
		b.InitialInterval = p.Initial
	}
	if p.Max > 0 {
		b.MaxInterval = p.Max
	}
	if p.Multiplier > 0 {
		b.Multiplier = p.Multiplier
	}
	opts := []backoff.RetryOption{backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0)}
	if p.Tries > 0 {
		opts = append(opts, backoff.WithMaxTries(p.Tries))
	}
	if notify != nil {
		opts = append(opts, backoff.WithNotify(backoff.Notify(notify)))
	}
	res, err := backoff.Retry(ctx, backoff.Operation[T](op), opts...)
	if err == nil {
		return res, nil
	}
	if re := backoff.AsRetryError(err); re != nil {
		if re.LastErr != nil && !errors.Is(re.Cause, context.Canceled) && !errors.Is(re.Cause, context.DeadlineExceeded) {
			return res, re.LastErr
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return res, ctxErr
		}
		if re.LastErr != nil {
			return res, re.LastErr
		}
	}
	return res, err
}
