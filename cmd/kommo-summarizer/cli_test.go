package main

import (
	"encoding/json"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary stands in for the program (see TestMain): what it prints
// must be the program's output alone, with no PASS or ok from the testing
// package, and its exit code the program's own.
func TestTheProgramAlone(t *testing.T) {
	w := newWorld(t, fastFakes, fast)
	res := w.run("status")
	want := "No runs recorded in " + w.cfg["store"]["path"].(string) + " yet.\n"
	if res.code != 0 || res.stdout != want || res.stderr != "" {
		t.Fatalf("status: exit %d\nstdout %q\nwant   %q\nstderr %q", res.code, res.stdout, want, res.stderr)
	}
	res = w.run("status", "--runs", "x")
	if res.code != 2 || res.stdout != "" || strings.Contains(res.stderr, "PASS") || strings.Contains(res.stderr, "FAIL") {
		t.Fatalf("status --runs x: exit %d\nstdout %q\nstderr %q", res.code, res.stdout, res.stderr)
	}
}

// stderrLines are the lines of stderr that are not JSON log lines.
func stderrLines(stderr string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if l != "" && !strings.HasPrefix(l, "{") {
			out = append(out, l)
		}
	}
	return out
}

// A failed command prints one error line and at most one hint; advice that
// the message already gives is not repeated under it.
func TestErrorLinesAndHints(t *testing.T) {
	cases := []struct {
		name     string
		edit     func(cfg map[string]map[string]any)
		setup    func(w *world)
		args     []string
		wantCode int
		wantLine string // in the error line
		wantHint string // the line under it; "" = none
		once     string // said once in stderr
	}{
		{name: "unknown command", args: []string{"bogus"}, wantCode: 2,
			wantLine: `unknown command "bogus" for "kommo-summarizer"`, wantHint: "Try: kommo-summarizer --help"},
		{name: "misspelt command", args: []string{"swep"}, wantCode: 2,
			wantLine: `(did you mean "sweep"?)`, wantHint: "Try: kommo-summarizer --help"},
		{name: "unknown auth command", args: []string{"auth", "bogus"}, wantCode: 2,
			wantLine: `unknown command "bogus" for "kommo-summarizer auth"`, wantHint: "Try: kommo-summarizer auth --help"},
		{name: "bad flag", args: []string{"sweep", "--limit", "-1"}, wantCode: 2,
			wantLine: "--limit", wantHint: "Try: kommo-summarizer sweep --help"},
		{name: "config key", edit: func(c map[string]map[string]any) { delete(c["kommo"], "base_url") }, args: []string{"sweep"}, wantCode: 2,
			wantLine: "config: kommo.base_url: required", wantHint: "Try: config.example.yaml, which describes every key", once: "config.example.yaml"},
		{name: "unknown config key", edit: func(c map[string]map[string]any) { c["kommo"]["bogus"] = 1 }, args: []string{"sweep"}, wantCode: 2,
			wantLine: "kommo.bogus: unknown key", once: "config.example.yaml"},
		{name: "revoked refresh token", setup: func(w *world) { w.login(); w.srv.RevokeRefreshTokens(); w.srv.ExpireAccessTokens() },
			args: []string{"sweep"}, wantCode: 4, wantLine: "auth login --code CODE", once: "kommo-summarizer auth"},
		{name: "no token", args: []string{"sweep"}, wantCode: 4, wantLine: "auth login --code CODE", once: "kommo-summarizer auth"},
		{name: "LLM key", edit: func(c map[string]map[string]any) { c["llm"]["api_key"] = "sk-wrong" }, setup: func(w *world) { w.login() },
			args: []string{"sweep"}, wantCode: 4, wantLine: "check llm.api_key", once: "llm.api_key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := caseWorld(t, tc.edit, tc.setup).run(tc.args...)
			if res.code != tc.wantCode {
				t.Fatalf("exit %d, want %d\n%s", res.code, tc.wantCode, tail(res.stderr))
			}
			lines := stderrLines(res.stderr)
			want := 1
			if tc.wantHint != "" {
				want = 2
			}
			if len(lines) != want || !strings.HasPrefix(lines[0], "kommo-summarizer: ") || !strings.Contains(lines[0], tc.wantLine) {
				t.Fatalf("stderr lines %q\nwant an error line with %q and hint %q", lines, tc.wantLine, tc.wantHint)
			}
			if tc.wantHint != "" && lines[1] != tc.wantHint {
				t.Errorf("hint %q, want %q", lines[1], tc.wantHint)
			}
			if tc.once != "" {
				if n := strings.Count(strings.Join(lines, "\n"), tc.once); n != 1 {
					t.Errorf("%q said %d times, want once:\n%s", tc.once, n, strings.Join(lines, "\n"))
				}
			}
		})
	}
}

