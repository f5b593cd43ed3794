package store

import (
	"context"
	"testing"
	"time"
)

func TestDigestCompletesWithItsSummary(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "")
	if err := db.StartRun(ctx, Run{ID: "run-1", Command: "sweep", StartedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if d, err := db.LeadDigest(ctx, 7); d != nil || err != nil {
		t.Fatalf("no digest yet: %v, %v", d, err)
	}
	add := func(req string, d *Digest) {
		t.Helper()
		v, _ := db.LeadVersion(ctx, 7)
		if err := db.AddPending(ctx, Pending{RequestID: req, LeadID: 7, RunID: "run-1", NoteText: "n", FieldText: "f", BaseVersion: v, Digest: d}); err != nil {
			t.Fatal(err)
		}
		if err := db.MarkNoted(ctx, "run-1", req, 1); err != nil {
			t.Fatal(err)
		}
	}
	add("r1", &Digest{Summary: []byte(`{"a":1}`), MadeAt: t0, FieldHash: FieldHash(" a text\nin two lines \n")})
	if d, _ := db.LeadDigest(ctx, 7); d != nil {
		t.Fatal("a pending digest is not the lead's yet")
	}
	if err := db.Complete(ctx, "run-1", "r1"); err != nil {
		t.Fatal(err)
	}
	d, err := db.LeadDigest(ctx, 7)
	if err != nil || d == nil || string(d.Summary) != `{"a":1}` || !d.MadeAt.Equal(t0) || d.FieldHash != FieldHash("a text\r\nin two\u00a0lines") {
		t.Fatalf("digest %+v, %v", d, err)
	}
	// A kept field keeps the hash of what we last wrote.
	add("r2", &Digest{MadeAt: t0.Add(time.Hour), Updates: 1, FieldHash: "other", KeepField: true})
	if err := db.Complete(ctx, "run-1", "r2"); err != nil {
		t.Fatal(err)
	}
	if d, _ = db.LeadDigest(ctx, 7); d.Summary != nil || d.Updates != 1 || d.FieldHash != FieldHash("a text in two lines") {
		t.Fatalf("after a kept field: %+v", d)
	}
}

func TestSpendLedger(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "")
	day1, day2 := t0, t0.Add(24*time.Hour)
	for _, a := range []struct {
		at  time.Time
		usd float64
	}{{day1, 0.001}, {day1.Add(time.Hour), 0.002}, {day2, 0.0005}} {
		if err := db.AddSpend(ctx, a.at, a.usd, 1, 100, 10); err != nil {
			t.Fatal(err)
		}
	}
	if usd, _ := db.DaySpendUSD(ctx, day1.Add(3*time.Hour)); usd < 0.00299 || usd > 0.00301 {
		t.Errorf("day 1 spent %f", usd)
	}
	days, err := db.Spend(ctx, 0)
	if err != nil || len(days) != 2 || days[0].Day != "2026-11-22" || days[1].Calls != 2 || days[1].PromptTokens != 200 {
		t.Fatalf("ledger %+v, %v", days, err)
	}
	if err := db.AddLeadResult(ctx, LeadResult{RunID: "r", LeadID: 1, Outcome: OutcomeBudget}); err != nil {
		t.Errorf("skipped_budget is not a known outcome: %v", err)
	}
}
