//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommotest"
)

// BenchmarkSweep runs the real binary against the fakes with real latency
// (20 ms a request, 300 ms an LLM call) and Kommo's 7 requests/s enforced,
// over 60 and 1,000 leads: a changed sweep (the first, a full pass), then an
// unchanged full pass (--full; an incremental sweep is BenchmarkSweepChanges').
//
//	make bench            (both sizes and the memory benchmark, about 15 minutes)
//	make bench BENCH=Sweep/60   (the 60-lead one)
func BenchmarkSweep(b *testing.B) {
	for _, n := range []int{60, 1000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			for range b.N {
				benchSweep(b, n)
			}
		})
	}
}

func benchSweep(b *testing.B, leads int) {
	w := newWorld(b, kommotest.Options{
		Seed: 7, Leads: leads, Latency: 20 * time.Millisecond, LLMLatency: 300 * time.Millisecond,
	}, func(c map[string]map[string]any) { c["log"]["level"] = "warn" })
	w.login()
	// Kommo counts every request in a one-second window: let the login's
	// request leave it, so the peak is the sweep's own.
	time.Sleep(1100 * time.Millisecond)
	limit := 7.0

	w.srv.ResetStats()
	changed := measure(b, w)
	st := w.srv.Stats()
	rest := float64(st.RESTRequests + st.OAuthRequests)
	floor := max(rest/limit, float64(st.ChatsRequests)/limit)
	wall := changed.wall.Seconds()
	b.ReportMetric(wall, "wall_s")
	b.ReportMetric(floor, "floor_s")
	b.ReportMetric(wall/floor, "ratio")
	b.ReportMetric((rest+float64(st.ChatsRequests))/float64(leads), "req/lead")
	b.ReportMetric(float64(st.PeakRESTPerSecond), "peak_rest/s")
	b.ReportMetric(float64(st.PeakChatsPerSecond), "peak_chats/s")
	b.ReportMetric(float64(st.REST429+st.Chats429), "429s")
	b.ReportMetric(changed.rssMiB, "rss_MiB")
	fmt.Fprintf(os.Stderr, "\nchanged sweep, %d leads: wall %.1fs, floor %.1fs (REST %d, Chats %d calls at %.0f/s), ratio %.2f, %.2f req/lead, peak %d REST/s and %d Chats/s, %d 429s, %d LLM calls, %d summarized, RSS %.1f MiB\n",
		leads, wall, floor, int(rest), st.ChatsRequests, limit, wall/floor, (rest+float64(st.ChatsRequests))/float64(leads),
		st.PeakRESTPerSecond, st.PeakChatsPerSecond, st.REST429+st.Chats429, changed.rep.LLMCalls, changed.rep.Summarized, changed.rssMiB)

	w.srv.ResetStats()
	same := measure(b, w, "--full")
	st = w.srv.Stats()
	b.ReportMetric(same.wall.Seconds(), "unchanged_wall_s")
	b.ReportMetric(float64(same.rep.LLMCalls+st.NotesPosts+st.LeadPatches), "unchanged_llm+writes")
	fmt.Fprintf(os.Stderr, "unchanged full pass, %d leads: wall %.1fs, %d LLM calls, %d note posts, %d lead patches, %d REST + %d Chats calls, RSS %.1f MiB\n",
		leads, same.wall.Seconds(), same.rep.LLMCalls, st.NotesPosts, st.LeadPatches, st.RESTRequests, st.ChatsRequests, same.rssMiB)
}

type measured struct {
	wall   time.Duration
	rssMiB float64
	rep    report
}

func measure(b *testing.B, w *world, args ...string) measured {
	b.Helper()
	cmd := w.command(append([]string{"sweep", "--json"}, args...)...)
	out, err := os.Create(filepath.Join(w.dir, "report.json"))
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout = out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("sweep: %v", err)
	}
	m := measured{wall: time.Since(start)}
	data, err := os.ReadFile(out.Name())
	if err != nil {
		b.Fatal(err)
	}
	if err := json.Unmarshal(data, &m.rep); err != nil {
		b.Fatalf("report: %v", err)
	}
	// The sweep's own peak (VmHWM), from its report: the child's rusage
	// would also count this process's peak, inherited at exec.
	m.rssMiB = m.rep.PeakRSSMiB
	if m.rssMiB == 0 {
		b.Fatal("the report has no peak_rss_mib (no /proc?)")
	}
	return m
}

// BenchmarkSweepMemory shows that a sweep's memory does not grow with the
// account: the fakes answer without rate limits or latency, and the peak
// resident memory of a changed and of an unchanged full pass is reported
// for 300 and 3,000 leads.
//
//	make bench BENCH=SweepMemory  (this one only)
func BenchmarkSweepMemory(b *testing.B) {
	for _, n := range []int{300, 3000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			for range b.N {
				w := newWorld(b, kommotest.Options{Seed: 7, Leads: n, RESTRateLimit: -1, ChatsRateLimit: -1}, func(c map[string]map[string]any) {
					c["kommo"]["requests_per_second"] = 50
					c["chats"]["requests_per_second"] = 50
					c["log"]["level"] = "warn"
				})
				w.login()
				changed, same := measure(b, w), measure(b, w, "--full")
				b.ReportMetric(changed.rssMiB, "changed_rss_MiB")
				b.ReportMetric(same.rssMiB, "unchanged_rss_MiB")
				fmt.Fprintf(os.Stderr, "\nmemory, %d leads: changed sweep peak %.1f MiB (%d summarized), unchanged full pass peak %.1f MiB\n",
					n, changed.rssMiB, changed.rep.Summarized, same.rssMiB)
			}
		})
	}
}
