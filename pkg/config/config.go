// Package config holds the typed configuration of kommo-summarizer: its
// defaults, how a YAML file and environment variables are laid over them, and
// the checks that name the key to fix. It is the only package that imports
// viper.
package config

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"

	// The binary must know IANA zones on hosts without a zoneinfo database
	// (Windows, scratch containers), or summary.timezone would work on one
	// machine and fail on the next.
	_ "time/tzdata"
)

// Config is the whole configuration. The mapstructure tags are the keys of
// the YAML file and, upper-cased with "." replaced by "_" and prefixed with
// KOMMO_SUMMARIZER_, of the environment variables.
type Config struct {
	Kommo   Kommo   `mapstructure:"kommo"`
	Chats   Chats   `mapstructure:"chats"`
	LLM     LLM     `mapstructure:"llm"`
	Store   Store   `mapstructure:"store"`
	Summary Summary `mapstructure:"summary"`
	Privacy Privacy `mapstructure:"privacy"`
	Budget  Budget  `mapstructure:"budget"`
	Sweep   Sweep   `mapstructure:"sweep"`
	Serve   Serve   `mapstructure:"serve"`
	Bot     Bot     `mapstructure:"bot"`
	Log     Log     `mapstructure:"log"`

	// fileWarnings are Load's findings about the file itself, for Warnings.
	fileWarnings []string
}

// Kommo is the account, its OAuth integration and the REST API limits.
type Kommo struct {
	BaseURL        string `mapstructure:"base_url"`
	ClientID       string `mapstructure:"client_id"`
	ClientSecret   string `mapstructure:"client_secret"`
	RedirectURI    string `mapstructure:"redirect_uri"`
	AccessToken    string `mapstructure:"access_token"`
	RefreshToken   string `mapstructure:"refresh_token"`
	LongLivedToken string `mapstructure:"long_lived_token"`
	// SummaryFieldID is the textarea field of leads that receives the
	// summary; 0 writes notes only.
	SummaryFieldID    int64         `mapstructure:"summary_field_id"`
	RequestsPerSecond float64       `mapstructure:"requests_per_second"`
	BatchSize         int           `mapstructure:"batch_size"`
	Timeout           time.Duration `mapstructure:"timeout"`
}

// Chats is the Kommo Chats API (amojo) channel that reads chat history.
type Chats struct {
	BaseURL           string  `mapstructure:"base_url"`
	ChannelID         string  `mapstructure:"channel_id"`
	ChannelSecret     string  `mapstructure:"channel_secret"`
	ScopeID           string  `mapstructure:"scope_id"`
	RequestsPerSecond float64 `mapstructure:"requests_per_second"`
}

// LLM is the OpenAI-compatible chat completions endpoint.
type LLM struct {
	BaseURL          string        `mapstructure:"base_url"`
	APIKey           string        `mapstructure:"api_key"`
	Model            string        `mapstructure:"model"`
	Temperature      float64       `mapstructure:"temperature"`
	SendTemperature  string        `mapstructure:"send_temperature"` // auto, always or never
	MaxTokens        int           `mapstructure:"max_tokens"`
	Language         string        `mapstructure:"language"`
	Concurrency      int           `mapstructure:"concurrency"`
	PriceInputPer1M  float64       `mapstructure:"price_input_per_1m"`
	PriceOutputPer1M float64       `mapstructure:"price_output_per_1m"`
	Timeout          time.Duration `mapstructure:"timeout"`
}

// Store is the SQLite database with tokens, watermarks and the run log.
type Store struct {
	Path string `mapstructure:"path"`
}

// Summary says what is written back to Kommo and how the prompt is cut.
type Summary struct {
	NoteType        string `mapstructure:"note_type"`
	NoteService     string `mapstructure:"note_service"`
	FieldMaxChars   int    `mapstructure:"field_max_chars"`
	Timezone        string `mapstructure:"timezone"`
	MaxMessageChars int    `mapstructure:"max_message_chars"`
	HeadMessages    int    `mapstructure:"head_messages"`
	TailMessages    int    `mapstructure:"tail_messages"`
	// RebuildEvery: after this many rolling updates a lead's summary is
	// built afresh from its chats.
	RebuildEvery int `mapstructure:"rebuild_every"`
	// FieldOverwrite: keep_human leaves a field a person edited alone;
	// always overwrites it.
	FieldOverwrite  string `mapstructure:"field_overwrite"`
	MaxPromptTokens int    `mapstructure:"max_prompt_tokens"`
}

