package kommotest

import (
	"fmt"
	"math"
	mrand "math/rand/v2"
	"strings"
	"time"
)

// baseTime anchors the synthetic data: every generated message falls in the 30
// days before it, whatever day the tests run.
var baseTime = time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)

// officialAmojoID is the amojo account id of Kommo's signing example, so that
// the official request (kommo-api.md §1.4 A) is a request to this account.
const officialAmojoID = "52fd2a28-d2eb-4bd8-b862-a67934927b38"

const (
	accountID     = 31000001
	pipelineID    = 7000001
	statusWon     = 142
	statusLost    = 143
	firstLeadID   = 10000001
	firstContact  = 20000001
	firstChatLink = 6000001
	firstNoteID   = 40000001
)

// openStatuses are the ordinary stages of the pipeline.
var openStatuses = []int64{7100001, 7100002, 7100003, 7100004, 7100005}

type account struct {
	amojoID   string
	users     []*user
	userByID  map[int64]*user
	userNames map[string]bool

	leads    []*lead
	leadByID map[int64]*lead
	contacts map[int64]*contact
	chats    map[string]*chat

	seededNotes []*note
	nextNoteID  int64
	nextTalkID  int64

	rng *mrand.Rand // continues after generation, for ids of added messages
}

type user struct {
	id      int64
	name    string
	amojoID string
	ru      bool
}

type lead struct {
	id          int64
	name        string
	price       int64
	statusID    int64
	responsible int64
	createdAt   int64
	updatedAt   int64
	updatedBy   int64
	closedAt    int64 // 0: still open
	contacts    []leadContact
	fields      map[int64]string
}

type leadContact struct {
	id   int64
	main bool
}

func (l *lead) closed() bool { return l.statusID == statusWon || l.statusID == statusLost }

func (l *lead) contactIDsMainFirst() []int64 {
	var out []int64
	for _, c := range l.contacts {
		if c.main {
			out = append(out, c.id)
		}
	}
	for _, c := range l.contacts {
		if !c.main {
			out = append(out, c.id)
		}
	}
	return out
}

type contact struct {
	id    int64
	name  string
	chats []*chat
}

type participant struct {
	id, clientID, name, phone string
}

type chat struct {
	id        string
	linkID    int64
	contactID int64
	client    participant
	manager   participant
	msgs      []*message // oldest first

	// origin is "" for a chat of our own Chats API channel, or the channel of
	// another integration (waba, telegram, ...) for a native chat, which only
	// account webhooks tell about.
	origin      string
	leadID      int64 // the lead of a native chat's contact
	talkID      int64 // the native chat's current talk; 0 before its first message
	talkOpen    bool
	talkCreated time.Time
}

type message struct {
	id, clientID string
	at           time.Time
	fromClient   bool
	typ, text    string
	media        string
	thumbnail    string
	fileName     string
	fileSize     int64
	lat, lon     float64
	// contactName and contactPhone are the shared contact of a contact message.
	contactName, contactPhone string
}

type note struct {
	id, entityID      int64
	noteType          string
	text, service     string
	requestID         string
	createdAt         time.Time
	updatedAt         time.Time
	createdBy         int64
	responsibleUserID int64
	api               bool // created through the API (Notes() reports only these)
}

func (n *note) public() Note {
	return Note{ID: n.id, EntityID: n.entityID, NoteType: n.noteType, Text: n.text,
		Service: n.service, RequestID: n.requestID, CreatedAt: n.createdAt}
}

func (a *account) leadChats(l *lead) []*chat {
	var out []*chat
	for _, cid := range l.contactIDsMainFirst() {
		out = append(out, a.contacts[cid].chats...)
	}
	return out
}

func (a *account) newUUID() string { return uuidFrom(a.rng) }

func uuidFrom(r *mrand.Rand) string {
	hi, lo := r.Uint64(), r.Uint64()
	hi = hi&^0xf000 | 0x4000     // version 4
	lo = lo&^(0xc<<60) | 0x8<<60 // RFC 4122 variant
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x",
		hi>>32, (hi>>16)&0xffff, hi&0xffff, lo>>48, lo&0xffffffffffff)
}

func hexFrom(r *mrand.Rand, n int) string {
	var b strings.Builder
	for b.Len() < n {
		fmt.Fprintf(&b, "%016x", r.Uint64())
	}
	return b.String()[:n]
}

// Contact categories, in the proportions the fake promises.
const (
	catNoContact = iota
	catContactNoChat
	catOneChat
	catTwoChats
)

func roundShare(n int, share float64) int { return int(math.Round(float64(n) * share)) }

