package kommohook

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

// incomingBody is the incoming message of kommo-webhooks.md §7.2, byte for byte.
const incomingBody = "account%5Bsubdomain%5D=acme&account%5Bid%5D=31257294&account%5B_links%5D%5Bself%5D=https%3A%2F%2Facme.kommo.com&message%5Badd%5D%5B0%5D%5Bid%5D=a0ce13c7-4825-4ecc-9dc0-b35c49b86db4&message%5Badd%5D%5B0%5D%5Bchat_id%5D=54caee02-e383-46d8-a9b7-1fb43f07cffe&message%5Badd%5D%5B0%5D%5Btalk_id%5D=100&message%5Badd%5D%5B0%5D%5Bcontact_id%5D=93589657&message%5Badd%5D%5B0%5D%5Btext%5D=Hola%2C+%C2%BFprecio%3F&message%5Badd%5D%5B0%5D%5Bcreated_at%5D=1767225600&message%5Badd%5D%5B0%5D%5Belement_type%5D=2&message%5Badd%5D%5B0%5D%5Bentity_type%5D=lead&message%5Badd%5D%5B0%5D%5Belement_id%5D=27754599&message%5Badd%5D%5B0%5D%5Bentity_id%5D=27754599&message%5Badd%5D%5B0%5D%5Btype%5D=incoming&message%5Badd%5D%5B0%5D%5Bmessage_type%5D=text&message%5Badd%5D%5B0%5D%5Bauthor%5D%5Bid%5D=1db2f5cc-aea4-4f96-8d4f-a256ead5b7b0&message%5Badd%5D%5B0%5D%5Bauthor%5D%5Btype%5D=external&message%5Badd%5D%5B0%5D%5Bauthor%5D%5Bname%5D=Oleg&message%5Badd%5D%5B0%5D%5Borigin%5D=waba"

// lines turns "k=v" lines (decoded keys, as the facts page shows them) into a form.
func lines(s string) url.Values {
	v := url.Values{}
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		k, val, _ := strings.Cut(strings.TrimSpace(l), "=")
		v.Add(k, val)
	}
	return v
}

const outgoingLines = `
account[subdomain]=acme
account[id]=31257294
account[_links][self]=https://acme.kommo.com
outgoing_message[add][0][id]=5b7f0c1e-2d7a-4f9e-9a51-0c1d2e3f4a5b
outgoing_message[add][0][chat_id]=54caee02-e383-46d8-a9b7-1fb43f07cffe
outgoing_message[add][0][talk_id]=100
outgoing_message[add][0][contact_id]=93589657
outgoing_message[add][0][text]=Claro, el precio es 120 USD
outgoing_message[add][0][created_at]=1767225660
outgoing_message[add][0][message_type]=text
outgoing_message[add][0][type]=outgoing
outgoing_message[add][0][origin]=waba
outgoing_message[add][0][author][id]=9e1d0000-0000-4000-8000-000000000000
outgoing_message[add][0][author][type]=internal
outgoing_message[add][0][author][user_id]=10004026
outgoing_message[add][0][author][name]=Ventas Tuco&amp;Tico
outgoing_message[add][0][recipient][id]=1db2f5cc-aea4-4f96-8d4f-a256ead5b7b0
outgoing_message[add][0][recipient][type]=external
outgoing_message[add][0][element_id]=27754599`

const talkLines = `
account[subdomain]=acme
account[id]=31257294
talk[update][0][talk_id]=100
talk[update][0][created_at]=1767225600
talk[update][0][updated_at]=1767229200
talk[update][0][rate]=0
talk[update][0][contact_id]=93589657
talk[update][0][chat_id]=54caee02-e383-46d8-a9b7-1fb43f07cffe
talk[update][0][entity_id]=27754599
talk[update][0][entity_type]=lead
talk[update][0][is_in_work]=0
talk[update][0][is_read]=1
talk[update][0][origin]=waba`

