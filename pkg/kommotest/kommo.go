package kommotest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The Kommo REST API v4 fake. What it checks and answers follows Kommo's
// documentation (https://www.kommo.com/developers/content/api_v4/); the page
// is named on each handler.

const (
	unauthorizedDetail = "Invalid user name or password"
	maxBatch           = 250
	currentUserID      = 8000001
)

var leadWith = map[string]bool{
	"catalog_elements": true, "is_price_modified_by_robot": true, "loss_reason": true,
	"contacts": true, "only_deleted": true, "source_id": true, "source": true,
}

var accountWith = map[string]bool{
	"amojo_id": true, "amojo_rights": true, "users_groups": true, "task_types": true, "version": true,
	"entity_names": true, "datetime_settings": true, "drive_url": true, "is_api_filter_enabled": true,
}

// noteTypes lists the note types of developers.kommo.com/reference/notes-types.
var noteTypes = map[string]bool{
	"common": true, "call_in": true, "call_out": true, "service_message": true,
	"extended_service_message": true, "geolocation": true, "sms_in": true, "sms_out": true, "attachment": true,
}

// serveKommo is the account host: the rate limit and IP block cover REST and
// OAuth alike, then OAuth and REST part ways.
func (s *Server) serveKommo(w http.ResponseWriter, r *http.Request) {
	isOAuth := r.URL.Path == "/oauth2/access_token"

	s.mu.Lock()
	now := s.now()
	if isOAuth {
		s.stats.OAuthRequests++
	} else {
		s.stats.RESTRequests++
	}
	count := s.kommoWin.add(now)
	reject, fail := 0, 0
	switch {
	case now.Before(s.blockedUntil):
		s.stats.Blocked403++
		reject = http.StatusForbidden
	case s.opts.RESTRateLimit > 0 && float64(count) > s.opts.RESTRateLimit:
		s.stats.REST429++
		s.note429(now)
		reject = http.StatusTooManyRequests
	case !isOAuth && s.opts.FailRate > 0 && s.restFail.Float64() < s.opts.FailRate:
		s.stats.Injected5xx++
		fail = http.StatusBadGateway
		if s.restFail.IntN(2) == 1 {
			fail = http.StatusServiceUnavailable
		}
	}
	s.mu.Unlock()

	switch reject {
	case http.StatusForbidden:
		problem(w, http.StatusForbidden, ipBlockedDetail)
		return
	case http.StatusTooManyRequests:
		problem(w, http.StatusTooManyRequests, "Too many requests: the limit is 7 requests per second")
		return
	}
	sleepCtx(r, s.opts.Latency)
	if fail != 0 {
		gatewayError(w, fail)
		return
	}
	if isOAuth {
		s.serveOAuth(w, r)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/api/v4/")
	if !ok {
		s.unknownRoute(r)
		problem(w, http.StatusNotFound, "No such endpoint")
		return
	}
	if !s.authorized(r) {
		problem(w, http.StatusUnauthorized, unauthorizedDetail)
		return
	}
	s.routeREST(w, r, strings.Split(rest, "/"))
}

// ipBlockedDetail is the detail of the fake's IP block 403. Kommo does not
// document the block's body; a client must tell it from a rights 403
// (rightsProblem) by the body, since both are 403s.
const ipBlockedDetail = "Access denied: the IP address is blocked for repeatedly exceeding the request limit"

// rightsDetail is the detail of a 403 for an entity the token's user may not
// see or change.
const rightsDetail = "Access denied: the user has no rights for this entity"

// rightsProblem answers a request the token's user has no rights for.
func rightsProblem(w http.ResponseWriter) { problem(w, http.StatusForbidden, rightsDetail) }

// note429 remembers a 429 and blocks the IP after too many of them in a minute,
// as Kommo does: "if the restrictions are repeatedly violated, the IP address is blocked".
func (s *Server) note429(now time.Time) {
	cut := now.Add(-time.Minute)
	i := 0
	for i < len(s.recent429) && !s.recent429[i].After(cut) {
		i++
	}
	s.recent429 = append(s.recent429[i:], now)
	if s.opts.BlockAfter429s > 0 && len(s.recent429) >= s.opts.BlockAfter429s {
		s.blockedUntil = now.Add(s.opts.BlockFor)
		s.recent429 = nil
	}
}

func (s *Server) routeREST(w http.ResponseWriter, r *http.Request, seg []string) {
	id := int64(0)
	if len(seg) >= 2 && seg[0] == "leads" && seg[1] != "notes" {
		n, err := strconv.ParseInt(seg[1], 10, 64)
		if err != nil || n <= 0 {
			s.unknownRoute(r)
			problem(w, http.StatusNotFound, "No such endpoint")
			return
		}
		id = n
	}
	route := strings.Join(seg, "/")
	if id != 0 {
		seg[1] = "{id}"
		route = strings.Join(seg, "/")
	}
	if len(seg) == 4 && (seg[0] == "salesbot" || seg[0] == "marketingbot") && seg[2] == "continue" {
		route = seg[0] + "/{bot}/continue/{id}"
	}
	switch r.Method + " " + route {
	case "GET account":
		s.getAccount(w, r)
	case "GET leads":
		s.listLeads(w, r)
	case "PATCH leads":
		s.patchLeads(w, r, 0)
	case "POST leads/notes":
		s.postNotes(w, r, 0)
	case "GET leads/{id}":
		s.getLead(w, r, id)
	case "PATCH leads/{id}":
		s.patchLeads(w, r, id)
	case "GET leads/{id}/notes":
		s.listNotes(w, r, id)
	case "POST leads/{id}/notes":
		s.postNotes(w, r, id)
	case "GET contacts/chats":
		s.contactChats(w, r)
	case "POST salesbot/{bot}/continue/{id}", "POST marketingbot/{bot}/continue/{id}":
		s.continueBot(w, r, seg[0], seg[1], seg[3])
	case "GET webhooks":
		s.listWebhooks(w, r)
	case "POST webhooks":
		s.addWebhook(w, r)
	case "DELETE webhooks":
		s.deleteWebhook(w, r)
	default:
		s.unknownRoute(r)
		problem(w, http.StatusNotFound, "No such endpoint")
	}
}

func (s *Server) href(path string) map[string]any {
	return map[string]any{"href": s.KommoURL + path}
}

// parseWith splits "with" (comma-separated, possibly repeated) and rejects a value
// the endpoint does not know, as Kommo does for with=chats.
func parseWith(w http.ResponseWriter, q url.Values, allowed map[string]bool) (map[string]bool, bool) {
	out := map[string]bool{}
	for _, v := range q["with"] {
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			if !allowed[p] {
				queryProblem(w, "NotSupportedChoice", "with",
					fmt.Sprintf("The value %q is not a valid choice for with.", p))
				return nil, false
			}
			out[p] = true
		}
	}
	return out, true
}

