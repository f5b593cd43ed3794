package amojo

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// MaxHistoryLimit is the most messages one history page may ask for.
const MaxHistoryLimit = 50

// Participant is the sender or receiver of a message. ClientID is set only
// for external participants (the client side of the chat).
type Participant struct {
	ID       string `json:"id"`
	ClientID string `json:"client_id,omitempty"`
	Name     string `json:"name"`
	Phone    string `json:"phone,omitempty"`
	Email    string `json:"email,omitempty"`
	Avatar   string `json:"avatar,omitempty"`
}

// Body is the content of a message: text, or a media item with an optional
// caption in Text.
type Body struct {
	ID        string `json:"id"`
	ClientID  string `json:"client_id,omitempty"`
	Type      string `json:"type"` // text, picture, voice, video, file, audio, sticker, location, contact
	Text      string `json:"text"`
	Media     string `json:"media,omitempty"`
	Thumbnail string `json:"thumbnail,omitempty"`
	FileName  string `json:"file_name,omitempty"`
	FileSize  int64  `json:"file_size,omitempty"`
	// Location is set on a location message, Contact on a contact message
	// (message[location] and message[contact] of the chat history).
	Location *Location `json:"location,omitempty"`
	Contact  *Contact  `json:"contact,omitempty"`
}

// Location is the point a location message shares.
type Location struct {
	Lon float64 `json:"lon"`
	Lat float64 `json:"lat"`
}

// Contact is the contact card a contact message shares.
type Contact struct {
	Name  string `json:"name"`
	Phone string `json:"phone"`
}

// Message is one entry of a chat's history.
type Message struct {
	Timestamp     int64        `json:"timestamp"`
	MsecTimestamp int64        `json:"msec_timestamp"`
	Sender        Participant  `json:"sender"`
	Receiver      *Participant `json:"receiver,omitempty"`
	Message       Body         `json:"message"`
}

// Time is when the message was sent, to the millisecond when Kommo says so.
func (m Message) Time() time.Time {
	if m.MsecTimestamp > 0 {
		return time.UnixMilli(m.MsecTimestamp).UTC()
	}
	return time.Unix(m.Timestamp, 0).UTC()
}

// FromClient reports whether the client (not a Kommo user) sent the message.
func (m Message) FromClient() bool { return m.Sender.ClientID != "" }

// History returns one page of a chat's messages, newest first, skipping the
// offset newest ones; limit is 1..50. A chat that does not exist or has no
// messages gives (nil, nil). Only chats of our own channel can be read.
//
// https://developers.kommo.com/reference/chat-history
func (c *Client) History(ctx context.Context, chatID string, offset, limit int) ([]Message, error) {
	if c.scopeID == "" {
		return nil, errors.New("amojo: no scope id: set chats.scope_id (channel id + \"_\" + the account's amojo_id)")
	}
	if chatID == "" {
		return nil, errors.New("amojo: History needs a chat id")
	}
	if limit < 1 || limit > MaxHistoryLimit {
		return nil, fmt.Errorf("amojo: history page size %d is out of range: use 1..%d", limit, MaxHistoryLimit)
	}
	if offset < 0 {
		return nil, fmt.Errorf("amojo: history offset %d is negative", offset)
	}
	q := url.Values{"offset": {strconv.Itoa(offset)}, "limit": {strconv.Itoa(limit)}}
	u := c.endpoint(q, "v2", "origin", "custom", c.scopeID, "chats", chatID, "history")
	var page struct {
		Messages []Message `json:"messages"`
	}
	status, err := c.do(ctx, http.MethodGet, u, nil, &page)
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusNotFound {
		e.NotConnected = true
	}
	if err != nil || status == http.StatusNoContent {
		return nil, err
	}
	return page.Messages, nil
}