// With --json, stdout is a report also when the run stops early or never
// starts: its error says why, and the exit code is the error's.
func TestJSONReportOnFatalError(t *testing.T) {
	cases := []struct {
		name     string
		edit     func(cfg map[string]map[string]any)
		setup    func(w *world)
		args     []string
		wantCode int
		wantErr  string
	}{
		{name: "config", edit: func(c map[string]map[string]any) { delete(c["kommo"], "base_url") },
			args: []string{"sweep", "--json"}, wantCode: 2, wantErr: "config: kommo.base_url: required"},
		{name: "revoked refresh token", setup: func(w *world) { w.login(); w.srv.RevokeRefreshTokens(); w.srv.ExpireAccessTokens() },
			args: []string{"sweep", "--json"}, wantCode: 4, wantErr: "auth login --code CODE"},
		{name: "summarize without a token", args: []string{"summarize", "--lead", "10000001", "--json"}, wantCode: 4, wantErr: "no OAuth token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := caseWorld(t, tc.edit, tc.setup).run(tc.args...)
			if res.code != tc.wantCode {
				t.Fatalf("exit %d, want %d\n%s", res.code, tc.wantCode, tail(res.stderr))
			}
			var rep report
			if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
				t.Fatalf("stdout is not a JSON report (%v):\n%q", err, res.stdout)
			}
			if !strings.Contains(rep.Error, tc.wantErr) || rep.Command != tc.args[0] {
				t.Errorf("report command %q, error %q; want %q and an error with %q", rep.Command, rep.Error, tc.args[0], tc.wantErr)
			}
			if line := errorLine(t, res.stderr); !strings.Contains(line, tc.wantErr) {
				t.Errorf("error line %q does not say %q", line, tc.wantErr)
			}
		})
	}
}

// A config file with secrets that other users can read gets a warning that
// names it and the fix.
func TestWarnsOfAReadableConfigFile(t *testing.T) {
	w := newWorld(t, fastFakes, fast)
	res := w.run("auth", "login", "--code", w.srv.AuthCode())
	if res.code != 0 || strings.Contains(res.stderr, "chmod") {
		t.Fatalf("auth login with a 0600 file: exit %d, stderr:\n%s", res.code, res.stderr)
	}
	if err := os.Chmod(w.cfgPath, 0o644); err != nil {
		t.Fatal(err)
	}
	res = w.run("auth", "status")
	if res.code != 0 {
		t.Fatalf("auth status: exit %d\n%s", res.code, res.stderr)
	}
	want := w.cfgPath + " holds secrets (kommo.client_secret, chats.channel_secret, llm.api_key) and other users can read it (mode 0644): chmod 600 " + w.cfgPath
	if !strings.Contains(res.stderr, `"level":"WARN","msg":"`+want+`"`) {
		t.Errorf("no warning %q in stderr:\n%s", want, res.stderr)
	}
}

// statusRow returns the fields of the row of run id in `status`.
func statusRow(t *testing.T, w *world, id string) []string {
	t.Helper()
	res := w.run("status")
	if res.code != 0 {
		t.Fatalf("status: exit %d\n%s", res.code, res.stderr)
	}
	for _, l := range strings.Split(res.stdout, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == id {
			return f
		}
	}
	t.Fatalf("status does not list run %s:\n%s", id, res.stdout)
	return nil
}

// A sweep killed with SIGKILL records nothing itself: `status` shows it as
// killed at once (its process is gone), and still after a later run took its
// lock over and finished.
func TestStatusShowsAKilledRun(t *testing.T) {
	opts := fastFakes
	opts.LLMLatency = 400 * time.Millisecond
	w := newWorld(t, opts, fast)
	w.login()
	cmd := w.command("sweep")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the sweep's LLM calls", 20*time.Second, func() bool { return w.srv.Stats().LLMCalls > 0 })
	// The only run recorded so far is the one under way.
	res := w.run("status")
	var id string
	for _, l := range strings.Split(res.stdout, "\n") {
		if f := strings.Fields(l); len(f) == 6 && f[1] == "sweep" {
			id = f[0]
		}
	}
	if id == "" {
		t.Fatalf("status does not list the running sweep:\n%s", res.stdout)
	}
	if f := statusRow(t, w, id); f[4] != "running" || f[5] != "-" {
		t.Fatalf("the live sweep shows as %v, want running with exit -", f)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if f := statusRow(t, w, id); f[4] != "killed" || f[5] != "-" {
		t.Fatalf("the killed sweep shows as %v, want killed with exit -", f)
	}
	if _, res := w.sweep(); res.code != 0 {
		t.Fatalf("the next sweep: exit %d\n%s", res.code, tail(res.stderr))
	}
	if f := statusRow(t, w, id); f[4] != "killed" {
		t.Fatalf("after the next sweep the killed one shows as %v, want killed", f)
	}
}

// caseWorld is a fast world with a test case's config edit and setup.
func caseWorld(t *testing.T, edit func(map[string]map[string]any), setup func(*world)) *world {
	t.Helper()
	w := newWorld(t, fastFakes, func(c map[string]map[string]any) {
		fast(c)
		if edit != nil {
			edit(c)
		}
	})
	if setup != nil {
		setup(w)
	}
	return w
}
