package salesbot

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestBubbles(t *testing.T) {
	url := "https://example.com/a/very/long/path/that/goes/on/and/on/and/on/for/more/than/eighty/characters/x"
	for _, tc := range []struct {
		name string
		text string
		want []string
		cut  bool
	}{
		{"short", "Hello! How are you?", []string{"Hello! How are you?"}, false},
		{"sentences packed", strings.Repeat("One two three. ", 8),
			[]string{"One two three. One two three. One two three. One two three. One two three.", "One two three. One two three. One two three."}, false},
		{"long sentence at words", strings.Repeat("слово ", 20),
			[]string{"слово слово слово слово слово слово слово слово слово слово слово слово слово", "слово слово слово слово слово слово слово"}, false},
		{"link kept whole", "See https://example.com/offer/1. for details and more text to push it over eighty runes here",
			[]string{"See https://example.com/offer/1. for details and more text to push it over", "eighty runes here"}, false},
		{"overlong link left out", "Look: " + url + " ok.", []string{"Look:", "ok."}, false},
		{"lines apart", "First line\nSecond line", []string{"First line", "Second line"}, false},
		{"empty", "  ", nil, false},
	} {
		got, cut := Bubbles(tc.text, 80, 10)
		if strings.Join(got, "|") != strings.Join(tc.want, "|") || cut != tc.cut {
			t.Errorf("%s: got %q (cut %v), want %q", tc.name, got, cut, tc.want)
		}
	}
	got, cut := Bubbles(strings.Repeat("A sentence that is forty characters ok. ", 30), 80, 10)
	if !cut || len(got) != 10 || !strings.HasSuffix(got[9], " …") {
		t.Fatalf("cut: %q %v", got, cut)
	}
	for _, b := range got {
		if utf8.RuneCountInString(b) > 80 {
			t.Fatalf("bubble over 80: %q", b)
		}
	}
}

func TestHandoffKeyword(t *testing.T) {
	s := &Service{o: Options{HandoffKeywords: DefaultHandoffKeywords}}
	for msg, want := range map[string]string{
		"Can I talk to a manager?":        "manager",
		"Your managers, please":           "manager",
		"Who is in your management team?": "",
		"A superhuman offer":              "",
		"I want a HUMAN":                  "human",
		"Позовите менеджера":              "менеджер",
		"суперменеджер":                   "",
		"Хочу поговорить с живым человеком": "человек",
		"real person please": "real person",
		"":                   "",
	} {
		if got := s.handoffKeyword(msg); got != want {
			t.Errorf("%q: %q, want %q", msg, got, want)
		}
	}
}
