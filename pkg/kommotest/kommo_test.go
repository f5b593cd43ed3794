package kommotest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const unauthorizedBody = `{"title":"Unauthorized","type":"https://httpstatus.es/401","status":401,"detail":"Invalid user name or password"}`

func TestBearerIsChecked(t *testing.T) {
	c := newClock()
	s := startTest(t, Options{RESTRateLimit: -1, Leads: 5, AccessTokenTTL: time.Hour}, c)
	u := s.KommoURL + "/api/v4/account"

	for name, h := range map[string][]string{
		"no header":  nil,
		"unknown":    bearer("nope"),
		"not bearer": {"Authorization", "Basic " + s.LongLivedToken()},
	} {
		r := send(t, "GET", u, nil, h...)
		wantStatus(t, r, 401)
		if r.header.Get("Content-Type") != problemJSON || strings.TrimSpace(string(r.body)) != unauthorizedBody {
			t.Errorf("%s: 401 answer %q %s", name, r.header.Get("Content-Type"), r.body)
		}
	}

	wantStatus(t, send(t, "GET", u, nil, bearer(s.LongLivedToken())...), 200)
	access, _ := s.IssueTokens()
	r := send(t, "GET", u, nil, bearer(access)...)
	wantStatus(t, r, 200)
	if r.header.Get("Content-Type") != halJSON {
		t.Errorf("success content type %q, want %q", r.header.Get("Content-Type"), halJSON)
	}

	c.Advance(time.Hour) // the token's lifetime is over
	wantStatus(t, send(t, "GET", u, nil, bearer(access)...), 401)
	wantStatus(t, send(t, "GET", u, nil, bearer(s.LongLivedToken())...), 200)

	access, _ = s.IssueTokens()
	s.ExpireAccessTokens()
	r = send(t, "GET", u, nil, bearer(access)...)
	wantStatus(t, r, 401)
	if strings.TrimSpace(string(r.body)) != unauthorizedBody {
		t.Errorf("expired token answer %s", r.body)
	}
}

func TestAccountWith(t *testing.T) {
	s := startTest(t, Options{RESTRateLimit: -1, Leads: 5}, nil)
	h := bearer(s.LongLivedToken())
	m := send(t, "GET", s.KommoURL+"/api/v4/account", nil, h...).json(t)
	if _, ok := m["amojo_id"]; ok {
		t.Error("amojo_id present without with=amojo_id")
	}
	if m["id"] == nil || m["subdomain"] == nil || m["current_user_id"] == nil {
		t.Errorf("account lacks id/subdomain/current_user_id: %v", m)
	}
	m = send(t, "GET", s.KommoURL+"/api/v4/account?with=amojo_id,version", nil, h...).json(t)
	if m["amojo_id"] != s.AmojoAccountID() || m["version"] == nil {
		t.Errorf("with=amojo_id,version gave %v", m)
	}
	got := validation(t, send(t, "GET", s.KommoURL+"/api/v4/account?with=amojo_id,chats", nil, h...))
	if got[0][1] != "NotSupportedChoice" || got[0][2] != "with" {
		t.Errorf("validation %v", got)
	}
}

func TestLeadsRejectWithChatsAndBadLimits(t *testing.T) {
	s := startTest(t, Options{RESTRateLimit: -1, Leads: 5}, nil)
	h := bearer(s.LongLivedToken())
	for _, q := range []string{"with=chats", "with=contacts,chats", "with=talks"} {
		got := validation(t, send(t, "GET", s.KommoURL+"/api/v4/leads?"+q, nil, h...))
		if got[0] != [3]string{"0", "NotSupportedChoice", "with"} {
			t.Errorf("%s: %v", q, got)
		}
	}
	validation(t, send(t, "GET", s.KommoURL+"/api/v4/leads/10000001?with=chats", nil, h...))
	for _, q := range []string{"limit=251", "limit=0", "limit=x", "page=0", "page=-1", "order[name]=asc", "order[id]=up", "filter[tags]=1"} {
		validation(t, send(t, "GET", s.KommoURL+"/api/v4/leads?"+q, nil, h...))
	}
	for _, q := range []string{"limit=250", "with=contacts,source_id,loss_reason,catalog_elements,is_price_modified_by_robot,source"} {
		wantStatus(t, send(t, "GET", s.KommoURL+"/api/v4/leads?"+q, nil, h...), 200)
	}
}

