//go:build unix

package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommohook"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
)

const testSecret = "0123456789abcdef0123"

// fakeAccountID is the id the fake Kommo answers for GET /api/v4/account.
const fakeAccountID = 31000001

// serving is a `serve` process of the real binary.
type serving struct {
	cmd    *exec.Cmd
	url    string
	stderr *bytes.Buffer
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// withServe adds a serve section listening on a free loopback port.
func withServe(debounce string) func(cfg map[string]map[string]any) {
	return func(cfg map[string]map[string]any) {
		fast(cfg)
		cfg["serve"] = map[string]any{"listen": "", "webhook_secret": testSecret, "close_debounce": debounce, "max_body_bytes": 16384}
	}
}

// startServe starts `serve` and waits for /healthz.
func (w *world) startServe() *serving {
	w.t.Helper()
	addr := freeAddr(w.t)
	w.cfg["serve"]["listen"] = addr
	w.writeConfig()
	cmd := w.command("serve")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	s := &serving{cmd: cmd, url: "http://" + addr, stderr: &errb}
	w.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitFor(w.t, "serve's /healthz", 20*time.Second, func() bool {
		resp, err := http.Get(s.url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return s
}

func (s *serving) post(t testing.TB, path string, form url.Values) int {
	t.Helper()
	resp, err := http.Post(s.url+path, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (s *serving) stop(t testing.TB) {
	t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	if err := s.cmd.Wait(); err != nil {
		t.Fatalf("serve after SIGTERM: %v\n%s", err, tail(s.stderr.String()))
	}
}

// chatBody is a webhook body with n messages of one WhatsApp chat of the
// lead, alternating client and manager; outgoing ones carry no lead id.
func chatBody(lead int64, chat string, first, n int, at time.Time) url.Values {
	d := &kommohook.Delivery{AccountID: fakeAccountID, Subdomain: "kommotest"}
	for i := first; i < first+n; i++ {
		m := kommohook.Message{
			ID: fmt.Sprintf("%s-m%03d", chat, i), ChatID: chat, TalkID: 7, ContactID: 5, Type: "text",
			CreatedAt: at.Add(time.Duration(i) * time.Minute), Origin: "waba",
		}
		if i%2 == 0 {
			m.LeadID, m.AuthorType, m.AuthorName = lead, "external", "Oleg"
			m.Text = fmt.Sprintf("client message %d about the budget", i)
		} else {
			m.Outgoing, m.AuthorType, m.AuthorName = true, "internal", "Ventas Tuco&Tico"
			m.Text = fmt.Sprintf("manager answer %d", i)
		}
		d.Messages = append(d.Messages, m)
	}
	return kommohook.Encode(d)
}

// A lead whose WhatsApp chat exists only in the message log gets a summary
// from `sweep` that covers its logged messages, incoming and outgoing, in
// time order; bad bodies are refused with nothing stored; a redelivery is
// stored once; SIGTERM exits 0.
func TestServeLogsWebhooksAndSweepSummarisesThem(t *testing.T) {
	w := newWorld(t, fastFakes, withServe("2m"))
	w.login()
	s := w.startServe()
	hook := "/webhooks/kommo/" + testSecret
	lead := w.srv.OpenLeadsWithChats()[0].ID
	at := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)

	// Outgoing first, without a lead id: kept, attached when the lead is known.
	d := &kommohook.Delivery{AccountID: fakeAccountID, Messages: []kommohook.Message{{
		ID: "wa-early", ChatID: "wa-chat", TalkID: 7, ContactID: 5, Outgoing: true, Type: "text",
		Text: "manager hello before the client wrote", AuthorType: "internal", AuthorName: "Ventas", CreatedAt: at, Origin: "waba",
	}}}
	if code := s.post(t, hook, kommohook.Encode(d)); code != 200 {
		t.Fatalf("an outgoing message without a lead: %d, want 200", code)
	}

	// Bad input: each answers its status, nothing stored.
	other := chatBody(lead, "evil-chat", 0, 2, at)
	other.Set("account[id]", "999")
	bad := []struct {
		name, path string
		form       url.Values
		want       int
	}{
		{"wrong secret", "/webhooks/kommo/wrong-secret-0000000000", chatBody(lead, "evil-chat", 0, 2, at), 404},
		{"other account", hook, other, 403},
		{"body over the limit", hook, chatBody(lead, "evil-chat", 0, 200, at), 413},
		{"broken bracket key", hook, url.Values{"account[id]": {itoa(fakeAccountID)}, "message[add][x][id]": {"1"}}, 400},
		{"no account", hook, url.Values{"message[add][0][id]": {"1"}}, 400},
	}
	// The bad bodies arrive while good ones do: each bad one gets its
	// status, and every good one is kept, once, though each comes twice
	// (Kommo retries).
	var wg sync.WaitGroup
	for _, b := range bad {
		wg.Go(func() {
			if code := s.post(t, b.path, b.form); code != b.want {
				t.Errorf("%s: %d, want %d", b.name, code, b.want)
			}
		})
	}
	for i := range 10 {
		wg.Go(func() {
			body := chatBody(lead, "wa-chat", 1+i*3, 3, at)
			for range 2 {
				if code := s.post(t, hook+"/", body); code != 200 {
					t.Errorf("body %d: %d, want 200", i, code)
				}
			}
		})
	}
	wg.Wait()
	s.stop(t)

	rep, res := w.sweep("--lead-ids", itoa(lead))
	if res.code != 0 || rep.Summarized != 1 {
		t.Fatalf("sweep: exit %d, summarized %d\n%s", res.code, rep.Summarized, tail(res.stderr))
	}
	notes := w.srv.Notes(lead)
	if len(notes) != 1 {
		t.Fatalf("lead %d has %d notes, want 1", lead, len(notes))
	}
	n := notes[0].Text
	// Both directions (the author's name unescaped), the newest client
	// message last, and where the log's record starts.
	for _, want := range []string{"Oleg", "Ventas Tuco&Tico", `"client message 30 about the budget"`, "covered from 20.11.2026 09:00"} {
		if !strings.Contains(n, want) {
			t.Errorf("the note lacks %q:\n%s", want, n)
		}
	}
	if strings.Contains(n, "evil") {
		t.Errorf("a refused body reached the summary:\n%s", n)
	}
}

// A chat close leads to one note after the debounce; a close with nothing
// new leads to none.
func TestChatCloseSummarisesOnce(t *testing.T) {
	w := newWorld(t, fastFakes, withServe("1s"))
	w.login()
	s := w.startServe()
	hook := "/webhooks/kommo/" + testSecret
	lead := w.srv.OpenLeadsWithChats()[1].ID
	at := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	closeBody := func() url.Values {
		return kommohook.Encode(&kommohook.Delivery{AccountID: fakeAccountID, Talks: []kommohook.Talk{{
			Action: "update", TalkID: 7, ChatID: "wa-close", ContactID: 5, LeadID: lead, InWork: false, Origin: "waba", CreatedAt: at,
		}}})
	}
	if code := s.post(t, hook, chatBody(lead, "wa-close", 0, 6, at)); code != 200 {
		t.Fatalf("messages: %d", code)
	}
	if code := s.post(t, hook, closeBody()); code != 200 {
		t.Fatalf("close: %d", code)
	}
	waitFor(t, "the close summary", 30*time.Second, func() bool { return len(w.srv.Notes(lead)) > 0 })
	time.Sleep(300 * time.Millisecond)
	if got := len(w.srv.Notes(lead)); got != 1 {
		t.Fatalf("after the close: %d notes, want 1", got)
	}
	// A second close with nothing new: no note.
	if code := s.post(t, hook, closeBody()); code != 200 {
		t.Fatalf("close: %d", code)
	}
	time.Sleep(2500 * time.Millisecond)
	if got := len(w.srv.Notes(lead)); got != 1 {
		t.Fatalf("a close with nothing new wrote a note: %d notes", got)
	}
	s.stop(t)
}

// kill -9 of serve while senders post: every message it answered 200 for
// is in the store after the kill; redelivered messages are stored once.
func TestServeKill9KeepsWhatItAcknowledged(t *testing.T) {
	w := newWorld(t, fastFakes, withServe("2m"))
	w.login()
	s := w.startServe()
	hook := "/webhooks/kommo/" + testSecret
	at := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)

	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for sender := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				chat := fmt.Sprintf("k9-%d", sender)
				body := chatBody(int64(100+sender), chat, i*2, 2, at)
				resp, err := http.Post(s.url+hook, "application/x-www-form-urlencoded", strings.NewReader(body.Encode()))
				if err != nil {
					return // the server is gone
				}
				resp.Body.Close()
				if resp.StatusCode == 200 {
					mu.Lock()
					acked[fmt.Sprintf("%s-m%03d", chat, i*2)] = true
					acked[fmt.Sprintf("%s-m%03d", chat, i*2+1)] = true
					mu.Unlock()
				}
			}
		})
	}
	waitFor(t, "some acknowledged bodies", 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) > 200 })
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	close(stop)
	wg.Wait()

	db := w.openStore()
	missing := 0
	for sender := range 8 {
		msgs, err := db.LogHistory(t.Context(), int64(100+sender), fmt.Sprintf("k9-%d", sender), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]int{}
		for _, m := range msgs {
			have[m.ID]++
		}
		for id := range acked {
			if strings.HasPrefix(id, fmt.Sprintf("k9-%d-", sender)) && have[id] != 1 {
				missing++
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged messages are not in the store once after kill -9", missing, len(acked))
	}

	// Restarted, a redelivery of what was acknowledged is stored once.
	s = w.startServe()
	if code := s.post(t, hook, chatBody(100, "k9-0", 0, 2, at)); code != 200 {
		t.Fatalf("redelivery: %d", code)
	}
	s.stop(t)
	msgs, err := db.LogHistory(t.Context(), 100, "k9-0", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		if seen[m.ID] {
			t.Fatalf("message %s stored twice", m.ID)
		}
		seen[m.ID] = true
	}
}

// openStore opens the world's store as another process would.
func (w *world) openStore() *store.DB {
	w.t.Helper()
	db, err := store.Open(context.Background(), fmt.Sprint(w.cfg["store"]["path"]))
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { db.Close() })
	return db
}

