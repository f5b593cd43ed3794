// Package widget packs the Kommo widget that puts our AI reply step in the
// Salesbot designer: manifest.json, script.js, i18n and the logos, zipped
// as Kommo's "Upload widget" takes it.
package widget

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net"
	"net/url"
	"regexp"
	"strings"
	"text/template"
	"time"
)

// HandlerPath is where serve takes Salesbot's widget_request.
const HandlerPath = "/salesbot/widget_request"

// Options say what to pack.
type Options struct {
	// PublicURL is serve's address as Kommo reaches it (serve.public_url),
	// https unless it is a loopback address (tests).
	PublicURL string
	// Code is the widget's code in Kommo, used in the Salesbot designer's
	// logo path; default "kommo_summarizer_bot".
	Code string
	// Version of the widget; default "1.0.0".
	Version string
}

var codeRE = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)

// HandlerURL checks a public URL and returns the widget_request URL on it.
func HandlerURL(public string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(public))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("the public URL %q is not an https URL like https://bot.example.com", public)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return "", fmt.Errorf("the public URL %q must be https: Kommo calls it over the internet", public)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("the public URL %q must have no user, query or fragment", public)
	}
	return strings.TrimRight(u.Scheme+"://"+u.Host+u.EscapedPath(), "/") + HandlerPath, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Pack writes the widget's zip to w.
func Pack(w io.Writer, o Options) error {
	handler, err := HandlerURL(o.PublicURL)
	if err != nil {
		return err
	}
	if o.Code == "" {
		o.Code = "kommo_summarizer_bot"
	}
	if !codeRE.MatchString(o.Code) {
		return fmt.Errorf("the widget code %q must be lower-case letters, digits and _", o.Code)
	}
	if o.Version == "" {
		o.Version = "1.0.0"
	}
	manifest, err := json.MarshalIndent(Manifest(o, handler), "", "  ")
	if err != nil {
		return err
	}
	script, err := Script(handler)
	if err != nil {
		return err
	}
	files := []struct {
		name string
		body []byte
	}{
		{"manifest.json", manifest},
		{"script.js", script},
		{"i18n/en.json", mustJSON(i18nEN)},
		{"i18n/ru.json", mustJSON(i18nRU)},
	}
	for _, l := range Logos {
		b, err := logo(l.W, l.H)
		if err != nil {
			return err
		}
		files = append(files, struct {
			name string
			body []byte
		}{"images/" + l.Name, b})
	}
	zw := zip.NewWriter(w)
	// A fixed time: the same input packs the same bytes.
	mod := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, f := range files {
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: mod})
		if err != nil {
			return err
		}
		if _, err := fw.Write(f.body); err != nil {
			return err
		}
	}
	return zw.Close()
}

// Manifest is the widget's manifest.json: one location, the Salesbot
// designer, whose handler has the service URL as its setting.
func Manifest(o Options, handlerURL string) map[string]any {
	return map[string]any{
		"widget": map[string]any{
			"name": "widget.name", "description": "widget.description", "short_description": "widget.short_description",
			"version": o.Version, "interface_version": 2, "init_once": false, "locale": []string{"en", "ru"},
			"installation": true,
		},
		"locations": []string{"salesbot_designer"},
		"salesbot_designer": map[string]any{
			"logo": "/widgets/" + o.Code + "/images/logo_dp.png",
			"handler_code": map[string]any{
				"name": "salesbot.handler_name",
				"settings": map[string]any{
					"url": map[string]any{"name": "salesbot.url", "type": "url", "default_value": handlerURL, "manual": true},
				},
			},
		},
	}
}

// Logos are the images Kommo's widget scaffold ships, with their sizes.
var Logos = []struct {
	Name string
	W, H int
}{
	{"logo.png", 130, 100}, {"logo_dp.png", 174, 109}, {"logo_main.png", 400, 272},
	{"logo_medium.png", 240, 84}, {"logo_min.png", 84, 84}, {"logo_small.png", 108, 108},
}

// logo draws a speech bubble on our colour.
func logo(w, h int) ([]byte, error) {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	bg := color.RGBA{0x1f, 0x6f, 0xeb, 0xff}
	fg := color.RGBA{0xff, 0xff, 0xff, 0xff}
	bw, bh := w*3/5, h*2/5
	x0, y0 := (w-bw)/2, (h-bh)/2-h/12
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := bg
			inBubble := x >= x0 && x < x0+bw && y >= y0 && y < y0+bh
			inTail := y >= y0+bh && y < y0+bh+h/8 && x >= x0+bw/5 && x < x0+bw/5+(y0+bh+h/8-y)
			if inBubble || inTail {
				c = fg
			}
			img.SetRGBA(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func mustJSON(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err)
	}
	return b
}

