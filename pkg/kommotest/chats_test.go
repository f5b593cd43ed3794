package kommotest

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// sign is the test's own implementation of kommo-api.md §1.3, independent of
// the verifier: lowercase hex HMAC-SHA1 (key = the secret's ASCII bytes) over
// METHOD\nContent-MD5\nContent-Type\nDate\nPATH.
func sign(secret, method, body, date, path string) (contentMD5, signature string) {
	sum := md5.Sum([]byte(body))
	contentMD5 = hex.EncodeToString(sum[:])
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(method + "\n" + contentMD5 + "\n" + "application/json" + "\n" + date + "\n" + path))
	return contentMD5, hex.EncodeToString(mac.Sum(nil))
}

// signedSend signs method+path (without the query) at the clock's time and sends it.
func signedSend(t *testing.T, s *Server, c *clock, method, pathAndQuery, body string) reply {
	t.Helper()
	path, _, _ := strings.Cut(pathAndQuery, "?")
	date := c.Now().Format(time.RFC1123Z)
	cmd5, sig := sign(s.Options().ChannelSecret, method, body, date, path)
	return send(t, method, s.ChatsURL+pathAndQuery, body,
		"Date", date, "Content-Type", "application/json", "Content-MD5", cmd5, "X-Signature", sig)
}

func TestOfficialSignatureVectors(t *testing.T) {
	const secret = "fb50586ff7b68cd831fe0ef356345903f644c0d2"
	// kommo-api.md §1.4 A, Kommo's own example.
	got := expectedSignature(secret, "GET", "d41d8cd98f00b204e9800998ecf8427e", "application/json",
		"Tue, 13 Dec 2022 11:00:00 +0000",
		"/v2/origin/custom/f62a0162-46a7-430e-b06c-0ef798d76a21_52fd2a28-d2eb-4bd8-b862-a67934927b38/chats/30477717-9f3c-4d3f-8101-60327e14dc48/history")
	if got != "2a2593df86235c44943a40ce35409d18bda5778c" {
		t.Errorf("official GET vector: %s", got)
	}
	// §1.4 C, the POST vector.
	body := `{"account_id":"52fd2a28-d2eb-4bd8-b862-a67934927b38","title":"ScopeTitle","hook_api_version":"v2"}`
	cmd5, _ := sign(secret, "POST", body, "", "")
	got = expectedSignature(secret, "post", cmd5, "application/json", "Tue, 13 Dec 2022 11:00:00 +0000",
		"/v2/origin/custom/f62a0162-46a7-430e-b06c-0ef798d76a21/connect")
	if cmd5 != "989f68f3a07bc2e97ee8336339d20f52" || got != "e59cb5aeaaaa760e4464b64d089f19f8bf39f379" {
		t.Errorf("POST vector: md5 %s signature %s", cmd5, got)
	}
}

// The official example requests, sent byte for byte to a server whose clock is
// at the example's date, pass the signature check.
func TestOfficialRequestsOverHTTP(t *testing.T) {
	c := &clock{t: time.Date(2022, 12, 13, 11, 3, 0, 0, time.UTC)}
	s := startTest(t, Options{Leads: 2}, c)
	r := send(t, "GET", s.ChatsURL+"/v2/origin/custom/f62a0162-46a7-430e-b06c-0ef798d76a21_52fd2a28-d2eb-4bd8-b862-a67934927b38/chats/30477717-9f3c-4d3f-8101-60327e14dc48/history?limit=50&offset=0", nil,
		"Date", "Tue, 13 Dec 2022 11:00:00 +0000", "Content-Type", "application/json",
		"Content-MD5", "d41d8cd98f00b204e9800998ecf8427e", "X-Signature", "2a2593df86235c44943a40ce35409d18bda5778c")
	wantStatus(t, r, 204) // signed right; that chat is not in this account

	r = send(t, "POST", s.ChatsURL+"/v2/origin/custom/f62a0162-46a7-430e-b06c-0ef798d76a21/connect",
		`{"account_id":"52fd2a28-d2eb-4bd8-b862-a67934927b38","title":"ScopeTitle","hook_api_version":"v2"}`,
		"Date", "Tue, 13 Dec 2022 11:00:00 +0000", "Content-Type", "application/json",
		"Content-MD5", "989f68f3a07bc2e97ee8336339d20f52", "X-Signature", "e59cb5aeaaaa760e4464b64d089f19f8bf39f379")
	wantStatus(t, r, 200)
	m := r.json(t)
	if m["scope_id"] != s.ScopeID() || m["account_id"] != s.AmojoAccountID() || m["hook_api_version"] != "v2" || m["title"] != "ScopeTitle" {
		t.Errorf("connect answer %s", r.body)
	}

	// Sixteen minutes later the same signature is stale.
	c.Advance(13 * time.Minute)
	r = send(t, "GET", s.ChatsURL+"/v2/origin/custom/f62a0162-46a7-430e-b06c-0ef798d76a21_52fd2a28-d2eb-4bd8-b862-a67934927b38/chats/30477717-9f3c-4d3f-8101-60327e14dc48/history", nil,
		"Date", "Tue, 13 Dec 2022 11:00:00 +0000", "Content-Type", "application/json",
		"Content-MD5", "d41d8cd98f00b204e9800998ecf8427e", "X-Signature", "2a2593df86235c44943a40ce35409d18bda5778c")
	wantStatus(t, r, 403)
}

