package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestHelperProcess is not a test: it is the other process of the tests
// below, started as `<test binary> -test.run=^TestHelperProcess$` with
// STORE_HELPER set. Run normally, it returns at once.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv("STORE_HELPER")
	if mode == "" {
		return
	}
	ctx := context.Background()
	path := os.Getenv("STORE_HELPER_DB")
	switch mode {
	case "update-token":
		saw, tok, err := otherRefresher(ctx, path, os.Getenv("STORE_HELPER_URL"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("RESULT %s %s %s\n", saw, tok.AccessToken, tok.RefreshToken)
		os.Exit(0)
	case "hold-lock":
		db, err := Open(ctx, path)
		if err == nil {
			err = db.AcquireLock(ctx, LockHolder{RunID: "child-run"}, time.Hour)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("LOCKED")
		// Wait to be killed; the parent never lets this run out.
		time.Sleep(time.Minute)
		os.Exit(2)
	}
	fmt.Fprintf(os.Stderr, "unknown STORE_HELPER %q\n", mode)
	os.Exit(3)
}

// helperCommand returns the test binary set up to run TestHelperProcess in
// mode, and kills it when the test ends if it still runs.
func helperCommand(t *testing.T, mode, path, baseURL string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	cmd := exec.Command(exe, "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "STORE_HELPER="+mode, "STORE_HELPER_DB="+path, "STORE_HELPER_URL="+baseURL)
	t.Cleanup(func() {
		if cmd.Process != nil && cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd
}

// refreshServer is a token endpoint whose refresh tokens work once, like
// Kommo's (a second use answers 400), plus named signals with which the two
// parties of a test take turns.
type refreshServer struct {
	*httptest.Server

	mu      sync.Mutex
	valid   string   // the one refresh token that works now
	n       int      // pairs issued
	log     []string // "who:token" of every refresh request, in order
	signals map[string]chan struct{}
	// otherRefreshed is closed when a refresh from "other" arrives.
	otherRefreshed chan struct{}
}

func newRefreshServer(t *testing.T) *refreshServer {
	s := &refreshServer{valid: "R1", n: 1, signals: map[string]chan struct{}{}, otherRefreshed: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /refresh", func(w http.ResponseWriter, r *http.Request) {
		tok, who := r.FormValue("refresh_token"), r.FormValue("who")
		s.mu.Lock()
		defer s.mu.Unlock()
		s.log = append(s.log, who+":"+tok)
		if who == "other" {
			select {
			case <-s.otherRefreshed:
			default:
				close(s.otherRefreshed)
			}
		}
		if tok != s.valid {
			http.Error(w, "refresh token "+tok+" was already used", http.StatusBadRequest)
			return
		}
		s.n++
		s.valid = fmt.Sprintf("R%d", s.n)
		fmt.Fprintf(w, "A%d R%d", s.n, s.n)
	})
	mux.HandleFunc("POST /signal/{name}", func(w http.ResponseWriter, r *http.Request) {
		s.fire(r.PathValue("name"))
	})
	mux.HandleFunc("GET /wait/{name}", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-s.signal(r.PathValue("name")):
		case <-time.After(10 * time.Second):
			http.Error(w, "no signal "+r.PathValue("name"), http.StatusGatewayTimeout)
		}
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func (s *refreshServer) signal(name string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.signals[name]
	if !ok {
		ch = make(chan struct{})
		s.signals[name] = ch
	}
	return ch
}

func (s *refreshServer) fire(name string) {
	ch := s.signal(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-ch:
	default:
		close(ch)
	}
}

func (s *refreshServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

func call(method, u string) error {
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s %s: %s: %s", method, u, resp.Status, body)
	}
	return nil
}

// refreshFn is the fn of UpdateToken that a token source would pass: it
// spends the current refresh token at the endpoint and saves the new pair.
// saw receives the refresh token it was handed.
func refreshFn(base, who string, saw *string) func(Token, bool) (Token, bool, error) {
	return func(cur Token, found bool) (Token, bool, error) {
		if !found {
			return Token{}, false, errors.New("no token to refresh")
		}
		*saw = cur.RefreshToken
		resp, err := http.PostForm(base+"/refresh", url.Values{"refresh_token": {cur.RefreshToken}, "who": {who}})
		if err != nil {
			return Token{}, false, err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return Token{}, false, fmt.Errorf("%s: refresh with %s: %s", who, cur.RefreshToken, strings.TrimSpace(string(body)))
		}
		var next Token
		if _, err := fmt.Sscanf(string(body), "%s %s", &next.AccessToken, &next.RefreshToken); err != nil {
			return Token{}, false, err
		}
		return next, true, nil
	}
}

// otherRefresher is the second party of the race: it waits until the first
// is inside its UpdateToken fn, checks that the write lock is held, then
// refreshes through its own handle (in its own process, in the child).
func otherRefresher(ctx context.Context, path, base string) (saw string, tok Token, err error) {
	// Whatever happens, tell the first party not to wait for us any more.
	defer call("POST", base+"/signal/other-done")
	db, err := Open(ctx, path)
	if err != nil {
		return "", Token{}, err
	}
	defer db.Close()
	if err := call("GET", base+"/wait/holder-in-fn"); err != nil {
		return "", Token{}, err
	}
	held, err := writeLockHeld(ctx, path)
	if err != nil {
		return "", Token{}, err
	}
	if !held {
		return "", Token{}, errors.New("the write lock is free while the first UpdateToken's fn runs")
	}
	if err := call("POST", base+"/signal/other-calling"); err != nil {
		return "", Token{}, err
	}
	tok, err = db.UpdateToken(ctx, refreshFn(base, "other", &saw))
	return saw, tok, err
}

// raceRefresh makes two UpdateToken calls on the same file overlap: the
// first (this process, handle a) is inside fn when the second starts. The
// second is started by startOther and reports what its fn was handed.
func raceRefresh(t *testing.T, startOther func(path, base string) (wait func() (saw string, tok Token, err error))) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	a := openTest(t, path)
	if err := saveToken(ctx, a, Token{AccessToken: "A1", RefreshToken: "R1"}); err != nil {
		t.Fatal(err)
	}
	srv := newRefreshServer(t)
	wait := startOther(path, srv.URL)

	var holderSaw string
	refresh := refreshFn(srv.URL, "holder", &holderSaw)
	got, err := a.UpdateToken(ctx, func(cur Token, found bool) (Token, bool, error) {
		srv.fire("holder-in-fn")
		select {
		case <-srv.signal("other-calling"):
		case <-srv.signal("other-done"):
			return Token{}, false, errors.New("the other party stopped before its UpdateToken")
		case <-time.After(10 * time.Second):
			return Token{}, false, errors.New("the other party never started its UpdateToken")
		}
		// Give the other party time to reach its BEGIN IMMEDIATE and wait
		// there. The test passes whatever this wait is; it only gives a
		// broken lock the chance to show: the other fn would refresh now.
		select {
		case <-srv.otherRefreshed:
			t.Error("the other party's fn ran while this fn held the lock")
		case <-time.After(200 * time.Millisecond):
		}
		return refresh(cur, found)
	})
	otherSaw, otherTok, otherErr := wait()
	if err != nil || otherErr != nil {
		t.Fatalf("first UpdateToken: %v\nsecond UpdateToken: %v", err, otherErr)
	}

	if holderSaw != "R1" || got.AccessToken != "A2" || got.RefreshToken != "R2" {
		t.Errorf("first: handed %s, saved %s/%s; want R1 -> A2/R2", holderSaw, got.AccessToken, got.RefreshToken)
	}
	if otherSaw != "R2" || otherTok.AccessToken != "A3" || otherTok.RefreshToken != "R3" {
		t.Errorf("second: handed %s, saved %s/%s; want R2 (the pair the first committed) -> A3/R3",
			otherSaw, otherTok.AccessToken, otherTok.RefreshToken)
	}
	if reqs := srv.requests(); !reflect.DeepEqual(reqs, []string{"holder:R1", "other:R2"}) {
		t.Errorf("refresh requests = %v, want [holder:R1 other:R2]", reqs)
	}
	if tok, err := a.Token(ctx); err != nil || tok.RefreshToken != "R3" {
		t.Errorf("stored token = %+v, %v; want R3", tok, err)
	}
}

func TestUpdateTokenSerialisedTwoHandles(t *testing.T) {
	raceRefresh(t, func(path, base string) func() (string, Token, error) {
		type result struct {
			saw string
			tok Token
			err error
		}
		done := make(chan result, 1)
		go func() {
			saw, tok, err := otherRefresher(context.Background(), path, base)
			done <- result{saw, tok, err}
		}()
		return func() (string, Token, error) {
			r := <-done
			return r.saw, r.tok, r.err
		}
	})
}

func TestUpdateTokenSerialisedTwoProcesses(t *testing.T) {
	raceRefresh(t, func(path, base string) func() (string, Token, error) {
		cmd := helperCommand(t, "update-token", path, base)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return func() (string, Token, error) {
			if err := cmd.Wait(); err != nil {
				return "", Token{}, fmt.Errorf("child: %v: %s", err, stderr.String())
			}
			for line := range strings.Lines(stdout.String()) {
				var saw string
				var tok Token
				if _, err := fmt.Sscanf(line, "RESULT %s %s %s", &saw, &tok.AccessToken, &tok.RefreshToken); err == nil {
					return saw, tok, nil
				}
			}
			return "", Token{}, fmt.Errorf("child printed no RESULT line: %q", stdout.String())
		}
	})
}
