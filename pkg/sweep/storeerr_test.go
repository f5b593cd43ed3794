package sweep_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/sweep"
)

// A store error that stops a run names the store once: pkg/store's messages
// already start with "store: " (a full disk read "store: store: commit to
// ..."). A run id that is already recorded makes StartRun fail the same way,
// after the lock and before any call to Kommo.
func TestStoreErrorPrefixedOnce(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.StartRun(ctx, store.Run{ID: "run-1", Command: "sweep"}); err != nil {
		t.Fatal(err)
	}
	_, err = sweep.Run(ctx, sweep.Options{DB: db}, sweep.Request{RunID: "run-1"})
	if err == nil {
		t.Fatal("Run with a recorded run id: no error")
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "store: start run run-1: ") || strings.Contains(msg, "store: store:") {
		t.Errorf("error = %q, want one \"store: \" prefix", msg)
	}
	if !sweep.Fatal(err) {
		t.Errorf("Fatal(%v) = false: a store error stops the run", err)
	}
}
