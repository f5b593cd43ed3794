package kommo

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func collect(t *testing.T, c *Client, q LeadsQuery) ([]int64, error) {
	t.Helper()
	var ids []int64
	for l, err := range c.Leads(context.Background(), q) {
		if err != nil {
			return ids, err
		}
		ids = append(ids, l.ID)
	}
	return ids, nil
}

func TestLeadsFollowsNextLinksUntil204(t *testing.T) {
	c, mux, srv := setup(t, Options{Tokens: StaticToken("tok")})
	var pages []string
	h, n := counted(func(w http.ResponseWriter, r *http.Request) {
		wantHeader(t, r, "Authorization", "Bearer tok")
		page := r.URL.Query().Get("page")
		pages = append(pages, page)
		wantQuery(t, r, url.Values{"limit": {"250"}, "with": {"contacts"}, "page": {page}})
		next := func(p string) string {
			return `"_links":{"self":{"href":"x"},"next":{"href":"` + srv + `/api/v4/leads?limit=250&with=contacts&page=` + p + `"}}`
		}
		switch page {
		case "1":
			writeJSON(w, 200, `{"_page":1,`+next("2")+`,"_embedded":{"leads":[
				{"id":1,"name":"A","status_id":10,"_embedded":{"contacts":[{"id":11,"is_main":false},{"id":12,"is_main":true}]}},
				{"id":2,"name":"B"}]}}`)
		case "2":
			writeJSON(w, 200, `{"_page":2,`+next("3")+`,"_embedded":{"leads":[{"id":3},{"id":4}]}}`)
		case "3":
			writeJSON(w, 200, `{"_page":3,`+next("4")+`,"_embedded":{"leads":[{"id":5,"status_id":143}]}}`)
		case "4":
			w.WriteHeader(http.StatusNoContent)
		default:
			t.Errorf("unexpected page %q", page)
		}
	})
	mux.HandleFunc("GET /api/v4/leads", h)

	var got []*Lead
	for l, err := range c.Leads(context.Background(), LeadsQuery{With: []string{"contacts"}}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, l)
	}
	var ids []int64
	for _, l := range got {
		ids = append(ids, l.ID)
	}
	if !reflect.DeepEqual(ids, []int64{1, 2, 3, 4, 5}) {
		t.Errorf("ids = %v, want 1..5", ids)
	}
	if !reflect.DeepEqual(pages, []string{"1", "2", "3", "4"}) || n.Load() != 4 {
		t.Errorf("pages requested = %v, want 1 2 3 4", pages)
	}
	if got[0].Name != "A" || !reflect.DeepEqual(got[0].ContactIDs(), []int64{12, 11}) {
		t.Errorf("lead 1 = %+v, contacts %v; want main contact 12 first", got[0], got[0].ContactIDs())
	}
	if got[0].Closed() || !got[4].Closed() {
		t.Errorf("Closed: lead 1 %v (want false), lead 5 %v (want true)", got[0].Closed(), got[4].Closed())
	}
}

func TestLeadsEndsOnPageWithoutNext(t *testing.T) {
	c, mux, srv := setup(t, Options{})
	h, n := counted(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("page") {
		case "1":
			wantQuery(t, r, url.Values{"limit": {"50"}, "page": {"1"}, "filter[id][]": {"7", "9"}})
			// Kommo wants PHP-style bracket keys; url.Values percent-encodes them, which PHP decodes.
			if !strings.Contains(r.URL.RawQuery, "filter%5Bid%5D%5B%5D=7&filter%5Bid%5D%5B%5D=9") {
				t.Errorf("raw query %q lacks the encoded filter[id][] pair", r.URL.RawQuery)
			}
			writeJSON(w, 200, `{"_links":{"next":{"href":"`+srv+`/api/v4/leads?page=2&limit=50&filter%5Bid%5D%5B%5D=7&filter%5Bid%5D%5B%5D=9"}},"_embedded":{"leads":[{"id":7}]}}`)
		case "2":
			// The next link is followed exactly as given, query order included.
			if r.URL.RawQuery != "page=2&limit=50&filter%5Bid%5D%5B%5D=7&filter%5Bid%5D%5B%5D=9" {
				t.Errorf("next link not followed as given: %q", r.URL.RawQuery)
			}
			writeJSON(w, 200, `{"_links":{"self":{"href":"x"}},"_embedded":{"leads":[{"id":9}]}}`)
		default:
			t.Errorf("unexpected page %q", r.URL.Query().Get("page"))
		}
	})
	mux.HandleFunc("GET /api/v4/leads", h)
	ids, err := collect(t, c, LeadsQuery{Limit: 50, IDs: []int64{7, 9}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ids, []int64{7, 9}) || n.Load() != 2 {
		t.Errorf("ids = %v after %d requests, want [7 9] after 2", ids, n.Load())
	}
}

