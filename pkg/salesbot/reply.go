package salesbot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/llm"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
)

// Reply statuses, what the bot's conditions step reads as {{json.status}}.
const (
	StatusSuccess = "success"
	StatusHandoff = "handoff"
	StatusFail    = "fail"
)

// Origin marks the bot's messages in the message log.
const Origin = store.OwnOrigin

// ContinueBody is the body of the continue call that resumes the bot.
type ContinueBody struct {
	Data            ContinueData `json:"data"`
	ExecuteHandlers []Handler    `json:"execute_handlers,omitempty"`
}

// ContinueData is readable in the bot as {{json.status}} and {{json.reply}}.
type ContinueData struct {
	Status string `json:"status"`
	// Reply is the whole reply: a bot step can send {{json.reply}} when the
	// bubbles are not wanted.
	Reply string `json:"reply"`
}

// Handler is one of execute_handlers; only show text is sent.
type Handler struct {
	Handler string     `json:"handler"`
	Params  ShowParams `json:"params"`
}

// ShowParams are a show handler's parameters.
type ShowParams struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// replySchema is the model's structured answer.
var replySchema = llm.Schema{Name: "salesbot_reply", Schema: map[string]any{
	"type": "object",
	"properties": map[string]any{
		"reply":   map[string]any{"type": "string", "description": "the message to send to the client"},
		"handoff": map[string]any{"type": "boolean", "description": "true when a person must take over the chat"},
		"reason":  map[string]any{"type": "string", "description": "why a person must take over; empty otherwise"},
	},
	"required":             []any{"reply", "handoff", "reason"},
	"additionalProperties": false,
}}

type modelAnswer struct {
	Reply   *string `json:"reply"`
	Handoff bool    `json:"handoff"`
	Reason  string  `json:"reason"`
}

// replyBudget is what the model is told to stay under: ten bubbles of 80
// characters, less what splitting at sentences wastes.
const replyBudget = 600

// outcome is a built reply and what it changes.
type outcome struct {
	body     ContinueBody
	handoff  string // the reason of a new handoff; "" for none
	err      error  // why the reply is a fail, for the log
	llmCalls int
}

// Test builds the continue body a message would get, without sending it,
// logging anything or recording a handoff.
func (s *Service) Test(ctx context.Context, leadID int64, message string) (*ContinueBody, error) {
	if leadID < 0 {
		return nil, errors.New("salesbot: the lead id must not be negative")
	}
	out := s.build(ctx, leadID, message)
	if out.err != nil {
		s.log.Warn("salesbot: test reply is a fail", "lead_id", leadID, "err", out.err)
	}
	return &out.body, nil
}

// build makes the reply to a client's message. It never fails: every
// problem is a reply with status fail and the fallback text.
func (s *Service) build(ctx context.Context, leadID int64, message string) outcome {
	msg := strings.TrimSpace(message)
	switch {
	case msg == "":
		return s.fail(errors.New("the client's message is empty (no {{message_text}}: a picture, a voice message?)"))
	case utf8.RuneCountInString(msg) > s.o.MaxMessageChars:
		return s.fail(fmt.Errorf("the client's message is %d characters, over %d", utf8.RuneCountInString(msg), s.o.MaxMessageChars))
	}
	if leadID > 0 {
		h, err := s.o.DB.BotHandoffOf(ctx, leadID)
		if err != nil {
			return s.fail(err)
		}
		if h != nil && s.now().Before(h.QuietUntil) {
			// A manager has the chat: the bot goes on without a word from us.
			return outcome{body: ContinueBody{Data: ContinueData{Status: StatusHandoff}}}
		}
	}
	if kw := s.handoffKeyword(msg); kw != "" {
		return outcome{body: s.body(StatusHandoff, s.o.FallbackText), handoff: "the client wrote " + strconv.Quote(kw)}
	}
	system, user, err := s.prompt(ctx, leadID, msg)
	if err != nil {
		return s.fail(err)
	}
	cctx, cancel := context.WithTimeout(ctx, s.o.ReplyTimeout)
	defer cancel()
	c, err := s.o.LLM.CompleteJSON(cctx, system, user, replySchema)
	if err != nil {
		o := s.fail(err)
		o.llmCalls = 1
		return o
	}
	var a modelAnswer
	if err := json.Unmarshal([]byte(strings.TrimSpace(c.Text)), &a); err != nil || a.Reply == nil {
		o := s.fail(fmt.Errorf("the model's answer is not the reply JSON (finish_reason %q): %.80q", c.FinishReason, c.Text))
		o.llmCalls = 1
		return o
	}
	reply := strings.TrimSpace(*a.Reply)
	if a.Handoff {
		if reply == "" {
			reply = s.o.FallbackText
		}
		reason := strings.TrimSpace(a.Reason)
		if reason == "" {
			reason = "the model asked for a person"
		}
		return outcome{body: s.body(StatusHandoff, reply), handoff: reason, llmCalls: 1}
	}
	if reply == "" {
		o := s.fail(errors.New("the model's reply is empty"))
		o.llmCalls = 1
		return o
	}
	return outcome{body: s.body(StatusSuccess, reply), llmCalls: 1}
}

