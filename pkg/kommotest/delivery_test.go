package kommotest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommohook"
)

// receiver is a webhook destination on 127.0.0.1 that records what it gets.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []*http.Request
	bodies []url.Values
	answer func(n int) (status int, delay time.Duration) // n counts requests from 1
}

func newReceiver(t *testing.T, answer func(n int) (int, time.Duration)) *receiver {
	t.Helper()
	rc := &receiver{answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		form, err := url.ParseQuery(string(data))
		if err != nil {
			t.Errorf("body is not a form: %v", err)
		}
		rc.mu.Lock()
		rc.got = append(rc.got, r)
		rc.bodies = append(rc.bodies, form)
		n := len(rc.got)
		rc.mu.Unlock()
		status, delay := http.StatusOK, time.Duration(0)
		if rc.answer != nil {
			status, delay = rc.answer(n)
		}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) url() string { return rc.srv.URL + "/webhooks/kommo/s3cret/" }

func (rc *receiver) deliveries(t *testing.T) []*kommohook.Delivery {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []*kommohook.Delivery
	for _, b := range rc.bodies {
		d, err := kommohook.Parse(b)
		if err != nil {
			t.Fatalf("the fake sent a body kommohook cannot parse: %v", err)
		}
		out = append(out, d)
	}
	return out
}

func register(t *testing.T, s *Server, dest string, settings ...string) {
	t.Helper()
	if err := s.RegisterWebhook(dest, settings...); err != nil {
		t.Fatal(err)
	}
}

func waitHooks(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
}

var allChatEvents = []string{"add_message", "add_outgoing_message", "add_talk", "update_talk"}

func TestNativeChatsAreHiddenFromTheChatsAPI(t *testing.T) {
	c := newClock()
	plain := startTest(t, Options{RESTRateLimit: -1, ChatsRateLimit: -1}, c)
	s := startTest(t, Options{RESTRateLimit: -1, ChatsRateLimit: -1, NativeLeads: 5}, c)
	native := s.NativeLeads()
	if len(native) != 5 || len(plain.NativeLeads()) != 0 {
		t.Fatalf("%d native leads, want 5 (and 0 by default)", len(native))
	}
	if !reflect.DeepEqual(s.Leads(), plain.Leads()) {
		t.Error("NativeLeads changed the generated account")
	}
	if got, want := len(s.OpenLeadsWithChats()), len(plain.OpenLeadsWithChats())-5; got != want {
		t.Errorf("OpenLeadsWithChats: %d leads, want %d (native ones left out)", got, want)
	}
	origins := map[string]bool{}
	h := bearer(s.LongLivedToken())
	for _, l := range native {
		if len(l.ChatIDs) == 0 {
			t.Fatalf("native lead %d has no chat ids", l.ID)
		}
		for _, cid := range l.ContactIDs {
			wantStatus(t, send(t, "GET", fmt.Sprintf("%s/api/v4/contacts/chats?contact_id=%d", s.KommoURL, cid), nil, h...), 204)
		}
		for _, ch := range l.ChatIDs {
			origins[s.ChatOrigin(ch)] = true
			wantStatus(t, send(t, "GET", s.KommoURL+"/api/v4/contacts/chats?chat_id="+ch, nil, h...), 204)
			r := signedSend(t, s, c, "GET", "/v2/origin/custom/"+s.ScopeID()+"/chats/"+ch+"/history", "")
			wantStatus(t, r, 204)
			if s.MessageCount(ch) == 0 {
				t.Errorf("native chat %s has no messages to replay", ch)
			}
		}
	}
	if len(origins) < 4 || origins[""] {
		t.Errorf("origins %v, want the native channels in turn", origins)
	}
}

func TestDeliveryOfMessagesAndTalks(t *testing.T) {
	s := startTest(t, Options{RESTRateLimit: -1, NativeLeads: 2, Seed: 3}, nil)
	rc := newReceiver(t, nil)
	wantStatus(t, send(t, "POST", s.KommoURL+"/api/v4/webhooks", map[string]any{"destination": rc.url(), "settings": allChatEvents},
		withJSON(bearer(s.LongLivedToken()))...), 201)
	lead := s.NativeLeads()[0]
	chat := lead.ChatIDs[0]

	firstID := s.AddNativeMessage(chat, "Hola, ¿precio?", true)
	waitHooks(t, s)
	s.AddNativeMessage(chat, "120 USD", false)
	waitHooks(t, s)
	s.CloseTalk(chat)
	waitHooks(t, s)
	s.AddNativeMessage(chat, "¿Y el envío?", true)
	waitHooks(t, s)

	type ev struct {
		kind string
		talk int64
	}
	var got []ev
	var talkIDs []int64
	for _, d := range rc.deliveries(t) {
		if d.AccountID != accountID || d.Subdomain == "" || d.AccountLink == "" {
			t.Errorf("account block: %+v", d)
		}
		// One body may carry a talk[add], its first message and a
		// talk[update]: read them in that order.
		for _, tk := range d.Talks {
			if tk.Action == "add" {
				got = append(got, ev{"add", tk.TalkID})
				talkIDs = append(talkIDs, tk.TalkID)
			}
		}
		for _, m := range d.Messages {
			if m.ChatID != chat || m.ContactID != lead.ContactIDs[0] || m.Origin != s.ChatOrigin(chat) {
				t.Errorf("message %+v is not of chat %s", m, chat)
			}
			k := "in:" + m.Text
			if m.Outgoing {
				k = "out:" + m.Text
			} else if m.LeadID != lead.ID || m.AuthorType != "external" {
				t.Errorf("incoming message %+v, want lead %d from the client", m, lead.ID)
			}
			got = append(got, ev{k, m.TalkID})
		}
		for _, tk := range d.Talks {
			if tk.LeadID != lead.ID || tk.ChatID != chat {
				t.Errorf("talk %+v, want lead %d chat %s", tk, lead.ID, chat)
			}
			switch {
			case tk.Action == "add":
			case tk.InWork:
				got = append(got, ev{"update", tk.TalkID})
			default:
				got = append(got, ev{"close", tk.TalkID})
			}
		}
	}
	if d := rc.deliveries(t); len(d[0].Messages) == 0 || d[0].Messages[0].ID != firstID {
		t.Errorf("first body %+v, want the message %s", d[0], firstID)
	}
	if len(talkIDs) != 2 || talkIDs[0] == talkIDs[1] {
		t.Fatalf("talk[add] ids %v, want two different talks", talkIDs)
	}
	t1, t2 := talkIDs[0], talkIDs[1]
	want := []ev{{"add", t1}, {"in:Hola, ¿precio?", t1}, {"out:120 USD", t1}, {"update", t1}, {"close", t1},
		{"add", t2}, {"in:¿Y el envío?", t2}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events\ngot  %v\nwant %v", got, want)
	}

	rc.mu.Lock()
	for _, r := range rc.got {
		if r.Method != "POST" || r.Header.Get("User-Agent") != "amoCRM-Webhooks/3.0" ||
			r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" ||
			len(r.Header.Get("X-Amocrm-Requestid")) != 36 || r.Header.Get("X-Signature") != "" ||
			r.URL.Path != "/webhooks/kommo/s3cret/" {
			t.Errorf("request %s %s headers %v", r.Method, r.URL, r.Header)
		}
	}
	rc.mu.Unlock()
	if st := s.Stats(); st.WebhookAttempts != len(rc.got) || st.WebhookDeliveries != len(rc.got) || st.WebhookFailures != 0 {
		t.Errorf("stats %+v for %d bodies", st, len(rc.got))
	}
}

func TestDeliveryHonoursSubscriptions(t *testing.T) {
	s := startTest(t, Options{RESTRateLimit: -1, NativeLeads: 1}, nil)
	in := newReceiver(t, nil)
	out := newReceiver(t, nil)
	register(t, s, in.url(), "add_message", "update_lead")
	register(t, s, out.url(), "add_outgoing_message")
	chat := s.NativeLeads()[0].ChatIDs[0]
	s.AddNativeMessage(chat, "a", true)
	s.AddNativeMessage(chat, "b", false)
	s.CloseTalk(chat)
	waitHooks(t, s)
	for _, d := range in.deliveries(t) {
		if len(d.Talks) > 0 || len(d.Messages) != 1 || d.Messages[0].Outgoing {
			t.Errorf("add_message hook got %+v", d)
		}
	}
	for _, d := range out.deliveries(t) {
		if len(d.Talks) > 0 || len(d.Messages) != 1 || !d.Messages[0].Outgoing {
			t.Errorf("add_outgoing_message hook got %+v", d)
		}
	}
	if len(in.bodies) != 1 || len(out.bodies) != 1 {
		t.Errorf("bodies: %d incoming, %d outgoing; want 1 and 1", len(in.bodies), len(out.bodies))
	}
}

func TestReplayBatchesAndDuplicates(t *testing.T) {
	s := startTest(t, Options{RESTRateLimit: -1, NativeLeads: 3, WebhookRetryUnit: time.Millisecond,
		WebhookDuplicateRate: 1}, nil)
	rc := newReceiver(t, nil)
	register(t, s, rc.url(), "add_message", "add_outgoing_message")
	lead := s.NativeLeads()[1]
	s.ReplayNative(lead.ID)
	waitHooks(t, s)

	seen := map[string]int{}
	withoutLead := 0
	outgoing := 0
	for _, d := range rc.deliveries(t) {
		if n := len(d.Messages); n == 0 || n > 10 {
			t.Errorf("a body with %d messages", n)
		}
		for _, m := range d.Messages {
			seen[m.ID]++
			if m.Outgoing {
				outgoing++
				if m.LeadID == 0 {
					withoutLead++
				}
			}
		}
	}
	total := 0
	for _, ch := range lead.ChatIDs {
		total += s.MessageCount(ch)
	}
	if len(seen) != total {
		t.Errorf("%d distinct messages delivered, want %d", len(seen), total)
	}
	for id, n := range seen {
		if n != 2 {
			t.Errorf("message %s delivered %d times, want 2 (duplicate rate 1)", id, n)
		}
	}
	if outgoing > 8 && (withoutLead == 0 || withoutLead == outgoing) {
		t.Errorf("%d of %d outgoing messages without element_id, want about 1 in 4", withoutLead, outgoing)
	}
	st := s.Stats()
	if st.WebhookDuplicates == 0 || st.WebhookDeliveries != 2*st.WebhookDuplicates || st.WebhookRetries != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestDeliveryRetrySchedule(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		delay    time.Duration
		attempts int
	}{
		{"5xx gets five attempts", 500, 0, 5},
		{"499 gets five attempts", 499, 0, 5},
		{"404 gets three", 404, 0, 3},
		{"a redirect is not a delivery", 302, 0, 3},
		{"a slow answer is a timeout: three", 200, 400 * time.Millisecond, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := 5 * time.Second // a loaded machine must not turn a 500 into a timeout
			if tt.delay > 0 {
				timeout = 100 * time.Millisecond
			}
			s := startTest(t, Options{RESTRateLimit: -1, NativeLeads: 1, WebhookRetryUnit: time.Millisecond,
				WebhookTimeout: timeout}, nil)
			rc := newReceiver(t, func(int) (int, time.Duration) { return tt.status, tt.delay })
			register(t, s, rc.url(), "add_message")
			start := time.Now()
			s.AddNativeMessage(s.NativeLeads()[0].ChatIDs[0], "hola", true)
			waitHooks(t, s)
			atts := s.WebhookAttempts()
			if len(atts) != tt.attempts {
				t.Fatalf("%d attempts, want %d: %+v", len(atts), tt.attempts, atts)
			}
			for i, a := range atts {
				if a.Attempt != i+1 || !reflect.DeepEqual(a.Form, atts[0].Form) || (i > 0 && a.RequestID == atts[0].RequestID) {
					t.Errorf("attempt %d: %+v", i+1, a)
				}
			}
			// 5+15 units, plus 15+60 when five attempts are made.
			minWait := 20 * time.Millisecond
			if tt.attempts == 5 {
				minWait = 95 * time.Millisecond
			}
			if el := time.Since(start); el < minWait {
				t.Errorf("all attempts within %v, want at least %v of retry delays", el, minWait)
			}
			st := s.Stats()
			if st.WebhookFailures != tt.attempts || st.WebhookRetries != tt.attempts-1 || st.WebhookDropped != 1 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestDeliveryRecoversOnRetry(t *testing.T) {
	s := startTest(t, Options{RESTRateLimit: -1, NativeLeads: 1, WebhookRetryUnit: time.Millisecond}, nil)
	rc := newReceiver(t, func(n int) (int, time.Duration) {
		if n == 1 {
			return 503, 0
		}
		return 200, 0
	})
	register(t, s, rc.url(), "add_message")
	s.AddNativeMessage(s.NativeLeads()[0].ChatIDs[0], "hola", true)
	waitHooks(t, s)
	if st := s.Stats(); st.WebhookAttempts != 2 || st.WebhookDeliveries != 1 || st.WebhookRetries != 1 || st.WebhookDropped != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestDeliveryDisablesAFailingHook(t *testing.T) {
	s := startTest(t, Options{RESTRateLimit: -1, NativeLeads: 1, WebhookRetryUnit: time.Millisecond,
		WebhookDisableAfter: 6}, nil)
	rc := newReceiver(t, func(int) (int, time.Duration) { return 500, 0 })
	register(t, s, rc.url(), "add_message")
	chat := s.NativeLeads()[0].ChatIDs[0]
	for i := range 3 {
		s.AddNativeMessage(chat, fmt.Sprint("m", i), true)
		waitHooks(t, s)
	}
	hooks := s.Webhooks()
	if len(hooks) != 1 || !hooks[0].Disabled {
		t.Fatalf("hooks %+v, want the one disabled", hooks)
	}
	st := s.Stats()
	if st.WebhooksDisabled != 1 || st.WebhookFailures != 7 {
		t.Errorf("stats %+v, want disabled at the 7th invalid answer", st)
	}
	r := send(t, "GET", s.KommoURL+"/api/v4/webhooks", nil, bearer(s.LongLivedToken())...)
	if dig(r.json(t), "_embedded", "webhooks", 0, "disabled") != true {
		t.Errorf("GET after disabling: %s", r.body)
	}
	// Disabled: nothing more is sent. Re-saving enables it again.
	s.AddNativeMessage(chat, "lost", true)
	waitHooks(t, s)
	if n := s.Stats().WebhookAttempts; n != 7 {
		t.Errorf("%d attempts after disabling, want 7", n)
	}
	register(t, s, rc.url(), "add_message")
	rc.answer = nil
	s.AddNativeMessage(chat, "back", true)
	waitHooks(t, s)
	if st := s.Stats(); st.WebhookDeliveries != 1 {
		t.Errorf("after re-enabling: %+v", st)
	}
}

func TestRegisterWebhookChecks(t *testing.T) {
	s := startTest(t, Options{}, nil)
	for _, tc := range []struct {
		dest   string
		events []string
	}{
		{"ftp://127.0.0.1:1/hook/", []string{"add_message"}},
		{"http://127.0.0.1:1/hook/", []string{"add_mesage"}},
		{"http://127.0.0.1:1/hook/", nil},
	} {
		if err := s.RegisterWebhook(tc.dest, tc.events...); err == nil {
			t.Errorf("RegisterWebhook(%q, %v) accepted", tc.dest, tc.events)
		}
	}
	if err := s.RegisterWebhook("http://127.0.0.1:1/hook/", "add_message", "add_message"); err != nil {
		t.Fatal(err)
	}
	if h := s.Webhooks(); len(h) != 1 || !reflect.DeepEqual(h[0].Settings, []string{"add_message"}) {
		t.Errorf("Webhooks() = %+v", h)
	}
}

func TestDeliveryOnlyToLoopback(t *testing.T) {
	s := startTest(t, Options{RESTRateLimit: -1, NativeLeads: 1}, nil)
	register(t, s, "https://bot.example.com/webhooks/kommo/x/", "add_message")
	register(t, s, "http://localhost.example.com:1/x/", "add_message")
	s.AddNativeMessage(s.NativeLeads()[0].ChatIDs[0], "hola", true)
	waitHooks(t, s)
	st := s.Stats()
	if st.WebhookRefused != 2 || st.WebhookFailures != 2 || st.WebhookDeliveries != 0 || st.WebhookRetries != 0 {
		t.Errorf("stats %+v, want both sends refused", st)
	}
	for _, a := range s.WebhookAttempts() {
		if a.Status != 0 || a.Err == "" {
			t.Errorf("attempt %+v", a)
		}
	}
	if !isLoopbackHost("127.0.0.1") || !isLoopbackHost("::1") || isLoopbackHost("10.0.0.1") || isLoopbackHost("example.com") {
		t.Error("isLoopbackHost")
	}
}

func TestCloseStopsDeliveries(t *testing.T) {
	s := startTest(t, Options{RESTRateLimit: -1, NativeLeads: 1, WebhookTimeout: time.Minute}, nil)
	rc := newReceiver(t, func(int) (int, time.Duration) { return 200, time.Minute })
	register(t, s, rc.url(), "add_message")
	s.AddNativeMessage(s.NativeLeads()[0].ChatIDs[0], "hola", true)
	for s.Stats().WebhookAttempts == 0 {
		time.Sleep(time.Millisecond)
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not stop a delivery in flight")
	}
	if err := s.WaitWebhooks(context.Background()); err != nil {
		t.Errorf("WaitWebhooks after Close: %v, want nil: nothing is left in flight", err)
	}
}
