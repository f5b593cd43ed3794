package amojo

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommotest"
)

// A channel disabled with the integration (or never connected since the
// install) is named as such, with the command that fixes it; connect does.
func TestDisconnectedChannel(t *testing.T) {
	srv := kommotest.StartT(t, kommotest.Options{Leads: 5, ChatsRateLimit: -1, ChannelDisconnected: true})
	fo := srv.Options()
	c, err := New(Options{BaseURL: srv.ChatsURL, ScopeID: srv.ScopeID(), ChannelSecret: fo.ChannelSecret, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	chat := srv.OpenLeadsWithChats()[0].ChatIDs[0]

	_, err = c.History(ctx, chat, 0, 50)
	if !errors.Is(err, ErrNotConnected) || errors.Is(err, ErrSignature) ||
		!strings.Contains(err.Error(), "the channel is not connected: run `kommo-summarizer auth connect-channel`") {
		t.Fatalf("History: err = %v, want ErrNotConnected", err)
	}
	if strings.Contains(err.Error(), "channel_secret") {
		t.Errorf("the message blames the secret: %v", err)
	}

	scope, err := c.Connect(ctx, fo.ChannelID, srv.AmojoAccountID(), "kommo-summarizer")
	if err != nil || scope != srv.ScopeID() {
		t.Fatalf("Connect = %q, %v; want %q", scope, err, srv.ScopeID())
	}
	msgs, err := c.History(ctx, chat, 0, 50)
	if err != nil || len(msgs) == 0 {
		t.Fatalf("History after connect: %d messages, %v", len(msgs), err)
	}

	// A wrong channel id on connect is not "run connect-channel".
	_, err = c.Connect(ctx, "not-our-channel", srv.AmojoAccountID(), "kommo-summarizer")
	if err == nil || errors.Is(err, ErrNotConnected) {
		t.Errorf("Connect with a wrong channel id: err = %v", err)
	}
}

// Location and contact messages carry their point and card (message[location]
// and message[contact] of the history); the fake's account has some of each.
func TestHistoryLocationAndContact(t *testing.T) {
	srv := kommotest.StartT(t, kommotest.Options{ChatsRateLimit: -1})
	fo := srv.Options()
	c, err := New(Options{BaseURL: srv.ChatsURL, ScopeID: srv.ScopeID(), ChannelSecret: fo.ChannelSecret, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	var locations, contacts int
	for _, l := range srv.Leads() {
		for _, chat := range l.ChatIDs {
			for offset := 0; ; offset += MaxHistoryLimit {
				page, err := c.History(context.Background(), chat, offset, MaxHistoryLimit)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range page {
					switch b := m.Message; b.Type {
					case "location":
						locations++
						if p := b.Location; p == nil || p.Lat < 40 || p.Lat > 60 || p.Lon < 10 || p.Lon > 60 || b.Contact != nil {
							t.Errorf("location message %s: location %+v, contact %+v", b.ID, p, b.Contact)
						}
					case "contact":
						contacts++
						if p := b.Contact; p == nil || p.Name == "" || !strings.HasPrefix(p.Phone, "+7 9") || b.Location != nil {
							t.Errorf("contact message %s: contact %+v, location %+v", b.ID, p, b.Location)
						}
					default:
						if b.Location != nil || b.Contact != nil {
							t.Errorf("%s message %s has a location or a contact", b.Type, b.ID)
						}
					}
				}
				if len(page) < MaxHistoryLimit {
					break
				}
			}
		}
	}
	if locations == 0 || contacts == 0 {
		t.Errorf("%d location and %d contact messages in the account, want some of each", locations, contacts)
	}
}