func TestLeadsPaginationFollowsNext(t *testing.T) {
	s := startTest(t, Options{RESTRateLimit: -1, Leads: 23}, nil)
	h := bearer(s.LongLivedToken())
	next := s.KommoURL + "/api/v4/leads?limit=10&with=contacts"
	var ids []int64
	pages := 0
	for next != "" {
		r := send(t, "GET", next, nil, h...)
		wantStatus(t, r, 200)
		var page struct {
			Page  int `json:"_page"`
			Links struct {
				Self, Next *struct{ Href string }
			} `json:"_links"`
			Embedded struct {
				Leads []struct {
					ID                 int64
					CustomFieldsValues any `json:"custom_fields_values"`
					Embedded           struct {
						Tags     []any
						Contacts []struct {
							ID     int64
							IsMain bool `json:"is_main"`
						}
					} `json:"_embedded"`
				}
			} `json:"_embedded"`
		}
		if err := json.Unmarshal(r.body, &page); err != nil {
			t.Fatal(err)
		}
		pages++
		if page.Page != pages || page.Links.Self == nil || !strings.HasPrefix(page.Links.Self.Href, s.KommoURL+"/api/v4/leads?") {
			t.Fatalf("page %d: _page %d, self %+v", pages, page.Page, page.Links.Self)
		}
		for _, l := range page.Embedded.Leads {
			ids = append(ids, l.ID)
			if l.Embedded.Tags == nil || l.Embedded.Contacts == nil || l.CustomFieldsValues != nil {
				t.Errorf("lead %d: tags %v contacts %v custom_fields_values %v", l.ID, l.Embedded.Tags, l.Embedded.Contacts, l.CustomFieldsValues)
			}
		}
		next = ""
		if page.Links.Next != nil {
			next = page.Links.Next.Href
			if !strings.HasPrefix(next, s.KommoURL+"/api/v4/leads?") || !strings.Contains(next, "with=contacts") {
				t.Fatalf("next href %q is not absolute or lost the query", next)
			}
		}
	}
	if pages != 3 || len(ids) != 23 || ids[0] != 10000001 || ids[22] != 10000023 {
		t.Fatalf("%d pages, ids %v", pages, ids)
	}
	r := send(t, "GET", s.KommoURL+"/api/v4/leads?limit=10&page=4", nil, h...)
	wantStatus(t, r, 204)
	if len(r.body) != 0 {
		t.Errorf("204 with a body: %q", r.body)
	}
	if st := s.Stats(); st.LeadListCalls != 4 {
		t.Errorf("LeadListCalls %d, want 4", st.LeadListCalls)
	}

	// Filters and order the sweep may use.
	m := send(t, "GET", s.KommoURL+"/api/v4/leads?filter[id][]=10000003&filter[id][]=10000001&order[id]=desc", nil, h...).json(t)
	if a, b := dig(m, "_embedded", "leads", 0, "id"), dig(m, "_embedded", "leads", 1, "id"); a != 10000003.0 || b != 10000001.0 ||
		dig(m, "_embedded", "leads", 2) != nil {
		t.Errorf("filter[id][] + order[id]=desc gave ids %v, %v", a, b)
	}
	wantStatus(t, send(t, "GET", s.KommoURL+"/api/v4/leads?filter[id]=999", nil, h...), 204)
}

