// Package kommohook decodes Kommo's account webhook bodies.
//
// Kommo POSTs account webhooks as application/x-www-form-urlencoded bodies with
// PHP bracket keys ("message[add][0][chat_id]"); every value is a string, one
// body may carry several messages and talks, and nothing is signed. The
// format is described in /work/shared/kommo-webhooks.md §2 and on
// https://www.amocrm.ru/developers/content/crm_platform/webhooks-format.
// Parse reads such a body into a Delivery; Encode writes one, for the fake
// Kommo and for tests.
package kommohook

import (
	"cmp"
	"html"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxUnix is the largest created_at accepted as unix seconds (year 5138): a
// larger number is milliseconds or garbage, and a date from it would be wrong.
const maxUnix = 1e11

// Delivery is what one webhook body carried.
type Delivery struct {
	AccountID int64  // account[id]
	Subdomain string // account[subdomain]
	// AccountLink is account[_links][self], e.g. "https://acme.kommo.com"; may be empty.
	AccountLink string
	// Messages are the incoming (message[add]) messages in body index order,
	// then the outgoing (outgoing_message[add]) ones in body index order.
	Messages []Message
	// Talks are the talk[add] entries in index order, then the talk[update] ones.
	Talks []Talk
}

// Message is one chat message of message[add] or outgoing_message[add].
type Message struct {
	ID        string // the amojo message UUID: the dedupe key
	ChatID    string // the amojo chat UUID, stable per contact and channel
	TalkID    int64
	ContactID int64
	// LeadID is element_id (or entity_id) when the entity is a lead
	// (entity_type lead, element_type 2, or an id without a type, as outgoing
	// messages send it); 0 for contact chats and for outgoing messages without
	// element_id (about 1 in 4).
	LeadID int64
	// Outgoing is true for outgoing_message[add], and for a message[add] whose
	// type is "outgoing" (never seen in the wild, handled anyway).
	Outgoing bool
	// Type is message_type (text, picture, voice, file, video, location,
	// contact, sticker, ...); when absent, attachment[type] or else "text".
	Type      string
	Text      string
	CreatedAt time.Time // UTC, whole seconds
	// AuthorID is the amojo author UUID; AuthorType is external (the client)
	// or internal (a user, a bot, the phone app).
	AuthorID, AuthorType string
	// AuthorName is HTML-unescaped: Kommo sends "Tuco&amp;Tico".
	AuthorName string
	// AuthorUserID is the Kommo user id of an outgoing message's author; 0 for a
	// bot, the phone app or a shared channel.
	AuthorUserID int64
	// RecipientID is recipient[id] of an outgoing message (the client's amojo id).
	RecipientID                                    string
	AttachmentType, AttachmentName, AttachmentLink string
	Origin                                         string // waba, telegram, instagram_business, com.amocrm.amocrmwa, ...
}

// Talk is one entry of talk[add] or talk[update].
type Talk struct {
	Action    string // "add" or "update"
	TalkID    int64
	ChatID    string
	ContactID int64
	LeadID    int64 // entity_id when entity_type is lead (or absent); 0 for customers
	// InWork is false only when is_in_work is "0": a talk[update] with
	// InWork false is a close. An absent is_in_work counts as in work, so that
	// a terse update is never taken for a close.
	InWork    bool
	Read      bool // is_read "1"
	CreatedAt time.Time
	UpdatedAt time.Time // zero when absent
	Origin    string
}

// ParseError is a body that is not a Kommo webhook: Key is the bracket key
// at fault as it arrived, Problem says what is wrong with it.
type ParseError struct {
	Key, Problem string
}

func (e *ParseError) Error() string { return "webhook: " + e.Key + ": " + e.Problem }

// entry is the fields of one indexed element (message[add][3][...]).
type entry struct {
	index  int
	prefix string            // "message[add][3]", for error keys
	fields map[string]string // "chat_id", "author][name" joined by "]["
}

func (e *entry) key(field string) string {
	return e.prefix + "[" + field + "]" // nested fields are stored joined by "][", so this is the key as sent
}

// Parse decodes one webhook body (already form-parsed) into a Delivery. A
// key given twice keeps its last value, as PHP does. Entities this package
// does not read (leads, contacts, unsorted, ...) are ignored, but every key
// must still be a well-formed bracket key.
func Parse(form url.Values) (*Delivery, error) {
	d := &Delivery{}
	groups := map[string]map[int]*entry{} // "message[add]" -> index -> entry
	var accountID string
	hasAccountID := false

	// Sorted keys make the error for a bad body deterministic.
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		vs := form[k]
		v := ""
		if len(vs) > 0 {
			v = vs[len(vs)-1]
		}
		parts, problem := splitKey(k)
		if problem != "" {
			return nil, &ParseError{Key: k, Problem: problem}
		}
		head := parts[0]
		switch head {
		case "account":
			if len(parts) < 2 {
				return nil, &ParseError{Key: k, Problem: "account needs a field"}
			}
			switch strings.Join(parts[1:], "/") {
			case "id":
				accountID, hasAccountID = v, true
			case "subdomain":
				d.Subdomain = v
			case "_links/self":
				d.AccountLink = v
			}
		case "message", "outgoing_message", "talk":
			if len(parts) < 2 {
				return nil, &ParseError{Key: k, Problem: head + " needs an action"}
			}
			action := parts[1]
			known := action == "add" || (head == "talk" && action == "update")
			if !known {
				continue // message[update] and the like: not ours
			}
			if len(parts) < 4 {
				return nil, &ParseError{Key: k, Problem: "want " + head + "[" + action + "][N][field]"}
			}
			idx, ok := index(parts[2])
			if !ok {
				return nil, &ParseError{Key: k, Problem: "index " + strconv.Quote(parts[2]) + " is not a number"}
			}
			g := head + "[" + action + "]"
			if groups[g] == nil {
				groups[g] = map[int]*entry{}
			}
			e := groups[g][idx]
			if e == nil {
				e = &entry{index: idx, prefix: g + "[" + parts[2] + "]", fields: map[string]string{}}
				groups[g][idx] = e
			}
			e.fields[strings.Join(parts[3:], "][")] = v
		}
	}

	if !hasAccountID {
		return nil, &ParseError{Key: "account[id]", Problem: "required"}
	}
	id, err := strconv.ParseInt(accountID, 10, 64)
	if err != nil || id <= 0 {
		return nil, &ParseError{Key: "account[id]", Problem: "not a positive integer"}
	}
	d.AccountID = id

	for _, g := range []string{"message[add]", "outgoing_message[add]"} {
		for _, e := range sorted(groups[g]) {
			m, err := parseMessage(e, g == "outgoing_message[add]")
			if err != nil {
				return nil, err
			}
			d.Messages = append(d.Messages, m)
		}
	}
	for _, action := range []string{"add", "update"} {
		for _, e := range sorted(groups["talk["+action+"]"]) {
			t, err := parseTalk(e, action)
			if err != nil {
				return nil, err
			}
			d.Talks = append(d.Talks, t)
		}
	}
	return d, nil
}

