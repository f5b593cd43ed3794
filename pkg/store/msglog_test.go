package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func logMsg(id, chat string, lead int64, dir string, at time.Time) LogMessage {
	return LogMessage{ID: id, ChatID: chat, LeadID: lead, Direction: dir, Type: "text", Text: "t " + id, CreatedAt: at, Origin: "waba"}
}

// Deliveries are stored once by message id; an outgoing message without a
// lead gets the chat's lead, earlier or later; the log pages newest first.
func TestIngestDedupesAndAttaches(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, filepath.Join(t.TempDir(), "s.db"))
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	// An outgoing message before any message named the lead.
	res, err := db.Ingest(ctx, []Delivery{{Messages: []LogMessage{logMsg("o1", "c1", 0, DirectionOut, t0)}}}, IngestOptions{})
	if err != nil || res.Added != 1 {
		t.Fatalf("first ingest: %+v, %v", res, err)
	}
	d := Delivery{Messages: []LogMessage{logMsg("i1", "c1", 42, DirectionIn, t0.Add(time.Minute)), logMsg("o2", "c1", 0, DirectionOut, t0.Add(2*time.Minute))}}
	res, err = db.Ingest(ctx, []Delivery{d, d}, IngestOptions{})
	if err != nil || res.Added != 2 || res.Duplicates != 2 || res.Attached != 1 {
		t.Fatalf("second ingest: %+v, %v; want 2 added, 2 duplicates, 1 attached", res, err)
	}
	page, err := db.LogHistory(ctx, 42, "c1", 0, 2)
	if err != nil || len(page) != 2 || page[0].ID != "o2" || page[1].ID != "i1" {
		t.Fatalf("first page = %+v, %v; want o2, i1", page, err)
	}
	page, err = db.LogHistory(ctx, 42, "c1", 2, 2)
	if err != nil || len(page) != 1 || page[0].ID != "o1" {
		t.Fatalf("second page = %+v, %v; want o1", page, err)
	}
	chats, err := db.LogChats(ctx, 42)
	if err != nil || len(chats) != 1 || chats[0].Messages != 3 || !chats[0].Since.Equal(t0) {
		t.Fatalf("LogChats = %+v, %v", chats, err)
	}
	if at, err := db.LastWebhookAt(ctx); err != nil || at.IsZero() {
		t.Fatalf("LastWebhookAt = %v, %v", at, err)
	}
	// A bad message spoils its transaction, and nothing of it is stored.
	_, err = db.Ingest(ctx, []Delivery{{Messages: []LogMessage{logMsg("ok", "c2", 7, DirectionIn, t0), {ID: "bad", ChatID: "c2", Direction: "sideways"}}}}, IngestOptions{})
	if err == nil {
		t.Fatal("a message with a bad direction was accepted")
	}
	if got, _ := db.LogHistory(ctx, 7, "c2", 0, 0); len(got) != 0 {
		t.Fatalf("half of a refused ingest was stored: %+v", got)
	}
	if n, err := db.PurgeMessages(ctx, time.Now().Add(time.Hour)); err != nil || n != 3 {
		t.Fatalf("PurgeMessages = %d, %v; want 3", n, err)
	}
}

// A close queues its lead after the debounce; a later event of the lead
// moves it; DoneClose of a moved entry leaves it queued.
func TestCloseQueueDebounce(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, filepath.Join(t.TempDir(), "s.db"))
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	o := IngestOptions{CloseDebounce: time.Minute, ReceivedAt: t0}
	if _, err := db.Ingest(ctx, []Delivery{{Talks: []LogTalk{{TalkID: 1, ChatID: "c", LeadID: 42, Closed: true}, {TalkID: 2, ChatID: "c", LeadID: 43}}}}, o); err != nil {
		t.Fatal(err)
	}
	due, err := db.DueCloses(ctx, t0.Add(59*time.Second), 0)
	if err != nil || len(due) != 0 {
		t.Fatalf("due before the debounce: %+v, %v", due, err)
	}
	due, err = db.DueCloses(ctx, t0.Add(time.Minute), 0)
	if err != nil || len(due) != 1 || due[0].LeadID != 42 {
		t.Fatalf("due after the debounce: %+v, %v; want lead 42 only (43's talk is open)", due, err)
	}
	// A message 30 s later moves the lead's due time.
	o.ReceivedAt = t0.Add(30 * time.Second)
	if _, err := db.Ingest(ctx, []Delivery{{Messages: []LogMessage{logMsg("m", "c", 42, DirectionIn, t0)}}}, o); err != nil {
		t.Fatal(err)
	}
	if err := db.DoneClose(ctx, due[0]); err != nil {
		t.Fatal(err)
	}
	next, err := db.NextCloseDue(ctx)
	if err != nil || !next.Equal(t0.Add(90*time.Second)) {
		t.Fatalf("NextCloseDue = %v, %v; want the moved time %v", next, err, t0.Add(90*time.Second))
	}
}

