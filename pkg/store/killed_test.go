package store

import (
	"context"
	"testing"
	"time"
)

func runStatuses(t *testing.T, db *DB) map[string]string {
	t.Helper()
	runs, err := db.Runs(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range runs {
		out[r.ID] = r.Status
	}
	return out
}

// A run on another host dies holding the lock; when a later run takes the
// lock over, the dead run is recorded as killed, and stays so after the
// later run is done with the lock. Finished runs keep their status.
func TestRunKilledWhenItsLockIsTakenOver(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "")
	clk := newClock(t0)
	db.Now = clk.Now

	if err := db.StartRun(ctx, Run{ID: "done", Command: "sweep"}); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishRun(ctx, "done", "ok", 0, nil); err != nil {
		t.Fatal(err)
	}
	dead := LockHolder{RunID: "dead", Host: "elsewhere", PID: 4242}
	if err := db.AcquireLock(ctx, dead, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := db.StartRun(ctx, Run{ID: "dead", Command: "sweep", Host: "elsewhere", PID: 4242}); err != nil {
		t.Fatal(err)
	}
	if got := runStatuses(t, db); got["dead"] != RunRunning || got["done"] != "ok" {
		t.Fatalf("while it holds the lock: %v", got)
	}

	clk.Add(3 * time.Minute) // no heartbeat: stale
	if err := db.AcquireLock(ctx, LockHolder{RunID: "next"}, 2*time.Minute); err != nil {
		t.Fatalf("takeover: %v", err)
	}
	if err := db.StartRun(ctx, Run{ID: "next", Command: "sweep"}); err != nil {
		t.Fatal(err)
	}
	if got := runStatuses(t, db); got["dead"] != RunKilled || got["next"] != RunRunning || got["done"] != "ok" {
		t.Fatalf("after the takeover: %v", got)
	}
	if err := db.FinishRun(ctx, "next", "ok", 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.ReleaseLock(ctx, "next"); err != nil {
		t.Fatal(err)
	}
	// Nobody holds the lock and the host is not this one: only the record
	// can say it.
	if got := runStatuses(t, db); got["dead"] != RunKilled || got["next"] != "ok" {
		t.Fatalf("after the next run: %v", got)
	}
}

// A run that is only slow and had its lock taken over records how it really
// ended: FinishRun overwrites "killed".
func TestRunTakenOverThenFinished(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "")
	clk := newClock(t0)
	db.Now = clk.Now
	if err := db.AcquireLock(ctx, LockHolder{RunID: "slow", Host: "elsewhere", PID: 7}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := db.StartRun(ctx, Run{ID: "slow", Host: "elsewhere", PID: 7}); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Minute)
	if err := db.AcquireLock(ctx, LockHolder{RunID: "other"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishRun(ctx, "slow", "error", 1, nil); err != nil {
		t.Fatal(err)
	}
	if got := runStatuses(t, db); got["slow"] != "error" {
		t.Fatalf("status %q, want error", got["slow"])
	}
}
