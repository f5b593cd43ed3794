package summarize

import (
	"regexp"
	"strings"
)

// injectionPatterns match messages that talk to the model rather than to
// the company: role tags, "ignore previous instructions", orders to set a
// field, a JSON object in the schema's words. English and Russian.
var injectionPatterns = regexp.MustCompile(`(?i)(ignore|disregard|forget)\s+(all\s+|any\s+|the\s+)?(previous|prior|above|earlier|your)\s+(instructions|rules|prompts?)` +
	`|</?\s*(system|assistant|chat|instructions?)\s*>|^\s*(system|assistant)\s*:|\bsystem prompt\b|you are now\b` +
	`|\b(set|change|update|write)\s+(the\s+)?(budget|next[_ ]step|sentiment|language|decision[_ ]maker|key_facts|client_context)\s*(=|to\b|:)` +
	`|"(key_facts|client_context|next_step|open_questions)"\s*:` +
	`|игнорир\S*\s+(все\s+|всё\s+)?(предыдущ|прошл|эти|свои)\S*\s+(инструкц|правил)|забудь\s+(все\s+)?(инструкц|правил)` +
	`|(установи|поставь|запиши|измени)\s+(бюджет|следующий шаг|сентимент|язык)|ты\s+теперь\b|системн\S+\s+(промпт|инструкц)`)

// zeroWidth are characters that hide text from a person reading the chat.
var zeroWidth = regexp.MustCompile("[\u200b\u200c\u200d\u2060\ufeff]")

// Suspicious reports a message that gives the model instructions (a prompt
// injection attempt). Values the model takes from such a message are not
// written to Kommo.
func Suspicious(text string) bool {
	return injectionPatterns.MatchString(text) || zeroWidth.MatchString(text)
}

// Injected is what a summary drew from suspicious messages; Guard removes
// it.
type Injected struct {
	Facts    []Fact
	NextStep string
}

// Guard removes from s the facts that cite only suspicious messages, and a
// next step that is written in a suspicious message: the deterministic
// filter behind "the chat is data". prompt is the prompt s answers.
func Guard(s *Structured, p StructuredPrompt) Injected {
	var out Injected
	kept := s.Facts[:0:0]
	for _, f := range s.Facts {
		if p.suspectAt[f.At] && !p.cleanAt[f.At] {
			out.Facts = append(out.Facts, f)
			continue
		}
		kept = append(kept, f)
	}
	s.Facts = kept
	if a := norm(s.NextStep.Action); a != "" {
		for _, t := range p.suspectText {
			if strings.Contains(t, a) {
				out.NextStep = s.NextStep.Action
				s.NextStep = NextStep{}
				break
			}
		}
	}
	return out
}

func norm(s string) string {
	return strings.ToLower(strings.Join(strings.Fields(strings.ReplaceAll(s, DataMark, " ")), " "))
}
