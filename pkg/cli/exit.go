package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/amojo"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/config"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommo"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/llm"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/sweep"
)

// Exit codes: part of the interface, listed in --help and README.
const (
	ExitOK          = 0
	ExitError       = 1
	ExitUsage       = 2
	ExitLeadsFailed = 3
	ExitAuth        = 4
	ExitLocked      = 11
	ExitInterrupted = 130
)

const exitCodesHelp = `Exit codes:
  0    done
  1    anything else went wrong (the message says what)
  2    bad usage or config (the message names the flag or key)
  3    some leads failed (the others were done; see the report or 'status')
  4    credentials rejected (Kommo token, Chats API channel secret, LLM key)
  11   another run holds the lock (the message names it), or took this one's over
  130  interrupted by Ctrl-C or SIGTERM (in-flight writes were finished)`

// usageError is a mistake in flags or arguments.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// exitCode maps an error to the process exit code, in one place.
func exitCode(err error) int {
	var ue *usageError
	var ce *config.Error
	var le *store.LockedError
	var fe *sweep.FailedLeadsError
	var ae *kommo.AuthError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue), errors.As(err, &ce):
		return ExitUsage
	case errors.As(err, &le), errors.Is(err, store.ErrLockLost), errors.Is(err, store.ErrNotOwner):
		return ExitLocked
	case errors.Is(err, sweep.ErrInterrupted), errors.Is(err, context.Canceled):
		return ExitInterrupted
	case errors.As(err, &ae), errors.Is(err, amojo.ErrSignature), errors.Is(err, amojo.ErrNotConnected), llm.IsAuth(err):
		return ExitAuth
	case errors.As(err, &fe):
		return ExitLeadsFailed
	default:
		return ExitError
	}
}
