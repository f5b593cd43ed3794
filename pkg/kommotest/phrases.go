package kommotest

import (
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
)

// A talk is one synthetic B2B sales conversation: a client asks about a product,
// a manager answers, and they go through budget, timeline, decision maker,
// objections, delivery and discounts in a random order. The placeholders keep
// their values for the whole chat, so the facts in it are consistent.

type topic int

const (
	tGreet topic = iota
	tNeed
	tBudget
	tTimeline
	tDecision
	tObjection
	tDelivery
	tDiscount
	tFollowup
	tThanks
	nTopics
)

// topicWeights is how often the client brings a topic up after the greeting.
var topicWeights = [nTopics]int{0, 10, 14, 12, 9, 10, 8, 10, 12, 8}

type lines struct{ client, manager []string }

type language struct {
	companies     []string
	products      []string // what the client buys, plural nominative
	productTitles []string // the same, as a lead title
	names         []string
	cities        []string
	dates         []string
	budgets       []string
	discounts     []string
	days          []string
	captions      []string
	managerNotes  []string
	phonePrefix   string
	topics        [nTopics]lines
}

func (l *language) phone(r *mrand.Rand) string {
	return fmt.Sprintf("%s%03d%07d", l.phonePrefix, 900+r.IntN(99), r.IntN(10000000))
}

type talk struct {
	r     *mrand.Rand
	lang  *language
	repl  *strings.Replacer
	topic topic
	last  [2]string // the previous line of each side, not to be said twice in a row
}

func newTalk(r *mrand.Rand, lang *language, client, manager, company string, product int) *talk {
	pick := func(list []string) string { return list[r.IntN(len(list))] }
	first := func(name string) string { f, _, _ := strings.Cut(name, " "); return f }
	return &talk{r: r, lang: lang, repl: strings.NewReplacer(
		"{client}", first(client),
		"{manager}", first(manager),
		"{company}", company,
		"{product}", lang.products[product],
		"{qty}", fmt.Sprint((r.IntN(40)+1)*5),
		"{budget}", pick(lang.budgets),
		"{price}", pick(lang.budgets),
		"{date}", pick(lang.dates),
		"{discount}", pick(lang.discounts),
		"{days}", pick(lang.days),
		"{city}", pick(lang.cities),
	)}
}

func (t *talk) line(k int, fromClient bool) string {
	switch {
	case k == 0:
		t.topic = tGreet
	case fromClient:
		t.topic = t.nextTopic()
	case t.topic == tGreet && k > 1:
		t.topic = tNeed
	}
	ls := t.lang.topics[t.topic]
	list := ls.manager
	if fromClient {
		list = ls.client
	}
	side := 0
	if fromClient {
		side = 1
	}
	line := list[t.r.IntN(len(list))]
	if line == t.last[side] {
		line = list[(slices.Index(list, line)+1)%len(list)]
	}
	t.last[side] = line
	return t.repl.Replace(line)
}

func (t *talk) nextTopic() topic {
	total := 0
	for _, w := range topicWeights {
		total += w
	}
	n := t.r.IntN(total)
	for tp, w := range topicWeights {
		if n < w {
			return topic(tp)
		}
		n -= w
	}
	return tFollowup
}

// media turns m into an attachment message, the way amojo reports them.
func (t *talk) media(m *message) {
	r := t.r
	base := "https://amojo.kommo.com/attachments/" + officialAmojoID + "/" + hexFrom(r, 32)
	caption := func(p float64) {
		if r.Float64() < p {
			m.text = t.lang.captions[r.IntN(len(t.lang.captions))]
		}
	}
	switch n := r.IntN(100); {
	case n < 25:
		m.typ, m.fileName = "picture", fmt.Sprintf("IMG_%04d.jpg", r.IntN(10000))
		m.media, m.thumbnail = base+"/"+m.fileName, base+"/thumb.jpg"
		m.fileSize = int64(r.IntN(3_000_000) + 80_000)
		caption(0.5)
	case n < 50:
		m.typ, m.fileName = "file", "offer.pdf"
		m.media = base + "/offer.pdf"
		m.fileSize = int64(r.IntN(900_000) + 40_000)
		caption(0.5)
	case n < 70:
		m.typ, m.fileName = "voice", "voice.ogg"
		m.media = base + "/voice.ogg"
		m.fileSize = int64(r.IntN(400_000) + 8_000)
	case n < 80:
		m.typ, m.fileName = "video", "video.mp4"
		m.media, m.thumbnail = base+"/video.mp4", base+"/thumb.jpg"
		m.fileSize = int64(r.IntN(20_000_000) + 500_000)
		caption(0.3)
	case n < 90:
		m.typ = "location"
		m.lat = 40 + r.Float64()*20
		m.lon = 10 + r.Float64()*50
	case n < 95:
		// As many draws as a sticker, so that adding contacts left the rest
		// of the synthetic account as it was.
		x := r.IntN(60_000)
		m.typ = "contact"
		m.contactName = t.lang.names[x%len(t.lang.names)]
		m.contactPhone = fmt.Sprintf("+7 9%02d %03d-%02d-%02d", x%100, x%1000, (x/7)%100, (x/13)%100)
	default:
		m.typ = "sticker"
		m.media = base + "/sticker.webp"
		m.fileSize = int64(r.IntN(60_000) + 5_000)
	}
}

