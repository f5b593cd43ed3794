package eval

import (
	"slices"
	"strings"
	"testing"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/redact"
)

func TestCorpusCoversTheIssue(t *testing.T) {
	cs := Corpus()
	if len(cs) < 20 {
		t.Fatalf("%d cases, want at least 20", len(cs))
	}
	langs := map[string]int{}
	var sizes []int
	has := map[string]bool{}
	for _, c := range cs {
		langs[c.Language]++
		sizes = append(sizes, c.Messages())
		at := map[Position]bool{}
		for _, f := range c.Facts {
			at[f.At] = true
		}
		if !at[Middle] || !at[End] {
			t.Errorf("%s: facts at %v, want the middle and the end", c.Name, at)
		}
		if len(c.Stale) > 0 {
			has["changed"] = true
		}
		if len(c.Injected) > 0 {
			has["injection"] = true
		}
		if len(c.PII) > 0 {
			has["pii"] = true
		}
		if len(c.Chats) > 1 {
			has["two chats"] = true
		}
		for _, ch := range c.Chats {
			for _, m := range ch {
				if m.Type != "text" {
					has["media"] = true
				}
			}
		}
		// Every planted value is written in some message.
		var all strings.Builder
		for _, ch := range c.Chats {
			for _, m := range ch {
				all.WriteString(m.Text + "\n")
			}
		}
		for _, f := range c.Facts {
			if !slices.ContainsFunc(f.Any, func(a string) bool { return strings.Contains(strings.ToLower(all.String()), strings.ToLower(a)) }) {
				t.Errorf("%s: fact %v is in no message", c.Name, f)
			}
		}
		// The redactor must catch every planted value.
		r := redact.New()
		if red := r.Redact(all.String()); len(c.PII) > 0 {
			for _, v := range c.PII {
				if strings.Contains(red, v) {
					t.Errorf("%s: %q survives redaction", c.Name, v)
				}
			}
		}
	}
	if langs["en"] < 8 || langs["ru"] < 8 || slices.Min(sizes) > 10 || slices.Max(sizes) < 300 {
		t.Errorf("languages %v, sizes %d..%d", langs, slices.Min(sizes), slices.Max(sizes))
	}
	for _, k := range []string{"changed", "injection", "pii", "two chats", "media"} {
		if !has[k] {
			t.Errorf("no case with %s", k)
		}
	}
	if a, b := Corpus(), Corpus(); a[5].Chats[0][40].Text != b[5].Chats[0][40].Text {
		t.Error("the corpus is not deterministic")
	}
}
