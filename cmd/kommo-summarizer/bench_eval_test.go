//go:build unix

package main

import (
	"encoding/json"
	"testing"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/eval"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommotest"
)

// BenchmarkEval runs `eval` against the fake LLM and reports the quality
// targets: schema validity after the retry, middle-fact recall of the
// 150-message chats after three rolling updates, their largest prompt,
// cost per summary at gpt-4o-mini prices, planted PII that reached the
// model, injected values that reached Kommo.
func BenchmarkEval(b *testing.B) {
	w := newWorld(b, kommotest.Options{Seed: 1, Leads: 1}, nil)
	for b.Loop() {
		res := w.run("eval", "--json")
		var rep eval.Report
		if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil || res.code != 0 {
			b.Fatalf("eval: exit %d, %v\n%s", res.code, err, tail(res.stderr))
		}
		b.ReportMetric(100*rep.SchemaValidAfterRetry, "%schema-valid")
		b.ReportMetric(100*rep.Middle150.Rate(), "%middle-recall-150")
		b.ReportMetric(100*rep.Recall[eval.Middle].Rate(), "%middle-recall-all")
		b.ReportMetric(100*rep.Baseline[eval.Middle].Rate(), "%middle-recall-single")
		b.ReportMetric(float64(rep.MaxPrompt150), "prompt-tokens-150")
		b.ReportMetric(rep.CostPerSummary, "usd/summary")
		b.ReportMetric(float64(rep.PII.Found), "pii-to-llm")
		b.ReportMetric(float64(rep.Obeyed.Found), "injected-to-kommo")
	}
}
