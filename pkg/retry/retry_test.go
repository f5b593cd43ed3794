package retry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/retry"
)

type statusErr struct{ code int }

func (e *statusErr) Error() string { return "status" }

var fast = retry.Policy{Initial: time.Millisecond, Max: 2 * time.Millisecond, Multiplier: 2, Tries: 4}

func TestRetriesUntilSuccess(t *testing.T) {
	calls, notified := 0, 0
	got, err := retry.Do(context.Background(), fast, func() (int, error) {
		calls++
		if calls < 3 {
			return 0, &statusErr{503}
		}
		return 42, nil
	}, func(error, time.Duration) { notified++ })
	if err != nil || got != 42 || calls != 3 || notified != 2 {
		t.Fatalf("got %d, %v after %d calls and %d notices; want 42, nil, 3, 2", got, err, calls, notified)
	}
}

func TestPermanentStopsAndKeepsTheTypedError(t *testing.T) {
	calls := 0
	_, err := retry.Do(context.Background(), fast, func() (int, error) {
		calls++
		return 0, retry.Permanent(&statusErr{400})
	}, nil)
	var se *statusErr
	if calls != 1 || !errors.As(err, &se) || se.code != 400 {
		t.Fatalf("%d calls, err %v; want 1 call and the typed 400", calls, err)
	}
}

func TestTriesRunOutWithTheLastError(t *testing.T) {
	calls := 0
	_, err := retry.Do(context.Background(), fast, func() (int, error) {
		calls++
		return 0, &statusErr{500 + calls}
	}, nil)
	var se *statusErr
	if calls != 4 || !errors.As(err, &se) || se.code != 504 {
		t.Fatalf("%d calls, err %v; want 4 calls and the last error (504)", calls, err)
	}
}

func TestContextEndsTheWait(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	slow := retry.Policy{Initial: time.Hour, Tries: 3}
	calls := 0
	_, err := retry.Do(ctx, slow, func() (int, error) {
		calls++
		cancel()
		return 0, &statusErr{503}
	}, nil)
	if calls != 1 || !errors.Is(err, context.Canceled) {
		t.Fatalf("%d calls, err %v; want 1 call and context.Canceled", calls, err)
	}
}

func TestAfterOverridesTheWait(t *testing.T) {
	var waits []time.Duration
	calls := 0
	_, _ = retry.Do(context.Background(), fast, func() (int, error) {
		calls++
		if calls == 1 {
			return 0, retry.After(7*time.Millisecond, &statusErr{429})
		}
		return 1, nil
	}, func(_ error, d time.Duration) { waits = append(waits, d) })
	if len(waits) != 1 || waits[0] != 7*time.Millisecond {
		t.Fatalf("waits %v, want [7ms]", waits)
	}
}