// generate builds the synthetic account; everything depends only on o.Seed and o.Leads.
func generate(o Options) *account {
	r := mrand.New(mrand.NewPCG(uint64(o.Seed), 0x5eed))
	a := &account{
		amojoID:   officialAmojoID,
		userByID:  map[int64]*user{},
		userNames: map[string]bool{},
		leadByID:  map[int64]*lead{},
		contacts:  map[int64]*contact{},
		chats:     map[string]*chat{},
		rng:       r,
	}
	for i, u := range []struct {
		name string
		ru   bool
	}{{"Анна Смирнова", true}, {"Дмитрий Волков", true}, {"Emily Clark", false}, {"James Miller", false}} {
		usr := &user{id: 8000001 + int64(i), name: u.name, amojoID: uuidFrom(r), ru: u.ru}
		a.users = append(a.users, usr)
		a.userByID[usr.id] = usr
		a.userNames[usr.name] = true
	}

	n := o.Leads
	cats := make([]int, n)
	i := 0
	for _, c := range []struct{ cat, count int }{
		{catNoContact, roundShare(n, 0.10)},
		{catContactNoChat, roundShare(n, 0.10)},
		{catTwoChats, roundShare(n, 0.10)},
	} {
		for k := 0; k < c.count && i < n; k++ {
			cats[i] = c.cat
			i++
		}
	}
	for ; i < n; i++ {
		cats[i] = catOneChat
	}
	r.Shuffle(n, func(i, j int) { cats[i], cats[j] = cats[j], cats[i] })
	closed := map[int]bool{}
	for _, idx := range r.Perm(n)[:roundShare(n, 0.15)] {
		closed[idx] = true
	}

	g := &gen{a: a, r: r, nextContact: firstContact, nextLink: firstChatLink}
	for i := range n {
		g.lead(i, cats[i], closed[i])
	}
	g.seedNotes()
	a.nextNoteID = g.nextNote
	return a
}

type gen struct {
	a           *account
	r           *mrand.Rand
	nextContact int64
	nextLink    int64
	nextNote    int64
	chatCount   int
}

func (g *gen) pick(list []string) string { return list[g.r.IntN(len(list))] }

func (g *gen) lead(i, cat int, closed bool) {
	r := g.r
	ru := r.IntN(2) == 0
	lang := langEN
	if ru {
		lang = langRU
	}
	var managers []*user
	for _, u := range g.a.users {
		if u.ru == ru {
			managers = append(managers, u)
		}
	}
	mgr := managers[r.IntN(len(managers))]
	company := g.pick(lang.companies)
	product := r.IntN(len(lang.products))

	l := &lead{
		id:          firstLeadID + int64(i),
		name:        company + " — " + lang.productTitles[product],
		price:       int64(r.IntN(200)+1) * 5000,
		responsible: mgr.id,
		updatedBy:   mgr.id,
		fields:      map[int64]string{},
	}
	if closed {
		l.statusID = statusWon + int64(r.IntN(2))
	} else {
		l.statusID = openStatuses[r.IntN(len(openStatuses))]
	}

	nContacts, withChat := 0, false
	switch cat {
	case catContactNoChat:
		nContacts = 1
	case catOneChat:
		nContacts, withChat = 1, true
	case catTwoChats:
		nContacts, withChat = 2, true
	}
	var first, last time.Time
	for k := range nContacts {
		c := &contact{id: g.nextContact, name: g.pick(lang.names)}
		g.nextContact++
		g.a.contacts[c.id] = c
		// The main contact is not always listed first, as in Kommo: clients
		// must look at is_main rather than trust the order.
		main := k == 0
		if nContacts == 2 {
			main = (k == 1) == (i%2 == 1)
		}
		l.contacts = append(l.contacts, leadContact{id: c.id, main: main})
		if !withChat {
			continue
		}
		ch := g.chat(c, mgr, lang, company, product)
		if first.IsZero() || ch.msgs[0].at.Before(first) {
			first = ch.msgs[0].at
		}
		if end := ch.msgs[len(ch.msgs)-1].at; end.After(last) {
			last = end
		}
	}
	if first.IsZero() {
		first = baseTime.Add(-time.Duration(r.IntN(29*24)+24) * time.Hour)
		last = first.Add(time.Duration(r.IntN(48)+1) * time.Hour)
	}
	l.createdAt = first.Add(-time.Duration(r.IntN(170)+10) * time.Minute).Unix()
	l.updatedAt = last.Unix()
	if closed {
		l.closedAt = l.updatedAt
	}
	g.a.leads = append(g.a.leads, l)
	g.a.leadByID[l.id] = l
}