var langRU = &language{
	companies: []string{"ООО «Вектор»", "АО «СеверСталь-Сервис»", "ООО «Ромашка»", "ГК «Альфа-Логистик»",
		"ООО «ТехноПарк»", "ИП Кузнецов", "ООО «Медиа Групп»", "АО «Уралхим-Трейд»"},
	products: []string{"серверы Dell PowerEdge", "лицензии CRM", "офисные кресла", "промышленные принтеры",
		"ноутбуки Lenovo ThinkPad", "камеры видеонаблюдения", "складские стеллажи", "кофемашины для офиса"},
	productTitles: []string{"серверы Dell", "лицензии CRM", "офисная мебель", "принтеры для цеха",
		"ноутбуки для отдела продаж", "видеонаблюдение на складе", "стеллажи для склада", "кофемашины"},
	names: []string{"Алексей Петров", "Ирина Соколова", "Сергей Кузнецов", "Ольга Морозова", "Михаил Лебедев",
		"Наталья Козлова", "Павел Новиков", "Екатерина Павлова", "Андрей Фёдоров", "Татьяна Орлова"},
	cities:      []string{"Москва", "Казань", "Екатеринбург", "Новосибирск", "Санкт-Петербург"},
	dates:       []string{"к 15 марта", "до конца месяца", "к началу квартала", "до 1 декабря", "в течение двух недель"},
	budgets:     []string{"1,2 млн ₽", "850 тыс. ₽", "2,5 млн ₽", "400 тыс. ₽", "3 млн ₽"},
	discounts:   []string{"5%", "7%", "10%", "12%", "15%"},
	days:        []string{"5", "7", "10", "14", "21"},
	captions:    []string{"Вот наше коммерческое предложение", "Фото с объекта", "Посмотрите, пожалуйста", "Спецификация во вложении"},
	phonePrefix: "+7",
	managerNotes: []string{"Позвонила клиенту, обсудили условия поставки.", "Клиент просил перезвонить после обеда.",
		"Отправили КП на почту, ждём обратной связи.", "Встреча в офисе клиента перенесена на следующую неделю."},
	topics: [nTopics]lines{
		tGreet: {
			client: []string{
				"Здравствуйте! Нас интересуют {product}, нужно около {qty} шт.",
				"Добрый день. Подскажите, есть ли в наличии {product}? Нужно {qty} шт.",
				"Здравствуйте, это {client} из {company}. Хотим закупить {product}.",
				"Добрый день! Увидели ваше предложение, интересуют {product}.",
			},
			manager: []string{
				"Здравствуйте, {client}! Меня зовут {manager}, я ваш менеджер. Для каких задач нужны {product}?",
				"Добрый день! Да, {product} есть в наличии. Сколько нужно и в какие сроки?",
				"{client}, добрый день! Спасибо за обращение, сейчас всё посчитаю.",
			},
		},
		tNeed: {
			client: []string{
				"Нам нужно оснастить новый офис, примерно {qty} рабочих мест.",
				"Задача — заменить старое оборудование до конца года.",
				"Важно, чтобы гарантия была не меньше 3 лет.",
				"Нужна совместимость с тем, что у нас уже стоит.",
			},
			manager: []string{
				"Задачу поняли. Можем предложить два варианта: базовый и расширенный.",
				"Под ваши задачи подойдёт конфигурация с расширенной гарантией.",
				"Уточните, пожалуйста, нужна ли установка и настройка на месте?",
			},
		},
		tBudget: {
			client: []string{
				"Какой у вас ценник? Наш бюджет — около {budget}.",
				"Бюджет на проект утверждён: {budget}, больше не согласуют.",
				"Сколько будет стоить {qty} шт. с доставкой?",
				"Цена пока выше, чем мы планировали.",
			},
			manager: []string{
				"За {qty} шт. выходит {price} с НДС, доставка включена.",
				"В бюджет {budget} укладываемся, если взять базовую комплектацию.",
				"Отправим расчёт стоимости сегодня до конца дня.",
				"Цена зафиксирована до конца месяца.",
			},
		},
		tTimeline: {
			client: []string{
				"Нам нужно получить всё {date}, это критично.",
				"Какие сроки поставки?",
				"Если не успеете {date}, проект сдвинется на квартал.",
				"Сроки у нас жёсткие, запуск {date}.",
			},
			manager: []string{
				"Срок поставки — {days} рабочих дней после оплаты.",
				"{date} успеваем, если оплата пройдёт на этой неделе.",
				"Часть позиций есть на складе, остальное привезём за {days} дней.",
			},
		},
		tDecision: {
			client: []string{
				"Решение принимает наш директор, я готовлю сравнение предложений.",
				"Финальное слово за финансовым директором, ему нужно КП.",
				"Я согласую с руководством и вернусь к вам.",
				"Закупку утверждает тендерный комитет, заседание в четверг.",
			},
			manager: []string{
				"Можем подготовить презентацию для вашего директора.",
				"Кто ещё участвует в принятии решения? Нужно учесть все требования.",
				"Давайте организуем звонок с руководителем, отвечу на вопросы.",
			},
		},
		tObjection: {
			client: []string{
				"У конкурентов дешевле на 10%, почему у вас дороже?",
				"Сомневаемся насчёт сроков, в прошлый раз поставщик подвёл.",
				"Не уверены, что нам нужна расширенная гарантия.",
				"Условия оплаты не подходят, нужна отсрочка 30 дней.",
			},
			manager: []string{
				"Понимаю. В нашу цену входят гарантия и сервис, у конкурентов это отдельно.",
				"Можем прописать сроки и штрафы за просрочку в договоре.",
				"Отсрочку 30 дней можем дать после первой поставки.",
				"Давайте сравним предложения построчно, поможем разобраться.",
			},
		},
		tDelivery: {
			client: []string{
				"Доставка в г. {city} возможна?",
				"Нужна доставка до склада и разгрузка.",
				"Можно забрать самовывозом?",
			},
			manager: []string{
				"Доставка в г. {city} — {days} дней, транспортная компания за наш счёт.",
				"Да, доставим до склада, разгрузка входит в стоимость.",
				"Самовывоз возможен с нашего склада в Москве.",
			},
		},
		tDiscount: {
			client: []string{
				"Если возьмём {qty} шт., дадите скидку?",
				"Можно скидку {discount}? Тогда подпишем быстрее.",
				"Какие есть скидки при предоплате?",
			},
			manager: []string{
				"Согласовали скидку {discount} при оплате до конца месяца.",
				"При объёме от {qty} шт. скидка {discount}.",
				"Максимум, что можем дать, — {discount}, это уже ниже прайса.",
			},
		},
		tFollowup: {
			client: []string{
				"Получили КП, изучаем.",
				"Когда пришлёте договор?",
				"Пришлите, пожалуйста, счёт на оплату.",
				"Пока тишина от руководства, напишу завтра.",
			},
			manager: []string{
				"{client}, добрый день! Удалось обсудить КП с руководством?",
				"Договор отправили на почту, ждём ваших правок.",
				"Счёт выставлен, срок оплаты — 5 банковских дней.",
				"Напомню о нашем предложении: цена действует до конца месяца.",
			},
		},
		tThanks: {
			client:  []string{"Спасибо, всё понятно.", "Хорошо, договорились.", "Отлично, ждём."},
			manager: []string{"Спасибо! Если будут вопросы — пишите.", "Отлично, тогда готовлю документы.", "Хорошего дня!"},
		},
	},
}

