package store

import (
	"context"
	"slices"
	"testing"
	"time"
)

func TestFeedAdvancesWithItsSweep(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "")
	c := newClock(t0)
	db.Now = c.Now

	f, err := db.Feed(ctx)
	if err != nil || !f.Cursor.IsZero() || !f.FullAt.IsZero() || len(f.Retry) != 0 {
		t.Fatalf("a new store's feed: %+v, %v", f, err)
	}
	if err := db.AdvanceFeed(ctx, "r1", t0, true, []int64{7, 3}); err != nil {
		t.Fatal(err)
	}
	f, _ = db.Feed(ctx)
	if !f.Cursor.Equal(t0) || !f.FullAt.Equal(t0) || !slices.Equal(f.Retry, []int64{3, 7}) {
		t.Fatalf("after a full pass: %+v", f)
	}
	later := t0.Add(time.Hour)
	if err := db.AdvanceFeed(ctx, "r2", later, false, nil); err != nil {
		t.Fatal(err)
	}
	f, _ = db.Feed(ctx)
	if !f.Cursor.Equal(later) || !f.FullAt.Equal(t0) || len(f.Retry) != 0 {
		t.Fatalf("after an incremental sweep: %+v", f)
	}
}

func TestContactChatsCacheAndTalks(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "")
	c := newClock(t0)
	db.Now = c.Now

	if _, ok, err := db.ContactChats(ctx, 1, time.Time{}); ok || err != nil {
		t.Fatalf("a miss: ok %v, err %v", ok, err)
	}
	if err := db.PutContactChats(ctx, 1, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutContactChats(ctx, 2, nil); err != nil {
		t.Fatal(err)
	}
	ids, ok, err := db.ContactChats(ctx, 1, t0.Add(-time.Minute))
	if !ok || err != nil || !slices.Equal(ids, []string{"a", "b"}) {
		t.Fatalf("a hit: %v %v %v", ids, ok, err)
	}
	if ids, ok, _ := db.ContactChats(ctx, 2, t0); !ok || len(ids) != 0 {
		t.Fatalf("a contact without chats is cached too: %v %v", ids, ok)
	}
	if _, ok, _ := db.ContactChats(ctx, 1, t0.Add(time.Second)); ok {
		t.Fatal("an entry older than the TTL is a hit")
	}

	n, err := db.SeeTalks(ctx, []Talk{{ID: 100, Contacts: []int64{1}}})
	if n != 1 || err != nil {
		t.Fatalf("a new talk: %d, %v", n, err)
	}
	if _, ok, _ := db.ContactChats(ctx, 1, time.Time{}); ok {
		t.Fatal("a new talk did not drop its contact's cached chats")
	}
	_ = db.PutContactChats(ctx, 1, []string{"a"})
	if n, _ := db.SeeTalks(ctx, []Talk{{ID: 100, Contacts: []int64{1}}}); n != 0 {
		t.Fatal("a known talk counted as new")
	}
	if _, ok, _ := db.ContactChats(ctx, 1, time.Time{}); !ok {
		t.Fatal("a known talk dropped the cache")
	}
}

func TestLoggedLeadsSince(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "")
	c := newClock(t0)
	db.Now = c.Now
	old := LogMessage{ID: "m1", ChatID: "c1", LeadID: 5, Direction: DirectionIn, Type: "text", Text: "a", CreatedAt: t0.Add(-48 * time.Hour)}
	if _, err := db.AddMessages(ctx, []LogMessage{old}); err != nil {
		t.Fatal(err)
	}
	c.Add(time.Hour)
	late := LogMessage{ID: "m2", ChatID: "c2", LeadID: 9, Direction: DirectionIn, Type: "text", Text: "b", CreatedAt: t0.Add(-48 * time.Hour)}
	if _, err := db.AddMessages(ctx, []LogMessage{late}); err != nil {
		t.Fatal(err)
	}
	ids, err := db.LoggedLeadsSince(ctx, t0.Add(time.Minute))
	if err != nil || !slices.Equal(ids, []int64{9}) {
		t.Fatalf("leads whose log changed since: %v, %v; want [9] (received late, however old)", ids, err)
	}
}
