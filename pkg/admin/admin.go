// Package admin is the operator's page on serve: edit the bot's
// instructions, try a message in a test chat, and see the latest runs,
// summaries and bot replies. Server-rendered (html/template, embedded
// files), behind serve.admin_token: a Bearer header, or a login form that
// sets an HttpOnly session cookie; every form carries a CSRF token.
package admin

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/salesbot"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where the page lives; serve mounts the handler there.
const Prefix = "/admin/"

const (
	cookieName = "ks_admin"
	sessionTTL = 12 * time.Hour
	// MinTokenLength is the shortest admin token accepted.
	MinTokenLength = 16
)

// Bot is what the page needs of the Salesbot service; *salesbot.Service is one.
type Bot interface {
	Instructions() (string, error)
	SetInstructions(text string) error
	InstructionsFile() string
	Test(ctx context.Context, leadID int64, message string) (*salesbot.ContinueBody, error)
}

// Options configure the page.
type Options struct {
	Token string    // serve.admin_token; required
	DB    *store.DB // required
	Bot   Bot       // nil: no instructions editor, no test chat
	// SecureCookie marks the session cookie Secure (serve is reached over https).
	SecureCookie bool
	Logger       *slog.Logger
	Now          func() time.Time
}

type page struct {
	o    Options
	tmpl *template.Template
	log  *slog.Logger
	mux  *http.ServeMux
}

// New returns the page's handler, to mount at /admin/.
func New(o Options) (http.Handler, error) {
	switch {
	case len(o.Token) < MinTokenLength:
		return nil, fmt.Errorf("admin: the token must be at least %d characters (serve.admin_token)", MinTokenLength)
	case o.DB == nil:
		return nil, errors.New("admin: no store")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	tmpl, err := template.New("").Funcs(template.FuncMap{
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "-"
			}
			return t.UTC().Format("2006-01-02 15:04:05")
		},
		"cut": func(n int, s string) string {
			r := []rune(s)
			if len(r) <= n {
				return s
			}
			return string(r[:n]) + "…"
		},
	}).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("admin: templates: %w", err)
	}
	p := &page{o: o, tmpl: tmpl, log: o.Logger, mux: http.NewServeMux()}
	static, _ := fs.Sub(staticFS, "static")
	p.mux.Handle("GET /admin/static/", http.StripPrefix("/admin/static/", http.FileServerFS(static)))
	p.mux.HandleFunc("GET /admin/login", p.loginForm)
	p.mux.HandleFunc("POST /admin/login", p.login)
	p.mux.HandleFunc("POST /admin/logout", p.authed(p.logout))
	p.mux.HandleFunc("GET /admin/{$}", p.authed(p.dashboard))
	p.mux.HandleFunc("POST /admin/instructions", p.authed(p.saveInstructions))
	p.mux.HandleFunc("POST /admin/test", p.authed(p.testChat))
	return http.HandlerFunc(p.serve), nil
}

func (p *page) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	if r.URL.Path == "/admin" {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	p.mux.ServeHTTP(w, r)
}

// auth says how a request proved it knows the token.
type auth struct {
	bearer  bool
	session string // the cookie value, for the CSRF token
}

func (p *page) mac(parts ...string) string {
	m := hmac.New(sha256.New, []byte(p.o.Token))
	m.Write([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(m.Sum(nil))
}

// newSession is "expiry.mac": valid until expiry, and only while the token
// stays the same.
func (p *page) newSession() string {
	exp := strconv.FormatInt(p.o.Now().Add(sessionTTL).Unix(), 10)
	return exp + "." + p.mac("session", exp)
}

func (p *page) validSession(v string) bool {
	exp, sig, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	n, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || p.o.Now().Unix() > n {
		return false
	}
	return hmac.Equal([]byte(sig), []byte(p.mac("session", exp)))
}

func (p *page) check(r *http.Request) (auth, bool) {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return auth{bearer: true}, subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(p.o.Token)) == 1
	}
	if c, err := r.Cookie(cookieName); err == nil && p.validSession(c.Value) {
		return auth{session: c.Value}, true
	}
	return auth{}, false
}

func (p *page) csrf(a auth) string {
	if a.bearer {
		return ""
	}
	return p.mac("csrf", a.session)
}

// authed lets a request in with the token; a POST by cookie also needs the
// form's CSRF token (a Bearer header is never sent by a browser on its own).
func (p *page) authed(h func(http.ResponseWriter, *http.Request, auth)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a, ok := p.check(r)
		if !ok {
			p.log.Warn("admin: unauthorized request", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			p.render(w, http.StatusUnauthorized, "login.html", map[string]any{"Error": ""})
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 256<<10)
			if err := r.ParseForm(); err != nil {
				http.Error(w, "admin: the form cannot be read", http.StatusBadRequest)
				return
			}
			if !a.bearer && !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(p.csrf(a))) {
				p.log.Warn("admin: form without a valid CSRF token", "path", r.URL.Path, "remote", r.RemoteAddr)
				http.Error(w, "admin: the form's CSRF token is missing or stale: reload the page and try again", http.StatusForbidden)
				return
			}
		}
		h(w, r, a)
	}
}