var langEN = &language{
	companies: []string{"Northwind Ltd", "Acme Corp", "Globex GmbH", "Initech LLC",
		"Umbrella Logistics", "Blue Harbor Foods", "Stark Retail", "Contoso BV"},
	products: []string{"Dell PowerEdge servers", "CRM licenses", "office chairs", "industrial printers",
		"Lenovo ThinkPad laptops", "CCTV cameras", "warehouse racks", "office coffee machines"},
	productTitles: []string{"Dell servers", "CRM licenses", "office furniture", "printers for the plant",
		"laptops for sales", "warehouse CCTV", "warehouse racks", "coffee machines"},
	names: []string{"Michael Brown", "Sarah Johnson", "David Wilson", "Laura Martinez", "Robert Taylor",
		"Jessica Lee", "Thomas Anderson", "Olivia Harris", "Daniel White", "Sophie Turner"},
	cities:      []string{"Berlin", "Warsaw", "Austin", "Manchester", "Rotterdam"},
	dates:       []string{"by March 15", "by the end of the month", "before the next quarter", "by December 1", "within two weeks"},
	budgets:     []string{"$25,000", "€40,000", "$120,000", "$8,500", "€75,000"},
	discounts:   []string{"5%", "7%", "10%", "12%", "15%"},
	days:        []string{"5", "7", "10", "14", "21"},
	captions:    []string{"Here is our offer", "Photo from the site", "Please take a look", "Specification attached"},
	phonePrefix: "+1",
	managerNotes: []string{"Called the client, discussed delivery terms.", "Client asked to call back in the afternoon.",
		"Sent the offer by email, waiting for feedback.", "Meeting at the client's office moved to next week."},
	topics: [nTopics]lines{
		tGreet: {
			client: []string{
				"Hi! We are interested in {product}, about {qty} units.",
				"Hello, do you have {product} in stock? We need {qty}.",
				"Hi, this is {client} from {company}. We want to buy {product}.",
				"Good morning! We saw your offer and we're interested in {product}.",
			},
			manager: []string{
				"Hi {client}! I'm {manager}, your account manager. What will you use the {product} for?",
				"Hello! Yes, {product} are in stock. How many do you need and by when?",
				"Good morning {client}, thanks for reaching out, I'll prepare the numbers now.",
			},
		},
		tNeed: {
			client: []string{
				"We are equipping a new office, roughly {qty} workplaces.",
				"We need to replace our old equipment before the end of the year.",
				"A warranty of at least 3 years is important for us.",
				"It has to work with what we already have installed.",
			},
			manager: []string{
				"Got it. I can offer two options: basic and extended.",
				"The configuration with the extended warranty fits your needs.",
				"Do you also need on-site installation and setup?",
			},
		},
		tBudget: {
			client: []string{
				"What is your price? Our budget is around {budget}.",
				"The project budget is approved at {budget}, we can't go higher.",
				"How much would {qty} units cost with delivery?",
				"The price is still higher than we planned.",
			},
			manager: []string{
				"For {qty} units it comes to {price} including VAT and delivery.",
				"We fit into {budget} with the basic configuration.",
				"I'll send you the price breakdown today.",
				"The price is fixed until the end of the month.",
			},
		},
		tTimeline: {
			client: []string{
				"We need everything {date}, that's critical.",
				"What are the delivery times?",
				"If you can't make it {date}, the project slips a quarter.",
				"Our timeline is tight, the launch is {date}.",
			},
			manager: []string{
				"Delivery takes {days} business days after payment.",
				"We can make it {date} if the payment goes through this week.",
				"Part of it is in stock, the rest arrives within {days} days.",
			},
		},
		tDecision: {
			client: []string{
				"Our director makes the decision, I'm preparing a comparison of offers.",
				"The CFO has the final word, he needs a formal proposal.",
				"I'll check with management and get back to you.",
				"The purchasing committee approves it, they meet on Thursday.",
			},
			manager: []string{
				"I can prepare a short presentation for your director.",
				"Who else is involved in the decision? I want to cover every requirement.",
				"Let's set up a call with your manager, I'll answer the questions.",
			},
		},
		tObjection: {
			client: []string{
				"A competitor is 10% cheaper, why is your price higher?",
				"We're worried about the timeline, our last supplier let us down.",
				"Not sure we need the extended warranty.",
				"The payment terms don't work for us, we need net 30.",
			},
			manager: []string{
				"I understand. Our price includes warranty and service, competitors charge extra.",
				"We can put the delivery dates and late penalties in the contract.",
				"We can offer net 30 after the first delivery.",
				"Let's compare the offers line by line, I'll help.",
			},
		},
		tDelivery: {
			client: []string{
				"Can you deliver to {city}?",
				"We need delivery to our warehouse and unloading.",
				"Can we pick it up ourselves?",
			},
			manager: []string{
				"Delivery to {city} takes {days} days, shipping is on us.",
				"Yes, we deliver to the warehouse, unloading is included.",
				"Pickup is possible from our main warehouse.",
			},
		},
		tDiscount: {
			client: []string{
				"If we take {qty} units, can you give a discount?",
				"Could you do {discount} off? Then we sign faster.",
				"Are there discounts for prepayment?",
			},
			manager: []string{
				"I got a {discount} discount approved if you pay by the end of the month.",
				"From {qty} units the discount is {discount}.",
				"{discount} is the most I can do, that's already below list price.",
			},
		},
		tFollowup: {
			client: []string{
				"We received the proposal, reviewing it now.",
				"When will you send the contract?",
				"Please send the invoice.",
				"No answer from management yet, I'll write tomorrow.",
			},
			manager: []string{
				"Hi {client}! Did you manage to discuss the proposal with your team?",
				"I've emailed the contract, waiting for your comments.",
				"The invoice is issued, payment is due in 5 business days.",
				"A quick reminder: the price holds until the end of the month.",
			},
		},
		tThanks: {
			client:  []string{"Thanks, that's clear.", "OK, deal.", "Great, we'll wait."},
			manager: []string{"Thank you! Write any time if you have questions.", "Great, I'll prepare the documents.", "Have a nice day!"},
		},
	},
}
