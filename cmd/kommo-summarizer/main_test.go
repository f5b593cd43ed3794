package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/cli"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommotest"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/sweep"
)

// binPath is the program these tests run, against the fakes over HTTP on
// 127.0.0.1: this test binary itself, which is kommo-summarizer when mainEnv
// is set (testscript's RunMain pattern, by hand). `go test` then builds the
// program once, instead of once for the tests and again with `go build`.
var binPath string

// mainEnv makes the test binary run cli.Main instead of the tests.
const mainEnv = "KOMMO_SUMMARIZER_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		// As main does, and nothing else: m.Run would print PASS on stdout.
		os.Exit(cli.Main(os.Args[1:], cli.System()))
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "find the test binary:", err)
		os.Exit(1)
	}
	binPath = exe
	os.Exit(m.Run())
}

// progEnv is the whole environment of the program under test.
func progEnv(home string) []string {
	return []string{mainEnv + "=1", "PATH=" + os.Getenv("PATH"), "HOME=" + home, "TZ=UTC"}
}

// fast lifts the fakes' rate limits (and the client's pacing) for tests
// that are not about pacing; the pacing tests keep Kommo's 7 requests/s.
func fast(cfg map[string]map[string]any) {
	cfg["kommo"]["requests_per_second"] = 40
	cfg["chats"]["requests_per_second"] = 40
}

var fastFakes = kommotest.Options{Seed: 3, Leads: 14, RESTRateLimit: 50, ChatsRateLimit: 50}

// world is one fake Kommo account, a config file pointing at it and a store.
type world struct {
	t       testing.TB
	srv     *kommotest.Server
	dir     string
	cfgPath string
	cfg     map[string]map[string]any
}

// newWorld starts the fakes and writes a config for them; edit changes the
// config before it is written.
func newWorld(t testing.TB, opts kommotest.Options, edit func(cfg map[string]map[string]any)) *world {
	t.Helper()
	srv := kommotest.StartT(t, opts)
	fo := srv.Options()
	w := &world{t: t, srv: srv, dir: t.TempDir()}
	w.cfg = map[string]map[string]any{
		"kommo": {
			"base_url": srv.KommoURL, "client_id": fo.ClientID, "client_secret": fo.ClientSecret,
			"redirect_uri": fo.RedirectURI, "summary_field_id": fo.SummaryFieldID,
		},
		"chats": {"base_url": srv.ChatsURL, "channel_id": fo.ChannelID, "channel_secret": fo.ChannelSecret},
		"llm":   {"base_url": srv.LLMURL, "api_key": fo.LLMAPIKey},
		"store": {"path": filepath.Join(w.dir, "store.db")},
		"log":   {"level": "info", "format": "json"},
	}
	if edit != nil {
		edit(w.cfg)
	}
	w.writeConfig()
	return w
}

func (w *world) writeConfig() {
	w.t.Helper()
	var b strings.Builder
	for section, kv := range w.cfg {
		fmt.Fprintf(&b, "%s:\n", section)
		for k, v := range kv {
			fmt.Fprintf(&b, "  %s: %q\n", k, fmt.Sprint(v))
		}
	}
	w.cfgPath = filepath.Join(w.dir, "config.yaml")
	if err := os.WriteFile(w.cfgPath, []byte(b.String()), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

// login stores a token pair through `auth login`, as an installer would.
func (w *world) login() {
	w.t.Helper()
	res := w.run("auth", "login", "--code", w.srv.AuthCode())
	if res.code != 0 {
		w.t.Fatalf("auth login: exit %d: %s", res.code, res.stderr)
	}
}

type result struct {
	stdout, stderr string
	code           int
}

func (w *world) command(args ...string) *exec.Cmd {
	cmd := exec.Command(binPath, append([]string{"--config", w.cfgPath}, args...)...)
	cmd.Env = progEnv(w.dir)
	return cmd
}

func (w *world) run(args ...string) result {
	w.t.Helper()
	cmd := w.command(args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			w.t.Fatalf("run %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return result{out.String(), errb.String(), code}
}

// report is the run report the binary prints with --json.
type report = sweep.Report

func (w *world) sweep(args ...string) (report, result) {
	w.t.Helper()
	res := w.run(append([]string{"sweep", "--json"}, args...)...)
	if strings.Contains(res.stderr, `"level":"ERROR"`) {
		w.t.Errorf("sweep %v logged an error:\n%s", args, tail(res.stderr))
	}
	// Under cron the logs are JSON lines, each with the run's id.
	for _, line := range strings.Split(strings.TrimSpace(res.stderr), "\n") {
		if strings.HasPrefix(line, "{") && !strings.Contains(line, `"run_id":"`) {
			w.t.Errorf("a log line without run_id: %s", line)
		}
	}
	var rep report
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
		w.t.Fatalf("sweep %v: exit %d, stdout is not a JSON report (%v):\n%s\nstderr:\n%s", args, res.code, err, res.stdout, tail(res.stderr))
	}
	return rep, res
}

func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// errorLine is the one line the binary prints for a failed command.
func errorLine(t testing.TB, stderr string) string {
	t.Helper()
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "kommo-summarizer: ") {
			return l
		}
	}
	t.Fatalf("no 'kommo-summarizer: ' error line in stderr:\n%s", tail(stderr))
	return ""
}

// assertOneNotePerLead checks the invariant that matters most: every lead
// that has a chat has exactly `want` notes, none twice.
func assertNotes(t testing.TB, srv *kommotest.Server, want int) {
	t.Helper()
	for _, l := range srv.OpenLeadsWithChats() {
		notes := srv.Notes(l.ID)
		if len(notes) != want {
			t.Errorf("lead %d has %d notes, want %d", l.ID, len(notes), want)
		}
		seen := map[string]bool{}
		for _, n := range notes {
			if seen[n.Text] {
				t.Errorf("lead %d has the same note twice", l.ID)
			}
			seen[n.Text] = true
		}
	}
}

func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func itoa(n int64) string { return fmt.Sprint(n) }

func exec_(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = progEnv(os.TempDir())
	return cmd
}
