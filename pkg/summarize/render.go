package summarize

import (
	"strconv"
	"strings"
	"time"
)

// headings are the labels of a rendered summary in one language.
type headings struct {
	Context, Facts, Questions, NextStep, Sentiment string
	Kinds                                          map[string]string
	Sentiments                                     map[string]string
	Changed, Was, New, Unverified, NotInChat, None string
	Fallback, Ignored                              string
}

var headingsByLang = map[string]headings{
	"en": {
		Context: "Client context", Facts: "Key facts", Questions: "Open questions", NextStep: "Next step", Sentiment: "Sentiment",
		Kinds:      map[string]string{KindBudget: "Budget", KindTimeline: "Timeline", KindDecisionMaker: "Decision maker", KindObjection: "Objection", KindOther: "Other"},
		Sentiments: map[string]string{"positive": "positive", "neutral": "neutral", "negative": "negative"},
		Changed:    "What changed since %s", Was: "was", New: "new",
		Unverified: "Unverified (the cited message is not in the chat; not written to the field)", NotInChat: "cites",
		None:     "none",
		Fallback: "Plain-text summary: the model's structured answer was invalid twice.",
		Ignored:  "Ignored: %d value(s) taken from messages that give the model instructions (a prompt injection attempt?).",
	},
	"ru": {
		Context: "Клиент", Facts: "Ключевые факты", Questions: "Открытые вопросы", NextStep: "Следующий шаг", Sentiment: "Настрой",
		Kinds:      map[string]string{KindBudget: "Бюджет", KindTimeline: "Сроки", KindDecisionMaker: "Принимает решение", KindObjection: "Возражение", KindOther: "Другое"},
		Sentiments: map[string]string{"positive": "позитивный", "neutral": "нейтральный", "negative": "негативный"},
		Changed:    "Что изменилось с %s", Was: "было", New: "новое",
		Unverified: "Не подтверждено (указанного сообщения нет в чате; в поле не записано)", NotInChat: "ссылка на",
		None:     "нет",
		Fallback: "Сводка простым текстом: структурированный ответ модели дважды не прошёл проверку.",
		Ignored:  "Пропущено значений: %d — из сообщений, которые дают модели указания (попытка prompt injection?).",
	},
	"es": {
		Context: "Contexto del cliente", Facts: "Datos clave", Questions: "Preguntas abiertas", NextStep: "Próximo paso", Sentiment: "Actitud",
		Kinds:      map[string]string{KindBudget: "Presupuesto", KindTimeline: "Plazos", KindDecisionMaker: "Decide", KindObjection: "Objeción", KindOther: "Otro"},
		Sentiments: map[string]string{"positive": "positiva", "neutral": "neutral", "negative": "negativa"},
		Changed:    "Qué cambió desde %s", Was: "antes", New: "nuevo",
		Unverified: "Sin verificar (el mensaje citado no está en el chat; no se escribe en el campo)", NotInChat: "cita",
		None:     "ninguna",
		Fallback: "Resumen en texto plano: la respuesta estructurada del modelo fue inválida dos veces.",
		Ignored:  "Ignorado: %d valor(es) de mensajes que dan instrucciones al modelo (¿inyección de prompt?).",
	},
	"pt": {
		Context: "Contexto do cliente", Facts: "Fatos-chave", Questions: "Perguntas em aberto", NextStep: "Próximo passo", Sentiment: "Sentimento",
		Kinds:      map[string]string{KindBudget: "Orçamento", KindTimeline: "Prazo", KindDecisionMaker: "Decisor", KindObjection: "Objeção", KindOther: "Outro"},
		Sentiments: map[string]string{"positive": "positivo", "neutral": "neutro", "negative": "negativo"},
		Changed:    "O que mudou desde %s", Was: "antes", New: "novo",
		Unverified: "Não verificado (a mensagem citada não está no chat; não gravado no campo)", NotInChat: "cita",
		None:     "nenhuma",
		Fallback: "Resumo em texto simples: a resposta estruturada do modelo foi inválida duas vezes.",
		Ignored:  "Ignorado: %d valor(es) de mensagens que dão instruções ao modelo (injeção de prompt?).",
	},
}

// headingsFor returns the labels of a language code; English for the
// languages without a translation.
func headingsFor(lang string) headings {
	if h, ok := headingsByLang[strings.ToLower(lang)]; ok {
		return h
	}
	return headingsByLang["en"]
}

