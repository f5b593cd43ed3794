package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommotest"
)

func TestBotCommands(t *testing.T) {
	w := newWorld(t, fastFakes, func(cfg map[string]map[string]any) {
		fast(cfg)
		cfg["kommo"]["long_lived_token"] = "set-below"
	})
	w.cfg["kommo"]["long_lived_token"] = w.srv.LongLivedToken()
	instr := filepath.Join(w.dir, "instructions.md")
	if err := os.WriteFile(instr, []byte("You sell pianos."), 0o600); err != nil {
		t.Fatal(err)
	}
	w.cfg["bot"] = map[string]any{"instructions_file": instr}
	w.writeConfig()
	lead := w.srv.Leads()[0].ID

	res := w.run("bot", "test", "--lead", itoa(lead), "How much is delivery?")
	if res.code != 0 {
		t.Fatalf("bot test: exit %d: %s", res.code, res.stderr)
	}
	var body struct {
		Data            struct{ Status, Reply string }
		ExecuteHandlers []struct {
			Handler string
			Params  struct{ Type, Value string }
		} `json:"execute_handlers"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &body); err != nil {
		t.Fatalf("stdout is not the continue body: %v\n%s", err, res.stdout)
	}
	if body.Data.Status != "success" || !strings.Contains(body.Data.Reply, kommotest.FakeLLMMarker) || len(body.ExecuteHandlers) == 0 {
		t.Fatalf("body %+v", body)
	}
	if st := w.srv.Stats(); st.ContinueCalls != 0 {
		t.Fatalf("bot test sent a continue call: %+v", st)
	}

	res = w.run("bot", "test", "I want a manager")
	if res.code != 0 || !strings.Contains(res.stdout, `"status": "handoff"`) {
		t.Fatalf("keyword: exit %d %s %s", res.code, res.stdout, res.stderr)
	}

	res = w.run("bot", "clear-handoff", "--lead", itoa(lead))
	if res.code != 0 || !strings.Contains(res.stdout, "had no handoff") {
		t.Fatalf("clear-handoff: exit %d %s %s", res.code, res.stdout, res.stderr)
	}
	w.cfg["bot"]["instructions_file"] = w.dir
	w.writeConfig()
	if res := w.run("bot", "test", "hi"); res.code != 2 || !strings.Contains(res.stderr, "config: bot.instructions_file: "+w.dir+" is a directory") {
		t.Errorf("instructions file is a directory: exit %d: %q", res.code, res.stderr)
	}
	for _, args := range [][]string{{"bot", "test"}, {"bot", "clear-handoff"}, {"bot", "test", "x", "--lead", "-1"}} {
		if res := w.run(args...); res.code != 2 || strings.Count(strings.TrimSpace(res.stderr), "\n") > 1 {
			t.Errorf("%v: exit %d, stderr %q", args, res.code, res.stderr)
		}
	}
}

func TestWidgetPack(t *testing.T) {
	w := newWorld(t, fastFakes, nil)
	out := filepath.Join(w.dir, "widget.zip")
	res := w.run("widget", "pack", "--url", "https://bot.example.com", "-o", out)
	if res.code != 0 || !strings.Contains(res.stdout, "https://bot.example.com/salesbot/widget_request") {
		t.Fatalf("exit %d: %s %s", res.code, res.stdout, res.stderr)
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() < 1000 {
		t.Fatalf("zip: %v", err)
	}
	for _, args := range [][]string{
		{"widget", "pack", "--url", "http://bot.example.com", "-o", out},
		{"widget", "pack", "-o", out},
		{"widget", "pack", "--url", "https://bot.example.com"},
	} {
		if res := w.run(args...); res.code != 2 || strings.Count(strings.TrimSpace(res.stderr), "\n") > 1 {
			t.Errorf("%v: exit %d: %q", args, res.code, res.stderr)
		}
	}
}
