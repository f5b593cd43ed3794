package kommo

import (
	"context"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/httpx"
)

// Closed lead statuses, the same in every pipeline.
const (
	StatusWon  = 142
	StatusLost = 143
)

// maxPage is Kommo's cap on entities per page and per batch
// (https://developers.kommo.com/docs/limitations).
const maxPage = 250

// Lead is a Kommo lead (deal).
type Lead struct {
	ID                 int64              `json:"id"`
	Name               string             `json:"name"`
	Price              int64              `json:"price"`
	StatusID           int64              `json:"status_id"`
	PipelineID         int64              `json:"pipeline_id"`
	ResponsibleUserID  int64              `json:"responsible_user_id"`
	CreatedAt          int64              `json:"created_at"`
	UpdatedAt          int64              `json:"updated_at"`
	CustomFieldsValues []CustomFieldValue `json:"custom_fields_values"`
	Embedded           struct {
		Contacts []EmbeddedContact `json:"contacts"`
	} `json:"_embedded"`
}

// EmbeddedContact is a contact linked to a lead (with=contacts).
type EmbeddedContact struct {
	ID     int64 `json:"id"`
	IsMain bool  `json:"is_main"`
}

// Closed reports whether the lead is won or lost.
func (l *Lead) Closed() bool { return l.StatusID == StatusWon || l.StatusID == StatusLost }

// ContactIDs returns the ids of the lead's contacts, main contact first,
// the others in Kommo's order.
func (l *Lead) ContactIDs() []int64 {
	ids := make([]int64, 0, len(l.Embedded.Contacts))
	for _, ct := range l.Embedded.Contacts {
		if ct.IsMain {
			ids = append(ids, ct.ID)
		}
	}
	for _, ct := range l.Embedded.Contacts {
		if !ct.IsMain {
			ids = append(ids, ct.ID)
		}
	}
	return ids
}

// CustomFieldValue is the value of one custom field.
type CustomFieldValue struct {
	FieldID int64        `json:"field_id"`
	Values  []FieldValue `json:"values"`
}

// FieldValue is one value of a custom field; its type depends on the field.
type FieldValue struct {
	Value any `json:"value"`
}

// LeadsQuery selects the leads that Leads lists.
type LeadsQuery struct {
	With  []string // e.g. {"contacts"}
	Limit int      // 1..250, default 250
	IDs   []int64  // filter[id][]=...
	// Statuses: only leads in these stages, filter[statuses][N][pipeline_id]
	// and [status_id]. Kommo's leads-list reference says that one request
	// filters one stage of one pipeline; send one pair per query.
	Statuses []StatusFilter
}

// StatusFilter is one stage of one pipeline in filter[statuses].
type StatusFilter struct{ PipelineID, StatusID int64 }

type leadsPage struct {
	pageLinks
	Embedded struct {
		Leads []Lead `json:"leads"`
	} `json:"_embedded"`
}

func (p *leadsPage) items() []Lead { return p.Embedded.Leads }

// Leads streams every lead page by page: GET /api/v4/leads?limit=250&page=1,
// then the _links.next.href of each page as given; a 204 or a page without a
// next link ends it. Only one page is in memory at a time. An error ends the
// sequence after it is yielded.
//
// https://developers.kommo.com/reference/leads-list
func (c *Client) Leads(ctx context.Context, q LeadsQuery) iter.Seq2[*Lead, error] {
	return func(yield func(*Lead, error) bool) {
		limit := q.Limit
		if limit == 0 {
			limit = maxPage
		}
		if limit < 1 || limit > maxPage {
			yield(nil, fmt.Errorf("kommo: leads page size %d is out of range: use 1..%d", q.Limit, maxPage))
			return
		}
		v := url.Values{"limit": {strconv.Itoa(limit)}, "page": {"1"}}
		if len(q.With) > 0 {
			v.Set("with", strings.Join(q.With, ","))
		}
		for _, id := range q.IDs {
			v.Add("filter[id][]", strconv.FormatInt(id, 10))
		}
		for i, s := range q.Statuses {
			v.Set(fmt.Sprintf("filter[statuses][%d][pipeline_id]", i), strconv.FormatInt(s.PipelineID, 10))
			v.Set(fmt.Sprintf("filter[statuses][%d][status_id]", i), strconv.FormatInt(s.StatusID, 10))
		}
		pages(ctx, c, c.endpoint("/api/v4/leads", v), func() *leadsPage { return &leadsPage{} }, yield)
	}
}