// serve (summarising closed chats) and a cron sweep at the same time leave
// exactly one note per change.
func TestServeAndSweepTogetherWriteOneNotePerChange(t *testing.T) {
	opts := fastFakes
	opts.LLMLatency = 600 * time.Millisecond
	w := newWorld(t, opts, withServe("1s"))
	w.login()
	s := w.startServe()
	hook := "/webhooks/kommo/" + testSecret
	at := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	leads := w.srv.OpenLeadsWithChats()
	for i, l := range leads {
		chat := fmt.Sprintf("both-%d", i)
		body := chatBody(l.ID, chat, 0, 4, at)
		close := kommohook.Encode(&kommohook.Delivery{AccountID: fakeAccountID, Talks: []kommohook.Talk{{
			Action: "update", TalkID: 7, ChatID: chat, LeadID: l.ID, Origin: "waba", CreatedAt: at,
		}}})
		for k, v := range close {
			body[k] = v
		}
		if code := s.post(t, hook, body); code != 200 {
			t.Fatalf("lead %d: %d", l.ID, code)
		}
	}
	// The sweep starts while serve summarises the closed chats.
	waitFor(t, "serve's first close summaries", 10*time.Second, func() bool { return w.srv.Stats().LLMCalls > 0 })
	rep, res := w.sweep()
	if res.code != 0 {
		t.Fatalf("sweep: exit %d\n%s", res.code, tail(res.stderr))
	}
	t.Logf("sweep: summarized %d, busy %d, unchanged %d", rep.Summarized, rep.SkippedBusy, rep.SkippedUnchanged)
	db := w.openStore()
	waitFor(t, "the close queue to empty", 30*time.Second, func() bool {
		due, err := db.NextCloseDue(t.Context())
		return err == nil && due.IsZero()
	})
	s.stop(t)
	for _, l := range strings.Split(s.stderr.String(), "\n") {
		if strings.Contains(l, "closed chats") {
			t.Log(l)
		}
	}
	assertNotes(t, w.srv, 1)
}

