package salesbot_test

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommotest"
)

// BenchmarkWidgetRequest sends 50 widget_requests at once, as 50 clients
// writing together would, against a fake LLM that takes 200 ms. It reports
// the p99 time to Kommo's 200 (the budget is 50 ms; Kommo waits 2 s) and the
// p99 time from the 200 to the continue call beyond the LLM's latency (the
// budget is 300 ms).
func BenchmarkWidgetRequest(b *testing.B) {
	const concurrent = 50
	const llmLatency = 200 * time.Millisecond
	w := newWorld(b, worldOptions{fake: kommotest.Options{Leads: concurrent, LLMLatency: llmLatency}})
	leads := w.fake.Leads()
	var answer, lag, server []time.Duration
	var smu sync.Mutex
	h := w.svc.Handler()
	w.hook.Config.Handler = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h.ServeHTTP(rw, r)
		smu.Lock()
		server = append(server, time.Since(start))
		smu.Unlock()
	})
	b.ResetTimer()
	for range b.N {
		var mu sync.Mutex
		var wg sync.WaitGroup
		type sent struct {
			d  *kommotest.WidgetDelivery
			at time.Time
		}
		var all []sent
		for i := range concurrent {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := w.fake.SendWidgetRequest(context.Background(), kommotest.WidgetRequest{
					URL: w.hook.URL + "/salesbot/widget_request", LeadID: leads[i].ID, Message: "How much is delivery to Riga?",
				})
				mu.Lock()
				all = append(all, sent{d, time.Now()})
				answer = append(answer, d.Duration)
				mu.Unlock()
			}()
		}
		wg.Wait()
		for _, s := range all {
			if s.d.Status != 200 {
				b.Fatalf("status %d: %s", s.d.Status, s.d.Body)
			}
			c := w.continued(b, s.d)
			lag = append(lag, c.At.Sub(s.at)-llmLatency)
		}
	}
	b.StopTimer()
	b.ReportMetric(ms(p99(answer)), "p99-answer-ms")
	b.ReportMetric(ms(p99(server)), "p99-handler-ms")
	b.ReportMetric(ms(p99(lag)), "p99-continue-lag-ms")
	b.ReportMetric(ms(slices.Max(lag)), "max-continue-lag-ms")
}

func p99(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)*99+99)/100-1]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