func (p *page) render(w http.ResponseWriter, status int, name string, data any) {
	var b strings.Builder
	if err := p.tmpl.ExecuteTemplate(&b, name, data); err != nil {
		p.log.Error("admin: render", "template", name, "err", err)
		http.Error(w, "admin: cannot render the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

func (p *page) loginForm(w http.ResponseWriter, r *http.Request) {
	if _, ok := p.check(r); ok {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	p.render(w, http.StatusOK, "login.html", map[string]any{"Error": ""})
}

func (p *page) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		p.render(w, http.StatusBadRequest, "login.html", map[string]any{"Error": "The form cannot be read."})
		return
	}
	if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(r.PostForm.Get("token"))), []byte(p.o.Token)) != 1 {
		p.log.Warn("admin: failed login", "remote", r.RemoteAddr)
		p.render(w, http.StatusUnauthorized, "login.html", map[string]any{"Error": "Wrong token."})
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: p.newSession(), Path: Prefix, MaxAge: int(sessionTTL.Seconds()),
		HttpOnly: true, Secure: p.o.SecureCookie, SameSite: http.SameSiteStrictMode,
	})
	p.log.Info("admin: logged in", "remote", r.RemoteAddr)
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

func (p *page) logout(w http.ResponseWriter, r *http.Request, _ auth) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true,
		Secure: p.o.SecureCookie, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}

// view is what the dashboard shows.
type view struct {
	CSRF         string
	Flash, Error string

	HasBot           bool
	Instructions     string
	InstructionsFile string

	TestLead    string
	TestMessage string
	TestResult  *salesbot.ContinueBody

	Runs      []store.Run
	Summaries []store.Summary
	Jobs      []store.BotJob
}

func (p *page) dashboard(w http.ResponseWriter, r *http.Request, a auth) {
	v := p.view(r.Context(), a)
	switch r.URL.Query().Get("saved") {
	case "instructions":
		v.Flash = "Instructions saved: the next reply uses them."
	}
	p.render(w, http.StatusOK, "index.html", v)
}

func (p *page) view(ctx context.Context, a auth) *view {
	v := &view{CSRF: p.csrf(a), HasBot: p.o.Bot != nil}
	var errs []string
	if p.o.Bot != nil {
		v.InstructionsFile = p.o.Bot.InstructionsFile()
		text, err := p.o.Bot.Instructions()
		if err != nil {
			errs = append(errs, err.Error())
		}
		v.Instructions = text
	}
	var err error
	if v.Runs, err = p.o.DB.Runs(ctx, 10); err != nil {
		errs = append(errs, err.Error())
	}
	if v.Summaries, err = p.o.DB.RecentSummaries(ctx, 10); err != nil {
		errs = append(errs, err.Error())
	}
	if v.Jobs, err = p.o.DB.BotJobs(ctx, 20); err != nil {
		errs = append(errs, err.Error())
	}
	v.Error = strings.Join(errs, "; ")
	return v
}

func (p *page) saveInstructions(w http.ResponseWriter, r *http.Request, a auth) {
	if p.o.Bot == nil {
		http.Error(w, "admin: the bot is not configured", http.StatusNotFound)
		return
	}
	text := strings.ReplaceAll(r.PostForm.Get("instructions"), "\r\n", "\n")
	if err := p.o.Bot.SetInstructions(text); err != nil {
		v := p.view(r.Context(), a)
		v.Instructions, v.Error = text, err.Error()
		p.render(w, http.StatusBadRequest, "index.html", v)
		return
	}
	p.log.Info("admin: instructions saved", "bytes", len(text), "remote", r.RemoteAddr)
	http.Redirect(w, r, Prefix+"?saved=instructions", http.StatusSeeOther)
}

func (p *page) testChat(w http.ResponseWriter, r *http.Request, a auth) {
	if p.o.Bot == nil {
		http.Error(w, "admin: the bot is not configured", http.StatusNotFound)
		return
	}
	v := p.view(r.Context(), a)
	v.TestLead, v.TestMessage = strings.TrimSpace(r.PostForm.Get("lead")), r.PostForm.Get("message")
	var lead int64
	if v.TestLead != "" {
		n, err := strconv.ParseInt(v.TestLead, 10, 64)
		if err != nil || n <= 0 {
			v.Error = "The lead id must be a positive number, or empty."
			p.render(w, http.StatusBadRequest, "index.html", v)
			return
		}
		lead = n
	}
	body, err := p.o.Bot.Test(r.Context(), lead, v.TestMessage)
	if err != nil {
		v.Error = err.Error()
		p.render(w, http.StatusBadGateway, "index.html", v)
		return
	}
	v.TestResult = body
	p.render(w, http.StatusOK, "index.html", v)
}