// Privacy says what is hidden from the LLM provider.
type Privacy struct {
	// Redact replaces phones, e-mails, card numbers and IBANs by
	// placeholders before the LLM, and restores them in what is written.
	Redact bool `mapstructure:"redact"`
}

// Budget caps what the LLM calls cost; 0 means no cap.
type Budget struct {
	MaxUSDPerRun float64 `mapstructure:"max_usd_per_run"`
	MaxUSDPerDay float64 `mapstructure:"max_usd_per_day"`
}

// FieldOverwrite values.
const (
	FieldKeepHuman = "keep_human"
	FieldAlways    = "always"
)

// Sweep tunes the batch job.
type Sweep struct {
	FetchWorkers   int           `mapstructure:"fetch_workers"`
	LockStaleAfter time.Duration `mapstructure:"lock_stale_after"`
	// FullEvery: a sweep walks every active lead when this long has passed
	// since the last full pass; the others read only the Events API's changes.
	FullEvery time.Duration `mapstructure:"full_every"`
	// EventsMargin: an incremental sweep reads the events from this long
	// before the last completed sweep's start.
	EventsMargin time.Duration `mapstructure:"events_margin"`
	// ContactsCacheTTL is how long a contact's list of chats is reused.
	ContactsCacheTTL time.Duration `mapstructure:"contacts_cache_ttl"`
}

// Serve is the HTTP server that takes Kommo's webhooks and Salesbot's
// widget_request.
type Serve struct {
	Listen        string `mapstructure:"listen"`
	PublicURL     string `mapstructure:"public_url"`
	WebhookSecret string `mapstructure:"webhook_secret"`
	AdminToken    string `mapstructure:"admin_token"`
	// CloseDebounce is how long after a closed chat's last event its lead
	// is summarised.
	CloseDebounce time.Duration `mapstructure:"close_debounce"`
	MaxBodyBytes  int64         `mapstructure:"max_body_bytes"`
	// MessageRetention is how long the message log keeps a message.
	MessageRetention time.Duration `mapstructure:"message_retention"`
}

// Bot is the Salesbot AI reply.
type Bot struct {
	InstructionsFile string        `mapstructure:"instructions_file"`
	HandoffKeywords  []string      `mapstructure:"handoff_keywords"`
	HandoffQuiet     time.Duration `mapstructure:"handoff_quiet"`
	FallbackText     string        `mapstructure:"fallback_text"`
}

// Log sets the slog output on stderr.
type Log struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// Default returns the configuration used for every key that neither the file
// nor the environment sets.
func Default() Config {
	return Config{
		Kommo: Kommo{
			// Kommo's published limit is 7 requests per second per integration.
			RequestsPerSecond: 7,
			BatchSize:         50,
			Timeout:           30 * time.Second,
		},
		Chats: Chats{
			BaseURL:           "https://amojo.kommo.com",
			RequestsPerSecond: 7,
		},
		LLM: LLM{
			BaseURL:          "https://api.openai.com/v1",
			Model:            "gpt-4o-mini",
			Temperature:      0.3,
			SendTemperature:  "auto",
			MaxTokens:        600,
			Language:         "Russian",
			Concurrency:      4,
			PriceInputPer1M:  0.15,
			PriceOutputPer1M: 0.60,
			Timeout:          60 * time.Second,
		},
		Store: Store{Path: "kommo-summarizer.db"},
		Summary: Summary{
			NoteType:        "common",
			NoteService:     "kommo-summarizer",
			FieldMaxChars:   4000,
			Timezone:        "UTC",
			MaxMessageChars: 1000,
			HeadMessages:    5,
			TailMessages:    40,
			RebuildEvery:    5,
			FieldOverwrite:  FieldKeepHuman,
			MaxPromptTokens: 2800,
		},
		Privacy: Privacy{Redact: true},
		Sweep: Sweep{
			FetchWorkers:     4,
			LockStaleAfter:   2 * time.Minute,
			FullEvery:        24 * time.Hour,
			EventsMargin:     5 * time.Minute,
			ContactsCacheTTL: 24 * time.Hour,
		},
		Serve: Serve{
			Listen:           "127.0.0.1:8080",
			CloseDebounce:    2 * time.Minute,
			MaxBodyBytes:     1 << 20,
			MessageRetention: 90 * 24 * time.Hour,
		},
		Bot: Bot{
			HandoffKeywords: []string{"operator", "manager", "human", "real person", "оператор", "менеджер", "живой человек", "человек"},
			HandoffQuiet:    24 * time.Hour,
			FallbackText:    "Thank you! A manager will answer you shortly",
		},
		Log: Log{Level: "info", Format: "auto"},
	}
}

