package widget

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func unzip(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	return out
}

func TestPack(t *testing.T) {
	var buf bytes.Buffer
	if err := Pack(&buf, Options{PublicURL: "https://bot.example.com/"}); err != nil {
		t.Fatal(err)
	}
	files := unzip(t, buf.Bytes())
	for _, name := range []string{"manifest.json", "script.js", "i18n/en.json", "i18n/ru.json"} {
		if len(files[name]) == 0 {
			t.Fatalf("%s missing; have %v", name, len(files))
		}
	}
	var m struct {
		Widget struct {
			Name             string `json:"name"`
			InterfaceVersion int    `json:"interface_version"`
		} `json:"widget"`
		Locations        []string `json:"locations"`
		SalesbotDesigner struct {
			Logo        string `json:"logo"`
			HandlerCode struct {
				Name     string                    `json:"name"`
				Settings map[string]map[string]any `json:"settings"`
			} `json:"handler_code"`
		} `json:"salesbot_designer"`
	}
	if err := json.Unmarshal(files["manifest.json"], &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Locations) != 1 || m.Locations[0] != "salesbot_designer" || m.Widget.InterfaceVersion != 2 ||
		m.SalesbotDesigner.HandlerCode.Name != "salesbot.handler_name" ||
		m.SalesbotDesigner.HandlerCode.Settings["url"]["type"] != "url" ||
		m.SalesbotDesigner.HandlerCode.Settings["url"]["default_value"] != "https://bot.example.com/salesbot/widget_request" {
		t.Fatalf("manifest %s", files["manifest.json"])
	}
	if _, ok := files[strings.TrimPrefix(m.SalesbotDesigner.Logo, "/widgets/kommo_summarizer_bot/")]; !ok {
		t.Fatalf("the designer's logo %s is not in the zip", m.SalesbotDesigner.Logo)
	}
	// Every i18n key the manifest names exists in both languages.
	for _, lang := range []string{"en", "ru"} {
		var tr map[string]map[string]string
		if err := json.Unmarshal(files["i18n/"+lang+".json"], &tr); err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{"widget.name", "widget.description", "widget.short_description", "salesbot.handler_name", "salesbot.url"} {
			sec, k, _ := strings.Cut(key, ".")
			if tr[sec][k] == "" {
				t.Errorf("%s: %s missing", lang, key)
			}
		}
	}
	for _, l := range Logos {
		img, err := png.Decode(bytes.NewReader(files["images/"+l.Name]))
		if err != nil {
			t.Fatalf("%s: %v", l.Name, err)
		}
		if b := img.Bounds(); b.Dx() != l.W || b.Dy() != l.H {
			t.Errorf("%s is %dx%d, want %dx%d", l.Name, b.Dx(), b.Dy(), l.W, l.H)
		}
	}

	steps := runSave(t, files["script.js"], `{}`)
	want := `[{"question":[{"handler":"widget_request","params":{"url":"https://bot.example.com/salesbot/widget_request","data":{"message":"{{message_text}}","lead_id":"{{lead.id}}","contact_id":"{{contact.id}}"}}},{"handler":"goto","params":{"type":"question","step":1}}]},{"question":[{"handler":"conditions","params":{"logic":"and","conditions":[{"term1":"{{json.status}}","term2":"success","operation":"="}],"result":[{"handler":"exits","params":{"value":"success"}}]}},{"handler":"conditions","params":{"logic":"and","conditions":[{"term1":"{{json.status}}","term2":"handoff","operation":"="}],"result":[{"handler":"exits","params":{"value":"handoff"}}]}},{"handler":"exits","params":{"value":"fail"}}]}]`
	if steps != want {
		t.Fatalf("onSalesbotDesignerSave returned\n%s\nwant\n%s", steps, want)
	}
	// The URL set on the step wins.
	if got := runSave(t, files["script.js"], `{"url":"https://other.example.com/x"}`); !strings.Contains(got, `"url":"https://other.example.com/x"`) {
		t.Fatalf("with a url setting: %s", got)
	}
}

// runSave loads script.js under node with a minimal AMD define and returns
// what onSalesbotDesignerSave returns (it must be a string of JSON).
func runSave(t *testing.T, script []byte, params string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node is needed to run script.js and is missing")
		}
		t.Skip("node is missing: cannot run script.js")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "script.js"), script, 0o600); err != nil {
		t.Fatal(err)
	}
	harness := `
var factory;
global.define = function (deps, f) { factory = f; };
require('./script.js');
var Widget = factory(function () {});
var w = new Widget();
var exits = w.callbacks.salesbotDesignerSettings(null, null, {}).exits.map(function (e) { return e.code; }).join(',');
if (exits !== 'success,handoff,fail') { throw new Error('exits: ' + exits); }
var out = w.callbacks.onSalesbotDesignerSave('handler', ` + params + `);
if (typeof out !== 'string') { throw new Error('not a string: ' + typeof out); }
JSON.parse(out);
process.stdout.write(out);
`
	if err := os.WriteFile(filepath.Join(dir, "run.js"), []byte(harness), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "run.js")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	return string(out)
}

func TestHandlerURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://bot.example.com":        "https://bot.example.com/salesbot/widget_request",
		"https://bot.example.com/kommo/": "https://bot.example.com/kommo/salesbot/widget_request",
		"http://127.0.0.1:8080":          "http://127.0.0.1:8080/salesbot/widget_request",
		"http://bot.example.com":         "",
		"bot.example.com":                "",
		"https://bot.example.com/?a=1":   "",
		"":                               "",
	} {
		got, err := HandlerURL(in)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("%q: %q, %v", in, got, err)
		}
	}
}