func TestParseDocumentedBodies(t *testing.T) {
	form, err := url.ParseQuery(incomingBody)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		form url.Values
		want *Delivery
	}{
		{"incoming", form, &Delivery{
			AccountID: 31257294, Subdomain: "acme", AccountLink: "https://acme.kommo.com",
			Messages: []Message{{
				ID: "a0ce13c7-4825-4ecc-9dc0-b35c49b86db4", ChatID: "54caee02-e383-46d8-a9b7-1fb43f07cffe",
				TalkID: 100, ContactID: 93589657, LeadID: 27754599, Type: "text", Text: "Hola, ¿precio?",
				CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
				AuthorID:  "1db2f5cc-aea4-4f96-8d4f-a256ead5b7b0", AuthorType: "external", AuthorName: "Oleg",
				Origin: "waba",
			}},
		}},
		{"outgoing", lines(outgoingLines), &Delivery{
			AccountID: 31257294, Subdomain: "acme", AccountLink: "https://acme.kommo.com",
			Messages: []Message{{
				ID: "5b7f0c1e-2d7a-4f9e-9a51-0c1d2e3f4a5b", ChatID: "54caee02-e383-46d8-a9b7-1fb43f07cffe",
				TalkID: 100, ContactID: 93589657, LeadID: 27754599, Outgoing: true, Type: "text",
				Text: "Claro, el precio es 120 USD", CreatedAt: time.Unix(1767225660, 0).UTC(),
				AuthorID: "9e1d0000-0000-4000-8000-000000000000", AuthorType: "internal",
				AuthorName: "Ventas Tuco&Tico", AuthorUserID: 10004026,
				RecipientID: "1db2f5cc-aea4-4f96-8d4f-a256ead5b7b0", Origin: "waba",
			}},
		}},
		{"talk close", lines(talkLines), &Delivery{
			AccountID: 31257294, Subdomain: "acme",
			Talks: []Talk{{
				Action: "update", TalkID: 100, ChatID: "54caee02-e383-46d8-a9b7-1fb43f07cffe",
				ContactID: 93589657, LeadID: 27754599, InWork: false, Read: true,
				CreatedAt: time.Unix(1767225600, 0).UTC(), UpdatedAt: time.Unix(1767229200, 0).UTC(), Origin: "waba",
			}},
		}},
		{"talk add capture without type or is_in_work", lines(`
account[subdomain]=analisemacro
account[id]=1
talk[add][0][talk_id]=106564
talk[add][0][chat_id]=c1
talk[add][0][contact_id]=28771643
talk[add][0][entity_id]=23711835
talk[add][0][origin]=waba
talk[add][0][is_read]=0`), &Delivery{
			AccountID: 1, Subdomain: "analisemacro",
			Talks: []Talk{{Action: "add", TalkID: 106564, ChatID: "c1", ContactID: 28771643,
				LeadID: 23711835, InWork: true, Origin: "waba"}},
		}},
		{"the official amoCRM example: a contact chat without talk or contact ids", lines(`
account[id]=5
message[add][0][id]=amo12345-31ed-41af-am23-conf1504
message[add][0][chat_id]=2f61amo-c914-r429-m4f1-4005c15o5n0f
message[add][0][author][id]=7a389amo2-cr65-46m6-8216-06f39w12q3d8s
message[add][0][author][name]=Ivan Ivanov
message[add][0][text]=Hello World!
message[add][0][created_at]=1580116931
message[add][0][origin]=telegram
message[add][0][attachment][type]=picture
message[add][0][attachment][link]=https://amojo.amocrm.ru/attachments/db6a2cea/cc9a7fca/amocrm.gif
message[add][0][element_id]=123456789
message[add][0][element_type]=1`), &Delivery{AccountID: 5, Messages: []Message{{
			ID: "amo12345-31ed-41af-am23-conf1504", ChatID: "2f61amo-c914-r429-m4f1-4005c15o5n0f", ContactID: 123456789,
			Type: "picture", Text: "Hello World!", CreatedAt: time.Unix(1580116931, 0).UTC(),
			AuthorID: "7a389amo2-cr65-46m6-8216-06f39w12q3d8s", AuthorName: "Ivan Ivanov", Origin: "telegram",
			AttachmentType: "picture", AttachmentLink: "https://amojo.amocrm.ru/attachments/db6a2cea/cc9a7fca/amocrm.gif",
		}}}},
		{"empty body with account only", lines("account[id]=5"), &Delivery{AccountID: 5}},
		{"other entities are ignored", lines(`
account[id]=5
leads[status][0][id]=1
leads[status][0][custom_fields][0][values][0][value]=x
unsorted[add][0][uid]=u
contacts[update][0][id]=3
message[update][0][id]=ignored`), &Delivery{AccountID: 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.form)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseBatchOrderAndEntities(t *testing.T) {
	form := lines(`
account[id]=7
message[add][10][id]=m10
message[add][10][chat_id]=c
message[add][10][created_at]=1700000010
message[add][2][id]=m2
message[add][2][chat_id]=c
message[add][2][created_at]=1700000002
message[add][2][element_type]=1
message[add][2][entity_type]=contact
message[add][2][element_id]=44
message[add][2][entity_id]=44
message[add][2][message_type]=picture
message[add][2][attachment][type]=picture
message[add][2][attachment][link]=https://amojo.kommo.com/v2/a/attachments/u/file.jpeg
message[add][2][attachment][file_name]=file.jpeg
outgoing_message[add][1][id]=o1
outgoing_message[add][1][chat_id]=c
outgoing_message[add][1][created_at]=1700000001
outgoing_message[add][0][id]=o0
outgoing_message[add][0][chat_id]=c
outgoing_message[add][0][created_at]=1700000000
outgoing_message[add][0][element_id]=99
talk[update][0][talk_id]=3
talk[update][0][is_in_work]=1
talk[add][0][talk_id]=3
talk[add][0][entity_type]=customer
talk[add][0][entity_id]=12`)
	d, err := Parse(form)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range d.Messages {
		ids = append(ids, m.ID)
	}
	if got := strings.Join(ids, ","); got != "m2,m10,o0,o1" {
		t.Errorf("message order %s, want m2,m10,o0,o1", got)
	}
	m2 := d.Messages[0]
	if m2.LeadID != 0 || m2.Type != "picture" || m2.AttachmentName != "file.jpeg" || m2.AttachmentType != "picture" ||
		m2.AttachmentLink == "" || m2.Outgoing {
		t.Errorf("contact chat picture parsed as %+v", m2)
	}
	if d.Messages[1].Type != "text" {
		t.Errorf("absent message_type gave %q, want text", d.Messages[1].Type)
	}
	if !d.Messages[2].Outgoing || d.Messages[2].LeadID != 99 || d.Messages[3].LeadID != 0 {
		t.Errorf("outgoing parsed as %+v / %+v", d.Messages[2], d.Messages[3])
	}
	if len(d.Talks) != 2 || d.Talks[0].Action != "add" || d.Talks[0].LeadID != 0 ||
		d.Talks[1].Action != "update" || !d.Talks[1].InWork {
		t.Errorf("talks parsed as %+v", d.Talks)
	}
}

func TestParseErrors(t *testing.T) {
	msg := "account[id]=1\nmessage[add][0][id]=m\nmessage[add][0][chat_id]=c\nmessage[add][0][created_at]=1700000000\n"
	tests := []struct {
		name, body, key, problem string
	}{
		{"no account", "message[add][0][id]=m", "account[id]", "required"},
		{"account id zero", "account[id]=0", "account[id]", "not a positive integer"},
		{"account id text", "account[id]=acme", "account[id]", "not a positive integer"},
		{"unclosed bracket", msg + "message[add][0=x", "message[add][0", "not a bracket key: unclosed ["},
		{"text after bracket", msg + "leads[status]x[0]=1", "leads[status]x[0]", "not a bracket key: text after ]"},
		{"close before open", msg + "a]b=1", "a]b", "not a bracket key: ] before ["},
		{"empty name", msg + "[a]=1", "[a]", "not a bracket key: the name is empty"},
		{"nested open", msg + "leads[a[b]]=1", "leads[a[b]]", "not a bracket key: [ inside brackets"},
		{"index not a number", msg + "message[add][x][id]=m", "message[add][x][id]", `index "x" is not a number`},
		{"negative index", msg + "talk[update][-1][talk_id]=1", "talk[update][-1][talk_id]", `index "-1" is not a number`},
		{"leading zero index", msg + "message[add][01][id]=m", "message[add][01][id]", `index "01" is not a number`},
		{"no field", msg + "message[add][1]=m", "message[add][1]", "want message[add][N][field]"},
		{"no action", msg + "talk=1", "talk", "talk needs an action"},
		{"no id", "account[id]=1\nmessage[add][0][chat_id]=c\nmessage[add][0][created_at]=1700000000", "message[add][0][id]", "required"},
		{"no chat", "account[id]=1\nmessage[add][0][id]=m\nmessage[add][0][created_at]=1700000000", "message[add][0][chat_id]", "required"},
		{"no time", "account[id]=1\nmessage[add][0][id]=m\nmessage[add][0][chat_id]=c", "message[add][0][created_at]", "required"},
		{"bad time", "account[id]=1\nmessage[add][0][id]=m\nmessage[add][0][chat_id]=c\nmessage[add][0][created_at]=yesterday", "message[add][0][created_at]", "not a unix time"},
		{"milliseconds", "account[id]=1\nmessage[add][0][id]=m\nmessage[add][0][chat_id]=c\nmessage[add][0][created_at]=1767225600000", "message[add][0][created_at]", "not a unix time"},
		{"bad talk id in message", msg + "message[add][0][talk_id]=abc", "message[add][0][talk_id]", "not a non-negative integer"},
		{"bad user id", "account[id]=1\noutgoing_message[add][3][id]=m\noutgoing_message[add][3][chat_id]=c\noutgoing_message[add][3][created_at]=1700000000\noutgoing_message[add][3][author][user_id]=x", "outgoing_message[add][3][author][user_id]", "not a non-negative integer"},
		{"talk without id", msg + "talk[update][0][is_in_work]=0", "talk[update][0][talk_id]", "required"},
		{"talk in work garbage", msg + "talk[update][0][talk_id]=1\ntalk[update][0][is_in_work]=yes", "talk[update][0][is_in_work]", "not 0 or 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(lines(tt.body))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *ParseError", err)
			}
			if pe.Key != tt.key || pe.Problem != tt.problem {
				t.Errorf("got key %q problem %q, want %q %q", pe.Key, pe.Problem, tt.key, tt.problem)
			}
			if want := "webhook: " + tt.key + ": " + tt.problem; err.Error() != want {
				t.Errorf("Error() = %q, want %q", err.Error(), want)
			}
		})
	}
}

