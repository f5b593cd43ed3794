package summarize

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ErrEmptyAnswer is returned by ParseAnswer when the model's answer holds no
// summary text.
var ErrEmptyAnswer = errors.New("the model returned an empty summary")

// InputHash returns the hex SHA-256 of a prompt. The sweep stores it and
// skips the LLM call when a lead's next prompt hashes the same. A NUL byte
// separates the two parts so that moving text between them changes the hash.
func InputHash(system, user string) string {
	h := sha256.New()
	h.Write([]byte(system))
	h.Write([]byte{0})
	h.Write([]byte(user))
	return hex.EncodeToString(h.Sum(nil))
}

// MaxNoteRunes bounds the text of a note, header included. Kommo documents
// no limit for note text; 16,000 runes are at most 64,000 bytes of UTF-8,
// under the 65,535 bytes of a MySQL TEXT column, and ten times what a
// 150-word summary needs. A longer answer is a model or server gone wrong,
// and a sales rep cannot read it anyway.
const MaxNoteRunes = 16000

// noteHeaderRunes is the length of NoteText's header: "AI summary
// (dd.mm.yyyy HH:MM)" and a blank line.
const noteHeaderRunes = len("AI summary (02.01.2006 15:04)\n\n")

// ParseAnswer cleans a model's answer for a CRM note, which shows plain text:
// it normalises line breaks, drops a leading <think>...</think> block (local
// reasoning models served by Ollama or vLLM put it in the content), drops ```
// fence lines, "**" bold markers and leading "#" heading marks, trims every
// line's trailing space, keeps at most one blank line in a row and trims the
// whole, then cuts it so that its note fits MaxNoteRunes. ErrEmptyAnswer
// when nothing is left.
func ParseAnswer(raw string) (string, error) {
	// Only the first runes can reach the note: the rest is not even
	// cleaned. Cleaning shortens, so 4 runes of answer a rune of note is
	// plenty.
	raw = cutBytes(raw, 4*4*MaxNoteRunes)
	s := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(raw)
	s = dropThinking(s)

	var out []string
	blank := false
	for l := range strings.SplitSeq(s, "\n") {
		if isFence(l) {
			continue
		}
		l = strings.TrimRightFunc(stripMarkdown(l), unicode.IsSpace)
		if l == "" {
			if blank {
				continue
			}
			blank = true
		} else {
			blank = false
		}
		out = append(out, l)
	}
	s = strings.TrimSpace(strings.Join(out, "\n"))
	if s == "" {
		return "", ErrEmptyAnswer
	}
	return Cut(s, MaxNoteRunes-noteHeaderRunes), nil
}

// cutBytes returns at most the first n bytes of s, never splitting a UTF-8
// sequence.
func cutBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func dropThinking(s string) string {
	t := strings.TrimLeftFunc(s, unicode.IsSpace)
	if !strings.HasPrefix(t, "<think>") {
		return s
	}
	end := strings.Index(t, "</think>")
	if end < 0 {
		// The model ran out of tokens while thinking: no summary.
		return ""
	}
	return t[end+len("</think>"):]
}

// isFence reports a ``` line, with or without a language tag.
func isFence(l string) bool {
	l = strings.TrimSpace(l)
	rest, ok := strings.CutPrefix(l, "```")
	return ok && !strings.ContainsAny(rest, " \t`")
}

func stripMarkdown(l string) string {
	l = strings.ReplaceAll(l, "**", "")
	t := strings.TrimLeft(l, " ")
	if h := strings.TrimLeft(t, "#"); len(h) < len(t) && len(t)-len(h) <= 6 && strings.HasPrefix(h, " ") {
		return strings.TrimLeft(h, " ")
	}
	return l
}

// NoteText is the text of the note written on the lead:
// "AI summary (dd.mm.yyyy HH:MM)\n\n" + summary, the time shown in loc
// (nil = UTC), cut to MaxNoteRunes.
func NoteText(summary string, at time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	return Cut("AI summary ("+at.In(loc).Format("02.01.2006 15:04")+")\n\n"+summary, MaxNoteRunes)
}

// Cut returns s when it has at most maxRunes runes; otherwise its first
// runes, trailing spaces removed, and "…", maxRunes runes at most in all (so a
// cut text still fits a field limit). It never splits a UTF-8 sequence.
// maxRunes <= 0 means no cut.
func Cut(s string, maxRunes int) string {
	if maxRunes <= 0 || utf8.RuneCountInString(s) <= maxRunes {
		return s
	}
	n := 0
	for i := range s {
		if n == maxRunes-1 {
			return strings.TrimRight(s[:i], " ") + "…"
		}
		n++
	}
	return s
}