func (s *Service) fail(err error) outcome {
	return outcome{body: s.body(StatusFail, s.o.FallbackText), err: err}
}

// body is the continue body of a reply: the whole text in data.reply, and
// show handlers of at most 80 characters, at most 10.
func (s *Service) body(status, reply string) ContinueBody {
	b := ContinueBody{Data: ContinueData{Status: status, Reply: reply}}
	bubbles, cut := Bubbles(reply, MaxShowRunes, MaxHandlers)
	if cut {
		s.log.Warn("salesbot: the reply is longer than the bot can show: cut", "runes", utf8.RuneCountInString(reply))
	}
	for _, v := range bubbles {
		b.ExecuteHandlers = append(b.ExecuteHandlers, Handler{Handler: "show", Params: ShowParams{Type: "text", Value: v}})
	}
	return b
}

// handoffKeyword returns the first keyword the message has as a word. A
// keyword in Latin letters must be the whole word, or its plural in "s"
// ("managers", not "management"); in other scripts it may take an ending
// ("менеджер" matches "менеджера", "менеджеру"), since Russian declines
// nouns. Neither matches inside a word ("суперменеджер", "superhuman").
func (s *Service) handoffKeyword(msg string) string {
	lower := strings.ToLower(msg)
	isWord := func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }
	for _, kw := range s.o.HandoffKeywords {
		k := strings.ToLower(strings.TrimSpace(kw))
		if k == "" {
			continue
		}
		latin := true
		for _, r := range k {
			if r > unicode.MaxASCII {
				latin = false
			}
		}
		for i := 0; ; {
			j := strings.Index(lower[i:], k)
			if j < 0 {
				break
			}
			at, end := i+j, i+j+len(k)
			i = end
			if prev, _ := utf8.DecodeLastRuneInString(lower[:at]); at > 0 && isWord(prev) {
				continue
			}
			if latin {
				rest := strings.TrimPrefix(lower[end:], "s")
				if next, _ := utf8.DecodeRuneInString(rest); rest != "" && isWord(next) {
					continue
				}
			}
			return kw
		}
	}
	return ""
}

// newMessageMarker introduces the client's new message in the prompt.
const newMessageMarker = "New message from the client:"

