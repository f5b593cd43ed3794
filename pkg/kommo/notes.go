package kommo

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/httpx"
)

// defaultNotesLimit is what LeadNotes asks for when the query says nothing.
const defaultNotesLimit = 50

// NoteParams is the content of a note; Service names the author of the
// service_message and extended_service_message types.
type NoteParams struct {
	Text    string `json:"text"`
	Service string `json:"service,omitempty"`
}

// NewNote is a note to add to an entity.
type NewNote struct {
	EntityID  int64      `json:"entity_id"`
	NoteType  string     `json:"note_type"` // common, service_message, extended_service_message, ...
	Params    NoteParams `json:"params"`
	RequestID string     `json:"request_id,omitempty"` // echoed back; lets the caller match answers to requests
}

// Note is a note as Kommo stores it.
type Note struct {
	ID        int64      `json:"id"`
	EntityID  int64      `json:"entity_id"`
	NoteType  string     `json:"note_type"`
	Params    NoteParams `json:"params"`
	RequestID string     `json:"request_id"`
	CreatedAt int64      `json:"created_at"`
}

// AddLeadNotes adds notes to leads in one request (at most 250; 50 is what
// Kommo recommends) and returns the created notes (id, entity_id,
// request_id) in request order.
//
// It is retried only on a 429 or when the connection was never made: after a
// 5xx or a timeout the notes may exist already, and sending them again would
// duplicate them. The caller finds out with LeadNotes.
//
// https://developers.kommo.com/reference/notes-types
func (c *Client) AddLeadNotes(ctx context.Context, notes []NewNote) ([]Note, error) {
	if len(notes) == 0 {
		return nil, nil
	}
	if len(notes) > maxPage {
		return nil, fmt.Errorf("kommo: %d notes in one request: Kommo takes at most %d, split the batch", len(notes), maxPage)
	}
	var page struct {
		Embedded struct {
			Notes []Note `json:"notes"`
		} `json:"_embedded"`
	}
	u := c.endpoint("/api/v4/leads/notes", nil)
	status, err := c.do(ctx, http.MethodPost, u, notes, notIdempotent, &page)
	if err != nil {
		return nil, err
	}
	if status == http.StatusNoContent {
		// Not an *Error: a 204 *Error means "not found", and this is not that.
		return nil, fmt.Errorf("kommo: POST %s: 204 No Content: Kommo answered without the created notes", httpx.CleanURL(u))
	}
	return inRequestOrder(notes, page.Embedded.Notes), nil
}

// inRequestOrder sorts created notes into the order of the request when
// every request had a distinct request_id that came back; otherwise Kommo's
// order (which is the request order in every answer seen) is kept.
func inRequestOrder(req []NewNote, got []Note) []Note {
	if len(req) != len(got) {
		return got
	}
	pos := make(map[string]int, len(req))
	for i, n := range req {
		if n.RequestID == "" {
			return got
		}
		if _, dup := pos[n.RequestID]; dup {
			return got
		}
		pos[n.RequestID] = i
	}
	out := make([]Note, len(got))
	seen := make([]bool, len(got))
	for _, n := range got {
		i, ok := pos[n.RequestID]
		if !ok || seen[i] {
			return got
		}
		out[i], seen[i] = n, true
	}
	return out
}

// NotesQuery selects the notes LeadNotes returns.
type NotesQuery struct {
	NoteTypes []string // filter[note_type][]=
	Limit     int      // 1..250, default 50
}

// LeadNotes returns the newest notes of one lead (one page, newest first);
// none is not an error.
//
// https://www.kommo.com/developers/content/api_v4/events-and-notes/
func (c *Client) LeadNotes(ctx context.Context, leadID int64, q NotesQuery) ([]Note, error) {
	limit := q.Limit
	if limit == 0 {
		limit = defaultNotesLimit
	}
	if limit < 1 || limit > maxPage {
		return nil, fmt.Errorf("kommo: notes page size %d is out of range: use 1..%d", q.Limit, maxPage)
	}
	v := url.Values{"order[id]": {"desc"}, "limit": {strconv.Itoa(limit)}}
	for _, t := range q.NoteTypes {
		v.Add("filter[note_type][]", t)
	}
	var page struct {
		Embedded struct {
			Notes []Note `json:"notes"`
		} `json:"_embedded"`
	}
	u := c.endpoint("/api/v4/leads/"+strconv.FormatInt(leadID, 10)+"/notes", v)
	status, err := c.do(ctx, http.MethodGet, u, nil, idempotent, &page)
	if err != nil || status == http.StatusNoContent {
		return nil, err
	}
	return page.Embedded.Notes, nil
}
