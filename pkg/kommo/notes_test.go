package kommo

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestAddLeadNotes(t *testing.T) {
	c, mux, _ := setup(t, Options{Tokens: StaticToken("tok")})
	h, n := counted(func(w http.ResponseWriter, r *http.Request) {
		wantHeader(t, r, "Authorization", "Bearer tok")
		wantHeader(t, r, "Content-Type", "application/json")
		wantJSONBody(t, r, `[
			{"entity_id":1,"note_type":"common","params":{"text":"AI summary 1"},"request_id":"r1"},
			{"entity_id":2,"note_type":"extended_service_message","params":{"text":"AI summary 2","service":"kommo-summarizer"},"request_id":"r2"}]`)
		// Answered out of order: the client puts them back in request order.
		writeJSON(w, 200, `{"_links":{},"_embedded":{"notes":[
			{"id":502,"entity_id":2,"request_id":"r2","_links":{}},
			{"id":501,"entity_id":1,"request_id":"r1","_links":{}}]}}`)
	})
	mux.HandleFunc("POST /api/v4/leads/notes", h)
	got, err := c.AddLeadNotes(context.Background(), []NewNote{
		{EntityID: 1, NoteType: "common", Params: NoteParams{Text: "AI summary 1"}, RequestID: "r1"},
		{EntityID: 2, NoteType: "extended_service_message", Params: NoteParams{Text: "AI summary 2", Service: "kommo-summarizer"}, RequestID: "r2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Note{{ID: 501, EntityID: 1, RequestID: "r1"}, {ID: 502, EntityID: 2, RequestID: "r2"}}
	if !reflect.DeepEqual(got, want) || n.Load() != 1 {
		t.Errorf("notes = %+v after %d requests, want %+v after 1", got, n.Load(), want)
	}
}

func TestAddLeadNotesNotRetriedOn5xx(t *testing.T) {
	c, mux, _ := setup(t, Options{})
	h, n := counted(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(502) })
	mux.HandleFunc("POST /api/v4/leads/notes", h)
	_, err := c.AddLeadNotes(context.Background(), []NewNote{{EntityID: 1, NoteType: "common", Params: NoteParams{Text: "x"}}})
	var ke *Error
	if !errors.As(err, &ke) || ke.Status != 502 {
		t.Errorf("err = %v, want *Error 502", err)
	}
	if n.Load() != 1 {
		t.Errorf("%d requests, want 1: the notes may have been stored", n.Load())
	}
}

func TestAddLeadNotesRetriedOn429(t *testing.T) {
	c, mux, _ := setup(t, Options{})
	h, n := counted(func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("POST /api/v4/leads/notes", func(w http.ResponseWriter, r *http.Request) {
		h(w, r)
		wantJSONBody(t, r, `[{"entity_id":1,"note_type":"common","params":{"text":"x"}}]`)
		if n.Load() == 1 {
			w.WriteHeader(429)
			return
		}
		writeJSON(w, 200, `{"_embedded":{"notes":[{"id":9,"entity_id":1,"request_id":"0"}]}}`)
	})
	got, err := c.AddLeadNotes(context.Background(), []NewNote{{EntityID: 1, NoteType: "common", Params: NoteParams{Text: "x"}}})
	if err != nil || len(got) != 1 || got[0].ID != 9 || n.Load() != 2 {
		t.Errorf("notes %+v, err %v, %d requests; want note 9 after 2", got, err, n.Load())
	}
}

func TestAddLeadNotesRetriedWhenTheConnectionWasRefused(t *testing.T) {
	hc, dials := refusingFirst(t)
	c, mux, _ := setup(t, Options{HTTPClient: hc})
	h, n := counted(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"_embedded":{"notes":[{"id":9,"entity_id":1}]}}`)
	})
	mux.HandleFunc("POST /api/v4/leads/notes", h)
	if _, err := c.AddLeadNotes(context.Background(), []NewNote{{EntityID: 1, NoteType: "common"}}); err != nil {
		t.Fatal(err)
	}
	if dials.Load() != 2 || n.Load() != 1 {
		t.Errorf("dials %d (want 2), requests %d (want 1)", dials.Load(), n.Load())
	}
}

func TestAddLeadNotesNotRetriedAfterTimeout(t *testing.T) {
	hc := &http.Client{Timeout: 100 * time.Millisecond}
	c, mux, _ := setup(t, Options{HTTPClient: hc})
	h, n := counted(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select { // hold the answer until the client gives up
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	mux.HandleFunc("POST /api/v4/leads/notes", h)
	_, err := c.AddLeadNotes(context.Background(), []NewNote{{EntityID: 1, NoteType: "common"}})
	if err == nil || !strings.Contains(err.Error(), "kommo: POST") {
		t.Errorf("err = %v, want a transport error naming the call", err)
	}
	if n.Load() != 1 {
		t.Errorf("%d requests, want 1: the server may have stored the notes", n.Load())
	}
}

func TestAddLeadNotesBatchBounds(t *testing.T) {
	c, _, _ := setup(t, Options{}) // any request fails the test
	if got, err := c.AddLeadNotes(context.Background(), nil); got != nil || err != nil {
		t.Errorf("empty batch: %v, %v", got, err)
	}
	if _, err := c.AddLeadNotes(context.Background(), make([]NewNote, 251)); err == nil || !strings.Contains(err.Error(), "at most 250") {
		t.Errorf("251 notes: err = %v", err)
	}
}

func TestLeadNotes(t *testing.T) {
	c, mux, _ := setup(t, Options{})
	mux.HandleFunc("GET /api/v4/leads/77/notes", func(w http.ResponseWriter, r *http.Request) {
		wantQuery(t, r, url.Values{"order[id]": {"desc"}, "limit": {"5"}, "filter[note_type][]": {"common", "service_message"}})
		if !strings.Contains(r.URL.RawQuery, "order%5Bid%5D=desc") || !strings.Contains(r.URL.RawQuery, "filter%5Bnote_type%5D%5B%5D=common") {
			t.Errorf("raw query %q", r.URL.RawQuery)
		}
		writeJSON(w, 200, `{"_page":1,"_embedded":{"notes":[
			{"id":12,"entity_id":77,"note_type":"service_message","params":{"text":"newer","service":"kommo-summarizer"},"created_at":1700000200},
			{"id":11,"entity_id":77,"note_type":"common","params":{"text":"older"},"created_at":1700000100}]}}`)
	})
	mux.HandleFunc("GET /api/v4/leads/78/notes", func(w http.ResponseWriter, r *http.Request) {
		wantQuery(t, r, url.Values{"order[id]": {"desc"}, "limit": {"50"}})
		w.WriteHeader(http.StatusNoContent)
	})
	got, err := c.LeadNotes(context.Background(), 77, NotesQuery{NoteTypes: []string{"common", "service_message"}, Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	want := []Note{
		{ID: 12, EntityID: 77, NoteType: "service_message", Params: NoteParams{Text: "newer", Service: "kommo-summarizer"}, CreatedAt: 1700000200},
		{ID: 11, EntityID: 77, NoteType: "common", Params: NoteParams{Text: "older"}, CreatedAt: 1700000100},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("notes = %+v\nwant %+v", got, want)
	}
	got, err = c.LeadNotes(context.Background(), 78, NotesQuery{})
	if got != nil || err != nil {
		t.Errorf("204: %v, %v; want nil, nil", got, err)
	}
	if _, err := c.LeadNotes(context.Background(), 78, NotesQuery{Limit: 300}); err == nil {
		t.Error("limit 300 accepted")
	}
}

func TestContactChats(t *testing.T) {
	c, mux, _ := setup(t, Options{})
	mux.HandleFunc("GET /api/v4/contacts/chats", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("contact_id") {
		case "8074730":
			wantQuery(t, r, url.Values{"contact_id": {"8074730"}})
			writeJSON(w, 200, `{"_total_items":1,"_embedded":{"chats":[{"chat_id":"4a9d72f9-6b0c-4b1e-9d1c-2a7e8c1f0a11","contact_id":8074730,"id":6436428}]}}`)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
	got, err := c.ContactChats(context.Background(), 8074730)
	want := []ContactChat{{ID: 6436428, ChatID: "4a9d72f9-6b0c-4b1e-9d1c-2a7e8c1f0a11", ContactID: 8074730}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("chats = %+v, %v; want %+v", got, err, want)
	}
	got, err = c.ContactChats(context.Background(), 1)
	if got != nil || err != nil {
		t.Errorf("204: %v, %v; want nil, nil", got, err)
	}
}