// prompt is the model's input: the operator's instructions and our rules,
// then the lead's latest summary, its recent messages and the new one.
func (s *Service) prompt(ctx context.Context, leadID int64, msg string) (system, user string, err error) {
	instr, err := s.instr.get()
	if err != nil {
		return "", "", err
	}
	var sb strings.Builder
	if strings.TrimSpace(instr) != "" {
		sb.WriteString(strings.TrimSpace(instr))
		sb.WriteString("\n\n")
	}
	fmt.Fprintf(&sb, `You answer a client in a messenger chat for the company, following the instructions above.
- Answer in the client's language, briefly and politely; do not invent prices, dates or promises the instructions or the conversation do not give.
- Your reply is shown in chat bubbles of at most %d characters, at most %d bubbles: keep it under %d characters, in short sentences, and write links in full.
- Set "handoff" to true, with a short "reason", when the client asks for a person or you cannot help; the reply then tells the client that a manager will answer.
Answer with JSON: {"reply": "...", "handoff": false, "reason": ""}.`, MaxShowRunes, MaxHandlers, replyBudget)
	system = sb.String()

	var ub strings.Builder
	if leadID > 0 {
		sums, err := s.o.DB.Summaries(ctx, leadID, 1)
		if err != nil {
			return "", "", err
		}
		msgs, err := s.o.DB.LeadMessages(ctx, leadID, s.o.History+1)
		if err != nil {
			return "", "", err
		}
		// The new message may be logged already, by a webhook.
		for i := len(msgs) - 1; i >= 0 && i >= len(msgs)-5; i-- {
			if m := msgs[i]; m.Direction == store.DirectionIn && strings.TrimSpace(m.Text) == msg && s.now().Sub(m.CreatedAt) < 10*time.Minute {
				msgs = append(msgs[:i], msgs[i+1:]...)
				break
			}
		}
		if len(msgs) > s.o.History {
			msgs = msgs[len(msgs)-s.o.History:]
		}
		if len(sums) > 0 {
			ub.WriteString("Summary of the deal so far:\n")
			ub.WriteString(strings.TrimSpace(sums[0].Text))
			ub.WriteString("\n\n")
		}
		if len(msgs) > 0 {
			ub.WriteString("Recent messages, oldest first:\n")
			for _, m := range msgs {
				text := strings.Join(strings.Fields(m.Text), " ")
				if text == "" {
					if m.Type == "" || m.Type == "text" {
						continue
					}
					text = "(" + m.Type + ")"
				}
				who := "Client"
				if m.Direction == store.DirectionOut {
					who = "Company"
					if m.Origin == Origin {
						who = "Bot"
					}
				}
				fmt.Fprintf(&ub, "%s [%s]: %s\n", m.CreatedAt.UTC().Format("02.01 15:04"), who, text)
			}
			ub.WriteString("\n")
		}
	}
	ub.WriteString(newMessageMarker)
	ub.WriteString("\n")
	ub.WriteString(msg)
	return system, ub.String(), nil
}

// logMessages are the client's message and the bot's reply, for the
// message log, in the chat the lead's latest logged message came from.
func (s *Service) logMessages(ctx context.Context, leadID, contactID int64, message string, body ContinueBody) ([]store.LogMessage, error) {
	if leadID <= 0 {
		return nil, nil
	}
	chatID := "salesbot:" + strconv.FormatInt(leadID, 10)
	var talkID int64
	recent, err := s.o.DB.LeadMessages(ctx, leadID, 10)
	if err != nil {
		return nil, err
	}
	now := s.now()
	msg := strings.TrimSpace(message)
	logged := false // a webhook may have logged the client's message already
	for _, m := range recent {
		if m.Direction == store.DirectionIn && strings.TrimSpace(m.Text) == msg && now.Sub(m.CreatedAt) < 10*time.Minute {
			logged = true
		}
	}
	if n := len(recent); n > 0 && recent[n-1].ChatID != "" {
		last := recent[n-1]
		chatID, talkID = last.ChatID, last.TalkID
		if contactID == 0 {
			contactID = last.ContactID
		}
	}
	var out []store.LogMessage
	if msg != "" && !logged {
		out = append(out, store.LogMessage{
			ID: newID(), ChatID: chatID, TalkID: talkID, ContactID: contactID, LeadID: leadID, Direction: store.DirectionIn,
			AuthorName: "Client", AuthorType: "external", Type: "text", Text: msg, CreatedAt: now, Origin: Origin,
		})
	}
	if body.Data.Reply != "" {
		out = append(out, store.LogMessage{
			ID: newID(), ChatID: chatID, TalkID: talkID, ContactID: contactID, LeadID: leadID, Direction: store.DirectionOut,
			AuthorName: "Salesbot AI", AuthorType: "bot", Type: "text", Text: body.Data.Reply,
			CreatedAt: now.Add(time.Millisecond), Origin: Origin,
		})
	}
	return out, nil
}

// newID is a random UUID v4.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