// Error is a configuration problem. Key is the dotted key to fix
// ("kommo.base_url") or, for problems with the file itself, its path.
type Error struct {
	Key, Problem string
}

// Error reads "config: kommo.base_url: required".
func (e *Error) Error() string {
	return "config: " + e.Key + ": " + e.Problem
}

func problem(key, format string, args ...any) *Error {
	return &Error{Key: key, Problem: fmt.Sprintf(format, args...)}
}

// Need says which parts of the configuration a command uses, so that
// `auth login` does not demand an LLM key.
type Need uint

const (
	// NeedKommo: kommo.base_url and some credential.
	NeedKommo Need = 1 << iota
	// NeedOAuthApp: kommo.client_id, kommo.client_secret, kommo.redirect_uri.
	NeedOAuthApp
	// NeedChats: chats.channel_id, chats.channel_secret (required anyway
	// when either is set).
	NeedChats
	// NeedLLM: llm.model, llm.base_url, and llm.api_key unless the base URL is loopback.
	NeedLLM
	// NeedStore: store.path.
	NeedStore
	// NeedServe: serve.webhook_secret and a valid serve.listen.
	NeedServe
)

// NoteTypes are the Kommo note types a summary can be written as.
var NoteTypes = []string{"common", "service_message", "extended_service_message"}

var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"auto", "json", "text"}
)

// Validate returns the first problem, in a fixed order (the order of the keys
// in config.example.yaml), as an *Error. Values are always checked; need
// decides which keys must be set.
func (c *Config) Validate(need Need) error {
	if err := c.checkFinite(); err != nil {
		return err
	}
	for _, check := range []func(Need) *Error{c.validateKommo, c.validateChats, c.validateLLM, c.validateRest, c.validateServe} {
		if err := check(need); err != nil {
			return err
		}
	}
	return nil
}

// checkFinite refuses NaN and infinities in every float key. They come first,
// as a value that is not a number would from Load: NaN compares false with
// everything, so it would slip through every range check below.
func (c *Config) checkFinite() *Error {
	v := reflect.ValueOf(*c)
	for _, k := range leafKeys() {
		if k.typ.Kind() != reflect.Float64 {
			continue
		}
		if f := v.FieldByIndex(k.index).Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			return problem(k.name, "must be a finite number")
		}
	}
	return nil
}

// minDuration is the smallest value of each duration key. Below a second a
// timeout fails every request. The heartbeat ticks at an eighth of
// lock_stale_after, and a run whose heartbeat is half of it late stops
// writing: below 2s a busy store (a token refresh holds its write lock for
// an HTTP call) would stop runs for nothing.
var minDuration = map[string]time.Duration{
	"kommo.timeout":            time.Second,
	"llm.timeout":              time.Second,
	"sweep.lock_stale_after":   2 * time.Second,
	"sweep.full_every":         time.Minute,
	"sweep.events_margin":      time.Second,
	"sweep.contacts_cache_ttl": time.Minute,
	"serve.close_debounce":     time.Second,
	"serve.message_retention":  time.Hour,
	"bot.handoff_quiet":        time.Minute,
}

