//go:build unix

package store

import (
	"errors"
	"syscall"
)

// processAlive reports whether pid exists on this host. Signal 0 checks
// without sending anything; EPERM means it exists under another user. Only
// ESRCH says it is gone, so any doubt keeps the lock with its holder.
func processAlive(pid int) bool {
	return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
