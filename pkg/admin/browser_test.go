package admin_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds a Chromium to drive. Without one the test skips, except
// under CI, where .ci/run installs Debian's chromium: there it fails.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no chromium on PATH under CI: .ci/run should have installed it (apt-get install -y chromium)")
	}
	t.Skip("no chromium on PATH: skipping the browser test (apt-get install -y chromium to run it)")
	return ""
}

// TestAdminInBrowser logs in, edits the instructions, sends a test message
// and reads the reply, in a real headless Chromium.
func TestAdminInBrowser(t *testing.T) {
	path := chromium(t)
	e := newEnv(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // containers run tests as root
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
	)
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()

	id := func(s string) chromedp.ID { return chromedp.ID(s) }
	err := chromedp.Do(ctx,
		chromedp.Navigate(e.srv.URL+"/admin/"),
		chromedp.WaitVisible(id("token")),
	)
	if err != nil {
		t.Fatalf("browser: open the page: %v", err)
	}
	loginTitle, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys(id("token"), token),
		chromedp.Submit(id("login")),
		chromedp.WaitVisible(id("instructions")),
		chromedp.Clear(id("instructions")),
		chromedp.SendKeys(id("instructions"), "Sell grand pianos only."),
		chromedp.Click(id("save-instructions")),
		chromedp.WaitVisible(id("flash")),
	)
	if err != nil {
		t.Fatalf("browser: log in and save: %v", err)
	}
	flash, err := chromedp.Run(ctx, chromedp.Text(id("flash")))
	if err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys(id("message"), "How much is a grand piano?"),
		chromedp.Click(id("send-test")),
		chromedp.WaitVisible(id("test-result")),
	)
	if err != nil {
		t.Fatalf("browser: test chat: %v", err)
	}
	status, err := chromedp.Run(ctx, chromedp.Text(id("test-status")))
	if err != nil {
		t.Fatal(err)
	}
	chat, err := chromedp.Run(ctx, chromedp.Text(id("test-result")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(loginTitle, "log in") {
		t.Errorf("the first page is %q, not the login", loginTitle)
	}
	if !strings.Contains(flash, "Instructions saved") {
		t.Errorf("flash %q", flash)
	}
	if b, _ := os.ReadFile(e.instr); string(b) != "Sell grand pianos only." {
		t.Errorf("instructions file %q", b)
	}
	if status != "success" || !strings.Contains(chat, "How much is a grand piano?") || !strings.Contains(chat, "FAKE LLM") {
		t.Errorf("status %q, chat %q", status, chat)
	}
}