func TestLeadByIDAndContactChats(t *testing.T) {
	s := startTest(t, Options{RESTRateLimit: -1}, nil)
	h := bearer(s.LongLivedToken())
	var two, noChat Lead
	for _, l := range s.Leads() {
		if len(l.ChatIDs) == 2 && two.ID == 0 {
			two = l
		}
		if len(l.ContactIDs) == 1 && len(l.ChatIDs) == 0 && noChat.ID == 0 {
			noChat = l
		}
	}
	if two.ID == 0 || noChat.ID == 0 {
		t.Fatal("the default account lacks a two-chat lead or a lead whose contact has no chat")
	}
	m := send(t, "GET", fmt.Sprintf("%s/api/v4/leads/%d?with=contacts", s.KommoURL, two.ID), nil, h...).json(t)
	var main []float64
	for _, c := range dig(m, "_embedded", "contacts").([]any) {
		if dig(c, "is_main") == true {
			main = append(main, dig(c, "id").(float64))
		}
	}
	if len(main) != 1 || int64(main[0]) != two.ContactIDs[0] {
		t.Errorf("is_main contacts %v, want exactly %d", main, two.ContactIDs[0])
	}
	m = send(t, "GET", fmt.Sprintf("%s/api/v4/leads/%d", s.KommoURL, two.ID), nil, h...).json(t)
	if dig(m, "_embedded", "contacts") != nil {
		t.Error("contacts embedded without with=contacts")
	}
	wantStatus(t, send(t, "GET", s.KommoURL+"/api/v4/leads/99999999", nil, h...), 204)

	var chats []string
	for _, cid := range two.ContactIDs {
		r := send(t, "GET", fmt.Sprintf("%s/api/v4/contacts/chats?contact_id=%d", s.KommoURL, cid), nil, h...)
		wantStatus(t, r, 200)
		m := r.json(t)
		if dig(m, "_total_items") != 1.0 || dig(m, "_embedded", "chats", 0, "contact_id") != float64(cid) {
			t.Errorf("contact %d chats: %s", cid, r.body)
		}
		chats = append(chats, dig(m, "_embedded", "chats", 0, "chat_id").(string))
	}
	if !reflect.DeepEqual(chats, two.ChatIDs) {
		t.Errorf("chats %v, want %v", chats, two.ChatIDs)
	}
	r := send(t, "GET", s.KommoURL+"/api/v4/contacts/chats?chat_id="+two.ChatIDs[1], nil, h...)
	if dig(r.json(t), "_embedded", "chats", 0, "contact_id") != float64(two.ContactIDs[1]) {
		t.Errorf("chat_id filter: %s", r.body)
	}
	wantStatus(t, send(t, "GET", fmt.Sprintf("%s/api/v4/contacts/chats?contact_id=%d", s.KommoURL, noChat.ContactIDs[0]), nil, h...), 204)
	validation(t, send(t, "GET", s.KommoURL+"/api/v4/contacts/chats", nil, h...))
	validation(t, send(t, "GET", s.KommoURL+"/api/v4/contacts/chats?contact_id=abc", nil, h...))
}