var i18nEN = map[string]any{
	"widget": map[string]string{
		"name":              "AI replies (kommo-summarizer)",
		"short_description": "The bot answers clients with an AI that follows your instructions",
		"description":       "Adds an \"AI reply\" step to the Salesbot designer. The step sends the client's message to your kommo-summarizer service, which answers with an LLM following the instructions you edit, and hands the chat to a manager when the client asks for a person. Exits: answered, handed to a manager, no answer.",
	},
	"salesbot": map[string]string{
		"handler_name": "AI reply", "url": "Service URL (kommo-summarizer serve)",
		"exit_success": "Answered", "exit_handoff": "Handed to a manager", "exit_fail": "No answer",
	},
}

var i18nRU = map[string]any{
	"widget": map[string]string{
		"name":              "Ответы ИИ (kommo-summarizer)",
		"short_description": "Бот отвечает клиентам с помощью ИИ по вашим инструкциям",
		"description":       "Добавляет шаг «Ответ ИИ» в конструктор Salesbot. Шаг отправляет сообщение клиента в ваш сервис kommo-summarizer, который отвечает с помощью LLM по вашим инструкциям и передаёт чат менеджеру, когда клиент просит человека. Выходы: ответил, передано менеджеру, нет ответа.",
	},
	"salesbot": map[string]string{
		"handler_name": "Ответ ИИ", "url": "Адрес сервиса (kommo-summarizer serve)",
		"exit_success": "Ответил", "exit_handoff": "Передано менеджеру", "exit_fail": "Нет ответа",
	},
}

// Script is the widget's script.js: an AMD module whose
// onSalesbotDesignerSave returns the bot's steps as a JSON string: a
// widget_request to handlerURL (or the URL set on the step) with the
// client's message, then the exits on {{json.status}}.
func Script(handlerURL string) ([]byte, error) {
	u, err := json.Marshal(handlerURL)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := scriptTmpl.Execute(&b, map[string]string{"URL": string(u)}); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

var scriptTmpl = template.Must(template.New("script").Parse(`// kommo-summarizer: the "AI reply" Salesbot step. Generated by ` + "`kommo-summarizer widget pack`" + `.
define(['jquery'], function ($) {
  'use strict';
  var SERVICE_URL = {{.URL}};

  var CustomWidget = function () {
    var self = this;

    function t(key, fallback) {
      var lang = typeof self.i18n === 'function' ? self.i18n('salesbot') : null;
      return (lang && lang[key]) || fallback;
    }

    this.callbacks = {
      render: function () { return true; },
      init: function () { return true; },
      bind_actions: function () { return true; },
      settings: function () { return true; },
      onSave: function () { return true; },
      destroy: function () {},

      salesbotDesignerSettings: function ($body, renderRow, params) {
        return {
          exits: [
            { code: 'success', title: t('exit_success', 'Answered') },
            { code: 'handoff', title: t('exit_handoff', 'Handed to a manager') },
            { code: 'fail', title: t('exit_fail', 'No answer') }
          ]
        };
      },

      // The step: send the client's message to the service and wait for its
      // continue call, then leave by the exit {{"{{"}}json.status{{"}}"}} names.
      onSalesbotDesignerSave: function (handler_code, params) {
        var url = (params && typeof params.url === 'string' && params.url) || SERVICE_URL;
        var exit = function (status) {
          return {
            handler: 'conditions',
            params: {
              logic: 'and',
              conditions: [{ term1: '{{"{{"}}json.status{{"}}"}}', term2: status, operation: '=' }],
              result: [{ handler: 'exits', params: { value: status } }]
            }
          };
        };
        var steps = [
          {
            question: [
              {
                handler: 'widget_request',
                params: {
                  url: url,
                  data: { message: '{{"{{"}}message_text{{"}}"}}', lead_id: '{{"{{"}}lead.id{{"}}"}}', contact_id: '{{"{{"}}contact.id{{"}}"}}' }
                }
              },
              { handler: 'goto', params: { type: 'question', step: 1 } }
            ]
          },
          {
            question: [
              exit('success'),
              exit('handoff'),
              { handler: 'exits', params: { value: 'fail' } }
            ]
          }
        ];
        return JSON.stringify(steps);
      }
    };
    return this;
  };

  return CustomWidget;
});
`))