// pageParams reads page (>= 1) and limit (1..250, default 50).
func pageParams(w http.ResponseWriter, q url.Values) (page, limit int, ok bool) {
	page, limit = 1, 50
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			queryProblem(w, "InvalidValue", "page", "This value should be an integer greater than or equal to 1.")
			return 0, 0, false
		}
		page = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxBatch {
			queryProblem(w, "InvalidValue", "limit", "This value should be between 1 and 250.")
			return 0, 0, false
		}
		limit = n
	}
	return page, limit, true
}

// bracketKey splits "filter[statuses][0][status_id]" into its parts.
func bracketKey(k string) []string {
	head, rest, _ := strings.Cut(k, "[")
	parts := []string{head}
	for rest != "" {
		p, after, ok := strings.Cut(rest, "]")
		if !ok {
			break
		}
		parts = append(parts, p)
		rest = strings.TrimPrefix(after, "[")
	}
	return parts
}

// order reads order[field]=asc|desc for the allowed fields; default id asc.
func parseOrder(w http.ResponseWriter, q url.Values, fields ...string) (field string, desc, ok bool) {
	field = "id"
	for k, vs := range q {
		p := bracketKey(k)
		if p[0] != "order" {
			continue
		}
		if len(p) != 2 || !slices.Contains(fields, p[1]) {
			queryProblem(w, "NotSupportedChoice", k, "Sorting is available by "+strings.Join(fields, ", ")+".")
			return "", false, false
		}
		switch vs[0] {
		case "asc":
		case "desc":
			desc = true
		default:
			queryProblem(w, "NotSupportedChoice", k, "Available values for sorting: asc, desc.")
			return "", false, false
		}
		field = p[1]
	}
	return field, desc, true
}

func intValues(vs []string) ([]int64, bool) {
	var out []int64
	for _, v := range vs {
		for _, p := range strings.Split(v, ",") {
			n, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
			if err != nil {
				return nil, false
			}
			out = append(out, n)
		}
	}
	return out, true
}

func pageLinks(s *Server, path string, q url.Values, page, limit int, hasNext bool) map[string]any {
	link := func(p int) map[string]any {
		v := url.Values{}
		for k, vs := range q {
			v[k] = slices.Clone(vs)
		}
		v.Set("page", strconv.Itoa(p))
		v.Set("limit", strconv.Itoa(limit))
		return s.href(path + "?" + v.Encode())
	}
	links := map[string]any{"self": link(page)}
	if hasNext {
		links["next"] = link(page + 1)
	}
	if page > 1 {
		links["prev"] = link(page - 1)
	}
	return links
}

