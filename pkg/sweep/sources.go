package sweep

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/amojo"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommo"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/summarize"
)

// PageSize is how many messages one history call asks for: the Chats API's
// maximum.
const PageSize = 50

// Source is where a lead's conversations come from. A lead's conversations
// are the union of every source's; a chat two sources know is read from the
// first.
type Source interface {
	// Name says where the chats come from, for logs and errors.
	Name() string
	// Chats lists the lead's chats that this source can read.
	Chats(ctx context.Context, lead *kommo.Lead) ([]ChatRef, error)
	// History returns up to limit messages of the lead's chat after
	// skipping the offset newest ones; an empty page means the end. Pages
	// are newest first as both sources serve them today, but fetchChat
	// does not rely on it.
	History(ctx context.Context, leadID int64, chatID string, offset, limit int) ([]summarize.Message, error)
}

// ChatRef is one chat of a lead, as a source lists it.
type ChatRef struct {
	ID string
	// Since is when the source's record of the chat starts; zero means the
	// whole history. The message log starts when the webhook was installed.
	Since  time.Time
	Origin string // waba, telegram, ... when the source knows it
}

// ContactChatLister lists the chats of a contact (GET /api/v4/contacts/chats).
type ContactChatLister interface {
	ContactChats(ctx context.Context, contactID int64) ([]kommo.ContactChat, error)
}

// ChatsAPI reads the chats of our own Chats API channel: their ids from
// contacts/chats, their history from the Chats API. Chats of other
// integrations (WhatsApp, Telegram, Instagram) are neither listed nor
// readable here; MessageLog has them.
func ChatsAPI(contacts ContactChatLister, c *amojo.Client) Source { return chatsAPI{contacts, c} }

type chatsAPI struct {
	contacts ContactChatLister
	c        *amojo.Client
}

func (chatsAPI) Name() string { return "chats API" }

func (a chatsAPI) Chats(ctx context.Context, lead *kommo.Lead) ([]ChatRef, error) {
	var out []ChatRef
	for _, cid := range lead.ContactIDs() {
		links, err := a.contacts.ContactChats(ctx, cid)
		if err != nil {
			return nil, fmt.Errorf("chats of contact %d: %w", cid, err)
		}
		for _, l := range links {
			if !slices.ContainsFunc(out, func(r ChatRef) bool { return r.ID == l.ChatID }) {
				out = append(out, ChatRef{ID: l.ChatID})
			}
		}
	}
	return out, nil
}

func (a chatsAPI) History(ctx context.Context, _ int64, chatID string, offset, limit int) ([]summarize.Message, error) {
	page, err := a.c.History(ctx, chatID, offset, limit)
	if err != nil {
		return nil, err
	}
	out := make([]summarize.Message, len(page))
	for i, m := range page {
		out[i] = summarize.Message{
			ID:         m.Message.ID,
			Time:       m.Time(),
			Sender:     m.Sender.Name,
			FromClient: m.FromClient(),
			Type:       m.Message.Type,
			Text:       m.Message.Text,
			FileName:   m.Message.FileName,
		}
		if l := m.Message.Location; l != nil {
			out[i].Location = &summarize.GeoPoint{Lat: l.Lat, Lon: l.Lon}
		}
		if c := m.Message.Contact; c != nil {
			out[i].Contact = &summarize.ContactCard{Name: c.Name, Phone: c.Phone}
		}
	}
	return out, nil
}

// MessageLog reads the chats that Kommo's webhooks brought into the store:
// no API call at all.
func MessageLog(db *store.DB) Source { return messageLog{db} }

type messageLog struct{ db *store.DB }

func (messageLog) Name() string { return "message log" }

func (l messageLog) Chats(ctx context.Context, lead *kommo.Lead) ([]ChatRef, error) {
	chats, err := l.db.LogChats(ctx, lead.ID)
	if err != nil {
		return nil, storeErr(err)
	}
	out := make([]ChatRef, len(chats))
	for i, c := range chats {
		out[i] = ChatRef{ID: c.ChatID, Since: c.Since, Origin: c.Origin}
	}
	return out, nil
}

func (l messageLog) History(ctx context.Context, leadID int64, chatID string, offset, limit int) ([]summarize.Message, error) {
	page, err := l.db.LogHistory(ctx, leadID, chatID, offset, limit)
	if err != nil {
		return nil, storeErr(err)
	}
	out := make([]summarize.Message, len(page))
	for i, m := range page {
		out[i] = summarize.Message{
			ID:         m.ID,
			Time:       m.CreatedAt,
			Sender:     m.AuthorName,
			FromClient: m.Direction == store.DirectionIn,
			Type:       m.Type,
			Text:       m.Text,
			FileName:   m.AttachmentName,
		}
	}
	return out, nil
}