func checkDuration(key string, d time.Duration, example string) *Error {
	if least := minDuration[key]; d < least {
		return problem(key, "must be at least %s, like %q", least, example)
	}
	return nil
}

func (c *Config) validateKommo(need Need) *Error {
	k := c.Kommo
	if k.BaseURL == "" {
		if need&(NeedKommo|NeedOAuthApp) != 0 {
			return problem("kommo.base_url", "required")
		}
	} else if err := checkURL("kommo.base_url", k.BaseURL); err != nil {
		return err
	} else if u, _ := url.Parse(k.BaseURL); strings.Contains(u.Path, "/api/") {
		return problem("kommo.base_url", "must be the account address without /api/v4, like https://SUBDOMAIN.kommo.com")
	}
	if need&NeedOAuthApp != 0 {
		switch {
		case k.ClientID == "":
			return problem("kommo.client_id", "required")
		case k.ClientSecret == "":
			return problem("kommo.client_secret", "required")
		case k.RedirectURI == "":
			return problem("kommo.redirect_uri", "required")
		}
	}
	if k.RedirectURI != "" {
		if err := checkURL("kommo.redirect_uri", k.RedirectURI); err != nil {
			return err
		}
	}
	if need&NeedKommo != 0 && !c.HasKommoCredentials() {
		return problem("kommo.long_lived_token",
			"required (or kommo.client_id and kommo.client_secret to run `auth login`, or kommo.access_token and kommo.refresh_token)")
	}
	switch {
	case k.SummaryFieldID < 0:
		return problem("kommo.summary_field_id", "must be a field id, or 0 to write notes only")
	case k.RequestsPerSecond < 0.1 || k.RequestsPerSecond > 50:
		return problem("kommo.requests_per_second", "must be between 0.1 and 50")
	case k.BatchSize < 1 || k.BatchSize > 250:
		return problem("kommo.batch_size", "must be between 1 and 250")
	}
	return checkDuration("kommo.timeout", k.Timeout, "30s")
}

func (c *Config) validateChats(need Need) *Error {
	ch := c.Chats
	if ch.BaseURL == "" {
		if need&NeedChats != 0 {
			return problem("chats.base_url", "required")
		}
	} else if err := checkURL("chats.base_url", ch.BaseURL); err != nil {
		return err
	}
	if need&NeedChats != 0 || c.ChatsEnabled() {
		switch {
		case ch.ChannelID == "":
			return problem("chats.channel_id", "required")
		case ch.ChannelSecret == "":
			return problem("chats.channel_secret", "required")
		}
	}
	if ch.RequestsPerSecond < 0.1 || ch.RequestsPerSecond > 50 {
		return problem("chats.requests_per_second", "must be between 0.1 and 50")
	}
	return nil
}

func (c *Config) validateLLM(need Need) *Error {
	l := c.LLM
	if l.BaseURL == "" {
		if need&NeedLLM != 0 {
			return problem("llm.base_url", "required")
		}
	} else if err := checkURL("llm.base_url", l.BaseURL); err != nil {
		return err
	}
	if need&NeedLLM != 0 {
		switch {
		case l.APIKey == "" && !isLoopbackURL(l.BaseURL):
			return problem("llm.api_key", "required (or set OPENAI_API_KEY)")
		case l.Model == "":
			return problem("llm.model", "required")
		case l.Language == "":
			return problem("llm.language", "required")
		}
	}
	switch {
	case l.Temperature < 0 || l.Temperature > 2:
		return problem("llm.temperature", "must be between 0 and 2")
	case l.SendTemperature != "auto" && l.SendTemperature != "always" && l.SendTemperature != "never":
		return problem("llm.send_temperature", "must be auto, always or never")
	case l.MaxTokens < 1:
		return problem("llm.max_tokens", "must be at least 1")
	case l.Concurrency < 1 || l.Concurrency > 64:
		return problem("llm.concurrency", "must be between 1 and 64")
	case l.PriceInputPer1M < 0:
		return problem("llm.price_input_per_1m", "must not be negative")
	case l.PriceOutputPer1M < 0:
		return problem("llm.price_output_per_1m", "must not be negative")
	}
	return checkDuration("llm.timeout", l.Timeout, "60s")
}

