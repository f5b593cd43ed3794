package kommotest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// The account webhooks registry: GET, POST and DELETE /api/v4/webhooks
// (amocrm.ru/developers/content/crm_platform/webhooks-api,
// developers.kommo.com/reference/add-webhooks; kommo-webhooks.md §1 and §7.1).

const (
	maxWebhooks  = 100
	firstHookID  = 1056949
	invalidURL   = "Invalid URL"
	defaultHookS = 1
)

// webhookEvents are the setting codes the account accepts: the official list,
// plus the message and unsorted events that exist but are missing from it.
var webhookEvents = map[string]bool{
	"responsible_lead": true, "responsible_contact": true, "responsible_company": true, "responsible_customer": true,
	"responsible_task": true, "restore_lead": true, "restore_contact": true, "restore_company": true,
	"add_lead": true, "add_contact": true, "add_company": true, "add_customer": true, "add_talk": true, "add_task": true,
	"update_lead": true, "update_contact": true, "update_company": true, "update_customer": true, "update_talk": true,
	"update_task": true, "delete_lead": true, "delete_contact": true, "delete_company": true, "delete_customer": true,
	"delete_task": true, "status_lead": true, "note_lead": true, "note_contact": true, "note_company": true,
	"note_customer": true, "add_chat_template_review": true,
	"add_message": true, "add_outgoing_message": true,
	"add_unsorted": true, "update_unsorted": true, "delete_unsorted": true,
}

type webhook struct {
	id          int64
	destination string
	createdAt   int64
	updatedAt   int64
	sort        int64
	disabled    bool
	settings    []string
	invalid     []time.Time // failed deliveries, for the auto-disable rule
}

func (h *webhook) subscribed(event string) bool {
	return !h.disabled && slices.Contains(h.settings, event)
}

// Webhook is a registered account webhook as tests see it.
type Webhook struct {
	ID          int64
	Destination string
	Settings    []string
	Sort        int64
	Disabled    bool
}

// Webhooks returns the registered webhooks in id order.
func (s *Server) Webhooks() []Webhook {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Webhook, 0, len(s.hooks))
	for _, h := range s.hooks {
		out = append(out, Webhook{ID: h.id, Destination: h.destination, Settings: slices.Clone(h.settings),
			Sort: h.sort, Disabled: h.disabled})
	}
	return out
}

// SetWebhookDisabled disables or re-enables the webhook of a destination, as
// Kommo's auto-disable and the account's "Enable" button do. It reports
// whether the destination is registered.
func (s *Server) SetWebhookDisabled(destination string, disabled bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hookByDestination(destination)
	if h == nil {
		return false
	}
	h.disabled = disabled
	if disabled {
		s.dropQueued(h.id)
	}
	return true
}

func (s *Server) hookByDestination(d string) *webhook {
	for _, h := range s.hooks {
		if h.destination == d {
			return h
		}
	}
	return nil
}

func (s *Server) webhookJSON(h *webhook) map[string]any {
	return map[string]any{
		"id": h.id, "destination": h.destination, "created_at": h.createdAt, "updated_at": h.updatedAt,
		"account_id": accountID, "created_by": currentUserID, "sort": h.sort, "disabled": h.disabled,
		"settings": slices.Clone(h.settings),
	}
}

// validDestination is what Kommo accepts as a webhook address: an absolute
// http(s) URL with an ASCII host ("Cyrillic domains are not supported"). One
// field report says Kommo wants a trailing slash (UNCONFIRMED); the official
// examples ("https://example.test", "https://api.test.ru/amoWebHook") have
// none, so the fake does not require it.
func validDestination(d string) bool {
	u, err := url.Parse(d)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return false
	}
	for _, c := range u.Host {
		if c > 0x7e || c <= ' ' {
			return false
		}
	}
	return true
}

// listWebhooks: GET /api/v4/webhooks[?filter[destination]=...]. 204 when none match.
func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var dest *string
	for k, vs := range q {
		switch p := bracketKey(k); {
		case len(p) == 2 && p[0] == "filter" && p[1] == "destination":
			dest = &vs[0]
		default:
			queryProblem(w, "NotSupportedChoice", k, "kommotest does not implement this webhooks parameter")
			return
		}
	}
	s.mu.Lock()
	out := []any{}
	for _, h := range s.hooks {
		if dest == nil || h.destination == *dest {
			out = append(out, s.webhookJSON(h))
		}
	}
	s.mu.Unlock()
	if len(out) == 0 {
		noContent(w)
		return
	}
	writeJSON(w, http.StatusOK, halJSON, map[string]any{
		"_total_items": len(out),
		"_embedded":    map[string]any{"webhooks": out},
	})
}

