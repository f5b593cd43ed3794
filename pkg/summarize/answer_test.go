package summarize

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestCut(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"hello", 10, "hello"},
		{"hello", 5, "hello"},
		{"hello world", 7, "hello…"}, // the space before the cut goes
		{"hello world", 8, "hello w…"},
		{"привет мир", 5, "прив…"},
		{"привет мир", 10, "привет мир"},
		{"日本語のテキスト", 4, "日本語…"},
		{"😀😃😄😁", 3, "😀😃…"},
		{"abc", 1, "…"},
		{"abc", 0, "abc"},
		{"abc", -1, "abc"},
		{"", 3, ""},
	} {
		got := Cut(tc.in, tc.max)
		if got != tc.want {
			t.Errorf("Cut(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
		if !utf8.ValidString(got) {
			t.Errorf("Cut(%q, %d) = %q is not valid UTF-8", tc.in, tc.max, got)
		}
		if tc.max > 0 && utf8.RuneCountInString(got) > tc.max {
			t.Errorf("Cut(%q, %d) = %q is longer than the limit", tc.in, tc.max, got)
		}
	}
}

func TestParseAnswer(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"plain", "Client context: a bakery.", "Client context: a bakery."},
		{"whitespace", "  \n\t Sentiment: positive. \n\n ", "Sentiment: positive."},
		{"fence", "```\nClient context: a bakery.\nSentiment: neutral.\n```", "Client context: a bakery.\nSentiment: neutral."},
		{"fence with language", "```text\nКлиент: пекарня.\n```\n", "Клиент: пекарня."},
		{"fence with text before", "Here is the summary:\n```markdown\nSentiment: neutral.\n```", "Here is the summary:\nSentiment: neutral."},
		{"blank lines", "A\n\n\n\nB\n\nC\r\n\r\n\r\nD", "A\n\nB\n\nC\n\nD"},
		{"spaces only lines count as blank", "A\n  \n \t\nB", "A\n\nB"},
		{"trailing spaces", "A  \nB\t", "A\nB"},
		{"markdown", "## Key facts\n- **Budget:** 5k\n#hashtag stays", "Key facts\n- Budget: 5k\n#hashtag stays"},
		{"thinking", "<think>\nThe client wants...\n</think>\n\nClient context: a bakery.", "Client context: a bakery."},
		{"keeps inner backticks", "Use `code` here", "Use `code` here"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAnswer(tc.in)
			if err != nil || got != tc.want {
				t.Errorf("ParseAnswer(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
	for _, in := range []string{"", "   \n\t\n", "```\n```", "```text\n\n```", "<think>still thinking, out of tokens", "<think>x</think>\n\n"} {
		got, err := ParseAnswer(in)
		if !errors.Is(err, ErrEmptyAnswer) || got != "" {
			t.Errorf("ParseAnswer(%q) = %q, %v; want ErrEmptyAnswer", in, got, err)
		}
	}
}

func TestNoteText(t *testing.T) {
	at := time.Date(2026, 11, 21, 11, 5, 0, 0, time.UTC)
	got := NoteText("Client context: a bakery.", at, msk)
	if want := "AI summary (21.11.2026 14:05)\n\nClient context: a bakery."; got != want {
		t.Errorf("NoteText = %q, want %q", got, want)
	}
	if got := NoteText("x", at, nil); !strings.HasPrefix(got, "AI summary (21.11.2026 11:05)\n\n") {
		t.Errorf("nil location is not UTC: %q", got)
	}
	summary := "Контекст клиента: склад в Казани, 40 стеллажей.\nКлючевые факты:\n- Бюджет: не упомянут\n- Сроки: до конца декабря\n- ЛПР: финансовый директор\n- Возражения: цена выше конкурентов на 10%\nОткрытые вопросы: скидка при предоплате.\nНастроение: нейтральное."
	golden(t, "note", NoteText(summary, at, msk))
}

func TestInputHash(t *testing.T) {
	// A stored hash must keep matching across releases: changing this value
	// makes every lead look changed and costs a full re-summarization.
	const want = "b2c49f6865026a66592ebe89bbe5fd734765268f676e64b83f09e441cf168895"
	got := InputHash("system", "user")
	if len(got) != 64 || strings.Trim(got, "0123456789abcdef") != "" {
		t.Fatalf("InputHash = %q, want 64 lowercase hex digits", got)
	}
	if got != want {
		t.Errorf("InputHash(system, user) = %s, want %s", got, want)
	}
	if InputHash("system", "user") != got {
		t.Error("InputHash is not stable")
	}
	if InputHash("ab", "c") == InputHash("a", "bc") {
		t.Error("moving text between system and user keeps the hash")
	}
	if InputHash("system", "user ") == got {
		t.Error("a changed user prompt keeps the hash")
	}
}

// A runaway answer (4.9 MB came back once for max_tokens 300) must not be
// written whole: the note stays within MaxNoteRunes.
func TestHugeAnswerIsCutToANote(t *testing.T) {
	raw := "**Итог:** " + strings.Repeat("клиент спрашивает про цену и сроки доставки.\n", 100_000)
	if len(raw) < 4<<20 {
		t.Fatalf("the answer is only %d bytes", len(raw))
	}
	s, err := ParseAnswer(raw)
	if err != nil {
		t.Fatal(err)
	}
	note := NoteText(s, time.Date(2026, 11, 30, 9, 5, 0, 0, time.UTC), nil)
	if n := utf8.RuneCountInString(note); n != MaxNoteRunes {
		t.Errorf("the note has %d runes, want %d", n, MaxNoteRunes)
	}
	if !strings.HasPrefix(note, "AI summary (30.11.2026 09:05)\n\nИтог: клиент") || !strings.HasSuffix(note, "…") || !utf8.ValidString(note) {
		t.Errorf("note = %q...%q", note[:60], note[len(note)-20:])
	}
	// NoteText caps a summary that did not come through ParseAnswer too.
	if n := utf8.RuneCountInString(NoteText(strings.Repeat("x", 1<<20), time.Time{}, nil)); n != MaxNoteRunes {
		t.Errorf("NoteText of a 1 MiB summary has %d runes, want %d", n, MaxNoteRunes)
	}
	// A short answer is untouched.
	if s, _ := ParseAnswer("Short."); NoteText(s, time.Time{}, nil) != "AI summary (01.01.0001 00:00)\n\nShort." {
		t.Errorf("short note = %q", NoteText(s, time.Time{}, nil))
	}
}
