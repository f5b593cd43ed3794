//go:build unix

package store

import (
	"context"
	"os"
	"os/exec"
	"testing"
)

// A run on this host whose process is gone reads as killed at once, before
// any later run takes its lock over; one whose process lives reads running.
// (Neither holds the lock here, so only the process decides.)
func TestRunKilledWhenItsProcessIsGone(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "")
	// A process that has exited and been reaped: its pid is gone.
	child := exec.Command(os.Args[0], "-test.run=^$")
	if err := child.Run(); err != nil {
		t.Fatal(err)
	}
	if err := db.StartRun(ctx, Run{ID: "gone", Command: "sweep", PID: child.Process.Pid}); err != nil {
		t.Fatal(err)
	}
	if err := db.StartRun(ctx, Run{ID: "live", Command: "summarize"}); err != nil { // this process
		t.Fatal(err)
	}
	if got := runStatuses(t, db); got["gone"] != RunKilled || got["live"] != RunRunning {
		t.Fatalf("statuses %v, want gone killed and live running", got)
	}
}
