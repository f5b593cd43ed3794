//go:build unix

package main

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommotest"
)

// BenchmarkSweepChanges measures the change feed at 1,000 and 10,000 leads.
// The account is set up by a first sweep (a full pass) against fakes
// without limits; then, with Kommo's 7 requests/s enforced by the fakes
// and the client paced at 7/s, 20 ms a request and 300 ms an LLM call, it
// measures an unchanged sweep and a sweep after 1% of the leads got a
// message: requests, wall time, the wall time against the rate-limit floor
// (the busier API's requests / 7), and peak memory.
//
//	make bench BENCH=SweepChanges       (both sizes; the 10,000-lead set-up takes a few minutes)
//	make bench BENCH=SweepChanges/1000
func BenchmarkSweepChanges(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			for range b.N {
				benchChanges(b, n)
			}
		})
	}
}

func benchChanges(b *testing.B, leads int) {
	w := newWorld(b, kommotest.Options{Seed: 7, Leads: leads, RESTRateLimit: -1, ChatsRateLimit: -1}, func(c map[string]map[string]any) {
		c["kommo"]["requests_per_second"] = 50
		c["chats"]["requests_per_second"] = 50
		c["log"]["level"] = "warn"
	})
	w.login()
	full := measure(b, w)
	fmt.Fprintf(os.Stderr, "\nset-up, %d leads: a full pass (no rate limit) in %.1fs, %d summarized, peak RSS %.1f MiB\n",
		leads, full.wall.Seconds(), full.rep.Summarized, full.rssMiB)

	const limit = 7.0
	w.srv.SetRateLimits(limit, limit)
	w.srv.SetLatency(20*time.Millisecond, 300*time.Millisecond)
	w.cfg["kommo"]["requests_per_second"] = limit
	w.cfg["chats"]["requests_per_second"] = limit
	w.writeConfig()
	// Kommo counts requests in a one-second window: start each sweep with
	// an empty one.
	time.Sleep(1100 * time.Millisecond)

	w.srv.ResetStats()
	same := measure(b, w)
	st := w.srv.Stats()
	sameReq := st.RESTRequests + st.OAuthRequests + st.ChatsRequests
	fmt.Fprintf(os.Stderr, "unchanged sweep, %d leads: %d requests (%d REST, %d events, %d Chats), wall %.2fs, mode %s, peak RSS %.1f MiB\n",
		leads, sameReq, st.RESTRequests+st.OAuthRequests, st.EventsCalls, st.ChatsRequests, same.wall.Seconds(), same.rep.Mode, same.rssMiB)

	open := w.srv.OpenLeadsWithChats()
	k := max(leads/100, 1)
	for i := range k {
		l := open[i*len(open)/k]
		w.srv.AddMessage(l.ChatIDs[0], "Could you send the updated quote today?", true)
	}
	time.Sleep(1100 * time.Millisecond)
	w.srv.ResetStats()
	changed := measure(b, w)
	st = w.srv.Stats()
	rest := st.RESTRequests + st.OAuthRequests
	req := rest + st.ChatsRequests
	floor := max(float64(rest), float64(st.ChatsRequests)) / limit
	ratio := changed.wall.Seconds() / floor
	fmt.Fprintf(os.Stderr, "1%% changed (%d leads), %d leads: %d requests (%.2f per changed lead; REST %d: %d events, %d lead pages, %d contacts/chats, %d note posts, %d patches; Chats %d), wall %.1fs, floor %.1fs, ratio %.2f, %d summarized, %d 429s, peak RSS %.1f MiB\n",
		k, leads, req, float64(req)/float64(k), rest, st.EventsCalls, st.LeadListCalls, st.ContactChatsCalls, st.NotesPosts, st.LeadPatches, st.ChatsRequests,
		changed.wall.Seconds(), floor, ratio, changed.rep.Summarized, st.REST429+st.Chats429, changed.rssMiB)

	b.ReportMetric(float64(sameReq), "unchanged_req")
	b.ReportMetric(same.wall.Seconds(), "unchanged_wall_s")
	b.ReportMetric(float64(req), "changed_req")
	b.ReportMetric(changed.wall.Seconds(), "changed_wall_s")
	b.ReportMetric(ratio, "changed_ratio")
	b.ReportMetric(full.rssMiB, "full_rss_MiB")
	b.ReportMetric(max(same.rssMiB, changed.rssMiB), "incr_rss_MiB")
	if changed.rep.Summarized != k || same.rep.Mode != "changes" {
		b.Errorf("the changed sweep summarized %d of %d leads (mode %q)", changed.rep.Summarized, k, changed.rep.Mode)
	}
}