// Rendered is a summary ready for Kommo.
type Rendered struct {
	Summary    *Structured // nil for a plain-text fallback
	Unverified []Fact
	Changes    []Change
	// Since is when the previous summary was made (the "What changed since"
	// date); zero when there was none.
	Since    time.Time
	Location *time.Location
	// Fallback is the plain text used when the structured answer failed;
	// Lang then picks the headings.
	Fallback string
	Lang     string
	// Ignored counts the values dropped because they came from messages
	// that give the model instructions.
	Ignored int
}

// Note is the note body: "What changed since dd.mm" first (when there was a
// previous summary and something changed), the summary, the unverified
// facts last. NoteText adds the header.
func (r Rendered) Note() string {
	if r.Summary == nil {
		return headingsFor(r.Lang).Fallback + "\n\n" + r.Fallback
	}
	h := headingsFor(r.Summary.Language)
	loc := r.Location
	if loc == nil {
		loc = time.UTC
	}
	var b strings.Builder
	if !r.Since.IsZero() && len(r.Changes) > 0 {
		b.WriteString(strings.Replace(h.Changed, "%s", r.Since.In(loc).Format("02.01"), 1) + ":\n")
		for _, c := range r.Changes {
			label := h.label(c.Label)
			if c.Label == "sentiment" {
				c.Old, c.New = h.Sentiments[c.Old], h.Sentiments[c.New]
			}
			switch {
			case c.Old == "":
				b.WriteString("+ " + label + " (" + h.New + "): " + c.New + "\n")
			default:
				b.WriteString("~ " + label + ": " + c.New + " (" + h.Was + ": " + c.Old + ")\n")
			}
		}
		b.WriteString("\n")
	}
	b.WriteString(r.body(h, true))
	if r.Ignored > 0 {
		b.WriteString("\n\n" + strings.Replace(h.Ignored, "%d", strconv.Itoa(r.Ignored), 1))
	}
	if len(r.Unverified) > 0 {
		b.WriteString("\n\n" + h.Unverified + ":")
		for _, f := range r.Unverified {
			b.WriteString("\n- " + h.label(f.Kind) + ": " + f.Value + " (" + h.NotInChat + " " + f.At + ")")
		}
	}
	return b.String()
}

// Field is the text of the lead's summary field: the verified summary
// alone, compact, cut to maxRunes (<= 0: no cut).
func (r Rendered) Field(maxRunes int) string {
	if r.Summary == nil {
		return Cut(headingsFor(r.Lang).Fallback+"\n"+r.Fallback, maxRunes)
	}
	return Cut(r.body(headingsFor(r.Summary.Language), false), maxRunes)
}

func (h headings) label(kind string) string {
	switch kind {
	case "next_step":
		return h.NextStep
	case "sentiment":
		return h.Sentiment
	}
	if l, ok := h.Kinds[kind]; ok {
		return l
	}
	return kind
}

// body renders the summary; withTimes adds each fact's source time.
func (r Rendered) body(h headings, withTimes bool) string {
	s := r.Summary
	var b strings.Builder
	if s.ClientContext != "" {
		b.WriteString(h.Context + ": " + s.ClientContext + "\n")
	}
	b.WriteString(h.Facts + ":")
	n := 0
	for _, kind := range FactKinds {
		for _, f := range s.Facts {
			if f.Kind != kind {
				continue
			}
			n++
			b.WriteString("\n- " + h.label(kind) + ": " + f.Value)
			if withTimes {
				b.WriteString(" (" + f.At + ")")
			}
		}
	}
	if n == 0 {
		b.WriteString(" " + h.None)
	}
	b.WriteString("\n" + h.Questions + ":")
	if len(s.OpenQuestions) == 0 {
		b.WriteString(" " + h.None)
	}
	for _, q := range s.OpenQuestions {
		b.WriteString("\n- " + q)
	}
	b.WriteString("\n" + h.NextStep + ": ")
	switch {
	case s.NextStep.Action == "":
		b.WriteString(h.None)
	case s.NextStep.Date != "":
		b.WriteString(s.NextStep.Action + " — " + s.NextStep.Date)
	default:
		b.WriteString(s.NextStep.Action)
	}
	if sent := h.Sentiments[s.Sentiment]; sent != "" {
		b.WriteString("\n" + h.Sentiment + ": " + sent)
	}
	return b.String()
}