// splitKey splits "a[b][c]" into a, b, c. A bare name ("a") is well formed;
// anything else must be a name followed by [segments] and nothing more.
func splitKey(k string) ([]string, string) {
	head, rest, hasBracket := strings.Cut(k, "[")
	if head == "" {
		return nil, "not a bracket key: the name is empty"
	}
	if strings.Contains(head, "]") {
		return nil, "not a bracket key: ] before ["
	}
	parts := []string{head}
	if !hasBracket {
		return parts, ""
	}
	rest = "[" + rest
	for rest != "" {
		if rest[0] != '[' {
			return nil, "not a bracket key: text after ]"
		}
		seg, after, ok := strings.Cut(rest[1:], "]")
		if !ok {
			return nil, "not a bracket key: unclosed ["
		}
		if strings.Contains(seg, "[") {
			return nil, "not a bracket key: [ inside brackets"
		}
		parts = append(parts, seg)
		rest = after
	}
	return parts, ""
}

// index reads a list index: decimal digits, no sign, no leading zero.
func index(s string) (int, bool) {
	if s == "" || len(s) > 9 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

func sorted(m map[int]*entry) []*entry {
	out := make([]*entry, 0, len(m))
	for _, e := range m {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *entry) int { return a.index - b.index })
	return out
}

// optInt reads an optional integer field; absent or empty is 0.
func (e *entry) optInt(field string) (int64, error) {
	v := e.fields[field]
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, &ParseError{Key: e.key(field), Problem: "not a non-negative integer"}
	}
	return n, nil
}