// The native-channels path end to end: a sweep says which leads it cannot
// read and points to the webhooks; `webhooks install` registers serve; the
// fake Kommo delivers the WhatsApp and Telegram messages as Kommo does
// (batches, outgoing without a lead id, talk events, duplicates); the next
// sweep summarises those leads from the log with no history call, while the
// Chats API leads stay unchanged; a chat close summarises its lead once.
func TestNativeChatsThroughWebhooks(t *testing.T) {
	opts := fastFakes
	opts.NativeLeads = 3
	opts.WebhookDuplicateRate = 0.3
	opts.WebhookRetryUnit = time.Millisecond
	w := newWorld(t, opts, withServe("1s"))
	w.login()
	native := w.srv.NativeLeads()

	rep, res := w.sweep()
	// Leads whose contacts have no chat at all count too.
	if res.code != 0 || rep.Unreadable < len(native) || !strings.Contains(res.stderr, "webhooks install") {
		t.Fatalf("first sweep: exit %d, %d unreadable leads (want at least %d) and a warning naming `webhooks install`\n%s",
			res.code, rep.Unreadable, len(native), tail(res.stderr))
	}
	chatless := rep.Unreadable - len(native)

	s := w.startServe()
	if res := w.run("webhooks", "install", "--url", s.url); res.code != 0 {
		t.Fatalf("webhooks install: exit %d\n%s\n%s", res.code, res.stdout, tail(res.stderr))
	}
	for _, l := range native {
		w.srv.ReplayNative(l.ID)
	}
	if err := w.srv.WaitWebhooks(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := w.srv.Stats(); st.WebhookDeliveries == 0 || st.WebhookFailures != 0 {
		t.Fatalf("webhooks: %d delivered, %d failed", st.WebhookDeliveries, st.WebhookFailures)
	}

	// The change feed names the leads whose log got messages (the events
	// showed these long ago): only they are read, from the log.
	w.srv.ResetStats()
	rep, res = w.sweep()
	if res.code != 0 || rep.Mode != "changes" || rep.Summarized != len(native) {
		t.Fatalf("sweep after the webhooks: exit %d, mode %q, summarized %d (want changes and %d)\n%s",
			res.code, rep.Mode, rep.Summarized, len(native), tail(res.stderr))
	}
	if st := w.srv.Stats(); st.HistoryCalls != 0 {
		t.Errorf("%d history calls, want none: only the logged leads changed", st.HistoryCalls)
	}
	for _, l := range native {
		notes := w.srv.Notes(l.ID)
		if len(notes) != 1 || !strings.Contains(notes[0].Text, "is covered from") {
			t.Fatalf("native lead %d: notes %+v, want one summary from the log", l.ID, notes)
		}
	}

	// A full pass reads every chat again and finds nothing new.
	w.srv.ResetStats()
	rep, res = w.sweep("--full")
	if res.code != 0 || rep.Summarized != 0 || rep.Unreadable != chatless {
		t.Fatalf("full pass after the webhooks: exit %d, summarized %d (want 0), unreadable %d (want %d)\n%s",
			res.code, rep.Summarized, rep.Unreadable, chatless, tail(res.stderr))
	}
	st := w.srv.Stats()
	if want := len(w.srv.OpenLeadsWithChats()) + len(native); rep.SkippedUnchanged != want {
		t.Errorf("%d leads unchanged, want %d", rep.SkippedUnchanged, want)
	}
	nativeChats := 0
	for _, l := range native {
		nativeChats += len(l.ChatIDs)
	}
	chats := 0
	for _, l := range w.srv.OpenLeadsWithChats() {
		chats += len(l.ChatIDs)
	}
	if st.HistoryCalls != chats {
		t.Errorf("%d history calls, want %d (one per Chats API chat, none for the %d logged chats)", st.HistoryCalls, chats, nativeChats)
	}

	// A new message, then the chat closes: one more note after the debounce.
	lead := native[0]
	w.srv.AddNativeMessage(lead.ChatIDs[0], "Please send the invoice, we are ready to pay", true)
	w.srv.CloseTalk(lead.ChatIDs[0])
	closedAt := time.Now()
	if err := w.srv.WaitWebhooks(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the close summary", 30*time.Second, func() bool {
		if time.Since(closedAt) > 25*time.Second {
			t.Log(tail(s.stderr.String()))
		}
		return len(w.srv.Notes(lead.ID)) == 2
	})
	if n := w.srv.Notes(lead.ID)[1].Text; !strings.Contains(n, "ready to pay") {
		t.Errorf("the close summary does not know the new message:\n%s", n)
	}
	s.stop(t)
}