func TestNotesValidationIsAllOrNothing(t *testing.T) {
	var calls []string
	var stored int
	var s *Server
	s = startTest(t, Options{RESTRateLimit: -1, Leads: 5,
		BeforeNotes: func() { calls = append(calls, "before") },
		AfterNotes:  func() { calls = append(calls, "after"); stored = len(s.AllNotes()) },
	}, nil)
	h := withJSON(bearer(s.LongLivedToken()))
	u := s.KommoURL + "/api/v4/leads/notes"
	good := map[string]any{"entity_id": 10000001, "note_type": "common", "params": map[string]any{"text": "AI summary"}}

	bad := []struct {
		name string
		note map[string]any
		code string
		path string
	}{
		{"unknown lead", map[string]any{"entity_id": 99, "note_type": "common", "params": map[string]any{"text": "x"}}, "NotFound", "entity_id"},
		{"no entity", map[string]any{"note_type": "common", "params": map[string]any{"text": "x"}}, "NotBlank", "entity_id"},
		{"entity as string", map[string]any{"entity_id": "10000001", "note_type": "common", "params": map[string]any{"text": "x"}}, "InvalidType", "entity_id"},
		{"bad type", map[string]any{"entity_id": 10000001, "note_type": "summary", "params": map[string]any{"text": "x"}}, "NotSupportedChoice", "note_type"},
		{"empty text", map[string]any{"entity_id": 10000001, "note_type": "common", "params": map[string]any{"text": ""}}, "NotBlank", "params.text"},
		{"no params", map[string]any{"entity_id": 10000001, "note_type": "common"}, "NotBlank", "params"},
		{"service without service", map[string]any{"entity_id": 10000001, "note_type": "extended_service_message", "params": map[string]any{"text": "x"}}, "NotBlank", "params.service"},
	}
	for _, b := range bad {
		got := validation(t, send(t, "POST", u, []any{good, b.note}, h...))
		if got[0] != [3]string{"1", b.code, b.path} {
			t.Errorf("%s: validation %v, want [1 %s %s]", b.name, got, b.code, b.path)
		}
	}
	withRID := map[string]any{"entity_id": 10000002, "note_type": "common", "params": map[string]any{"text": "x"}, "request_id": "lead-7"}
	badRID := map[string]any{"entity_id": 10000002, "note_type": "common", "params": map[string]any{"text": ""}, "request_id": "lead-8"}
	if got := validation(t, send(t, "POST", u, []any{withRID, badRID}, h...)); got[0][0] != "lead-8" {
		t.Errorf("validation names request_id %q, want the client's lead-8", got[0][0])
	}

	wantStatus(t, send(t, "POST", u, good, h...), 400) // an object, not an array
	wantStatus(t, send(t, "POST", u, []any{}, h...), 400)
	many := make([]any, 251)
	for i := range many {
		many[i] = good
	}
	wantStatus(t, send(t, "POST", u, many, h...), 400)
	wantStatus(t, send(t, "POST", u, `[{"entity_id":`, h...), 400)
	wantStatus(t, send(t, "POST", u, []any{good}, bearer(s.LongLivedToken())...), 415)
	wantStatus(t, send(t, "POST", u, []any{good}, "Content-Type", "application/json"), 401)
	if n := len(s.AllNotes()); n != 0 {
		t.Fatalf("rejected requests stored %d notes", n)
	}
	if st := s.Stats(); st.NotesCreated != 0 || st.NotesPosts != 13 {
		t.Fatalf("stats after rejections: %+v", st)
	}
	calls = nil

	svc := map[string]any{"entity_id": 10000003, "note_type": "service_message", "request_id": "r-3",
		"params": map[string]any{"service": "kommo-summarizer", "text": "Сводка"}}
	r := send(t, "POST", u, []any{good, svc}, h...)
	wantStatus(t, r, 200)
	m := r.json(t)
	if dig(m, "_embedded", "notes", 0, "request_id") != "0" || dig(m, "_embedded", "notes", 1, "request_id") != "r-3" ||
		dig(m, "_embedded", "notes", 1, "entity_id") != 10000003.0 || dig(m, "_embedded", "notes", 0, "id") == nil {
		t.Errorf("notes answer %s", r.body)
	}
	if !reflect.DeepEqual(calls, []string{"before", "after"}) || stored != 2 {
		t.Errorf("hooks %v, notes stored when AfterNotes ran: %d", calls, stored)
	}
	notes := s.Notes(10000003)
	if len(notes) != 1 || notes[0].Service != "kommo-summarizer" || notes[0].Text != "Сводка" || notes[0].RequestID != "r-3" {
		t.Errorf("Notes(10000003) = %+v", notes)
	}

	// The per-lead path: entity_id may be left out.
	r = send(t, "POST", s.KommoURL+"/api/v4/leads/10000001/notes",
		[]any{map[string]any{"note_type": "common", "params": map[string]any{"text": "second"}}}, h...)
	wantStatus(t, r, 200)
	if got := s.Notes(10000001); len(got) != 2 || got[1].Text != "second" {
		t.Errorf("Notes(10000001) = %+v", got)
	}

	// Reading notes back: newest first on request, no request_id, filters by type.
	r = send(t, "GET", s.KommoURL+"/api/v4/leads/10000001/notes?order[id]=desc&limit=1&filter[note_type][]=common", nil, bearer(s.LongLivedToken())...)
	wantStatus(t, r, 200)
	m = r.json(t)
	n := dig(m, "_embedded", "notes", 0).(map[string]any)
	if n["params"].(map[string]any)["text"] != "second" || n["note_type"] != "common" || n["entity_id"] != 10000001.0 {
		t.Errorf("newest note %v", n)
	}
	if _, ok := n["request_id"]; ok {
		t.Error("GET notes echoes request_id; Kommo does not")
	}
	if dig(m, "_links", "next") == nil {
		t.Error("limit=1 of 2 notes has no next link")
	}
	wantStatus(t, send(t, "GET", s.KommoURL+"/api/v4/leads/10000004/notes?filter[note_type]=service_message", nil, bearer(s.LongLivedToken())...), 204)
	validation(t, send(t, "GET", s.KommoURL+"/api/v4/leads/10000001/notes?limit=251", nil, bearer(s.LongLivedToken())...))
	validation(t, send(t, "GET", s.KommoURL+"/api/v4/leads/10000001/notes?filter[note_type]=summary", nil, bearer(s.LongLivedToken())...))
}