func TestLeadsEmptyAccount(t *testing.T) {
	c, mux, _ := setup(t, Options{})
	h, n := counted(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /api/v4/leads", h)
	ids, err := collect(t, c, LeadsQuery{})
	if err != nil || len(ids) != 0 || n.Load() != 1 {
		t.Errorf("ids %v, err %v, %d requests; want nothing after one request", ids, err, n.Load())
	}
}

func TestLeadsStopsWhenTheCallerStops(t *testing.T) {
	c, mux, srv := setup(t, Options{})
	h, n := counted(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"_links":{"next":{"href":"`+srv+`/api/v4/leads?page=2"}},"_embedded":{"leads":[{"id":1},{"id":2}]}}`)
	})
	mux.HandleFunc("GET /api/v4/leads", h)
	for l, err := range c.Leads(context.Background(), LeadsQuery{}) {
		if err != nil || l.ID != 1 {
			t.Fatalf("first = %v, %v", l, err)
		}
		break
	}
	if n.Load() != 1 {
		t.Errorf("%d requests, want 1", n.Load())
	}
}

func TestLeadsRefusesNextLinkToAnotherHost(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the bearer token went to another host: %s %s", r.Method, r.URL)
	}))
	defer other.Close()
	c, mux, _ := setup(t, Options{})
	mux.HandleFunc("GET /api/v4/leads", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"_links":{"next":{"href":"`+other.URL+`/api/v4/leads?page=2"}},"_embedded":{"leads":[{"id":1}]}}`)
	})
	ids, err := collect(t, c, LeadsQuery{})
	if err == nil || !strings.Contains(err.Error(), "not to kommo.base_url") {
		t.Errorf("err = %v, want a refusal naming kommo.base_url", err)
	}
	if !reflect.DeepEqual(ids, []int64{1}) {
		t.Errorf("ids = %v, want the first page's lead before the error", ids)
	}
}

func TestLeadsRefusesNextLinkToTheSamePage(t *testing.T) {
	c, mux, srv := setup(t, Options{})
	h, n := counted(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"_links":{"next":{"href":"`+srv+`/api/v4/leads?limit=250&page=1"}},"_embedded":{"leads":[{"id":1}]}}`)
	})
	mux.HandleFunc("GET /api/v4/leads", h)
	if _, err := collect(t, c, LeadsQuery{}); err == nil || !strings.Contains(err.Error(), "same page") {
		t.Errorf("err = %v, want a loop guard error", err)
	}
	if n.Load() != 1 {
		t.Errorf("%d requests, want 1", n.Load())
	}
}

func TestLeadsErrorEndsTheSequence(t *testing.T) {
	c, mux, srv := setup(t, Options{})
	mux.HandleFunc("GET /api/v4/leads", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("page") == "1" {
			writeJSON(w, 200, `{"_links":{"next":{"href":"`+srv+`/api/v4/leads?page=2"}},"_embedded":{"leads":[{"id":1}]}}`)
			return
		}
		writeProblem(w, 400, `{"title":"Bad Request","status":400,"detail":"page is too far"}`)
	})
	var errs int
	var ids []int64
	for l, err := range c.Leads(context.Background(), LeadsQuery{}) {
		if err != nil {
			errs++
			var ke *Error
			if !errors.As(err, &ke) || ke.Status != 400 {
				t.Errorf("err = %v, want *Error 400", err)
			}
			continue // the sequence must end by itself
		}
		ids = append(ids, l.ID)
	}
	if errs != 1 || !reflect.DeepEqual(ids, []int64{1}) {
		t.Errorf("errors %d, ids %v; want one error after lead 1", errs, ids)
	}
}

func TestLeadsLimitOutOfRange(t *testing.T) {
	c, _, _ := setup(t, Options{}) // any request fails the test
	for _, limit := range []int{-1, 251} {
		if _, err := collect(t, c, LeadsQuery{Limit: limit}); err == nil || !strings.Contains(err.Error(), "1..250") {
			t.Errorf("limit %d: err = %v, want a range error", limit, err)
		}
	}
}

func TestLeadByID(t *testing.T) {
	c, mux, srv := setup(t, Options{})
	mux.HandleFunc("GET /api/v4/leads/42", func(w http.ResponseWriter, r *http.Request) {
		wantQuery(t, r, url.Values{"with": {"contacts"}})
		writeJSON(w, 200, `{"id":42,"name":"Deal","price":1500,"status_id":5,"pipeline_id":6,"responsible_user_id":7,
			"created_at":1700000000,"updated_at":1700000100,
			"custom_fields_values":[{"field_id":900001,"field_name":"AI","values":[{"value":"old summary"}]}],
			"_embedded":{"contacts":[{"id":100,"is_main":true}]}}`)
	})
	mux.HandleFunc("GET /api/v4/leads/43", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /api/v4/leads/44", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, 404, `{"title":"Not Found","status":404}`)
	})

	l, err := c.Lead(context.Background(), 42, "contacts")
	if err != nil {
		t.Fatal(err)
	}
	want := Lead{ID: 42, Name: "Deal", Price: 1500, StatusID: 5, PipelineID: 6, ResponsibleUserID: 7, CreatedAt: 1700000000, UpdatedAt: 1700000100,
		CustomFieldsValues: []CustomFieldValue{{FieldID: 900001, Values: []FieldValue{{Value: "old summary"}}}}}
	want.Embedded.Contacts = []EmbeddedContact{{ID: 100, IsMain: true}}
	if !reflect.DeepEqual(*l, want) {
		t.Errorf("lead = %+v\nwant %+v", *l, want)
	}

	_, err = c.Lead(context.Background(), 43)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("204: err = %v, want ErrNotFound", err)
	} else if err.Error() != "kommo: GET "+srv+"/api/v4/leads/43: 204 No Content: not found" {
		t.Errorf("204 message = %q", err)
	}
	_, err = c.Lead(context.Background(), 44)
	var ke *Error
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &ke) || ke.Status != 404 {
		t.Errorf("404: err = %v, want an *Error matching ErrNotFound", err)
	}
}

func TestUpdateLeadsBatchBounds(t *testing.T) {
	c, _, _ := setup(t, Options{}) // any request fails the test
	if err := c.UpdateLeads(context.Background(), nil); err != nil {
		t.Errorf("empty batch: %v", err)
	}
	if err := c.UpdateLeads(context.Background(), make([]LeadUpdate, 251)); err == nil || !strings.Contains(err.Error(), "at most 250") {
		t.Errorf("251 leads: err = %v", err)
	}
}
