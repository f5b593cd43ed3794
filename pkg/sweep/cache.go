package sweep

import (
	"context"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommo"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
)

// CachedContactChats keeps what l says about a contact's chats in the
// store for ttl, so a lead whose contacts did not change costs no
// contacts/chats call. The Changes producer drops a contact's entry when an
// event names a talk not seen before (maybe a new chat); the TTL covers what
// the events miss. now is the clock (time.Now when nil).
func CachedContactChats(l ContactChatLister, db *store.DB, ttl time.Duration, now func() time.Time) ContactChatLister {
	if now == nil {
		now = time.Now
	}
	return &contactCache{l: l, db: db, ttl: ttl, now: now}
}

type contactCache struct {
	l   ContactChatLister
	db  *store.DB
	ttl time.Duration
	now func() time.Time
}

func (c *contactCache) ContactChats(ctx context.Context, contactID int64) ([]kommo.ContactChat, error) {
	if ids, ok, err := c.db.ContactChats(ctx, contactID, c.now().Add(-c.ttl)); err != nil {
		return nil, storeErr(err)
	} else if ok {
		out := make([]kommo.ContactChat, len(ids))
		for i, id := range ids {
			out[i] = kommo.ContactChat{ChatID: id, ContactID: contactID}
		}
		return out, nil
	}
	chats, err := c.l.ContactChats(ctx, contactID)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(chats))
	for i, ch := range chats {
		ids[i] = ch.ChatID
	}
	if err := c.db.PutContactChats(ctx, contactID, ids); err != nil {
		return nil, storeErr(err)
	}
	return chats, nil
}
