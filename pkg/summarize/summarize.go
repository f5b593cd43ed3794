// Package summarize turns a lead's chat history into the prompt an LLM
// summarizes, and the model's answer into the note a sales rep reads.
//
// It does no I/O and reads no clock: the same chats and options always give
// the same prompt, byte for byte, so InputHash can tell the sweep that a lead
// needs no new summary (and no paid LLM call).
package summarize

import (
	"slices"
	"time"
)

// Message is one chat message as the prompt sees it.
type Message struct {
	ID         string
	Time       time.Time
	Sender     string
	FromClient bool
	// Type is the Chats API message type: text, picture, voice, video, file,
	// audio, sticker, location, contact.
	Type     string
	Text     string // the text, or the caption of a media message
	FileName string
	// Location is the point of a location message, Contact the card of a
	// contact message; nil for other messages.
	Location *GeoPoint    `json:",omitempty"`
	Contact  *ContactCard `json:",omitempty"`
}

// GeoPoint is a shared location.
type GeoPoint struct{ Lat, Lon float64 }

// ContactCard is a shared contact.
type ContactCard struct{ Name, Phone string }

// Chat is one conversation as the prompt sees it. Head = the oldest messages
// (up to 5), Tail = the newest (up to 40), both oldest-first and disjoint;
// Total = all messages the chat has (Total - len(Head) - len(Tail) were left
// out).
type Chat struct {
	// Label names the chat in a prompt with several chats ("WhatsApp");
	// empty means "chat N", N counting from 1 in the order given to Prompt.
	Label      string
	Head, Tail []Message
	Total      int
}

// NewChat splits a full history into Head (the oldest head messages) and Tail
// (the newest tail messages). Messages are put in time order first (stable, so
// messages with equal times keep the caller's order). A chat that fits in
// head+tail is shown whole: up to head messages in Head, the rest in Tail.
// A negative head or tail counts as 0. msgs is not modified.
func NewChat(label string, msgs []Message, head, tail int) Chat {
	head, tail = max(head, 0), max(tail, 0)
	all := slices.Clone(msgs)
	slices.SortStableFunc(all, func(a, b Message) int { return a.Time.Compare(b.Time) })

	h := min(head, len(all))
	rest := all[h:]
	t := min(tail, len(rest))
	// The three-index slice keeps an append to Head from overwriting the
	// messages that follow it in the shared array.
	return Chat{Label: label, Head: all[:h:h], Tail: rest[len(rest)-t:], Total: len(all)}
}

// Options shape the prompt.
type Options struct {
	Language        string         // the answer language; default "Russian"
	Location        *time.Location // time zone for dd.mm HH:MM; nil = UTC
	MaxMessageChars int            // cut longer message texts with "…"; <= 0 means 1000
	MaxWords        int            // the summary's length limit; <= 0 means 150
	// MaxPromptTokens bounds a structured prompt (system and user, by
	// EstimateTokens): longer messages are cut shorter, then the oldest
	// messages of the tail are left out. <= 0 means 2,800.
	MaxPromptTokens int

	datamark bool // message lines are datamarked (structured prompts)
}

// Defaults used for zero Options fields.
const (
	DefaultLanguage        = "Russian"
	DefaultMaxMessageChars = 1000
	DefaultMaxWords        = 150
	DefaultMaxPromptTokens = 2800
	// LanguageAuto asks for the summary in the conversation's language.
	LanguageAuto = "auto"
)

func (o Options) withDefaults() Options {
	if o.Language = oneLine(o.Language); o.Language == "" {
		o.Language = DefaultLanguage
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.MaxMessageChars <= 0 {
		o.MaxMessageChars = DefaultMaxMessageChars
	}
	if o.MaxWords <= 0 {
		o.MaxWords = DefaultMaxWords
	}
	if o.MaxPromptTokens <= 0 {
		o.MaxPromptTokens = DefaultMaxPromptTokens
	}
	return o
}
