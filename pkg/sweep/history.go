package sweep

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/amojo"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/summarize"
)

// PageSize is how many messages one history call asks for: the Chats API's
// maximum.
const PageSize = 50

// HistorySource is where the messages of a chat come from: the Chats API
// today, a message log fed by Kommo's webhooks next (for the WhatsApp and
// Telegram chats that other integrations own and the Chats API cannot read).
type HistorySource interface {
	// History returns up to limit messages of the chat, newest first, after
	// skipping the offset newest ones. An empty page means the end.
	History(ctx context.Context, chatID string, offset, limit int) ([]summarize.Message, error)
}

// ChatsAPI reads history from the Kommo Chats API.
func ChatsAPI(c *amojo.Client) HistorySource { return chatsAPI{c} }

type chatsAPI struct{ c *amojo.Client }

func (a chatsAPI) History(ctx context.Context, chatID string, offset, limit int) ([]summarize.Message, error) {
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

// chatFetch is what one chat looks like after a fetch: the prompt's view of
// it and the watermark that a confirmed write will store.
type chatFetch struct {
	chatID  string
	changed bool
	chat    summarize.Chat
	state   store.ChatState
	calls   int
}

// fetchChat reads a chat from the newest message back to the watermark, so a
// chat that gained k messages costs about k/50 calls. The oldest messages
// never change and the newest are cached, so only the new ones are fetched.
func fetchChat(ctx context.Context, src HistorySource, leadID int64, chatID string, prev *store.ChatState, head, tail int) (chatFetch, error) {
	f := chatFetch{chatID: chatID}
	var newer []summarize.Message // newest first
	found := false
	newestID := ""
	for offset := 0; ; offset += PageSize {
		page, err := src.History(ctx, chatID, offset, PageSize)
		f.calls++
		if err != nil {
			return f, err
		}
		if offset == 0 && len(page) > 0 {
			newestID = page[0].ID
		}
		for _, m := range page {
			if prev != nil && prev.LastMsgID != "" && m.ID == prev.LastMsgID {
				found = true
				break
			}
			newer = append(newer, m)
		}
		if found || len(page) < PageSize {
			break
		}
	}
	slices.Reverse(newer)
	slices.SortStableFunc(newer, func(a, b summarize.Message) int { return a.Time.Compare(b.Time) })

	var chat summarize.Chat
	switch {
	case prev != nil && found && len(newer) == 0:
		c, err := cachedChat(prev)
		if err != nil {
			return f, err
		}
		chat = c
	case prev != nil && found:
		c, err := cachedChat(prev)
		if err != nil {
			return f, err
		}
		if c.Total == len(c.Head)+len(c.Tail) {
			// The cache held the whole chat: split it again with the new messages.
			chat = summarize.NewChat("", append(append(c.Head, c.Tail...), newer...), head, tail)
		} else {
			t := append(c.Tail, newer...)
			if len(t) > tail {
				t = t[len(t)-tail:]
			}
			chat = summarize.Chat{Head: c.Head, Tail: t, Total: c.Total + len(newer)}
		}
		f.changed = true
	default:
		// First sight of the chat, or its history no longer holds the
		// watermark: everything was read, start over.
		chat = summarize.NewChat("", newer, head, tail)
		f.changed = len(newer) > 0
	}
	f.chat = chat
	st, err := chatState(leadID, chatID, chat)
	if err != nil {
		return f, err
	}
	if newestID != "" {
		// The server's order decides which message is the newest, even when
		// two share a timestamp.
		st.LastMsgID = newestID
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