func TestSignatureIsChecked(t *testing.T) {
	c := newClock()
	s := startTest(t, Options{Leads: 5, ChatsRateLimit: -1}, c)
	chat := s.OpenLeadsWithChats()[0].ChatIDs[0]
	path := "/v2/origin/custom/" + s.ScopeID() + "/chats/" + chat + "/history"
	secret := s.Options().ChannelSecret
	date := c.Now().Format(time.RFC1123Z)
	cmd5, sig := sign(secret, "GET", "", date, path)
	headers := func(over ...string) []string {
		h := map[string]string{"Date": date, "Content-Type": "application/json", "Content-MD5": cmd5, "X-Signature": sig}
		for i := 0; i+1 < len(over); i += 2 {
			h[over[i]] = over[i+1]
		}
		var out []string
		for k, v := range h {
			if v != "-" {
				out = append(out, k, v)
			}
		}
		return out
	}
	wantStatus(t, send(t, "GET", s.ChatsURL+path+"?limit=5&offset=0", nil, headers()...), 200)

	_, wrongSecret := sign("0000", "GET", "", date, path)
	_, withQuery := sign(secret, "GET", "", date, path+"?limit=5")
	oldDate := c.Now().Add(-16 * time.Minute).Format(time.RFC1123Z)
	_, oldSig := sign(secret, "GET", "", oldDate, path)
	for name, h := range map[string][]string{
		"wrong secret":           headers("X-Signature", wrongSecret),
		"query signed":           headers("X-Signature", withQuery),
		"uppercase signature":    headers("X-Signature", strings.ToUpper(sig)),
		"uppercase Content-MD5":  headers("Content-MD5", strings.ToUpper(cmd5)),
		"base64 Content-MD5":     headers("Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
		"no Date":                headers("Date", "-"),
		"no signature":           headers("X-Signature", "-"),
		"no Content-MD5":         headers("Content-MD5", "-"),
		"charset in type":        headers("Content-Type", "application/json; charset=utf-8"),
		"RFC 1123 date with GMT": headers("Date", c.Now().Format(time.RFC1123)),
		"stale date":             headers("Date", oldDate, "X-Signature", oldSig),
	} {
		r := send(t, "GET", s.ChatsURL+path+"?limit=5", nil, h...)
		if r.status != 403 {
			t.Errorf("%s: status %d, want 403", name, r.status)
			continue
		}
		m := r.json(t)
		if m["error_code"] != 403.0 || m["error_type"] != "INVALID_SIGNATURE" || m["error_description"] == "" {
			t.Errorf("%s: 403 body %s", name, r.body)
		}
	}
}

func TestHistoryPagesNewestFirst(t *testing.T) {
	c := newClock()
	s := startTest(t, Options{ChatsRateLimit: -1}, c)
	var chat string
	for _, l := range s.OpenLeadsWithChats() {
		for _, id := range l.ChatIDs {
			if s.MessageCount(id) > 100 && chat == "" {
				chat = id
			}
		}
	}
	if chat == "" {
		t.Fatal("no chat with more than 100 messages")
	}
	base := "/v2/origin/custom/" + s.ScopeID() + "/chats/" + chat + "/history"

	type msg struct {
		Timestamp     int64 `json:"timestamp"`
		MsecTimestamp int64 `json:"msec_timestamp"`
		Sender        map[string]any
		Receiver      map[string]any
		Message       map[string]any
	}
	var all []msg
	for offset := 0; ; offset += 50 {
		r := signedSend(t, s, c, "GET", fmt.Sprintf("%s?offset=%d&limit=50", base, offset), "")
		if r.status == 204 {
			break
		}
		wantStatus(t, r, 200)
		var page struct{ Messages []msg }
		if err := json.Unmarshal(r.body, &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Messages) == 0 || len(page.Messages) > 50 {
			t.Fatalf("page at %d has %d messages", offset, len(page.Messages))
		}
		all = append(all, page.Messages...)
	}
	if len(all) != s.MessageCount(chat) {
		t.Fatalf("paged %d messages, chat has %d", len(all), s.MessageCount(chat))
	}
	seen := map[string]bool{}
	for i, m := range all {
		if i > 0 && m.MsecTimestamp >= all[i-1].MsecTimestamp {
			t.Fatalf("message %d is not older than the one before: newest first expected", i)
		}
		if m.Timestamp != m.MsecTimestamp/1000 {
			t.Errorf("timestamp %d vs msec_timestamp %d", m.Timestamp, m.MsecTimestamp)
		}
		id, _ := m.Message["id"].(string)
		if id == "" || seen[id] || m.Message["type"] == nil || m.Sender["id"] == nil || m.Sender["name"] == nil {
			t.Fatalf("message %d malformed or repeated: %+v", i, m)
		}
		seen[id] = true
		if _, fromClient := m.Sender["client_id"]; fromClient {
			if m.Receiver != nil {
				t.Errorf("client message %d has a receiver", i)
			}
		} else if m.Receiver == nil || m.Receiver["client_id"] == nil {
			t.Errorf("manager message %d lacks a receiver with client_id", i)
		}
	}

	r := signedSend(t, s, c, "GET", base, "")
	if wantStatus(t, r, 200); strings.Count(string(r.body), `"msec_timestamp"`) != 50 {
		t.Error("a request without limit did not return 50 messages")
	}
	for _, q := range []string{"limit=51", "limit=0", "limit=x", "offset=-1"} {
		r := signedSend(t, s, c, "GET", base+"?"+q, "")
		wantStatus(t, r, 400)
		if r.json(t)["error_code"] != 400.0 {
			t.Errorf("%s: %s", q, r.body)
		}
	}
	wantStatus(t, signedSend(t, s, c, "GET", "/v2/origin/custom/"+s.ScopeID()+"/chats/00000000-0000-4000-8000-000000000000/history", ""), 204)
	wantStatus(t, signedSend(t, s, c, "GET", "/v2/origin/custom/other_scope/chats/"+chat+"/history", ""), 404)
	wantStatus(t, signedSend(t, s, c, "GET", "/v2/origin/custom/"+s.ScopeID()+"/chats", ""), 404)
	if got := takeUnknown(s); len(got) != 1 || !strings.HasSuffix(got[0], "/chats") {
		t.Errorf("UnknownRequests = %q, want the one to .../chats", got)
	}

	// A new message shows up first.
	s.AddMessage(chat, "Any news?", true)
	r = signedSend(t, s, c, "GET", base+"?limit=1", "")
	if !strings.Contains(string(r.body), `"text":"Any news?"`) {
		t.Errorf("newest message after AddMessage: %s", r.body)
	}
	if st := s.Stats(); st.HistoryCalls < 9 || st.ChatsRequests != st.HistoryCalls+1 {
		t.Errorf("HistoryCalls %d ChatsRequests %d", st.HistoryCalls, st.ChatsRequests)
	}
}

func TestConnect(t *testing.T) {
	c := newClock()
	s := startTest(t, Options{Leads: 2}, c)
	path := "/v2/origin/custom/" + s.Options().ChannelID + "/connect"
	body := fmt.Sprintf(`{"account_id":%q,"title":"kommo-summarizer","hook_api_version":"v2"}`, s.AmojoAccountID())
	r := signedSend(t, s, c, "POST", path, body)
	wantStatus(t, r, 200)
	if m := r.json(t); m["scope_id"] != s.ScopeID() || m["title"] != "kommo-summarizer" {
		t.Errorf("connect answer %s", r.body)
	}
	wantStatus(t, signedSend(t, s, c, "POST", path, `{"account_id":"someone-else","title":"x"}`), 400)
	wantStatus(t, signedSend(t, s, c, "POST", "/v2/origin/custom/not-our-channel/connect", body), 404)

	// The body changed after signing: Content-MD5 no longer matches.
	date := c.Now().Format(time.RFC1123Z)
	cmd5, sig := sign(s.Options().ChannelSecret, "POST", body, date, path)
	r = send(t, "POST", s.ChatsURL+path, body+" ", "Date", date, "Content-Type", "application/json", "Content-MD5", cmd5, "X-Signature", sig)
	wantStatus(t, r, 403)
}

func TestChatsRateLimitAndFailRate(t *testing.T) {
	c := newClock()
	s := startTest(t, Options{Leads: 2}, c)
	path := "/v2/origin/custom/" + s.ScopeID() + "/chats/00000000-0000-4000-8000-000000000000/history"
	for range 7 {
		wantStatus(t, signedSend(t, s, c, "GET", path, ""), 204)
	}
	r := signedSend(t, s, c, "GET", path, "")
	wantStatus(t, r, 429)
	if r.json(t)["error_code"] != 429.0 {
		t.Errorf("429 body %s", r.body)
	}
	c.Advance(time.Second + time.Millisecond)
	wantStatus(t, signedSend(t, s, c, "GET", path, ""), 204)
	if st := s.Stats(); st.Chats429 != 1 || st.PeakChatsPerSecond != 8 || st.Blocked403 != 0 {
		t.Errorf("stats %+v", st)
	}

	f := startTest(t, Options{Leads: 2, ChatsRateLimit: -1, FailRate: 0.2}, c)
	path = "/v2/origin/custom/" + f.ScopeID() + "/chats/00000000-0000-4000-8000-000000000000/history"
	failed := 0
	for range 250 {
		switch r := signedSend(t, f, c, "GET", path, ""); r.status {
		case 204:
		case 502, 503:
			failed++
		default:
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	}
	if share := float64(failed) / 250; share < 0.12 || share > 0.28 || f.Stats().Injected5xx != failed {
		t.Errorf("%d of 250 failed (Injected5xx %d), want about 20%%", failed, f.Stats().Injected5xx)
	}
}

// HistoryOldestFirst turns the pages around: offset counts from the oldest
// message, and the pages together hold every message once.
func TestHistoryOldestFirst(t *testing.T) {
	c := newClock()
	s := startTest(t, Options{ChatsRateLimit: -1, HistoryOldestFirst: true}, c)
	var chat string
	for _, l := range s.OpenLeadsWithChats() {
		for _, id := range l.ChatIDs {
			if s.MessageCount(id) > 60 && chat == "" {
				chat = id
			}
		}
	}
	if chat == "" {
		t.Fatal("no chat with more than 60 messages")
	}
	base := "/v2/origin/custom/" + s.ScopeID() + "/chats/" + chat + "/history"
	var stamps []int64
	for offset := 0; ; offset += 50 {
		r := signedSend(t, s, c, "GET", fmt.Sprintf("%s?offset=%d&limit=50", base, offset), "")
		if r.status == 204 {
			break
		}
		wantStatus(t, r, 200)
		var page struct {
			Messages []struct {
				MsecTimestamp int64 `json:"msec_timestamp"`
			} `json:"messages"`
		}
		if err := json.Unmarshal(r.body, &page); err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Messages {
			stamps = append(stamps, m.MsecTimestamp)
		}
	}
	if len(stamps) != s.MessageCount(chat) {
		t.Fatalf("%d messages over the pages, want %d", len(stamps), s.MessageCount(chat))
	}
	for i := 1; i < len(stamps); i++ {
		if stamps[i] < stamps[i-1] {
			t.Fatalf("message %d (%d) is older than message %d (%d): not oldest first", i, stamps[i], i-1, stamps[i-1])
		}
	}
	// A new message comes last, on the last page.
	s.AddMessage(chat, "Any news?", true)
	r := signedSend(t, s, c, "GET", fmt.Sprintf("%s?offset=%d&limit=1", base, len(stamps)), "")
	if wantStatus(t, r, 200); !strings.Contains(string(r.body), "Any news?") {
		t.Errorf("the newest message is not at offset %d: %s", len(stamps), r.body)
	}
}
