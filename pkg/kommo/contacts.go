package kommo

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// ContactChat links a Chats API chat to a contact.
type ContactChat struct {
	ID        int64  `json:"id"`
	ChatID    string `json:"chat_id"` // the amojo chat UUID, the {chat_id} of the history URL
	ContactID int64  `json:"contact_id"`
}

// ContactChats returns the chats linked to a contact; none is not an error.
// Kommo lists only the chats of channels this integration has access to, and
// only to an admin's token.
//
// https://www.kommo.com/developers/content/chats/linking-chat-to-contact/
func (c *Client) ContactChats(ctx context.Context, contactID int64) ([]ContactChat, error) {
	q := url.Values{"contact_id": {strconv.FormatInt(contactID, 10)}}
	var page struct {
		Embedded struct {
			Chats []ContactChat `json:"chats"`
		} `json:"_embedded"`
	}
	status, err := c.do(ctx, http.MethodGet, c.endpoint("/api/v4/contacts/chats", q), nil, idempotent, &page)
	if err != nil || status == http.StatusNoContent {
		return nil, err
	}
	return page.Embedded.Chats, nil
}