// chatFetch is what one chat looks like after a fetch: the prompt's view of
// it and the watermark that a confirmed write will store.
type chatFetch struct {
	ref     ChatRef
	source  string
	changed bool
	chat    summarize.Chat
	state   store.ChatState
	calls   int
	// found: the watermark was found, and fresh holds the messages after
	// it, oldest first (what a rolling update summarises).
	found bool
	fresh []summarize.Message
}

// fetchChat reads a chat from the newest message back to the watermark, so a
// chat that gained k messages costs about k/50 calls. The oldest messages
// never change and the newest are cached, so only the new ones are fetched.
//
// Kommo's documentation does not promise the order of a history page, so
// the messages are put in time order, newest first, and a source that pages
// oldest first is read to its end. Messages of the same time keep the
// source's order (webhook times are whole seconds: the log keeps arrival
// order), so the watermark's place among them decides what is new.
func fetchChat(ctx context.Context, src Source, leadID int64, ref ChatRef, prev *store.ChatState, head, tail int) (chatFetch, error) {
	f := chatFetch{ref: ref, source: src.Name()}
	var read []summarize.Message // pages in the source's order
	seen := map[string]bool{}
	found, oldestFirst := false, false
	for offset := 0; ; offset += PageSize {
		page, err := src.History(ctx, leadID, ref.ID, offset, PageSize)
		f.calls++
		if err != nil {
			return f, err
		}
		hit := false
		for _, m := range page {
			if prev != nil && prev.LastMsgID != "" && m.ID == prev.LastMsgID {
				hit = true
			}
			if !seen[m.ID] {
				seen[m.ID] = true
				read = append(read, m)
			}
		}
		found = found || hit
		oldestFirst = oldestFirst || (len(page) > 1 && page[0].Time.Before(page[len(page)-1].Time))
		if (hit && !oldestFirst) || len(page) < PageSize {
			break
		}
	}
	if oldestFirst {
		slices.Reverse(read)
	}
	slices.SortStableFunc(read, func(a, b summarize.Message) int { return b.Time.Compare(a.Time) }) // newest first

	var fresh []summarize.Message // after the watermark, oldest first
	if found {
		i := slices.IndexFunc(read, func(m summarize.Message) bool { return m.ID == prev.LastMsgID })
		fresh = slices.Clone(read[:i])
		slices.Reverse(fresh)
	}

	f.found, f.fresh = found, fresh
	var chat summarize.Chat
	switch {
	case found && len(fresh) == 0:
		c, err := cachedChat(prev)
		if err != nil {
			return f, err
		}
		chat = c
	case found:
		c, err := cachedChat(prev)
		if err != nil {
			return f, err
		}
		if c.Total == len(c.Head)+len(c.Tail) {
			// The cache held the whole chat: split it again with the new messages.
			chat = summarize.NewChat("", append(append(c.Head, c.Tail...), fresh...), head, tail)
		} else {
			t := append(c.Tail, fresh...)
			if len(t) > tail {
				t = t[len(t)-tail:]
			}
			chat = summarize.Chat{Head: c.Head, Tail: t, Total: c.Total + len(fresh)}
		}
		f.changed = true
	default:
		// First sight of the chat, or its history no longer holds the
		// watermark: everything was read, start over.
		all := slices.Clone(read)
		slices.Reverse(all)
		chat = summarize.NewChat("", all, head, tail)
		f.changed = len(read) > 0
	}
	f.chat = chat
	st, err := chatState(leadID, ref.ID, chat)
	if err != nil {
		return f, err
	}
	if len(read) > 0 {
		st.LastMsgID, st.LastMsgAt = read[0].ID, read[0].Time
	}
	f.state = st
	return f, nil
}

func cachedChat(st *store.ChatState) (summarize.Chat, error) {
	c := summarize.Chat{Total: st.Total}
	if len(st.Head) > 0 {
		if err := json.Unmarshal(st.Head, &c.Head); err != nil {
			return c, err
		}
	}
	if len(st.Tail) > 0 {
		if err := json.Unmarshal(st.Tail, &c.Tail); err != nil {
			return c, err
		}
	}
	return c, nil
}

func chatState(leadID int64, chatID string, c summarize.Chat) (store.ChatState, error) {
	st := store.ChatState{LeadID: leadID, ChatID: chatID, Total: c.Total}
	var err error
	if st.Head, err = json.Marshal(c.Head); err != nil {
		return st, err
	}
	if st.Tail, err = json.Marshal(c.Tail); err != nil {
		return st, err
	}
	last := c.Tail
	if len(last) == 0 {
		last = c.Head
	}
	if len(last) > 0 {
		st.LastMsgID = last[len(last)-1].ID
		st.LastMsgAt = last[len(last)-1].Time
	}
	return st, nil
}