func TestParseOddButValid(t *testing.T) {
	d, err := Parse(lines(`
account[id]=1
message[add][0][id]=m
message[add][0][chat_id]=c
message[add][0][created_at]=1700000000
message[add][0][type]=outgoing
message[add][0][entity_type]=leads
message[add][0][entity_id]=12
message[add][0][talk_id]=
message[add][0][author][name]=A &lt;b&gt; &amp;amp;`))
	if err != nil {
		t.Fatal(err)
	}
	m := d.Messages[0]
	// type=outgoing under message[add] has never been seen, but is taken at its word.
	if !m.Outgoing || m.LeadID != 12 || m.TalkID != 0 || m.AuthorName != "A <b> &amp;" {
		t.Errorf("parsed %+v", m)
	}
}

func TestParseRepeatedKeyKeepsLast(t *testing.T) {
	v := lines("account[id]=1")
	v.Add("account[id]", "2")
	d, err := Parse(v)
	if err != nil || d.AccountID != 2 {
		t.Fatalf("got %+v, %v; want account 2 as PHP would read it", d, err)
	}
}

// sample is a delivery that uses every field Encode writes.
func sample() *Delivery {
	at := time.Unix(1767225600, 0).UTC()
	return &Delivery{
		AccountID: 31257294, Subdomain: "acme", AccountLink: "https://acme.kommo.com",
		Messages: []Message{
			{ID: "m1", ChatID: "c1", TalkID: 100, ContactID: 5, LeadID: 7, Type: "text", Text: "Hola <b>&amp;",
				CreatedAt: at, AuthorID: "a1", AuthorType: "external", AuthorName: `Tuco&Tico "<x>"`, Origin: "waba"},
			{ID: "m2", ChatID: "c2", TalkID: 101, ContactID: 6, Type: "picture", CreatedAt: at.Add(time.Second),
				AuthorID: "a2", AuthorType: "external", AuthorName: "Олег", AttachmentType: "picture",
				AttachmentName: "file.jpeg", AttachmentLink: "https://amojo.kommo.com/v2/x/attachments/y/file.jpeg", Origin: "telegram"},
			{ID: "o1", ChatID: "c1", TalkID: 100, ContactID: 5, LeadID: 7, Outgoing: true, Type: "text", Text: "Claro",
				CreatedAt: at.Add(time.Minute), AuthorID: "u1", AuthorType: "internal", AuthorName: "Ventas Tuco&Tico",
				AuthorUserID: 10004026, RecipientID: "a1", Origin: "waba"},
			{ID: "o2", ChatID: "c1", TalkID: 100, ContactID: 5, Outgoing: true, Type: "text", Text: "bot",
				CreatedAt: at.Add(2 * time.Minute), AuthorID: "b1", AuthorType: "internal", AuthorName: "Salesbot",
				RecipientID: "a1", Origin: "waba"},
		},
		Talks: []Talk{
			{Action: "add", TalkID: 100, ChatID: "c1", ContactID: 5, LeadID: 7, InWork: true, CreatedAt: at, UpdatedAt: at, Origin: "waba"},
			{Action: "update", TalkID: 100, ChatID: "c1", ContactID: 5, LeadID: 7, InWork: false, Read: true,
				CreatedAt: at, UpdatedAt: at.Add(time.Hour), Origin: "waba"},
		},
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	d := sample()
	form := Encode(d)
	// Through the wire format, not just the map.
	back, err := url.ParseQuery(form.Encode())
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(back)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, d) {
		t.Errorf("round trip\ngot  %+v\nwant %+v", got, d)
	}
}

