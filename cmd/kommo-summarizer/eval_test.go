//go:build unix

package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/eval"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommotest"
)

// CI runs eval against the fake LLM: every target met, and the table and
// the JSON agree.
func TestEvalAgainstTheFakeLLM(t *testing.T) {
	w := newWorld(t, kommotest.Options{Seed: 1, Leads: 1}, nil)
	res := w.run("eval", "--check")
	if res.code != 0 {
		t.Fatalf("eval --check: exit %d\n%s\n%s", res.code, res.stdout, tail(res.stderr))
	}
	t.Logf("eval against the fake LLM:\n%s", res.stdout)
	for _, want := range []string{"fact recall, middle", "Targets:", "ok  schema-valid answers after the retry"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("the table lacks %q", want)
		}
	}
	res = w.run("eval", "--json", "--cases", "en-150,ru-injection") // en-150, its -changed and -injection, ru-injection
	var rep eval.Report
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil || res.code != 0 {
		t.Fatalf("eval --json: exit %d, %v\n%s", res.code, err, res.stdout)
	}
	if len(rep.Cases) != 4 || rep.SchemaValidAfterRetry != 1 || rep.Obeyed.Found != 0 {
		t.Errorf("JSON report: %d cases, valid %.2f, obeyed %d", len(rep.Cases), rep.SchemaValidAfterRetry, rep.Obeyed.Found)
	}

	// An obedient model: the raw answers obey, nothing reaches Kommo.
	res = w.run("eval", "--json", "--cases", "injection", "--model", kommotest.FakeModelObey)
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
		t.Fatalf("eval --json: exit %d, %v\n%s", res.code, err, res.stdout)
	}
	if rep.ObeyedRaw.Found == 0 || rep.Obeyed.Found != 0 {
		t.Errorf("obedient model: raw %d, reaching Kommo %d of %d", rep.ObeyedRaw.Found, rep.Obeyed.Found, rep.Obeyed.Total)
	}

	// A model whose first answers are broken: 100% valid after the retry.
	res = w.run("eval", "--json", "--cases", "en-40", "--model", kommotest.FakeModelInvalidOnce)
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.SchemaValidFirstTry != 0 || rep.SchemaValidAfterRetry != 1 {
		t.Errorf("invalid once: first try %.2f, after retry %.2f", rep.SchemaValidFirstTry, rep.SchemaValidAfterRetry)
	}
	if res := w.run("eval", "--cases", "nothing-like-this"); res.code != 2 {
		t.Errorf("an unknown case: exit %d, want 2", res.code)
	}
}
