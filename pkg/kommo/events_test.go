package kommo

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommotest"
)

// Events walks every page of the fake's event log (pages of 100, 204 past
// the end) and reads the message and talk of chat events, the status of
// status changes.
func TestEventsAgainstTheFake(t *testing.T) {
	srv := kommotest.StartT(t, kommotest.Options{Leads: 8, RESTRateLimit: -1})
	c := fakeClient(t, srv, nil)
	ctx := context.Background()
	open := srv.OpenLeadsWithChats()

	var all []*Event
	for e, err := range c.Events(ctx, EventsQuery{Types: []string{EventIncomingChatMessage, EventOutgoingChatMessage}}) {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, e)
	}
	if len(all) <= maxEventsPage || srv.Stats().EventsCalls < 2 {
		t.Fatalf("%d events in %d calls: want several pages", len(all), srv.Stats().EventsCalls)
	}
	for _, e := range all {
		if m := e.Message(); m == nil || m.ID == "" || m.TalkID == 0 || e.EntityType != "lead" || e.Embedded.Entity.LinkedTalkContactID == 0 {
			t.Fatalf("event %+v lacks its message, talk or contact", e)
		}
	}

	start := time.Now().Add(-time.Second)
	srv.AddMessage(open[0].ChatIDs[0], "hello", true)
	srv.SetLeadStatus(open[1].ID, StatusLost)
	var got []*Event
	for e, err := range c.Events(ctx, EventsQuery{Types: []string{EventIncomingChatMessage, EventLeadStatusChanged}, From: start}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
	}
	if len(got) != 2 {
		t.Fatalf("since %v: %d events, want 2", start, len(got))
	}
	for _, e := range got {
		switch e.Type {
		case EventIncomingChatMessage:
			if e.EntityID != open[0].ID {
				t.Errorf("message event on lead %d, want %d", e.EntityID, open[0].ID)
			}
		case EventLeadStatusChanged:
			if e.EntityID != open[1].ID || e.StatusAfter() != StatusLost {
				t.Errorf("status event %+v", e)
			}
		}
	}
	for range c.Events(ctx, EventsQuery{Types: []string{EventIncomingChatMessage}, From: time.Now().Add(time.Hour)}) {
		t.Fatal("an event after now")
	}
	for _, err := range c.Events(ctx, EventsQuery{Limit: 101}) {
		if err == nil {
			t.Fatal("limit 101 accepted")
		}
	}
}

func TestEventsForbiddenIs403(t *testing.T) {
	srv := kommotest.StartT(t, kommotest.Options{Leads: 2, RESTRateLimit: -1, EventsForbidden: true})
	c := fakeClient(t, srv, nil)
	for _, err := range c.Events(context.Background(), EventsQuery{}) {
		var ke *Error
		var blocked *IPBlockedError
		if !errors.As(err, &ke) || ke.Status != 403 || errors.As(err, &blocked) {
			t.Fatalf("err = %v, want an *Error 403 that is not an IP block", err)
		}
	}
}

// The full pass asks for the leads of each open stage: the pipelines and
// the status filter, against the fake.
func TestPipelinesAndTheStatusFilter(t *testing.T) {
	srv := kommotest.StartT(t, kommotest.Options{Leads: 40, RESTRateLimit: -1})
	c := fakeClient(t, srv, nil)
	ctx := context.Background()
	pipes, err := c.Pipelines(ctx)
	if err != nil || len(pipes) != 1 || len(pipes[0].Embedded.Statuses) < 3 {
		t.Fatalf("pipelines: %+v, %v", pipes, err)
	}
	open := 0
	for _, s := range pipes[0].Embedded.Statuses {
		if s.ID == StatusWon || s.ID == StatusLost {
			continue
		}
		for l, err := range c.Leads(ctx, LeadsQuery{Statuses: []StatusFilter{{PipelineID: pipes[0].ID, StatusID: s.ID}}}) {
			if err != nil {
				t.Fatal(err)
			}
			if l.StatusID != s.ID {
				t.Fatalf("lead %d in stage %d listed for stage %d", l.ID, l.StatusID, s.ID)
			}
			open++
		}
	}
	want := 0
	for _, l := range srv.Leads() {
		if l.StatusID != StatusWon && l.StatusID != StatusLost {
			want++
		}
	}
	if open != want {
		t.Errorf("the open stages list %d leads, the account has %d open", open, want)
	}
}