func TestEncodeKeySets(t *testing.T) {
	form := Encode(sample())
	has := func(k, v string) {
		t.Helper()
		if got, ok := form[k]; !ok || got[0] != v {
			t.Errorf("%s = %q (present %v), want %q", k, got, ok, v)
		}
	}
	absent := func(k string) {
		t.Helper()
		if _, ok := form[k]; ok {
			t.Errorf("%s present, want absent", k)
		}
	}
	has("account[_links][self]", "https://acme.kommo.com")
	has("message[add][0][type]", "incoming")
	has("message[add][0][entity_type]", "lead")
	has("message[add][0][element_type]", "2")
	has("message[add][0][entity_id]", "7")
	has("message[add][0][author][name]", "Tuco&amp;Tico &#34;&lt;x&gt;&#34;")
	has("message[add][1][entity_type]", "contact")
	has("message[add][1][element_id]", "6")
	has("message[add][1][text]", "")
	has("outgoing_message[add][0][type]", "outgoing")
	has("outgoing_message[add][0][element_id]", "7")
	has("outgoing_message[add][0][author][user_id]", "10004026")
	has("outgoing_message[add][0][recipient][type]", "external")
	has("outgoing_message[add][1][author][user_id]", "0")
	absent("outgoing_message[add][0][entity_type]")
	absent("outgoing_message[add][1][element_id]")
	absent("message[add][2][id]") // outgoing never under message[add]
	has("talk[add][0][is_in_work]", "1")
	has("talk[update][0][is_in_work]", "0")
	has("talk[update][0][is_read]", "1")
	has("talk[update][0][rate]", "0")
	has("talk[update][0][entity_type]", "lead")

	// The documented incoming body and Encode agree on every key and value.
	doc, _ := url.ParseQuery(incomingBody)
	d, err := Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	if got := Encode(d); !reflect.DeepEqual(got, doc) {
		t.Errorf("Encode of the documented body\ngot  %v\nwant %v", got, doc)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(incomingBody)
	f.Add(Encode(sample()).Encode())
	f.Add(lines(outgoingLines).Encode())
	f.Add(lines(talkLines).Encode())
	f.Add("account[id]=1&message[add][0=x")
	f.Add("account[id]=1&leads[a[b]]=1&talk[update][9][talk_id]=1&talk[update][9][is_in_work]=0")
	f.Fuzz(func(t *testing.T, body string) {
		form, err := url.ParseQuery(body)
		if err != nil {
			return
		}
		d, err := Parse(form)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			return
		}
		// What Parse accepts, Encode writes and Parse reads back the same way.
		d2, err := Parse(Encode(d))
		if err != nil {
			t.Fatalf("re-parse of Encode(%+v): %v", d, err)
		}
		if !reflect.DeepEqual(Encode(d2), Encode(d)) {
			t.Fatalf("Encode is not stable:\n%v\n%v", Encode(d), Encode(d2))
		}
	})
}