// getAccount: GET /api/v4/account (developers.kommo.com/reference/account-parameters).
func (s *Server) getAccount(w http.ResponseWriter, r *http.Request) {
	with, ok := parseWith(w, r.URL.Query(), accountWith)
	if !ok {
		return
	}
	created := baseTime.AddDate(-2, 0, 0).Unix()
	body := map[string]any{
		"id": accountID, "name": "Kommotest Trading", "subdomain": "kommotest",
		"created_at": created, "created_by": 0, "updated_at": created, "updated_by": 0,
		"current_user_id": currentUserID, "country": "RU", "currency": "RUB", "currency_symbol": "₽",
		"customers_mode": "disabled", "is_unsorted_on": true, "mobile_feature_version": 0,
		"is_loss_reason_enabled": true, "is_helpbot_enabled": false, "is_technical_account": false,
		"contact_name_display_order": 1,
		"_links":                     map[string]any{"self": s.href("/api/v4/account")},
	}
	emb := map[string]any{}
	if with["amojo_id"] {
		body["amojo_id"] = s.acct.amojoID
	}
	if with["version"] {
		body["version"] = 11
	}
	if with["drive_url"] {
		body["drive_url"] = "https://drive-b.kommo.com"
	}
	if with["is_api_filter_enabled"] {
		body["is_api_filter_enabled"] = true
	}
	if with["amojo_rights"] {
		emb["amojo_rights"] = map[string]any{"can_direct": true, "can_create_groups": true}
	}
	if with["users_groups"] {
		emb["users_groups"] = []any{map[string]any{"id": 0, "name": "Sales", "uuid": nil}}
	}
	if with["task_types"] {
		emb["task_types"] = []any{
			map[string]any{"id": 1, "name": "Follow-up", "color": nil, "icon_id": nil, "code": "FOLLOW_UP"},
			map[string]any{"id": 2, "name": "Meeting", "color": nil, "icon_id": nil, "code": "MEETING"},
		}
	}
	if with["entity_names"] {
		emb["entity_names"] = map[string]any{"leads": map[string]any{"en": map[string]any{
			"singular_form": map[string]any{"default": "lead"}, "plural_form": map[string]any{"default": "leads"}}}}
	}
	if with["datetime_settings"] {
		emb["datetime_settings"] = map[string]any{"date_pattern": "d.m.Y H:i", "short_date_pattern": "d.m.Y",
			"short_time_pattern": "H:i", "date_format": "d.m.Y", "time_format": "H:i:s",
			"timezone": "Europe/Moscow", "timezone_offset": "+03:00"}
	}
	if len(emb) > 0 {
		body["_embedded"] = emb
	}
	writeJSON(w, http.StatusOK, halJSON, body)
}

func (s *Server) leadJSON(l *lead, with map[string]bool) map[string]any {
	var closedAt any
	if l.closedAt != 0 {
		closedAt = l.closedAt
	}
	var cfv any
	if v, ok := l.fields[s.opts.SummaryFieldID]; ok {
		cfv = []any{map[string]any{
			"field_id": s.opts.SummaryFieldID, "field_name": "AI summary", "field_code": nil,
			"field_type": "textarea", "values": []any{map[string]any{"value": v}},
		}}
	}
	m := map[string]any{
		"id": l.id, "name": l.name, "price": l.price, "responsible_user_id": l.responsible,
		"group_id": 0, "status_id": l.statusID, "pipeline_id": pipelineID, "loss_reason_id": nil,
		"created_by": l.responsible, "updated_by": l.updatedBy, "created_at": l.createdAt,
		"updated_at": l.updatedAt, "closed_at": closedAt, "closest_task_at": nil, "is_deleted": false,
		"custom_fields_values": cfv, "score": nil, "account_id": accountID, "labor_cost": nil,
		"_links": map[string]any{"self": s.href(fmt.Sprintf("/api/v4/leads/%d", l.id))},
	}
	emb := map[string]any{"tags": []any{}, "companies": []any{}}
	if with["contacts"] {
		cs := []any{}
		for _, c := range l.contacts {
			cs = append(cs, map[string]any{"id": c.id, "is_main": c.main,
				"_links": map[string]any{"self": s.href(fmt.Sprintf("/api/v4/contacts/%d", c.id))}})
		}
		emb["contacts"] = cs
	}
	if with["source_id"] {
		m["source_id"] = nil
	}
	if with["is_price_modified_by_robot"] {
		m["is_price_modified_by_robot"] = false
	}
	if with["loss_reason"] {
		emb["loss_reason"] = []any{}
	}
	if with["catalog_elements"] {
		emb["catalog_elements"] = []any{}
	}
	if with["source"] {
		emb["source"] = nil
	}
	m["_embedded"] = emb
	return m
}

type statusPair struct{ pipeline, status int64 }