// Only a dead run's pending summaries are claimed, and the claimed run is
// marked killed, which its next heartbeat learns; a summary made from an
// older lead version is refused.
func TestClaimsAndVersions(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, filepath.Join(t.TempDir(), "s.db"))
	for _, id := range []string{"live", "dead", "me"} {
		if err := db.StartRun(ctx, Run{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.FinishRun(ctx, "dead", RunKilled, -1, nil); err != nil {
		t.Fatal(err)
	}
	for i, run := range []string{"live", "dead"} {
		if err := db.AddPending(ctx, Pending{RequestID: run + "-req", LeadID: int64(i + 1), RunID: run}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.ClaimPendings(ctx, "me", time.Minute)
	if err != nil || len(got) != 1 || got[0].RequestID != "dead-req" || got[0].RunID != "me" {
		t.Fatalf("ClaimPendings = %+v, %v; want dead-req only", got, err)
	}
	if err := db.MarkNoted(ctx, "live", "dead-req", 5); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("MarkNoted by the old owner = %v, want ErrNotOwner", err)
	}
	if err := db.MarkNoted(ctx, "me", "dead-req", 5); err != nil {
		t.Fatal(err)
	}
	if err := db.Complete(ctx, "me", "dead-req"); err != nil {
		t.Fatal(err)
	}
	if v, err := db.LeadVersion(ctx, 2); err != nil || v != 1 {
		t.Fatalf("LeadVersion = %d, %v; want 1", v, err)
	}
	err = db.AddPending(ctx, Pending{RequestID: "stale", LeadID: 2, RunID: "me", BaseVersion: 0})
	if !errors.Is(err, ErrStale) {
		t.Fatalf("AddPending from version 0 = %v, want ErrStale", err)
	}
	// A live run claimed with staleAfter 0... is not: its heartbeat is fresh.
	// Once it is taken for dead, its heartbeat says so.
	if err := db.FinishRun(ctx, "live", RunKilled, -1, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Beat(ctx, "live", false); !errors.Is(err, ErrLockLost) {
		t.Fatalf("Beat of a killed run = %v, want ErrLockLost", err)
	}
	if err := db.Beat(ctx, "me", false); err != nil {
		t.Fatalf("Beat of a live run = %v", err)
	}
}

// Webhook times are whole seconds: messages of the same second page in
// arrival order, newest (last to arrive) first, whatever their ids.
func TestLogHistorySameSecondKeepsArrivalOrder(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, filepath.Join(t.TempDir(), "s.db"))
	at := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	for _, id := range []string{"zz-first", "aa-second", "mm-third"} {
		if _, err := db.Ingest(ctx, []Delivery{{Messages: []LogMessage{logMsg(id, "c", 1, DirectionIn, at)}}}, IngestOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	page, err := db.LogHistory(ctx, 1, "c", 0, 0)
	if err != nil || len(page) != 3 || page[0].ID != "mm-third" || page[2].ID != "zz-first" {
		t.Fatalf("LogHistory = %+v, %v; want the arrival order reversed", page, err)
	}
	msgs, err := db.LeadMessages(ctx, 1, 2)
	if err != nil || len(msgs) != 2 || msgs[0].ID != "aa-second" || msgs[1].ID != "mm-third" {
		t.Fatalf("LeadMessages = %+v, %v; want the last two in arrival order", msgs, err)
	}
}

// Kommo sends the bot's reply back through the outgoing-message webhook, a
// bubble at a time, and the client's message it answered through the
// incoming one: both are copies of what the bot logged, and are not stored
// again. A manager's message with other words is.
func TestWebhookEchoesOfOurMessagesAreNotStoredTwice(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, filepath.Join(t.TempDir(), "s.db"))
	at := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	ours := []LogMessage{
		{ID: "our-in", ChatID: "c", LeadID: 5, Direction: DirectionIn, Text: "How much is delivery?", CreatedAt: at, Origin: OwnOrigin},
		{ID: "our-out", ChatID: "c", LeadID: 5, Direction: DirectionOut, Text: "Delivery is free in Moscow.\nElsewhere it costs 500 rubles.", CreatedAt: at, Origin: OwnOrigin},
	}
	if _, err := db.AddMessages(ctx, ours); err != nil {
		t.Fatal(err)
	}
	echo := func(id, dir, text string) LogMessage {
		m := logMsg(id, "c", 5, dir, at.Add(2*time.Second))
		m.Text = text
		return m
	}
	res, err := db.Ingest(ctx, []Delivery{{Messages: []LogMessage{
		echo("wh-in", DirectionIn, "How much is delivery?"),
		echo("wh-b1", DirectionOut, "Delivery is free in Moscow."),
		echo("wh-b2", DirectionOut, "Elsewhere it costs  500 rubles."),
		echo("wh-mgr", DirectionOut, "I will call you in five minutes."),
	}}}, IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Added != 1 || res.Duplicates != 3 {
		t.Fatalf("ingest: %+v; want the manager's message added and 3 echoes dropped", res)
	}
}
