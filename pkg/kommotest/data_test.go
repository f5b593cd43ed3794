package kommotest

import (
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode"
)

func TestAccountIsDeterministic(t *testing.T) {
	a := startTest(t, Options{Seed: 7, Leads: 30}, nil)
	b := startTest(t, Options{Seed: 7, Leads: 30}, nil)
	c := startTest(t, Options{Seed: 8, Leads: 30}, nil)
	if !reflect.DeepEqual(a.Leads(), b.Leads()) {
		t.Fatal("the same seed gave different leads")
	}
	if reflect.DeepEqual(a.Leads(), c.Leads()) {
		t.Fatal("different seeds gave the same leads")
	}
	for _, l := range a.Leads() {
		for _, id := range l.ChatIDs {
			ma, mb := a.acct.chats[id].msgs, b.acct.chats[id].msgs
			if len(ma) != len(mb) {
				t.Fatalf("chat %s: %d vs %d messages", id, len(ma), len(mb))
			}
			for i := range ma {
				if *ma[i] != *mb[i] {
					t.Fatalf("chat %s message %d differs", id, i)
				}
			}
		}
	}
}

func TestAccountShape(t *testing.T) {
	s := startTest(t, Options{}, nil)
	leads := s.Leads()
	if len(leads) != 60 || leads[0].ID != 10000001 || leads[59].ID != 10000060 {
		t.Fatalf("want 60 leads from 10000001, got %d (%d..)", len(leads), leads[0].ID)
	}
	var closed, noContact, noChat, twoChats, short, long, media, offer, captions, ru, en int
	chatIDs := map[string]bool{}
	for _, l := range leads {
		if l.StatusID == 142 || l.StatusID == 143 {
			closed++
		} else if l.StatusID < 7100001 || l.StatusID > 7100005 {
			t.Errorf("lead %d: status %d is not a stage of pipeline 7000001", l.ID, l.StatusID)
		}
		switch {
		case len(l.ContactIDs) == 0:
			noContact++
		case len(l.ChatIDs) == 0:
			noChat++
		case len(l.ChatIDs) == 2:
			twoChats++
			if len(l.ContactIDs) != 2 {
				t.Errorf("lead %d: two chats but %d contacts", l.ID, len(l.ContactIDs))
			}
		}
		for _, id := range l.ChatIDs {
			if len(id) != 36 || strings.Count(id, "-") != 4 || chatIDs[id] {
				t.Errorf("chat id %q is not a unique UUID", id)
			}
			chatIDs[id] = true
			ch := s.acct.chats[id]
			n := s.MessageCount(id)
			if n < 3 || n > 150 {
				t.Errorf("chat %s has %d messages, want 3..150", id, n)
			}
			if n <= 45 {
				short++
			} else {
				long++
			}
			prev := time.Time{}
			for i, m := range ch.msgs {
				if !m.at.After(prev) {
					t.Fatalf("chat %s: message %d is not after the previous one", id, i)
				}
				if m.at.Before(baseTime.AddDate(0, 0, -30)) || m.at.After(baseTime) {
					t.Fatalf("chat %s: message %d at %v is outside the 30 days before %v", id, i, m.at, baseTime)
				}
				prev = m.at
				if m.typ != "text" {
					media++
					if m.text != "" {
						captions++
					}
				} else if m.text == "" {
					t.Errorf("chat %s: empty text message", id)
				}
				if m.fileName == "offer.pdf" {
					offer++
				}
			}
			if strings.ContainsFunc(ch.msgs[0].text+ch.msgs[1].text, func(r rune) bool { return unicode.Is(unicode.Cyrillic, r) }) {
				ru++
			} else {
				en++
			}
		}
	}
	if closed != 9 || noContact != 6 || noChat != 6 || twoChats != 6 {
		t.Errorf("closed %d, without contacts %d, contact without chats %d, two chats %d; want 9, 6, 6, 6",
			closed, noContact, noChat, twoChats)
	}
	if short == 0 || long == 0 {
		t.Errorf("want chats both within and beyond one 45-message window: %d short, %d long", short, long)
	}
	if offer == 0 || captions == 0 || ru == 0 || en == 0 {
		t.Errorf("offer.pdf %d, captions %d, Russian chats %d, English chats %d: want all > 0", offer, captions, ru, en)
	}
	total := 0
	for id := range chatIDs {
		total += s.MessageCount(id)
	}
	if share := float64(media) / float64(total); share < 0.05 || share > 0.15 {
		t.Errorf("media share %.3f, want about 0.10", share)
	}

	open := s.OpenLeadsWithChats()
	if len(open) == 0 {
		t.Fatal("no open leads with chats")
	}
	for _, l := range open {
		if l.StatusID == 142 || l.StatusID == 143 || len(l.ChatIDs) == 0 {
			t.Errorf("OpenLeadsWithChats returned lead %+v", l)
		}
	}
}

func TestAddMessage(t *testing.T) {
	s := startTest(t, Options{Leads: 10}, nil)
	l := s.OpenLeadsWithChats()[0]
	id := l.ChatIDs[0]
	before := s.MessageCount(id)
	last := s.acct.chats[id].msgs[before-1].at
	s.AddMessage(id, "Any news on the contract?", true)
	if got := s.MessageCount(id); got != before+1 {
		t.Fatalf("MessageCount %d, want %d", got, before+1)
	}
	m := s.acct.chats[id].msgs[before]
	if m.text != "Any news on the contract?" || !m.fromClient || !m.at.Equal(last.Add(time.Minute)) {
		t.Fatalf("added message %+v, want client text one minute after %v", m, last)
	}
}
