//go:build unix

package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommotest"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
)

// BenchmarkServeWebhooks posts webhook bodies of 10 messages from 50
// concurrent senders to the real `serve` and reports the acknowledgement
// latency (p50, p99) and the sustained, durable ingest rate.
//
//	make bench BENCH=ServeWebhooks
func BenchmarkServeWebhooks(b *testing.B) {
	for range b.N {
		w := newWorld(b, fastFakes, withServe("2m"))
		w.cfg["serve"]["max_body_bytes"] = 1 << 20
		w.cfg["log"]["level"] = "warn"
		w.login()
		s := w.startServe()
		hook := s.url + "/webhooks/kommo/" + testSecret
		const senders, bodies, perBody = 50, 60, 10 // 30,000 messages
		at := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
		lat := make([][]time.Duration, senders)
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
		var wg sync.WaitGroup
		start := time.Now()
		for i := range senders {
			wg.Go(func() {
				for j := range bodies {
					body := chatBody(int64(1000+i), fmt.Sprintf("bench-%d", i), j*perBody, perBody, at).Encode()
					t0 := time.Now()
					resp, err := client.Post(hook, "application/x-www-form-urlencoded", strings.NewReader(body))
					if err != nil {
						b.Error(err)
						return
					}
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
					lat[i] = append(lat[i], time.Since(t0))
				}
			})
		}
		wg.Wait()
		wall := time.Since(start)
		s.stop(b)
		all := slices.Concat(lat...)
		slices.Sort(all)
		p := func(q float64) time.Duration { return all[int(q*float64(len(all)-1))] }
		msgs := senders * bodies * perBody
		var stored int
		db := w.openStore()
		for i := range senders {
			ms, err := db.LogHistory(context.Background(), int64(1000+i), fmt.Sprintf("bench-%d", i), 0, 0)
			if err != nil {
				b.Fatal(err)
			}
			stored += len(ms)
		}
		if stored != msgs {
			b.Fatalf("%d of %d messages stored", stored, msgs)
		}
		b.ReportMetric(float64(p(0.5).Microseconds())/1000, "p50_ms")
		b.ReportMetric(float64(p(0.99).Microseconds())/1000, "p99_ms")
		b.ReportMetric(float64(msgs)/wall.Seconds(), "msgs/s")
		fmt.Fprintf(os.Stderr, "\nserve webhooks: %d senders, %d bodies of %d messages: ack p50 %.1f ms, p99 %.1f ms, max %.1f ms; %d messages stored in %.1fs = %.0f messages/s\n",
			senders, senders*bodies, perBody, float64(p(0.5).Microseconds())/1000, float64(p(0.99).Microseconds())/1000,
			float64(all[len(all)-1].Microseconds())/1000, stored, wall.Seconds(), float64(msgs)/wall.Seconds())
	}
}

// BenchmarkSweepLog sweeps 1,000 leads whose chats are all in the message
// log, with no Chats API channel, at Kommo's 7 requests/s: the REST calls
// of an unchanged sweep are the listing's pages, and no sweep makes a
// history call.
//
//	make bench BENCH=SweepLog
func BenchmarkSweepLog(b *testing.B) {
	for range b.N {
		const leads = 1000
		w := newWorld(b, kommotest.Options{Seed: 7, Leads: leads, Latency: 20 * time.Millisecond, LLMLatency: 50 * time.Millisecond},
			func(c map[string]map[string]any) {
				delete(c, "chats")
				c["log"]["level"] = "warn"
			})
		w.login()
		db := w.openStore()
		at := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
		var ds []store.Delivery
		for _, l := range w.srv.Leads() {
			var d store.Delivery
			for k := range 12 {
				dir := store.DirectionIn
				if k%3 == 2 {
					dir = store.DirectionOut
				}
				d.Messages = append(d.Messages, store.LogMessage{
					ID: fmt.Sprintf("log-%d-%d", l.ID, k), ChatID: fmt.Sprintf("wa-%d", l.ID), LeadID: l.ID, Direction: dir,
					AuthorName: "Oleg", Type: "text", Text: fmt.Sprintf("message %d about the budget", k), CreatedAt: at.Add(time.Duration(k) * time.Minute), Origin: "waba",
				})
			}
			ds = append(ds, d)
		}
		if _, err := db.Ingest(context.Background(), ds, store.IngestOptions{}); err != nil {
			b.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond)
		for _, pass := range []string{"changed", "unchanged"} {
			w.srv.ResetStats()
			m := measure(b, w)
			st := w.srv.Stats()
			b.ReportMetric(float64(st.RESTRequests), pass+"_rest")
			b.ReportMetric(float64(st.HistoryCalls+st.ContactChatsCalls), pass+"_chat_calls")
			b.ReportMetric(m.wall.Seconds(), pass+"_wall_s")
			fmt.Fprintf(os.Stderr, "\n%s sweep of %d leads from the message log: %d REST requests (%d listing pages, %d note posts, %d lead patches), %d history and %d contacts/chats calls, %d summarized, wall %.1fs, peak %.1f MiB\n",
				pass, leads, st.RESTRequests, st.LeadListCalls, st.NotesPosts, st.LeadPatches, st.HistoryCalls, st.ContactChatsCalls, m.rep.Summarized, m.wall.Seconds(), m.rssMiB)
		}
	}
}
