package summarize

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const validJSON = `{"language":"ru","client_context":"Иван,ˆмагазин","key_facts":[{"kind":"budget","value":"3 млн ₽","at":"20.10 11:00"},{"kind":"other","value":"","at":"x"}],
"open_questions":["Доставка?"],"next_step":{"action":"Прислать КП","date":"25.10.2026"},"sentiment":"positive"}`

func TestParseStructured(t *testing.T) {
	s, err := ParseStructured("<think>hm</think>\n```json\n" + validJSON + "\n```")
	if err != nil {
		t.Fatal(err)
	}
	if s.ClientContext != "Иван, магазин" || len(s.Facts) != 1 || s.Facts[0].Value != "3 млн ₽" || s.NextStep.Date != "25.10.2026" {
		t.Fatalf("%+v", s)
	}
	bad := []struct{ in, want string }{
		{`{"language":"ru"`, "not a JSON object"},
		{`not json at all`, "not a JSON object"},
		{strings.Replace(validJSON, `"positive"`, `"happy"`, 1), "sentiment"},
		{strings.Replace(validJSON, `"budget"`, `"price"`, 1), "kind"},
		{strings.Replace(validJSON, `"20.10 11:00"`, `"yesterday"`, 1), "at"},
		{strings.Replace(validJSON, `"sentiment":"positive"`, `"sentiment":"positive","extra":1`, 1), "unknown field"},
		{strings.Replace(validJSON, `"language":"ru",`, ``, 1), `"language" is missing`},
	}
	for _, b := range bad {
		_, err := ParseStructured(b.in)
		var ve *ValidationError
		if !errors.As(err, &ve) || !strings.Contains(err.Error(), b.want) {
			t.Errorf("ParseStructured(%.60q) = %v, want a validation error about %q", b.in, err, b.want)
		}
	}
	if _, err := ParseStructured("  "); !errors.Is(err, ErrEmptyAnswer) {
		t.Errorf("empty: %v", err)
	}
}

func TestRenderRussianNote(t *testing.T) {
	prev, _ := ParseStructured(validJSON)
	cur := prev.Clone()
	cur.Facts[0].Value = "4 млн ₽"
	cur.Facts = append(cur.Facts, Fact{Kind: KindDecisionMaker, Value: "директор", At: "21.10 09:53"}, Fact{Kind: KindOther, Value: "выдумка", At: "01.01 00:00"})
	cur.Sentiment = "neutral"
	un := Verify(cur, map[string]bool{"20.10 11:00": true, "21.10 09:53": true})
	r := Rendered{Summary: cur, Unverified: un, Changes: Diff(prev, cur), Since: time.Date(2026, 10, 20, 12, 0, 0, 0, time.UTC)}
	golden(t, "structured_note_ru", r.Note()+"\n=== field ===\n"+r.Field(0)+"\n")
}

func TestStructuredPromptBudget(t *testing.T) {
	var msgs []Message
	for i := range 10000 {
		msgs = append(msgs, Message{ID: string(rune(i)), Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute),
			Sender: "Клиент", FromClient: true, Type: "text", Text: strings.Repeat("очень длинное сообщение ", 60)})
	}
	p := BuildStructured(Input{Chats: []Chat{NewChat("", msgs, 5, 40)}}, Options{})
	if p.Tokens > DefaultMaxPromptTokens || p.Shown < 10 {
		t.Fatalf("tokens %d (max %d), shown %d", p.Tokens, DefaultMaxPromptTokens, p.Shown)
	}
	if !strings.Contains(p.User, "<<<CHAT-") || !strings.Contains(p.User, "очень"+DataMark+"длинное") {
		t.Errorf("the chat is not delimited and datamarked:\n%.400s", p.User)
	}
}