// unixTime reads a unix-seconds field; absent or empty is the zero time
// unless required.
func (e *entry) unixTime(field string, required bool) (time.Time, error) {
	v, ok := e.fields[field]
	if !ok || v == "" {
		if required {
			return time.Time{}, &ParseError{Key: e.key(field), Problem: "required"}
		}
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || n > maxUnix {
		return time.Time{}, &ParseError{Key: e.key(field), Problem: "not a unix time"}
	}
	return time.Unix(n, 0).UTC(), nil
}

func (e *entry) required(field string) (string, error) {
	if v := e.fields[field]; v != "" {
		return v, nil
	}
	return "", &ParseError{Key: e.key(field), Problem: "required"}
}

// entity finds the lead (or the contact) an entry is attached to from
// entity_id/element_id and their types.
func (e *entry) entity() (leadID, contactID int64, err error) {
	field := "entity_id"
	if e.fields[field] == "" {
		field = "element_id"
	}
	id, err := e.optInt(field)
	if err != nil || id == 0 {
		return 0, 0, err
	}
	et, elt := e.fields["entity_type"], e.fields["element_type"]
	switch {
	case et == "lead" || et == "leads":
		return id, 0, nil
	case et == "contact" || et == "contacts":
		return 0, id, nil
	case et != "":
		return 0, 0, nil // customer
	case elt == "2":
		return id, 0, nil
	case elt == "1":
		return 0, id, nil
	case elt != "":
		return 0, 0, nil
	}
	return id, 0, nil // outgoing messages send element_id alone, and it is the lead
}

func parseMessage(e *entry, outgoing bool) (Message, error) {
	var m Message
	var err error
	if m.ID, err = e.required("id"); err != nil {
		return m, err
	}
	if m.ChatID, err = e.required("chat_id"); err != nil {
		return m, err
	}
	if m.CreatedAt, err = e.unixTime("created_at", true); err != nil {
		return m, err
	}
	if m.TalkID, err = e.optInt("talk_id"); err != nil {
		return m, err
	}
	if m.ContactID, err = e.optInt("contact_id"); err != nil {
		return m, err
	}
	var contact int64
	if m.LeadID, contact, err = e.entity(); err != nil {
		return m, err
	}
	if m.ContactID == 0 {
		m.ContactID = contact // the official example has element_type 1 and no contact_id
	}
	if m.AuthorUserID, err = e.optInt("author][user_id"); err != nil {
		return m, err
	}
	f := e.fields
	m.Outgoing = outgoing || f["type"] == "outgoing"
	m.Type = f["message_type"]
	if m.Type == "" {
		// The official example has an attachment and no message_type.
		m.Type = cmp.Or(f["attachment][type"], "text")
	}
	m.Text = f["text"]
	m.AuthorID, m.AuthorType = f["author][id"], f["author][type"]
	m.AuthorName = html.UnescapeString(f["author][name"])
	m.RecipientID = f["recipient][id"]
	m.AttachmentType, m.AttachmentName, m.AttachmentLink = f["attachment][type"], f["attachment][file_name"], f["attachment][link"]
	m.Origin = f["origin"]
	return m, nil
}

func parseTalk(e *entry, action string) (Talk, error) {
	t := Talk{Action: action, ChatID: e.fields["chat_id"], Origin: e.fields["origin"]}
	var err error
	v, err := e.required("talk_id")
	if err != nil {
		return t, err
	}
	if t.TalkID, err = strconv.ParseInt(v, 10, 64); err != nil || t.TalkID <= 0 {
		return t, &ParseError{Key: e.key("talk_id"), Problem: "not a positive integer"}
	}
	if t.ContactID, err = e.optInt("contact_id"); err != nil {
		return t, err
	}
	if t.LeadID, _, err = e.entity(); err != nil {
		return t, err
	}
	if t.CreatedAt, err = e.unixTime("created_at", false); err != nil {
		return t, err
	}
	if t.UpdatedAt, err = e.unixTime("updated_at", false); err != nil {
		return t, err
	}
	switch e.fields["is_in_work"] {
	case "", "1":
		t.InWork = true
	case "0":
	default:
		return t, &ParseError{Key: e.key("is_in_work"), Problem: "not 0 or 1"}
	}
	switch e.fields["is_read"] {
	case "1":
		t.Read = true
	case "", "0":
	default:
		return t, &ParseError{Key: e.key("is_read"), Problem: "not 0 or 1"}
	}
	return t, nil
}

// Encode writes d as Kommo would send it: the key set of
// /work/shared/kommo-webhooks.md §2.4-2.6 and §7.2, every value a string,
// author names HTML-escaped. Incoming messages go under message[add],
// outgoing ones under outgoing_message[add], each numbered from 0 in slice
// order. Optional fields that are empty or zero are left out.
func Encode(d *Delivery) url.Values {
	v := url.Values{}
	v.Set("account[subdomain]", d.Subdomain)
	v.Set("account[id]", strconv.FormatInt(d.AccountID, 10))
	if d.AccountLink != "" {
		v.Set("account[_links][self]", d.AccountLink)
	}
	in, out := 0, 0
	for _, m := range d.Messages {
		var p string
		if m.Outgoing {
			p = "outgoing_message[add][" + strconv.Itoa(out) + "]"
			out++
		} else {
			p = "message[add][" + strconv.Itoa(in) + "]"
			in++
		}
		encodeMessage(v, p, &m)
	}
	n := map[string]int{}
	for _, t := range d.Talks {
		action := t.Action
		if action != "add" {
			action = "update"
		}
		p := "talk[" + action + "][" + strconv.Itoa(n[action]) + "]"
		n[action]++
		encodeTalk(v, p, &t)
	}
	return v
}

func setOpt(v url.Values, key, val string) {
	if val != "" {
		v.Set(key, val)
	}
}

func setInt(v url.Values, key string, n int64) {
	if n != 0 {
		v.Set(key, strconv.FormatInt(n, 10))
	}
}

func bit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func encodeMessage(v url.Values, p string, m *Message) {
	v.Set(p+"[id]", m.ID)
	v.Set(p+"[chat_id]", m.ChatID)
	setInt(v, p+"[talk_id]", m.TalkID)
	setInt(v, p+"[contact_id]", m.ContactID)
	v.Set(p+"[text]", m.Text)
	v.Set(p+"[created_at]", strconv.FormatInt(m.CreatedAt.Unix(), 10))
	typ := m.Type
	if typ == "" {
		typ = "text"
	}
	v.Set(p+"[message_type]", typ)
	if m.Outgoing {
		v.Set(p+"[type]", "outgoing")
		// Outgoing messages name the lead by element_id alone, and not always.
		setInt(v, p+"[element_id]", m.LeadID)
	} else {
		v.Set(p+"[type]", "incoming")
		switch {
		case m.LeadID != 0:
			id := strconv.FormatInt(m.LeadID, 10)
			v.Set(p+"[element_type]", "2")
			v.Set(p+"[entity_type]", "lead")
			v.Set(p+"[element_id]", id)
			v.Set(p+"[entity_id]", id)
		case m.ContactID != 0:
			id := strconv.FormatInt(m.ContactID, 10)
			v.Set(p+"[element_type]", "1")
			v.Set(p+"[entity_type]", "contact")
			v.Set(p+"[element_id]", id)
			v.Set(p+"[entity_id]", id)
		}
	}
	setOpt(v, p+"[author][id]", m.AuthorID)
	setOpt(v, p+"[author][type]", m.AuthorType)
	if m.Outgoing {
		v.Set(p+"[author][user_id]", strconv.FormatInt(m.AuthorUserID, 10))
	} else {
		setInt(v, p+"[author][user_id]", m.AuthorUserID)
	}
	setOpt(v, p+"[author][name]", html.EscapeString(m.AuthorName))
	if m.RecipientID != "" {
		v.Set(p+"[recipient][id]", m.RecipientID)
		v.Set(p+"[recipient][type]", "external")
	}
	setOpt(v, p+"[attachment][type]", m.AttachmentType)
	setOpt(v, p+"[attachment][link]", m.AttachmentLink)
	setOpt(v, p+"[attachment][file_name]", m.AttachmentName)
	setOpt(v, p+"[origin]", m.Origin)
}

func encodeTalk(v url.Values, p string, t *Talk) {
	v.Set(p+"[talk_id]", strconv.FormatInt(t.TalkID, 10))
	if !t.CreatedAt.IsZero() {
		v.Set(p+"[created_at]", strconv.FormatInt(t.CreatedAt.Unix(), 10))
	}
	if !t.UpdatedAt.IsZero() {
		v.Set(p+"[updated_at]", strconv.FormatInt(t.UpdatedAt.Unix(), 10))
	}
	v.Set(p+"[rate]", "0")
	setInt(v, p+"[contact_id]", t.ContactID)
	setOpt(v, p+"[chat_id]", t.ChatID)
	if t.LeadID != 0 {
		v.Set(p+"[entity_id]", strconv.FormatInt(t.LeadID, 10))
		v.Set(p+"[entity_type]", "lead")
	}
	v.Set(p+"[is_in_work]", bit(t.InWork))
	v.Set(p+"[is_read]", bit(t.Read))
	setOpt(v, p+"[origin]", t.Origin)
}
