package summarize

import (
	"strconv"
	"strings"
	"text/template"
	"time"
)

// headings are the labels of a rendered summary in one language.
type headings struct {
	Context, Facts, Questions, NextStep, Sentiment string
	Kinds                                          map[string]string
	Sentiments                                     map[string]string
	Changed, Was, New, Unverified, NotInChat, None string
	Fallback, Ignored, NoChange                    string
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
		NoChange: "nothing new in the key facts, the next step or the sentiment",
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
		NoChange: "ключевые факты, следующий шаг и настрой не изменились",
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
		NoChange: "nada nuevo en los datos clave, el próximo paso ni la actitud",
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
		NoChange: "nada de novo nos fatos-chave, no próximo passo ou no sentimento",
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

// The note and the field are rendered by these templates from a view
// whose labels are already in the summary's language.
var templates = template.Must(template.New("note").Parse(
	`{{- if .Changes}}{{.H.Changed}}:
{{range .Changes}}{{if .Old}}~ {{.Label}}: {{.New}} ({{$.H.Was}}: {{.Old}}){{else}}+ {{.Label}} ({{$.H.New}}): {{.New}}{{end}}
{{end}}
{{else if .NoChange}}{{.NoChange}}

{{end}}{{template "body" .}}
{{- if .Ignored}}

{{.Ignored}}{{end}}
{{- if .Unverified}}

{{.H.Unverified}}:{{range .Unverified}}
- {{.Label}}: {{.Value}} ({{$.H.NotInChat}} {{.At}}){{end}}{{end}}`))

func init() {
	template.Must(templates.New("body").Parse(
		`{{with .Context}}{{$.H.Context}}: {{.}}
{{end}}{{.H.Facts}}:{{range .Facts}}
- {{.Label}}: {{.Value}}{{if $.Times}} ({{.At}}){{end}}{{else}} {{.H.None}}{{end}}
{{.H.Questions}}:{{range .Questions}}
- {{.}}{{else}} {{.H.None}}{{end}}
{{.H.NextStep}}: {{.NextStep}}{{with .Sentiment}}
{{$.H.Sentiment}}: {{.}}{{end}}`))
	template.Must(templates.New("field").Parse(`{{template "body" .}}`))
}

// view is what the templates read.
type view struct {
	H          headings
	Context    string
	Facts      []labelled
	Questions  []string
	NextStep   string
	Sentiment  string
	Times      bool // facts show the time of their message
	Changes    []Change
	NoChange   string // "What changed since dd.mm: nothing ..." when nothing did
	Ignored    string
	Unverified []labelled
}

type labelled struct{ Label, Value, At string }

func (r Rendered) view(times bool) view {
	s := r.Summary
	h := headingsFor(s.Language)
	v := view{H: h, Context: s.ClientContext, Questions: s.OpenQuestions, Sentiment: h.Sentiments[s.Sentiment], Times: times}
	for _, kind := range FactKinds {
		for _, f := range s.Facts {
			if f.Kind == kind {
				v.Facts = append(v.Facts, labelled{h.label(kind), f.Value, f.At})
			}
		}
	}
	switch {
	case s.NextStep.Action == "":
		v.NextStep = h.None
	case s.NextStep.Date != "":
		v.NextStep = s.NextStep.Action + " — " + s.NextStep.Date
	default:
		v.NextStep = s.NextStep.Action
	}
	return v
}

func execute(name string, v view) string {
	var b strings.Builder
	if err := templates.ExecuteTemplate(&b, name, v); err != nil {
		// The templates are fixed and the view holds only strings: an
		// error here is a bug in this file.
		panic("summarize: render " + name + ": " + err.Error())
	}
	return b.String()
}

// Note is the note body: "What changed since dd.mm" first (when there was a
// previous summary and something changed), the summary, the unverified
// facts last. NoteText adds the header.
func (r Rendered) Note() string {
	if r.Summary == nil {
		return headingsFor(r.Lang).Fallback + "\n\n" + r.Fallback
	}
	v := r.view(true)
	h := v.H
	loc := r.Location
	if loc == nil {
		loc = time.UTC
	}
	if !r.Since.IsZero() {
		h.Changed = strings.Replace(h.Changed, "%s", r.Since.In(loc).Format("02.01"), 1)
		if len(r.Changes) == 0 {
			v.NoChange = h.Changed + ": " + h.NoChange + "."
		}
		for _, c := range r.Changes {
			if c.Label == "sentiment" {
				c.Old, c.New = h.Sentiments[c.Old], h.Sentiments[c.New]
			}
			c.Label = h.label(c.Label)
			v.Changes = append(v.Changes, c)
		}
	}
	v.H = h
	if r.Ignored > 0 {
		v.Ignored = strings.Replace(h.Ignored, "%d", strconv.Itoa(r.Ignored), 1)
	}
	for _, f := range r.Unverified {
		v.Unverified = append(v.Unverified, labelled{h.label(f.Kind), f.Value, f.At})
	}
	return execute("note", v)
}

// Field is the text of the lead's summary field: the verified summary
// alone, compact, cut to maxRunes (<= 0: no cut).
func (r Rendered) Field(maxRunes int) string {
	if r.Summary == nil {
		return Cut(headingsFor(r.Lang).Fallback+"\n"+r.Fallback, maxRunes)
	}
	return Cut(execute("field", r.view(false)), maxRunes)
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