// addWebhook: POST /api/v4/webhooks {"destination","settings":[...],"sort"?}.
// A destination already registered gets the new settings (they replace the
// old ones) and is enabled again.
func (s *Server) addWebhook(w http.ResponseWriter, r *http.Request) {
	body, ok := readJSONBody(w, r)
	if !ok {
		return
	}
	obj, ok := jsonObject(body)
	if !ok {
		problem(w, http.StatusBadRequest, "The request body must be a JSON object")
		return
	}
	var fe []fieldError
	dest, ok := jsonString(obj["destination"])
	switch {
	case isNull(obj["destination"]) || (ok && dest == ""):
		fe = append(fe, fieldError{"NotBlank", "destination", "This value should not be blank."})
	case !ok:
		fe = append(fe, fieldError{"InvalidType", "destination", "This value should be of type string."})
	case !validDestination(dest):
		fe = append(fe, fieldError{"InvalidValue", "destination", invalidURL})
	}
	var settings []string
	raw, ok := jsonArray(obj["settings"])
	switch {
	case isNull(obj["settings"]):
		fe = append(fe, fieldError{"NotBlank", "settings", "This value should not be blank."})
	case !ok:
		fe = append(fe, fieldError{"InvalidType", "settings", "This value should be of type array."})
	case len(raw) == 0:
		fe = append(fe, fieldError{"NotBlank", "settings", "This value should not be blank."})
	}
	for i, v := range raw {
		code, ok := jsonString(v)
		switch {
		case !ok:
			fe = append(fe, fieldError{"InvalidType", fmt.Sprintf("settings.%d", i), "This value should be of type string."})
		case !webhookEvents[code]:
			fe = append(fe, fieldError{"NotSupportedChoice", fmt.Sprintf("settings.%d", i), "The value you selected is not a valid choice."})
		case !slices.Contains(settings, code):
			settings = append(settings, code)
		}
	}
	sortVal := int64(-1)
	if v, has := obj["sort"]; has && !isNull(v) {
		n, ok := jsonInt(v)
		if !ok {
			fe = append(fe, fieldError{"InvalidType", "sort", "This value should be of type int."})
		}
		sortVal = n
	}
	if len(fe) > 0 {
		validationProblem(w, []requestErrors{{RequestID: "0", Errors: fe}})
		return
	}

	s.mu.Lock()
	h, fail := s.saveWebhook(dest, settings, sortVal)
	var out map[string]any
	if h != nil {
		out = s.webhookJSON(h)
	}
	s.mu.Unlock()
	if h == nil {
		validationProblem(w, []requestErrors{{RequestID: "0", Errors: []fieldError{fail}}})
		return
	}
	writeJSON(w, http.StatusCreated, halJSON, out)
}

// saveWebhook creates or replaces the webhook of a destination (s.mu held);
// sort < 0 keeps the current sort. It fails only at the 100-hook limit.
func (s *Server) saveWebhook(dest string, settings []string, sort int64) (*webhook, fieldError) {
	now := s.now().Unix()
	h := s.hookByDestination(dest)
	if h == nil {
		if len(s.hooks) >= maxWebhooks {
			return nil, fieldError{"InvalidValue", "destination",
				fmt.Sprintf("The account already has %d webhooks, the most it may have.", maxWebhooks)}
		}
		h = &webhook{id: s.nextHookID, destination: dest, createdAt: now, sort: defaultHookS}
		s.nextHookID++
		s.hooks = append(s.hooks, h)
	}
	h.settings, h.updatedAt, h.disabled, h.invalid = slices.Clone(settings), now, false, nil
	if sort >= 0 {
		h.sort = sort
	}
	return h, fieldError{}
}

// RegisterWebhook does what POST /api/v4/webhooks does, without HTTP: it
// subscribes destination to the events (replacing the settings of a
// destination already registered, and enabling it). It applies the same
// checks: an http(s) URL, known event codes, at most 100 hooks.
func (s *Server) RegisterWebhook(destination string, settings ...string) error {
	if !validDestination(destination) {
		return fmt.Errorf("kommotest: webhook destination %q: %s (want an http or https URL)", destination, invalidURL)
	}
	var clean []string
	for _, e := range settings {
		if !webhookEvents[e] {
			return fmt.Errorf("kommotest: unknown webhook event %q", e)
		}
		if !slices.Contains(clean, e) {
			clean = append(clean, e)
		}
	}
	if len(clean) == 0 {
		return fmt.Errorf("kommotest: a webhook needs at least one event")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, fail := s.saveWebhook(destination, clean, -1); fail.Detail != "" {
		return fmt.Errorf("kommotest: %s", fail.Detail)
	}
	return nil
}

// deleteWebhook: DELETE /api/v4/webhooks {"destination"}: 204, or 404 when
// no webhook has that destination.
func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	body, ok := readJSONBody(w, r)
	if !ok {
		return
	}
	var req struct {
		Destination *string `json:"destination"`
	}
	if jsonKind(body) != '{' || json.Unmarshal(body, &req) != nil || req.Destination == nil || *req.Destination == "" {
		validationProblem(w, []requestErrors{{RequestID: "0", Errors: []fieldError{{"NotBlank", "destination", "This value should not be blank."}}}})
		return
	}
	s.mu.Lock()
	i := slices.IndexFunc(s.hooks, func(h *webhook) bool { return h.destination == *req.Destination })
	if i < 0 {
		s.mu.Unlock()
		problem(w, http.StatusNotFound, "Webhook not found")
		return
	}
	s.dropQueued(s.hooks[i].id)
	s.hooks = slices.Delete(s.hooks, i, i+1)
	s.mu.Unlock()
	noContent(w)
}