// pageLinks is the _links of a HAL list page.
type pageLinks struct {
	Links struct {
		Next struct {
			Href string `json:"href"`
		} `json:"next"`
	} `json:"_links"`
}

func (l *pageLinks) next() string { return l.Links.Next.Href }

// listPage is one page of a HAL list of T.
type listPage[T any] interface {
	items() []T
	next() string
}

// pages yields the items of a list from u on, following _links.next.href
// until a page has none or Kommo answers 204. Only one page is in memory at
// a time; an error ends the sequence after it is yielded.
func pages[T any, P listPage[T]](ctx context.Context, c *Client, u *url.URL, newPage func() P, yield func(*T, error) bool) {
	for {
		page := newPage()
		status, err := c.do(ctx, http.MethodGet, u, nil, idempotent, page)
		if err != nil {
			yield(nil, err)
			return
		}
		if status == http.StatusNoContent {
			return
		}
		items := page.items()
		for i := range items {
			if !yield(&items[i], nil) {
				return
			}
		}
		if page.next() == "" {
			return
		}
		next, err := c.nextPage(u, page.next())
		if err != nil {
			yield(nil, err)
			return
		}
		u = next
	}
}

// nextPage checks a _links.next.href: it must stay on our host (the bearer
// token goes with it) and must move forward (a link to the same page would
// loop forever).
func (c *Client) nextPage(cur *url.URL, href string) (*url.URL, error) {
	ref, err := url.Parse(href)
	if err != nil {
		return nil, fmt.Errorf("kommo: GET %s: the next page link %q is not a URL", httpx.CleanURL(cur), href)
	}
	next := cur.ResolveReference(ref)
	if next.Scheme != c.base.Scheme || next.Host != c.base.Host {
		return nil, fmt.Errorf("kommo: GET %s: the next page link points to %s://%s, not to kommo.base_url %s://%s",
			httpx.CleanURL(cur), next.Scheme, next.Host, c.base.Scheme, c.base.Host)
	}
	if next.String() == cur.String() {
		return nil, fmt.Errorf("kommo: GET %s: the next page link points to the same page", httpx.CleanURL(cur))
	}
	return next, nil
}

// Lead returns one lead; with adds linked entities (e.g. "contacts"). A lead
// that does not exist is an error matching ErrNotFound.
//
// https://developers.kommo.com/reference/getting-a-lead-by-its-id
func (c *Client) Lead(ctx context.Context, id int64, with ...string) (*Lead, error) {
	q := url.Values{}
	if len(with) > 0 {
		q.Set("with", strings.Join(with, ","))
	}
	u := c.endpoint("/api/v4/leads/"+strconv.FormatInt(id, 10), q)
	var l Lead
	status, err := c.do(ctx, http.MethodGet, u, nil, idempotent, &l)
	if err != nil {
		return nil, err
	}
	if status == http.StatusNoContent {
		return nil, &Error{Method: http.MethodGet, URL: httpx.CleanURL(u), Status: status}
	}
	return &l, nil
}

// LeadUpdate sets custom fields of one lead.
type LeadUpdate struct {
	ID                 int64              `json:"id"`
	CustomFieldsValues []CustomFieldValue `json:"custom_fields_values"`
}

// UpdateLeads updates up to 250 leads in one request. Setting a field twice
// does no harm, so the call is retried like a GET.
//
// https://www.kommo.com/developers/content/api_v4/leads-api/
func (c *Client) UpdateLeads(ctx context.Context, leads []LeadUpdate) error {
	if len(leads) == 0 {
		return nil
	}
	if len(leads) > maxPage {
		return fmt.Errorf("kommo: %d leads in one update: Kommo takes at most %d, split the batch", len(leads), maxPage)
	}
	_, err := c.do(ctx, http.MethodPatch, c.endpoint("/api/v4/leads", nil), leads, idempotent, nil)
	return err
}
