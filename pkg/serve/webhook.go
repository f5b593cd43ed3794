package serve

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommohook"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
)

// webhook takes one delivery of Kommo's account webhooks. It answers 200
// only once the body's events are durably in the store, so an acknowledged
// message is never lost; a duplicate (Kommo retries) is stored once.
func (s *Server) webhook(w http.ResponseWriter, r *http.Request) {
	if subtle.ConstantTimeCompare([]byte(r.PathValue("secret")), []byte(s.o.WebhookSecret)) != 1 {
		http.NotFound(w, r)
		return
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/x-www-form-urlencoded" {
		http.Error(w, "a Kommo webhook body is application/x-www-form-urlencoded", http.StatusUnsupportedMediaType)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.o.MaxBodyBytes)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.o.Logger.Warn("webhook refused: body over serve.max_body_bytes", "limit", s.o.MaxBodyBytes)
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		s.o.Logger.Warn("webhook refused: unparseable body", "err", err)
		http.Error(w, "unparseable form body", http.StatusBadRequest)
		return
	}
	d, err := kommohook.Parse(r.PostForm)
	if err != nil {
		s.o.Logger.Warn("webhook refused", "err", err, "request_id", r.Header.Get("X-Amocrm-Requestid"))
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if d.AccountID != s.o.AccountID {
		s.o.Logger.Warn("webhook refused: another account's", "account_id", d.AccountID, "want", s.o.AccountID)
		http.Error(w, "not this account's webhook", http.StatusForbidden)
		return
	}
	res, err := s.in.submit(r.Context(), toStore(d, s.o.Now()))
	if err != nil {
		// Not acknowledged: Kommo delivers it again later.
		s.o.Logger.Error("webhook not stored; Kommo will retry", "err", err)
		http.Error(w, "not stored", http.StatusServiceUnavailable)
		return
	}
	s.o.Logger.Debug("webhook stored", "messages", len(d.Messages), "talks", len(d.Talks),
		"added", res.Added, "duplicates", res.Duplicates, "attached", res.Attached, "queued", res.Queued)
	w.WriteHeader(http.StatusOK)
}

// toStore turns a parsed delivery into the message log's terms.
func toStore(d *kommohook.Delivery, now time.Time) store.Delivery {
	out := store.Delivery{Messages: make([]store.LogMessage, 0, len(d.Messages)), Talks: make([]store.LogTalk, 0, len(d.Talks))}
	for _, m := range d.Messages {
		dir := store.DirectionIn
		if m.Outgoing {
			dir = store.DirectionOut
		}
		out.Messages = append(out.Messages, store.LogMessage{
			ID: m.ID, ChatID: m.ChatID, TalkID: m.TalkID, ContactID: m.ContactID, LeadID: m.LeadID,
			Direction: dir, AuthorName: m.AuthorName, AuthorType: m.AuthorType, Type: m.Type, Text: m.Text,
			AttachmentType: m.AttachmentType, AttachmentName: m.AttachmentName,
			CreatedAt: m.CreatedAt, Origin: m.Origin, ReceivedAt: now,
		})
	}
	for _, t := range d.Talks {
		out.Talks = append(out.Talks, store.LogTalk{
			TalkID: t.TalkID, ChatID: t.ChatID, ContactID: t.ContactID, LeadID: t.LeadID,
			Closed: t.Action == "update" && !t.InWork,
		})
	}
	return out
}

// ingester commits deliveries in groups: the handlers that arrive while a
// commit is under way share the next one, so 50 concurrent senders cost a
// few transactions, not 50, and each still waits for its own durability.
type ingester struct {
	db       *store.DB
	debounce time.Duration
	log      *slog.Logger
	in       chan *ingestReq
}

type ingestReq struct {
	d    store.Delivery
	done chan ingestResult
}

type ingestResult struct {
	res store.IngestResult
	err error
}

// maxGroup is the most deliveries one transaction takes.
const maxGroup = 128

func newIngester(db *store.DB, debounce time.Duration, log *slog.Logger) *ingester {
	return &ingester{db: db, debounce: debounce, log: log, in: make(chan *ingestReq, maxGroup)}
}

// submit hands d to the committer and waits for its commit.
func (g *ingester) submit(ctx context.Context, d store.Delivery) (store.IngestResult, error) {
	req := &ingestReq{d: d, done: make(chan ingestResult, 1)}
	select {
	case g.in <- req:
	case <-ctx.Done():
		return store.IngestResult{}, ctx.Err()
	}
	// Once handed over, the commit goes ahead whatever the client does;
	// the answer waits for it.
	r := <-req.done
	return r.res, r.err
}

// run commits until ctx ends, then commits what is still queued: a request
// that was handed over is always answered.
func (g *ingester) run(ctx context.Context) {
	for {
		var first *ingestReq
		select {
		case first = <-g.in:
		case <-ctx.Done():
			for {
				select {
				case req := <-g.in:
					g.commit([]*ingestReq{req})
				default:
					return
				}
			}
		}
		group := []*ingestReq{first}
	fill:
		for len(group) < maxGroup {
			select {
			case req := <-g.in:
				group = append(group, req)
			default:
				break fill
			}
		}
		g.commit(group)
	}
}

func (g *ingester) commit(group []*ingestReq) {
	ds := make([]store.Delivery, len(group))
	for i, req := range group {
		ds[i] = req.d
	}
	res, err := g.db.Ingest(context.Background(), ds, store.IngestOptions{CloseDebounce: g.debounce})
	if err == nil || len(group) == 1 {
		// The group's counts go to its first request; the answers only
		// need to know that their bodies are stored.
		for i, req := range group {
			if i > 0 {
				res = store.IngestResult{}
			}
			req.done <- ingestResult{res, err}
		}
		return
	}
	// One body spoiled the group: each on its own, so the others are kept.
	for _, req := range group {
		g.commit([]*ingestReq{req})
	}
}