// listLeads: GET /api/v4/leads (developers.kommo.com/reference/leads-list).
func (s *Server) listLeads(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	s.stats.LeadListCalls++
	s.mu.Unlock()

	with, ok := parseWith(w, q, leadWith)
	if !ok {
		return
	}
	page, limit, ok := pageParams(w, q)
	if !ok {
		return
	}
	orderBy, desc, ok := parseOrder(w, q, "id", "created_at", "updated_at")
	if !ok {
		return
	}
	var ids, pipelines, responsibles []int64
	statuses := map[string]*statusPair{}
	ranges := map[string][2]int64{}
	for k, vs := range q {
		p := bracketKey(k)
		if p[0] != "filter" {
			continue
		}
		if len(p) < 2 {
			queryProblem(w, "InvalidValue", k, "Invalid filter.")
			return
		}
		bad := func() { queryProblem(w, "InvalidType", k, "This value should be of type int.") }
		switch p[1] {
		case "id", "pipeline_id", "responsible_user_id":
			n, ok := intValues(vs)
			if !ok {
				bad()
				return
			}
			switch p[1] {
			case "id":
				ids = append(ids, n...)
			case "pipeline_id":
				pipelines = append(pipelines, n...)
			default:
				responsibles = append(responsibles, n...)
			}
		case "statuses":
			if len(p) != 4 || (p[3] != "pipeline_id" && p[3] != "status_id") {
				queryProblem(w, "InvalidValue", k, "Use filter[statuses][N][pipeline_id] and filter[statuses][N][status_id].")
				return
			}
			n, ok := intValues(vs)
			if !ok || len(n) != 1 {
				bad()
				return
			}
			sp := statuses[p[2]]
			if sp == nil {
				sp = &statusPair{}
				statuses[p[2]] = sp
			}
			if p[3] == "pipeline_id" {
				sp.pipeline = n[0]
			} else {
				sp.status = n[0]
			}
		case "created_at", "updated_at", "closed_at":
			n, ok := intValues(vs)
			if !ok || len(n) != 1 {
				bad()
				return
			}
			rg, seen := ranges[p[1]]
			if !seen {
				rg = [2]int64{0, 1<<62 - 1}
			}
			switch {
			case len(p) == 2:
				rg = [2]int64{n[0], n[0]}
			case p[2] == "from":
				rg[0] = n[0]
			case p[2] == "to":
				rg[1] = n[0]
			default:
				queryProblem(w, "InvalidValue", k, "Use from and to.")
				return
			}
			ranges[p[1]] = rg
		default:
			// Kommo has more filters; the fake refuses the ones it does not implement
			// rather than ignore them and return leads the filter would have excluded.
			queryProblem(w, "NotSupportedChoice", k, "kommotest does not implement filter["+p[1]+"]")
			return
		}
	}
	for key, sp := range statuses {
		if sp.pipeline == 0 || sp.status == 0 {
			queryProblem(w, "NotBlank", "filter[statuses]["+key+"]", "Both pipeline_id and status_id are required.")
			return
		}
	}
	search := strings.ToLower(q.Get("query"))

	s.mu.Lock()
	var match []*lead
	if !with["only_deleted"] { // the account has no deleted leads
		for _, l := range s.acct.leads {
			if keepLead(l, ids, pipelines, responsibles, statuses, ranges, search) {
				match = append(match, l)
			}
		}
	}
	key := func(l *lead) int64 {
		switch orderBy {
		case "created_at":
			return l.createdAt
		case "updated_at":
			return l.updatedAt
		}
		return l.id
	}
	sort.SliceStable(match, func(i, j int) bool {
		a, b := key(match[i]), key(match[j])
		if a == b {
			a, b = match[i].id, match[j].id
		}
		if desc {
			return a > b
		}
		return a < b
	})
	start := (page - 1) * limit
	if start >= len(match) {
		s.mu.Unlock()
		noContent(w) // an empty result and a page past the end are both 204
		return
	}
	end := min(start+limit, len(match))
	out := make([]any, 0, end-start)
	for _, l := range match[start:end] {
		out = append(out, s.leadJSON(l, with))
	}
	s.mu.Unlock()

	writeJSON(w, http.StatusOK, halJSON, map[string]any{
		"_page":     page,
		"_links":    pageLinks(s, "/api/v4/leads", q, page, limit, end < len(match)),
		"_embedded": map[string]any{"leads": out},
	})
}