func (g *gen) chat(c *contact, mgr *user, lang *language, company string, product int) *chat {
	r := g.r
	ch := &chat{
		id:        uuidFrom(r),
		linkID:    g.nextLink,
		contactID: c.id,
		client: participant{
			id:       uuidFrom(r),
			clientID: "sk-" + hexFrom(r, 24),
			name:     c.name,
			phone:    lang.phone(r),
		},
		manager: participant{id: mgr.amojoID, name: mgr.name},
	}
	g.nextLink++
	c.chats = append(c.chats, ch)
	g.a.chats[ch.id] = ch

	// The first two chats are one short and one long, so that even a tiny
	// account has a chat within one history page and one beyond it.
	var count int
	switch small := r.Float64() < 0.45; {
	case g.chatCount == 0 || (g.chatCount > 1 && small):
		count = 3 + r.IntN(43) // 3..45
	default:
		count = 46 + r.IntN(105) // 46..150
	}
	g.chatCount++

	// Gaps of minutes within a conversation, hours or a day between its parts;
	// scaled down when the chat would not fit in the last 30 days.
	start := baseTime.Add(-time.Duration(r.IntN(28*24)+36) * time.Hour)
	gaps := make([]time.Duration, count)
	var total time.Duration
	for k := 1; k < count; k++ {
		switch f := r.Float64(); {
		case f < 0.8:
			gaps[k] = time.Duration(r.IntN(14*60)+30) * time.Second
		case f < 0.95:
			gaps[k] = time.Duration(r.IntN(5*60)+60) * time.Minute
		default:
			gaps[k] = time.Duration(r.IntN(18)+12) * time.Hour
		}
		gaps[k] += time.Duration(r.IntN(1000)) * time.Millisecond
		total += gaps[k]
	}
	if room := baseTime.Sub(start) - 10*time.Minute; total > room {
		scale := float64(room) / float64(total)
		for k := range gaps {
			gaps[k] = max(time.Duration(float64(gaps[k])*scale), time.Second)
		}
	}

	talk := newTalk(r, lang, c.name, mgr.name, company, product)
	at := start
	fromClient := true
	for k := range count {
		at = at.Add(gaps[k]).Truncate(time.Millisecond)
		if k > 0 {
			// Mostly alternating; sometimes someone writes twice in a row.
			if k == 1 || r.Float64() < 0.85 {
				fromClient = !fromClient
			}
		}
		m := &message{id: uuidFrom(r), at: at, fromClient: fromClient, typ: "text"}
		if fromClient {
			m.clientID = hexFrom(r, 13)
		} else {
			m.clientID = "skm-" + hexFrom(r, 13)
		}
		if k >= 2 && r.Float64() < 0.10 {
			talk.media(m)
		} else {
			m.text = talk.line(k, fromClient)
		}
		ch.msgs = append(ch.msgs, m)
	}
	return ch
}

// seedNotes gives some leads notes written by their managers in the UI, so a
// client that lists a lead's notes must tell its own notes from the others.
func (g *gen) seedNotes() {
	g.nextNote = firstNoteID
	for _, l := range g.a.leads {
		if g.r.Float64() >= 0.25 {
			continue
		}
		lang := langEN
		if g.a.userByID[l.responsible].ru {
			lang = langRU
		}
		for range 1 + g.r.IntN(2) {
			span := max(l.updatedAt-l.createdAt, 1)
			at := time.Unix(l.createdAt+g.r.Int64N(span), 0).UTC()
			g.a.seededNotes = append(g.a.seededNotes, &note{
				id: g.nextNote, entityID: l.id, noteType: "common",
				text: g.pick(lang.managerNotes), createdAt: at, updatedAt: at,
				createdBy: l.responsible, responsibleUserID: l.responsible,
			})
			g.nextNote++
		}
	}
}

// nativeOrigins are the channels of other integrations native chats get, in turn.
var nativeOrigins = []string{"waba", "telegram", "instagram_business", "com.amocrm.amocrmwa", "com.wazzup24.whatsapp"}

const firstTalkID = 100001

// markNative moves the chats of n open leads to channels of other
// integrations. The leads are spread evenly over the open leads with chats,
// and nothing is drawn from the generator, so the rest of the account is the
// same whatever n is.
func (a *account) markNative(n int) {
	a.nextTalkID = firstTalkID
	var eligible []*lead
	for _, l := range a.leads {
		if !l.closed() && len(a.leadChats(l)) > 0 {
			eligible = append(eligible, l)
		}
	}
	n = min(n, len(eligible))
	k := 0
	for i := range n {
		l := eligible[i*len(eligible)/n]
		for _, c := range a.leadChats(l) {
			c.origin = nativeOrigins[k%len(nativeOrigins)]
			c.leadID = l.id
			k++
		}
	}
}