func TestNotesFailAfterActStoresThenAnswers502(t *testing.T) {
	s := startTest(t, Options{Leads: 3, NotesFailAfterActRate: 1}, nil)
	note := []any{map[string]any{"entity_id": 10000001, "note_type": "common", "params": map[string]any{"text": "x"}}}
	r := send(t, "POST", s.KommoURL+"/api/v4/leads/notes", note, withJSON(bearer(s.LongLivedToken()))...)
	wantStatus(t, r, 502)
	if len(s.Notes(10000001)) != 1 {
		t.Fatal("the note was not stored before the 502")
	}
	if st := s.Stats(); st.Injected5xx != 1 || st.NotesCreated != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestPatchLeadsCustomField(t *testing.T) {
	s := startTest(t, Options{RESTRateLimit: -1, Leads: 5, SummaryFieldID: 555}, nil)
	h := withJSON(bearer(s.LongLivedToken()))
	u := s.KommoURL + "/api/v4/leads"
	cf := func(field any, value any) []any {
		return []any{map[string]any{"field_id": field, "values": []any{map[string]any{"value": value}}}}
	}

	got := validation(t, send(t, "PATCH", u, []any{map[string]any{"id": 10000001, "custom_fields_values": cf(184994, "x")}}, h...))
	if got[0] != [3]string{"0", "NotSupportedChoice", "custom_fields_values.0.field_id"} {
		t.Errorf("unknown field: %v", got)
	}
	got = validation(t, send(t, "PATCH", u, []any{
		map[string]any{"id": 10000001, "custom_fields_values": cf(555, "ok")},
		map[string]any{"id": 10000002, "custom_fields_values": cf(555, 42)},
	}, h...))
	if got[0] != [3]string{"1", "InvalidType", "custom_fields_values.0.values.0.value"} {
		t.Errorf("non-string value: %v", got)
	}
	if got := validation(t, send(t, "PATCH", u, []any{map[string]any{"id": 42}}, h...)); got[0][2] != "id" {
		t.Errorf("unknown lead: %v", got)
	}
	wantStatus(t, send(t, "PATCH", u, map[string]any{"id": 10000001}, h...), 400)
	if _, ok := s.FieldValue(10000001, 555); ok {
		t.Fatal("a rejected PATCH set the field")
	}

	r := send(t, "PATCH", u, []any{
		map[string]any{"id": 10000001, "custom_fields_values": cf(555, "Итог: бюджет 1,2 млн"), "request_id": "a"},
		map[string]any{"id": 10000002, "custom_fields_values": cf(555, "second")},
	}, h...)
	wantStatus(t, r, 200)
	m := r.json(t)
	if dig(m, "_embedded", "leads", 0, "request_id") != "a" || dig(m, "_embedded", "leads", 1, "request_id") != "1" ||
		dig(m, "_embedded", "leads", 1, "updated_at") == nil {
		t.Errorf("bulk answer %s", r.body)
	}
	if v, ok := s.FieldValue(10000001, 555); !ok || v != "Итог: бюджет 1,2 млн" {
		t.Errorf("FieldValue = %q, %v", v, ok)
	}

	r = send(t, "PATCH", u+"/10000003", map[string]any{"custom_fields_values": cf(555, "single")}, h...)
	wantStatus(t, r, 200)
	if m := r.json(t); m["id"] != 10000003.0 || m["updated_at"] == nil {
		t.Errorf("single PATCH answer %s", r.body)
	}
	wantStatus(t, send(t, "PATCH", u+"/10000003", []any{}, h...), 400)
	wantStatus(t, send(t, "PATCH", u+"/99999999", map[string]any{}, h...), 404)

	m = send(t, "GET", u+"/10000003", nil, bearer(s.LongLivedToken())...).json(t)
	if dig(m, "custom_fields_values", 0, "field_id") != 555.0 || dig(m, "custom_fields_values", 0, "values", 0, "value") != "single" {
		t.Errorf("GET after PATCH: custom_fields_values %v", m["custom_fields_values"])
	}
	if st := s.Stats(); st.LeadPatches != 8 || st.LeadsPatched != 3 {
		t.Errorf("LeadPatches %d LeadsPatched %d, want 8 and 3", st.LeadPatches, st.LeadsPatched)
	}
}

func TestOAuthTokens(t *testing.T) {
	c := newClock()
	s := startTest(t, Options{RESTRateLimit: -1, Leads: 2, AccessTokenTTL: 2 * time.Hour}, c)
	u := s.KommoURL + "/oauth2/access_token"
	o := s.Options()
	exchange := func(extra map[string]any) reply {
		body := map[string]any{"client_id": o.ClientID, "client_secret": o.ClientSecret, "redirect_uri": o.RedirectURI}
		for k, v := range extra {
			body[k] = v
		}
		return send(t, "POST", u, body, "Content-Type", "application/json")
	}
	hint := func(r reply) string {
		t.Helper()
		if r.header.Get("Content-Type") != problemJSON {
			t.Errorf("OAuth error content type %q", r.header.Get("Content-Type"))
		}
		h, _ := r.json(t)["hint"].(string)
		return h
	}

	code := s.AuthCode()
	r := exchange(map[string]any{"grant_type": "authorization_code", "code": code})
	wantStatus(t, r, 200)
	var tok struct {
		TokenType    string `json:"token_type"`
		ExpiresIn    int64  `json:"expires_in"`
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		ServerTime   int64  `json:"server_time"`
	}
	if err := json.Unmarshal(r.body, &tok); err != nil {
		t.Fatal(err)
	}
	if tok.TokenType != "Bearer" || tok.ExpiresIn != 7200 || tok.AccessToken == "" || tok.RefreshToken == "" || tok.ServerTime != c.Now().Unix() {
		t.Fatalf("token answer %s", r.body)
	}
	wantStatus(t, send(t, "GET", s.KommoURL+"/api/v4/account", nil, bearer(tok.AccessToken)...), 200)

	r = exchange(map[string]any{"grant_type": "authorization_code", "code": code})
	wantStatus(t, r, 400)
	if h := hint(r); h != "Authorization code has been revoked" {
		t.Errorf("reused code hint %q", h)
	}
	r = exchange(map[string]any{"grant_type": "authorization_code", "code": s.AuthCode(), "redirect_uri": "https://evil.example"})
	wantStatus(t, r, 400)
	r = exchange(map[string]any{"grant_type": "authorization_code", "code": s.AuthCode(), "client_secret": "wrong"})
	wantStatus(t, r, 401)
	wantStatus(t, exchange(map[string]any{"grant_type": "password"}), 400)

	// Refresh: the new pair works, the old access token and refresh token are dead.
	r = exchange(map[string]any{"grant_type": "refresh_token", "refresh_token": tok.RefreshToken})
	wantStatus(t, r, 200)
	old := tok
	if err := json.Unmarshal(r.body, &tok); err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == old.AccessToken || tok.RefreshToken == old.RefreshToken {
		t.Fatal("refresh returned the same tokens")
	}
	wantStatus(t, send(t, "GET", s.KommoURL+"/api/v4/account", nil, bearer(old.AccessToken)...), 401)
	wantStatus(t, send(t, "GET", s.KommoURL+"/api/v4/account", nil, bearer(tok.AccessToken)...), 200)
	r = exchange(map[string]any{"grant_type": "refresh_token", "refresh_token": old.RefreshToken})
	wantStatus(t, r, 400)
	if h := hint(r); h != "Token has been revoked" {
		t.Errorf("reused refresh token hint %q", h)
	}

	// A form body works too; an expired access token can still be refreshed.
	c.Advance(3 * time.Hour)
	form := url.Values{"client_id": {o.ClientID}, "client_secret": {o.ClientSecret}, "grant_type": {"refresh_token"},
		"refresh_token": {tok.RefreshToken}, "redirect_uri": {o.RedirectURI}}
	r = send(t, "POST", u, form.Encode(), "Content-Type", "application/x-www-form-urlencoded")
	wantStatus(t, r, 200)
	if err := json.Unmarshal(r.body, &tok); err != nil {
		t.Fatal(err)
	}

	s.RevokeRefreshTokens()
	r = exchange(map[string]any{"grant_type": "refresh_token", "refresh_token": tok.RefreshToken})
	wantStatus(t, r, 400)
	if h := hint(r); h != "Token has been revoked" {
		t.Errorf("revoked refresh token hint %q", h)
	}
	if st := s.Stats(); st.OAuthRequests != 9 || st.RESTRequests != 3 {
		t.Errorf("OAuthRequests %d RESTRequests %d, want 9 and 3", st.OAuthRequests, st.RESTRequests)
	}
}

func TestRateLimitThenIPBlock(t *testing.T) {
	c := newClock()
	s := startTest(t, Options{Leads: 2, BlockAfter429s: 3, BlockFor: 10 * time.Minute}, c)
	u := s.KommoURL + "/api/v4/account"
	h := bearer(s.LongLivedToken())

	for range 7 {
		wantStatus(t, send(t, "GET", u, nil, h...), 200)
	}
	r := send(t, "GET", u, nil, h...)
	wantStatus(t, r, 429)
	if r.header.Get("Content-Type") != problemJSON || r.json(t)["status"] != 429.0 || r.header.Get("Retry-After") != "" {
		t.Errorf("429 answer %v %s", r.header, r.body)
	}
	c.Advance(1001 * time.Millisecond) // the window has slid past every request
	wantStatus(t, send(t, "GET", u, nil, h...), 200)

	// Keep hammering: two more 429s make three within a minute, and the IP is blocked.
	for range 6 {
		wantStatus(t, send(t, "GET", u, nil, h...), 200)
	}
	wantStatus(t, send(t, "GET", u, nil, h...), 429)
	wantStatus(t, send(t, "GET", u, nil, h...), 429)
	c.Advance(2 * time.Second)
	r = send(t, "GET", u, nil, h...)
	wantStatus(t, r, 403)
	if r.header.Get("Content-Type") != problemJSON || r.json(t)["status"] != 403.0 {
		t.Errorf("403 answer %s", r.body)
	}
	wantStatus(t, send(t, "POST", s.KommoURL+"/oauth2/access_token", map[string]any{}, "Content-Type", "application/json"), 403)

	st := s.Stats()
	if st.REST429 != 3 || st.Blocked403 != 2 || st.PeakRESTPerSecond != 9 {
		t.Errorf("REST429 %d Blocked403 %d Peak %d, want 3, 2, 9", st.REST429, st.Blocked403, st.PeakRESTPerSecond)
	}
	c.Advance(10 * time.Minute)
	wantStatus(t, send(t, "GET", u, nil, h...), 200)
}

func TestRateLimitCountsArrivalsInSlidingWindow(t *testing.T) {
	c := newClock()
	s := startTest(t, Options{Leads: 2, RESTRateLimit: 3, BlockAfter429s: -1}, c)
	u := s.KommoURL + "/api/v4/account"
	h := bearer(s.LongLivedToken())
	// 3 at 0 ms, then 2 at 600 ms: the window (-400 ms, 600 ms] holds 5 > 3.
	for range 3 {
		wantStatus(t, send(t, "GET", u, nil, h...), 200)
	}
	c.Advance(600 * time.Millisecond)
	wantStatus(t, send(t, "GET", u, nil, h...), 429)
	c.Advance(401 * time.Millisecond) // the first three have left the window; the 429 has not
	wantStatus(t, send(t, "GET", u, nil, h...), 200)
	wantStatus(t, send(t, "GET", u, nil, h...), 200)
	wantStatus(t, send(t, "GET", u, nil, h...), 429)
	if st := s.Stats(); st.PeakRESTPerSecond != 4 || st.REST429 != 2 || st.Blocked403 != 0 {
		t.Errorf("stats %+v", st)
	}
	s.ResetStats()
	if st := s.Stats(); st != (Stats{}) {
		t.Errorf("after ResetStats: %+v", st)
	}
}

func TestFailRateInjects5xxDeterministically(t *testing.T) {
	run := func() []int {
		s := startTest(t, Options{Leads: 2, FailRate: 0.25, RESTRateLimit: -1}, nil)
		var codes []int
		for range 300 {
			codes = append(codes, send(t, "GET", s.KommoURL+"/api/v4/account", nil, bearer(s.LongLivedToken())...).status)
		}
		// OAuth is never failed on purpose.
		for range 20 {
			r := send(t, "POST", s.KommoURL+"/oauth2/access_token", map[string]any{}, "Content-Type", "application/json")
			wantStatus(t, r, 401)
		}
		if st := s.Stats(); st.Injected5xx != countNot200(codes) {
			t.Errorf("Injected5xx %d, answers not 200: %d", st.Injected5xx, countNot200(codes))
		}
		return codes
	}
	a, b := run(), run()
	if !reflect.DeepEqual(a, b) {
		t.Error("the same seed failed different requests")
	}
	n502, n503 := 0, 0
	for _, c := range a {
		switch c {
		case 502:
			n502++
		case 503:
			n503++
		case 200:
		default:
			t.Fatalf("unexpected status %d", c)
		}
	}
	if share := float64(n502+n503) / float64(len(a)); share < 0.17 || share > 0.33 || n502 == 0 || n503 == 0 {
		t.Errorf("%d x 502 and %d x 503 of %d requests, want about 25%% of both kinds", n502, n503, len(a))
	}
}

func countNot200(codes []int) int {
	n := 0
	for _, c := range codes {
		if c != 200 {
			n++
		}
	}
	return n
}

func TestUnknownEndpoints(t *testing.T) {
	s := startTest(t, Options{RESTRateLimit: -1, Leads: 2}, nil)
	h := bearer(s.LongLivedToken())
	for _, req := range [][2]string{{"GET", "/api/v4/leads/pipelines"}, {"DELETE", "/api/v4/leads/10000001"},
		{"GET", "/api/v4/leads/notes"}, {"POST", "/api/v4/leads"}, {"GET", "/"}, {"GET", "/oauth2/access_token"}} {
		r := send(t, req[0], s.KommoURL+req[1], nil, h...)
		wantStatus(t, r, 404)
		if r.header.Get("Content-Type") != problemJSON {
			t.Errorf("%v: content type %q", req, r.header.Get("Content-Type"))
		}
		if got, want := takeUnknown(s), []string{req[0] + " " + req[1]}; !slices.Equal(got, want) {
			t.Errorf("UnknownRequests = %q, want %q", got, want)
		}
	}
	// Known routes, even refused ones, are not unknown.
	wantStatus(t, send(t, "GET", s.KommoURL+"/api/v4/leads/99999999", nil, h...), 204)
	wantStatus(t, send(t, "GET", s.KommoURL+"/api/v4/account?with=chats", nil, h...), 400)
	if got := s.UnknownRequests(); len(got) != 0 {
		t.Errorf("known routes recorded as unknown: %q", got)
	}
}

// A test that sends a request to an unknown route fails through VerifyNoUnknown.
func TestVerifyNoUnknown(t *testing.T) {
	s := startTest(t, Options{Leads: 2}, nil)
	rec := &recordingTB{}
	s.VerifyNoUnknown(rec)
	if len(rec.errs) != 0 {
		t.Fatalf("errors before any request: %q", rec.errs)
	}
	send(t, "GET", s.LLMURL+"/engines", nil)
	send(t, "GET", s.KommoURL+"/api/v2/account", nil)
	s.VerifyNoUnknown(rec)
	if len(rec.errs) != 2 || !strings.Contains(rec.errs[0], "GET /v1/engines") || !strings.Contains(rec.errs[1], "GET /api/v2/account") {
		t.Errorf("VerifyNoUnknown reported %q", rec.errs)
	}
	takeUnknown(s)
}

type recordingTB struct{ errs []string }

func (r *recordingTB) Helper() {}
func (r *recordingTB) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// Many clients at once, on all three servers: the counters add up and the race
// detector (go test -race) sees no unguarded state.
func TestConcurrentClients(t *testing.T) {
	s := startTest(t, Options{Leads: 20, RESTRateLimit: -1, ChatsRateLimit: -1}, nil)
	c := &clock{t: time.Now()}
	open := s.OpenLeadsWithChats()
	var wg sync.WaitGroup
	const workers, each = 8, 10
	errs := make(chan string, workers*each*3)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				l := open[(w*each+i)%len(open)]
				note := []any{map[string]any{"entity_id": l.ID, "note_type": "common", "params": map[string]any{"text": "x"}}}
				if r := sendNoFatal("POST", s.KommoURL+"/api/v4/leads/notes", note, withJSON(bearer(s.LongLivedToken()))...); r != 200 {
					errs <- fmt.Sprintf("notes: %d", r)
				}
				if r := sendNoFatal("GET", s.KommoURL+"/api/v4/leads?limit=5&with=contacts", nil, bearer(s.LongLivedToken())...); r != 200 {
					errs <- fmt.Sprintf("leads: %d", r)
				}
				path := "/v2/origin/custom/" + s.ScopeID() + "/chats/" + l.ChatIDs[0] + "/history"
				date := c.Now().Format(time.RFC1123Z)
				cmd5, sig := sign(s.Options().ChannelSecret, "GET", "", date, path)
				if r := sendNoFatal("GET", s.ChatsURL+path+"?limit=10", nil, "Date", date, "Content-Type", "application/json",
					"Content-MD5", cmd5, "X-Signature", sig); r != 200 {
					errs <- fmt.Sprintf("history: %d", r)
				}
				if r := sendNoFatal("POST", s.LLMURL+"/chat/completions", llmRequest("m", nil), withJSON(bearer("sk-fake"))...); r != 200 {
					errs <- fmt.Sprintf("llm: %d", r)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	st := s.Stats()
	n := workers * each
	if st.NotesCreated != n || len(s.AllNotes()) != n || st.LeadListCalls != n || st.HistoryCalls != n || st.LLMCalls != n ||
		st.RESTRequests != 2*n || st.PeakRESTPerSecond < 2 || st.PeakRESTPerSecond > 2*n {
		t.Errorf("stats %+v", st)
	}
}

// sendNoFatal is send for goroutines other than the test's own: it reports the status only.
func sendNoFatal(method, url string, body any, headers ...string) int {
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return -1
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func TestLatencyIsAdded(t *testing.T) {
	s := startTest(t, Options{Leads: 2, Latency: 80 * time.Millisecond, LLMLatency: 80 * time.Millisecond}, nil)
	for _, u := range []string{s.KommoURL + "/api/v4/account", s.LLMURL + "/models"} {
		start := time.Now()
		send(t, "GET", u, nil)
		if d := time.Since(start); d < 80*time.Millisecond {
			t.Errorf("%s answered in %v, before the 80ms latency", u, d)
		}
	}
}