func keepLead(l *lead, ids, pipelines, responsibles []int64, statuses map[string]*statusPair,
	ranges map[string][2]int64, search string) bool {
	if len(ids) > 0 && !slices.Contains(ids, l.id) {
		return false
	}
	if len(pipelines) > 0 && !slices.Contains(pipelines, int64(pipelineID)) {
		return false
	}
	if len(responsibles) > 0 && !slices.Contains(responsibles, l.responsible) {
		return false
	}
	if len(statuses) > 0 {
		found := false
		for _, sp := range statuses {
			if sp.pipeline == pipelineID && sp.status == l.statusID {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	for field, rg := range ranges {
		v := map[string]int64{"created_at": l.createdAt, "updated_at": l.updatedAt, "closed_at": l.closedAt}[field]
		if (field == "closed_at" && v == 0) || v < rg[0] || v > rg[1] {
			return false
		}
	}
	if search != "" && !strings.Contains(strings.ToLower(l.name), search) && strconv.FormatInt(l.id, 10) != search {
		return false
	}
	return true
}

// getLead: GET /api/v4/leads/{id} (developers.kommo.com/reference/getting-a-lead-by-its-id).
// Kommo answers 204 for an id it does not find.
func (s *Server) getLead(w http.ResponseWriter, r *http.Request, id int64) {
	with, ok := parseWith(w, r.URL.Query(), leadWith)
	if !ok {
		return
	}
	s.mu.Lock()
	l := s.acct.leadByID[id]
	var body map[string]any
	if l != nil && !with["only_deleted"] {
		body = s.leadJSON(l, with)
	}
	s.mu.Unlock()
	if body == nil {
		noContent(w)
		return
	}
	writeJSON(w, http.StatusOK, halJSON, body)
}

// contactChats: GET /api/v4/contacts/chats?contact_id=N or ?chat_id=UUID
// (kommo.com/developers/content/chats/linking-chat-to-contact).
func (s *Server) contactChats(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	s.stats.ContactChatsCalls++
	s.mu.Unlock()

	var contactIDs []int64
	var chatIDs []string
	for k, vs := range q {
		switch bracketKey(k)[0] {
		case "contact_id":
			n, ok := intValues(vs)
			if !ok {
				queryProblem(w, "InvalidType", "contact_id", "This value should be of type int.")
				return
			}
			contactIDs = append(contactIDs, n...)
		case "chat_id":
			for _, v := range vs {
				chatIDs = append(chatIDs, strings.Split(v, ",")...)
			}
		}
	}
	if len(contactIDs) == 0 && len(chatIDs) == 0 {
		queryProblem(w, "NotBlank", "contact_id", "Pass contact_id or chat_id.")
		return
	}
	s.mu.Lock()
	var out []any
	add := func(c *contact, ch *chat) {
		// Only chats of channels the integration has access to: never native ones.
		if ch.origin != "" || (len(chatIDs) > 0 && !slices.Contains(chatIDs, ch.id)) {
			return
		}
		out = append(out, map[string]any{"chat_id": ch.id, "contact_id": c.id, "id": ch.linkID})
	}
	if len(contactIDs) > 0 {
		for _, cid := range contactIDs {
			if c := s.acct.contacts[cid]; c != nil {
				for _, ch := range c.chats {
					add(c, ch)
				}
			}
		}
	} else {
		for _, cid := range sortedContactIDs(s.acct) {
			c := s.acct.contacts[cid]
			for _, ch := range c.chats {
				add(c, ch)
			}
		}
	}
	s.mu.Unlock()
	if len(out) == 0 {
		noContent(w)
		return
	}
	writeJSON(w, http.StatusOK, halJSON, map[string]any{
		"_total_items": len(out),
		"_embedded":    map[string]any{"chats": out},
	})
}

func sortedContactIDs(a *account) []int64 {
	ids := make([]int64, 0, len(a.contacts))
	for id := range a.contacts {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// postNotes: POST /api/v4/leads/notes, or /api/v4/leads/{id}/notes when pathID != 0
// (developers.kommo.com/reference/notes-types). One invalid note rejects the
// whole request and nothing is stored.
func (s *Server) postNotes(w http.ResponseWriter, r *http.Request, pathID int64) {
	s.mu.Lock()
	s.stats.NotesPosts++
	s.mu.Unlock()
	if s.opts.BeforeNotes != nil {
		s.opts.BeforeNotes()
	}
	body, ok := readJSONBody(w, r)
	if !ok {
		return
	}
	items, ok := jsonArray(body)
	if !ok {
		problem(w, http.StatusBadRequest, "The request body must be a JSON array of notes")
		return
	}
	if len(items) == 0 || len(items) > maxBatch {
		problem(w, http.StatusBadRequest, fmt.Sprintf("Pass from 1 to %d notes per request, got %d", maxBatch, len(items)))
		return
	}

	s.mu.Lock()
	var errs []requestErrors
	notes := make([]*note, 0, len(items))
	rids := make([]string, 0, len(items))
	for i, raw := range items {
		n, rid, fe := s.parseNote(raw, i, pathID)
		if len(fe) > 0 {
			errs = append(errs, requestErrors{RequestID: rid, Errors: fe})
			continue
		}
		notes = append(notes, n)
		rids = append(rids, rid)
	}
	if len(errs) > 0 {
		s.mu.Unlock()
		validationProblem(w, errs)
		return
	}
	for _, n := range notes {
		if slices.Contains(s.opts.NotesForbidden, n.entityID) {
			s.mu.Unlock()
			rightsProblem(w)
			return
		}
	}
	now := s.now().UTC().Truncate(time.Second)
	out := make([]any, 0, len(notes))
	for i, n := range notes {
		n.id = s.nextNoteID
		s.nextNoteID++
		n.createdAt, n.updatedAt = now, now
		n.createdBy, n.responsibleUserID, n.api = currentUserID, currentUserID, true
		s.notes = append(s.notes, n)
		out = append(out, map[string]any{
			"id": n.id, "entity_id": n.entityID, "request_id": rids[i],
			"_links": map[string]any{"self": s.href(fmt.Sprintf("/api/v4/leads/%d/notes/%d", n.entityID, n.id))},
		})
	}
	s.stats.NotesCreated += len(notes)
	failAfter := s.opts.NotesFailAfterActRate > 0 && s.notesFail.Float64() < s.opts.NotesFailAfterActRate
	if failAfter {
		s.stats.Injected5xx++
	}
	s.mu.Unlock()

	if s.opts.AfterNotes != nil {
		s.opts.AfterNotes()
	}
	if failAfter {
		gatewayError(w, http.StatusBadGateway)
		return
	}
	writeJSON(w, http.StatusOK, halJSON, map[string]any{
		"_links":    map[string]any{"self": s.href(r.URL.Path)},
		"_embedded": map[string]any{"notes": out},
	})
}

// parseNote validates one note of a POST. It returns the request_id Kommo
// reports for it: the client's own request_id, or the note's index.
func (s *Server) parseNote(raw json.RawMessage, i int, pathID int64) (*note, string, []fieldError) {
	rid := strconv.Itoa(i)
	obj, ok := jsonObject(raw)
	if !ok {
		return nil, rid, []fieldError{{"InvalidType", "", "This value should be of type object."}}
	}
	var fe []fieldError
	n := &note{}
	if v, has := obj["request_id"]; has && !isNull(v) {
		str, ok := jsonString(v)
		if !ok {
			fe = append(fe, fieldError{"InvalidType", "request_id", "This value should be of type string."})
		} else {
			n.requestID = str
			if str != "" {
				rid = str
			}
		}
	}

	v, has := obj["entity_id"]
	switch {
	case has && !isNull(v):
		id, ok := jsonInt(v)
		switch {
		case !ok:
			fe = append(fe, fieldError{"InvalidType", "entity_id", "This value should be of type int."})
		case pathID != 0 && id != pathID:
			fe = append(fe, fieldError{"InvalidValue", "entity_id", "entity_id does not match the lead in the URL."})
		default:
			n.entityID = id
		}
	case pathID != 0:
		n.entityID = pathID
	default:
		fe = append(fe, fieldError{"NotBlank", "entity_id", "This value should not be blank."})
	}
	if n.entityID != 0 && s.acct.leadByID[n.entityID] == nil {
		fe = append(fe, fieldError{"NotFound", "entity_id", "Entity not found."})
	}

	typ, ok := jsonString(obj["note_type"])
	switch {
	case isNull(obj["note_type"]):
		fe = append(fe, fieldError{"NotBlank", "note_type", "This value should not be blank."})
	case !ok:
		fe = append(fe, fieldError{"InvalidType", "note_type", "This value should be of type string."})
	case !noteTypes[typ]:
		fe = append(fe, fieldError{"NotSupportedChoice", "note_type", "The value you selected is not a valid choice."})
	}
	n.noteType = typ

	params, ok := jsonObject(obj["params"])
	if !ok {
		code := "InvalidType"
		if isNull(obj["params"]) {
			code = "NotBlank"
		}
		return nil, rid, append(fe, fieldError{code, "params", "params must be an object."})
	}
	requireString := func(name string) string {
		str, ok := jsonString(params[name])
		switch {
		case isNull(params[name]) || (ok && strings.TrimSpace(str) == ""):
			fe = append(fe, fieldError{"NotBlank", "params." + name, "This value should not be blank."})
		case !ok:
			fe = append(fe, fieldError{"InvalidType", "params." + name, "This value should be of type string."})
		}
		return str
	}
	switch typ {
	case "call_in", "call_out":
		requireString("phone")
		n.text, _ = jsonString(params["text"])
	case "attachment":
		requireString("file_uuid")
		n.text, _ = jsonString(params["text"])
	case "service_message", "extended_service_message":
		n.service = requireString("service")
		n.text = requireString("text")
	default:
		n.text = requireString("text")
	}
	if len(fe) > 0 {
		return nil, rid, fe
	}
	return n, rid, nil
}

// listNotes: GET /api/v4/leads/{id}/notes (kommo.com/developers/content/api_v4/events-and-notes).
// Kommo echoes request_id only when notes are created, never here.
func (s *Server) listNotes(w http.ResponseWriter, r *http.Request, leadID int64) {
	if slices.Contains(s.opts.NotesForbidden, leadID) {
		rightsProblem(w)
		return
	}
	q := r.URL.Query()
	page, limit, ok := pageParams(w, q)
	if !ok {
		return
	}
	orderBy, desc, ok := parseOrder(w, q, "id", "updated_at")
	if !ok {
		return
	}
	var types []string
	var ids []int64
	for k, vs := range q {
		p := bracketKey(k)
		if p[0] != "filter" {
			continue
		}
		switch {
		case len(p) >= 2 && p[1] == "note_type":
			for _, v := range vs {
				for _, t := range strings.Split(v, ",") {
					if !noteTypes[t] {
						queryProblem(w, "NotSupportedChoice", k, "The value you selected is not a valid choice.")
						return
					}
					types = append(types, t)
				}
			}
		case len(p) >= 2 && p[1] == "id":
			n, ok := intValues(vs)
			if !ok {
				queryProblem(w, "InvalidType", k, "This value should be of type int.")
				return
			}
			ids = append(ids, n...)
		default:
			queryProblem(w, "NotSupportedChoice", k, "kommotest does not implement this notes filter")
			return
		}
	}

	s.mu.Lock()
	var match []*note
	for _, n := range s.notes {
		if n.entityID != leadID || (len(types) > 0 && !slices.Contains(types, n.noteType)) ||
			(len(ids) > 0 && !slices.Contains(ids, n.id)) {
			continue
		}
		match = append(match, n)
	}
	match = sortedNotes(match, func(a, b *note) bool {
		x, y := a.id, b.id
		if orderBy == "updated_at" && !a.updatedAt.Equal(b.updatedAt) {
			x, y = a.updatedAt.UnixNano(), b.updatedAt.UnixNano()
		}
		if desc {
			return x > y
		}
		return x < y
	})
	start := (page - 1) * limit
	if start >= len(match) {
		s.mu.Unlock()
		noContent(w)
		return
	}
	end := min(start+limit, len(match))
	out := make([]any, 0, end-start)
	for _, n := range match[start:end] {
		params := map[string]any{"text": n.text}
		if n.service != "" {
			params["service"] = n.service
		}
		out = append(out, map[string]any{
			"id": n.id, "entity_id": n.entityID, "created_by": n.createdBy, "updated_by": n.createdBy,
			"created_at": n.createdAt.Unix(), "updated_at": n.updatedAt.Unix(),
			"responsible_user_id": n.responsibleUserID, "group_id": 0, "note_type": n.noteType,
			"params": params, "account_id": accountID,
			"_links": map[string]any{"self": s.href(fmt.Sprintf("/api/v4/leads/%d/notes/%d", n.entityID, n.id))},
		})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, halJSON, map[string]any{
		"_page":     page,
		"_links":    pageLinks(s, fmt.Sprintf("/api/v4/leads/%d/notes", leadID), q, page, limit, end < len(match)),
		"_embedded": map[string]any{"notes": out},
	})
}

// leadPatch is one validated lead update: the field values to set (nil = clear).
type leadPatch struct {
	id     int64
	rid    string
	sentID string // the client's request_id, echoed on a single-lead PATCH
	fields map[int64]*string
}

// patchLeads: PATCH /api/v4/leads with an array (pathID == 0), or PATCH
// /api/v4/leads/{id} with one object (developers.kommo.com/reference/updating-single-lead).
// Like notes, one invalid lead rejects the whole request.
func (s *Server) patchLeads(w http.ResponseWriter, r *http.Request, pathID int64) {
	s.mu.Lock()
	s.stats.LeadPatches++
	s.mu.Unlock()
	if s.opts.BeforeLeadsPatch != nil {
		s.opts.BeforeLeadsPatch()
	}
	body, ok := readJSONBody(w, r)
	if !ok {
		return
	}
	var items []json.RawMessage
	if pathID == 0 {
		items, ok = jsonArray(body)
		if !ok {
			problem(w, http.StatusBadRequest, "The request body must be a JSON array of leads")
			return
		}
		if len(items) == 0 || len(items) > maxBatch {
			problem(w, http.StatusBadRequest, fmt.Sprintf("Pass from 1 to %d leads per request, got %d", maxBatch, len(items)))
			return
		}
	} else {
		if jsonKind(body) != '{' {
			problem(w, http.StatusBadRequest, "The request body must be a JSON object")
			return
		}
		items = []json.RawMessage{body}
	}

	s.mu.Lock()
	if pathID != 0 && s.acct.leadByID[pathID] == nil {
		s.mu.Unlock()
		problem(w, http.StatusNotFound, "Lead not found")
		return
	}
	var errs []requestErrors
	patches := make([]leadPatch, 0, len(items))
	for i, raw := range items {
		p, fe := s.parseLeadPatch(raw, i, pathID)
		if len(fe) > 0 {
			errs = append(errs, requestErrors{RequestID: p.rid, Errors: fe})
			continue
		}
		patches = append(patches, p)
	}
	if len(errs) > 0 {
		s.mu.Unlock()
		validationProblem(w, errs)
		return
	}
	now := s.now().Unix()
	out := make([]any, 0, len(patches))
	for _, p := range patches {
		l := s.acct.leadByID[p.id]
		for fid, v := range p.fields {
			if v == nil {
				delete(l.fields, fid)
			} else {
				l.fields[fid] = *v
			}
		}
		l.updatedAt, l.updatedBy = now, currentUserID
		out = append(out, map[string]any{"id": l.id, "updated_at": now, "request_id": p.rid,
			"_links": map[string]any{"self": s.href(fmt.Sprintf("/api/v4/leads/%d", l.id))}})
	}
	s.stats.LeadsPatched += len(patches)
	s.mu.Unlock()

	if pathID != 0 {
		// A single-lead PATCH answers with the lead itself, not a collection
		// (amocrm-api-php Leads::processUpdateOne reads id and updated_at at the top level).
		one := out[0].(map[string]any)
		if patches[0].sentID == "" {
			delete(one, "request_id")
		}
		writeJSON(w, http.StatusOK, halJSON, one)
		return
	}
	writeJSON(w, http.StatusOK, halJSON, map[string]any{
		"_links":    map[string]any{"self": s.href("/api/v4/leads")},
		"_embedded": map[string]any{"leads": out},
	})
}

func (s *Server) parseLeadPatch(raw json.RawMessage, i int, pathID int64) (leadPatch, []fieldError) {
	p := leadPatch{rid: strconv.Itoa(i), fields: map[int64]*string{}}
	obj, ok := jsonObject(raw)
	if !ok {
		return p, []fieldError{{"InvalidType", "", "This value should be of type object."}}
	}
	var fe []fieldError
	if v, has := obj["request_id"]; has && !isNull(v) {
		str, ok := jsonString(v)
		if !ok {
			fe = append(fe, fieldError{"InvalidType", "request_id", "This value should be of type string."})
		} else if str != "" {
			p.rid, p.sentID = str, str
		}
	}
	v, has := obj["id"]
	switch {
	case has && !isNull(v):
		id, ok := jsonInt(v)
		switch {
		case !ok:
			fe = append(fe, fieldError{"InvalidType", "id", "This value should be of type int."})
		case pathID != 0 && id != pathID:
			fe = append(fe, fieldError{"InvalidValue", "id", "id does not match the lead in the URL."})
		case s.acct.leadByID[id] == nil:
			fe = append(fe, fieldError{"NotFound", "id", "Entity not found."})
		default:
			p.id = id
		}
	case pathID != 0:
		p.id = pathID
	default:
		fe = append(fe, fieldError{"NotBlank", "id", "This value should not be blank."})
	}

	cfRaw := obj["custom_fields_values"]
	if isNull(cfRaw) {
		return p, fe
	}
	cfs, ok := jsonArray(cfRaw)
	if !ok {
		return p, append(fe, fieldError{"InvalidType", "custom_fields_values", "This value should be of type array."})
	}
	for ci, cfr := range cfs {
		path := fmt.Sprintf("custom_fields_values.%d", ci)
		cf, ok := jsonObject(cfr)
		if !ok {
			fe = append(fe, fieldError{"InvalidType", path, "This value should be of type object."})
			continue
		}
		var fieldID int64
		switch {
		case !isNull(cf["field_id"]):
			id, ok := jsonInt(cf["field_id"])
			switch {
			case !ok:
				fe = append(fe, fieldError{"InvalidType", path + ".field_id", "This value should be of type int."})
				continue
			case id != s.opts.SummaryFieldID:
				fe = append(fe, fieldError{"NotSupportedChoice", path + ".field_id", "The value you selected is not a valid choice."})
				continue
			}
			fieldID = id
		case !isNull(cf["field_code"]):
			// The account's fields have no codes the fake would recognise.
			fe = append(fe, fieldError{"NotSupportedChoice", path + ".field_code", "The value you selected is not a valid choice."})
			continue
		default:
			fe = append(fe, fieldError{"NotBlank", path + ".field_id", "This value should not be blank."})
			continue
		}
		if isNull(cf["values"]) {
			p.fields[fieldID] = nil
			continue
		}
		vals, ok := jsonArray(cf["values"])
		if !ok {
			fe = append(fe, fieldError{"InvalidType", path + ".values", "This value should be of type array."})
			continue
		}
		if len(vals) == 0 {
			p.fields[fieldID] = nil
			continue
		}
		for vi, vr := range vals {
			vpath := fmt.Sprintf("%s.values.%d.value", path, vi)
			vo, ok := jsonObject(vr)
			if !ok {
				fe = append(fe, fieldError{"InvalidType", fmt.Sprintf("%s.values.%d", path, vi), "This value should be of type object."})
				continue
			}
			str, ok := jsonString(vo["value"])
			if !ok {
				fe = append(fe, fieldError{"InvalidType", vpath, "This value should be of type string."})
				continue
			}
			if vi == 0 { // a textarea holds one value
				p.fields[fieldID] = &str
			}
		}
	}
	return p, fe
}
