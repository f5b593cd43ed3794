//go:build unix

package store

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestLockDeadHolderOnThisHost: a process that holds the lock is killed
// with SIGKILL, so it never releases it; its heartbeat is fresh, but its pid
// is gone, and the next run takes the lock over.
func TestLockDeadHolderOnThisHost(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	db := openTest(t, path)

	cmd := helperCommand(t, "hold-lock", path, "")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		s.Scan()
		line <- s.Text()
	}()
	select {
	case l := <-line:
		if l != "LOCKED" {
			t.Fatalf("child said %q, want LOCKED", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the child did not take the lock")
	}

	// Alive: the lock is the child's, however old the heartbeat may get.
	err = db.AcquireLock(ctx, LockHolder{RunID: "parent-run"}, time.Hour)
	var le *LockedError
	host, _ := os.Hostname()
	if !errors.As(err, &le) || le.Holder.RunID != "child-run" || le.Holder.PID != cmd.Process.Pid || le.Holder.Host != host {
		t.Fatalf("AcquireLock while the child lives = %v, want *LockedError naming the child (pid %d)", err, cmd.Process.Pid)
	}

	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no cleanup runs
		t.Fatal(err)
	}
	cmd.Wait() // reap it: a zombie still answers kill(pid, 0)

	if err := db.AcquireLock(ctx, LockHolder{RunID: "parent-run"}, time.Hour); err != nil {
		t.Fatalf("AcquireLock after the holder died = %v, want a takeover", err)
	}
	if err := db.Heartbeat(ctx, "parent-run"); err != nil {
		t.Fatalf("Heartbeat after the takeover: %v", err)
	}
}

func TestProcessAlive(t *testing.T) {
	if !processAlive(os.Getpid()) {
		t.Fatal("this process counts as dead")
	}
	// pid 1 exists and usually belongs to another user (EPERM): alive.
	if !processAlive(1) {
		t.Fatal("pid 1 counts as dead")
	}
}