func (c *Config) validateRest(need Need) *Error {
	if need&NeedStore != 0 && c.Store.Path == "" {
		return problem("store.path", "required")
	}
	s := c.Summary
	if !slices.Contains(NoteTypes, s.NoteType) {
		return problem("summary.note_type", "must be one of %s", strings.Join(NoteTypes, ", "))
	}
	if s.NoteType != "common" && s.NoteService == "" {
		return problem("summary.note_service", "required when summary.note_type is %s", s.NoteType)
	}
	if s.FieldMaxChars < 1 {
		return problem("summary.field_max_chars", "must be at least 1")
	}
	if _, err := c.Location(); err != nil {
		return err.(*Error)
	}
	switch {
	case s.MaxMessageChars < 1:
		return problem("summary.max_message_chars", "must be at least 1")
	case s.HeadMessages < 1:
		return problem("summary.head_messages", "must be at least 1")
	case s.TailMessages < 1:
		return problem("summary.tail_messages", "must be at least 1")
	case s.RebuildEvery < 1:
		return problem("summary.rebuild_every", "must be at least 1 (1 rebuilds every summary)")
	case s.FieldOverwrite != FieldKeepHuman && s.FieldOverwrite != FieldAlways:
		return problem("summary.field_overwrite", "must be %s or %s", FieldKeepHuman, FieldAlways)
	case s.MaxPromptTokens < 500:
		return problem("summary.max_prompt_tokens", "must be at least 500")
	case c.Budget.MaxUSDPerRun < 0:
		return problem("budget.max_usd_per_run", "must not be negative (0 means no cap)")
	case c.Budget.MaxUSDPerDay < 0:
		return problem("budget.max_usd_per_day", "must not be negative (0 means no cap)")
	case c.Sweep.FetchWorkers < 1 || c.Sweep.FetchWorkers > 32:
		return problem("sweep.fetch_workers", "must be between 1 and 32")
	}
	if err := checkDuration("sweep.lock_stale_after", c.Sweep.LockStaleAfter, "2m"); err != nil {
		return err
	}
	if err := checkDuration("sweep.full_every", c.Sweep.FullEvery, "24h"); err != nil {
		return err
	}
	if err := checkDuration("sweep.events_margin", c.Sweep.EventsMargin, "5m"); err != nil {
		return err
	}
	if c.Sweep.EventsMargin > 24*time.Hour {
		return problem("sweep.events_margin", "must be at most 24h, like \"5m\"")
	}
	if err := checkDuration("sweep.contacts_cache_ttl", c.Sweep.ContactsCacheTTL, "24h"); err != nil {
		return err
	}
	switch {
	case !slices.Contains(logLevels, c.Log.Level):
		return problem("log.level", "must be one of %s", strings.Join(logLevels, ", "))
	case !slices.Contains(logFormats, c.Log.Format):
		return problem("log.format", "must be one of %s", strings.Join(logFormats, ", "))
	}
	return nil
}

// MinWebhookSecret is the shortest serve.webhook_secret accepted: the secret
// in the webhook path is the only thing that tells Kommo's unsigned
// deliveries from anyone else's.
const MinWebhookSecret = 16

