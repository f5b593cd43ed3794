package salesbot

import (
	"strings"
	"unicode/utf8"
)

// Kommo's limits on a continue call (kommo-webhooks.md §4.4).
const (
	MaxShowRunes = 80 // a show handler's value
	MaxHandlers  = 10 // execute_handlers
)

// ellipsis ends the last bubble of a reply cut to fit MaxHandlers.
const ellipsis = "…"

// Bubbles splits text into chat bubbles of at most maxRunes runes each:
// whole sentences packed together where they fit, a longer sentence split
// between words. A word is never split, and a link never: a word longer than
// a bubble is cut only when it is not a link, and a link longer than a
// bubble is left out (the whole text still goes in data.reply). At most maxN
// bubbles are returned; cut is true when text did not fit, and then the last
// bubble ends with "…".
func Bubbles(text string, maxRunes, maxN int) (out []string, cut bool) {
	var cur []string // words of the bubble being filled
	curLen := 0
	flush := func() {
		if len(cur) > 0 {
			out = append(out, strings.Join(cur, " "))
		}
		cur, curLen = nil, 0
	}
	add := func(words []string) {
		n := wordsLen(words)
		switch {
		case len(cur) > 0 && curLen+1+n <= maxRunes:
			cur, curLen = append(cur, words...), curLen+1+n
			return
		case n <= maxRunes:
			flush()
			cur, curLen = append(cur, words...), n
			return
		}
		// A sentence longer than a bubble: fill bubbles word by word.
		flush()
		for _, w := range words {
			wl := utf8.RuneCountInString(w)
			if wl > maxRunes {
				flush()
				if isLink(w) {
					continue
				}
				out = append(out, chunkRunes(w, maxRunes)...)
				continue
			}
			if len(cur) > 0 && curLen+1+wl > maxRunes {
				flush()
			}
			if len(cur) > 0 {
				curLen++
			}
			cur, curLen = append(cur, w), curLen+wl
		}
	}
	for _, line := range strings.Split(text, "\n") {
		var sentence []string
		for _, w := range strings.Fields(line) {
			sentence = append(sentence, w)
			if endsSentence(w) {
				add(sentence)
				sentence = nil
			}
		}
		if len(sentence) > 0 {
			add(sentence)
		}
		// A line break ends a bubble: the model's paragraphs stay apart.
		flush()
	}
	flush()
	if len(out) <= maxN {
		return out, false
	}
	out = out[:maxN]
	words := strings.Fields(out[maxN-1])
	for len(words) > 1 && wordsLen(words)+1+utf8.RuneCountInString(ellipsis) > maxRunes {
		words = words[:len(words)-1]
	}
	last := strings.Join(words, " ")
	if utf8.RuneCountInString(last)+1+utf8.RuneCountInString(ellipsis) > maxRunes {
		last = string([]rune(last)[:maxRunes-1-utf8.RuneCountInString(ellipsis)])
	}
	out[maxN-1] = last + " " + ellipsis
	return out, true
}

func wordsLen(words []string) int {
	n := 0
	for i, w := range words {
		if i > 0 {
			n++
		}
		n += utf8.RuneCountInString(w)
	}
	return n
}

func chunkRunes(w string, n int) []string {
	r := []rune(w)
	var out []string
	for len(r) > n {
		out = append(out, string(r[:n]))
		r = r[n:]
	}
	if len(r) > 0 {
		out = append(out, string(r))
	}
	return out
}

func isLink(w string) bool {
	lw := strings.ToLower(w)
	return strings.Contains(lw, "://") || strings.HasPrefix(lw, "www.") || strings.HasPrefix(lw, "mailto:")
}

// endsSentence reports whether a word closes a sentence: it ends with . ! ?
// or … (before closing quotes or brackets) and is not a link, whose dots
// belong to it.
func endsSentence(w string) bool {
	if isLink(w) {
		return false
	}
	w = strings.TrimRight(w, `"')]»”’`)
	return strings.HasSuffix(w, ".") || strings.HasSuffix(w, "!") || strings.HasSuffix(w, "?") || strings.HasSuffix(w, "…")
}
