package cli

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/amojo"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/config"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommo"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/llm"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/sweep"
)

// The exit codes are part of the interface: each error kind maps to its
// code, also when wrapped on its way up.
func TestExitCodes(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("context: %w", err) }
	cases := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, ExitOK},
		{"usage", usagef("--limit must be 0 or more"), ExitUsage},
		{"config", wrap(&config.Error{Key: "kommo.base_url", Problem: "required"}), ExitUsage},
		{"lock", wrap(&store.LockedError{Holder: store.LockHolder{RunID: "r", PID: 1}}), ExitLocked},
		{"interrupted", sweep.ErrInterrupted, ExitInterrupted},
		{"kommo credentials", wrap(&kommo.AuthError{Err: errors.New("401")}), ExitAuth},
		{"chats signature", wrap(&amojo.Error{Status: 403}), ExitAuth},
		{"llm key", wrap(&llm.Error{Status: 401}), ExitAuth},
		{"leads failed", &sweep.FailedLeadsError{Failed: 1, Total: 2}, ExitLeadsFailed},
		{"llm 400 is not credentials", &llm.Error{Status: 400}, ExitError},
		{"ip blocked", &kommo.IPBlockedError{Method: "GET"}, ExitError},
		{"other", errors.New("disk full"), ExitError},
		{"canceled", context.Canceled, ExitInterrupted},
	}
	for _, tc := range cases {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("%s: exit %d, want %d", tc.name, got, tc.want)
		}
	}
}