func (c *Config) validateServe(need Need) *Error {
	s := c.Serve
	if need&NeedServe != 0 {
		switch {
		case s.WebhookSecret == "":
			return problem("serve.webhook_secret", "required: a random string of at least %d characters (openssl rand -hex 16)", MinWebhookSecret)
		case len(s.WebhookSecret) < MinWebhookSecret:
			return problem("serve.webhook_secret", "must be at least %d characters (openssl rand -hex 16)", MinWebhookSecret)
		}
		if _, _, err := net.SplitHostPort(s.Listen); err != nil {
			return problem("serve.listen", "must be host:port like 127.0.0.1:8080")
		}
	}
	if strings.ContainsAny(s.WebhookSecret, "/?#% ") {
		return problem("serve.webhook_secret", "must not contain '/', '?', '#', '%%' or spaces: it is part of a URL path")
	}
	if s.PublicURL != "" {
		if err := checkURL("serve.public_url", s.PublicURL); err != nil {
			return err
		}
	}
	if s.AdminToken != "" && len(s.AdminToken) < MinWebhookSecret {
		return problem("serve.admin_token", "must be at least %d characters", MinWebhookSecret)
	}
	for _, d := range []struct {
		key     string
		v       time.Duration
		example string
	}{{"serve.close_debounce", s.CloseDebounce, "2m"}, {"serve.message_retention", s.MessageRetention, "2160h"}, {"bot.handoff_quiet", c.Bot.HandoffQuiet, "24h"}} {
		if err := checkDuration(d.key, d.v, d.example); err != nil {
			return err
		}
	}
	if s.MaxBodyBytes < 1024 {
		return problem("serve.max_body_bytes", "must be at least 1024")
	}
	return nil
}

// ChatsEnabled reports whether a Chats API channel is configured. Without
// one, conversations come from the message log alone (the webhooks that
// `serve` takes).
func (c *Config) ChatsEnabled() bool {
	return c.Chats.ChannelID != "" || c.Chats.ChannelSecret != ""
}

// HasKommoCredentials reports whether the configuration can reach Kommo on
// its own: a base URL and a long-lived token, an OAuth pair, or an OAuth app
// whose tokens `auth login` keeps in the store.
func (c *Config) HasKommoCredentials() bool {
	k := c.Kommo
	return k.BaseURL != "" && (k.LongLivedToken != "" || k.AccessToken != "" || k.RefreshToken != "" ||
		(k.ClientID != "" && k.ClientSecret != ""))
}

// Location returns summary.timezone as a *time.Location.
func (c *Config) Location() (*time.Location, error) {
	name := c.Summary.Timezone
	if name == "" {
		return nil, problem("summary.timezone", "required (an IANA name like \"Europe/Moscow\", or \"UTC\")")
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, problem("summary.timezone", "unknown time zone %q", name)
	}
	return loc, nil
}

// Warnings returns one line for each secret that would travel over plain
// http to a host that is not this machine. They are not errors: a test
// server on the LAN is a legitimate choice.
//
// A config file that holds secrets and that other users can read is one
// too, as ssh warns of a private key file.
func (c *Config) Warnings() []string {
	out := slices.Clone(c.fileWarnings)
	k := c.Kommo
	if k.LongLivedToken != "" || k.AccessToken != "" || k.RefreshToken != "" || k.ClientSecret != "" {
		if host, ok := plainRemote(k.BaseURL); ok {
			out = append(out, fmt.Sprintf("kommo.base_url is plain http to %s: the access token would travel unencrypted", host))
		}
	}
	if c.Chats.ChannelSecret != "" {
		if host, ok := plainRemote(c.Chats.BaseURL); ok {
			out = append(out, fmt.Sprintf("chats.base_url is plain http to %s: the chat history would travel unencrypted", host))
		}
	}
	if c.LLM.APIKey != "" {
		if host, ok := plainRemote(c.LLM.BaseURL); ok {
			out = append(out, fmt.Sprintf("llm.base_url is plain http to %s: the API key would travel unencrypted", host))
		}
	}
	return out
}

// plainRemote returns the host of rawURL when it is plain http to a host
// that is not loopback.
func plainRemote(rawURL string) (string, bool) {
	u, err := url.Parse(rawURL)
	if err != nil || !strings.EqualFold(u.Scheme, "http") || u.Hostname() == "" || isLoopbackHost(u.Hostname()) {
		return "", false
	}
	return u.Hostname(), true
}

func checkURL(key, raw string) *Error {
	u, err := url.Parse(raw)
	if err != nil || (!strings.EqualFold(u.Scheme, "http") && !strings.EqualFold(u.Scheme, "https")) || u.Host == "" {
		return problem(key, "must be an http or https URL")
	}
	return nil
}

func isLoopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && isLoopbackHost(u.Hostname())
}

func isLoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
