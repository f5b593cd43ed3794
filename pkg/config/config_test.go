package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/viper"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustLoad(t *testing.T, path string, environ []string) *Config {
	t.Helper()
	c, err := Load(path, environ)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func wantError(t *testing.T, err error, key, problemPart string) {
	t.Helper()
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error = %v (%T), want *config.Error", err, err)
	}
	if ce.Key != key || !strings.Contains(ce.Problem, problemPart) {
		t.Fatalf("error = Key %q Problem %q, want Key %q and a problem containing %q", ce.Key, ce.Problem, key, problemPart)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("error spans lines: %q", err.Error())
	}
}

func TestLoadDefaults(t *testing.T) {
	c := mustLoad(t, "", nil)
	if !reflect.DeepEqual(*c, Default()) {
		t.Fatalf("Load(\"\", nil) = %+v\nwant %+v", *c, Default())
	}
	d := Default()
	// A few spelled out, so that Default itself is checked against the spec.
	if d.Kommo.RequestsPerSecond != 7 || d.Kommo.BatchSize != 50 || d.Kommo.Timeout != 30*time.Second ||
		d.Chats.BaseURL != "https://amojo.kommo.com" || d.LLM.BaseURL != "https://api.openai.com/v1" ||
		d.LLM.Model != "gpt-4o-mini" || d.LLM.Temperature != 0.3 || d.LLM.Timeout != 60*time.Second ||
		d.Store.Path != "kommo-summarizer.db" || d.Summary.NoteType != "common" || d.Summary.TailMessages != 40 ||
		d.Sweep.LockStaleAfter != 2*time.Minute || d.Log.Level != "info" || d.Log.Format != "auto" {
		t.Fatalf("Default() = %+v", d)
	}
	// The defaults are valid for everything but the keys nobody can guess.
	if err := d.Validate(0); err != nil {
		t.Fatalf("Default().Validate(0) = %v", err)
	}
}

func TestLoadFile(t *testing.T) {
	path := writeFile(t, `
kommo:
  base_url: https://acme.kommo.com
  long_lived_token: llt
  summary_field_id: 123
  requests_per_second: 3.5
  timeout: 45s
llm:
  model: gpt-4.1-mini
  temperature: 0
summary:
  timezone: Europe/Moscow
sweep:
  lock_stale_after: 90s
`)
	c := mustLoad(t, path, nil)
	want := Default()
	want.Kommo.BaseURL = "https://acme.kommo.com"
	want.Kommo.LongLivedToken = "llt"
	want.Kommo.SummaryFieldID = 123
	want.Kommo.RequestsPerSecond = 3.5
	want.Kommo.Timeout = 45 * time.Second
	want.LLM.Model = "gpt-4.1-mini"
	want.LLM.Temperature = 0
	want.Summary.Timezone = "Europe/Moscow"
	want.Sweep.LockStaleAfter = 90 * time.Second
	if !reflect.DeepEqual(*c, want) {
		t.Fatalf("Load = %+v\nwant %+v", *c, want)
	}
	loc, err := c.Location()
	if err != nil || loc.String() != "Europe/Moscow" {
		t.Fatalf("Location() = %v, %v", loc, err)
	}
}

func TestLoadEnv(t *testing.T) {
	path := writeFile(t, `
kommo:
  base_url: https://file.kommo.com
  batch_size: 20
llm:
  api_key: from-file
`)
	env := []string{
		"KOMMO_SUMMARIZER_KOMMO_BASE_URL=https://env.kommo.com",
		"KOMMO_SUMMARIZER_SWEEP_LOCK_STALE_AFTER=5m",
		"KOMMO_SUMMARIZER_KOMMO_REQUESTS_PER_SECOND=2.5",
		"KOMMO_SUMMARIZER_LLM_CONCURRENCY=8",
		"KOMMO_SUMMARIZER_CHATS_CHANNEL_SECRET=s3cret",
		"KOMMO_SUMMARIZER_LOG_LEVEL=", // empty means unset
		"UNRELATED=x",
		"NOEQUALSSIGN",
		"OPENAI_API_KEY=from-openai-env",
	}
	c := mustLoad(t, path, env)
	if c.Kommo.BaseURL != "https://env.kommo.com" {
		t.Errorf("kommo.base_url = %q, want the env value over the file", c.Kommo.BaseURL)
	}
	if c.Kommo.BatchSize != 20 {
		t.Errorf("kommo.batch_size = %d, want the file's 20", c.Kommo.BatchSize)
	}
	if c.Sweep.LockStaleAfter != 5*time.Minute || c.Kommo.RequestsPerSecond != 2.5 || c.LLM.Concurrency != 8 ||
		c.Chats.ChannelSecret != "s3cret" || c.Log.Level != "info" {
		t.Errorf("env values not applied: %+v", c)
	}
	if c.LLM.APIKey != "from-file" {
		t.Errorf("llm.api_key = %q: the file must win over OPENAI_API_KEY", c.LLM.APIKey)
	}

	t.Run("api key precedence", func(t *testing.T) {
		noKeyFile := writeFile(t, "llm:\n  model: m\n")
		for _, tc := range []struct {
			name, path string
			env        []string
			want       string
		}{
			{"OPENAI_API_KEY alone", noKeyFile, []string{"OPENAI_API_KEY=openai"}, "openai"},
			{"no file, OPENAI_API_KEY", "", []string{"OPENAI_API_KEY=openai"}, "openai"},
			{"ours wins over OPENAI_API_KEY", noKeyFile, []string{"KOMMO_SUMMARIZER_LLM_API_KEY=ours", "OPENAI_API_KEY=openai"}, "ours"},
			{"ours wins, other order", noKeyFile, []string{"OPENAI_API_KEY=openai", "KOMMO_SUMMARIZER_LLM_API_KEY=ours"}, "ours"},
			{"ours wins over the file", path, []string{"KOMMO_SUMMARIZER_LLM_API_KEY=ours", "OPENAI_API_KEY=openai"}, "ours"},
			{"the file wins over OPENAI_API_KEY", path, []string{"OPENAI_API_KEY=openai"}, "from-file"},
			{"last duplicate wins", "", []string{"OPENAI_API_KEY=a", "OPENAI_API_KEY=b"}, "b"},
			{"nothing", noKeyFile, nil, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if got := mustLoad(t, tc.path, tc.env).LLM.APIKey; got != tc.want {
					t.Fatalf("llm.api_key = %q, want %q", got, tc.want)
				}
			})
		}
	})

	t.Run("the process environment is not read", func(t *testing.T) {
		t.Setenv("KOMMO_SUMMARIZER_KOMMO_BASE_URL", "https://process.kommo.com")
		t.Setenv("OPENAI_API_KEY", "process")
		c := mustLoad(t, "", nil)
		if c.Kommo.BaseURL != "" || c.LLM.APIKey != "" {
			t.Fatalf("Load read the process environment: %+v", c.Kommo)
		}
	})
}

func TestLoadEmptySections(t *testing.T) {
	// Everything under a section commented out, or a key with no value:
	// the defaults stay.
	path := writeFile(t, "kommo:\n  # base_url: https://x.kommo.com\nllm:\n  model:\n  timeout:\nsweep: ~\nlog:\n  level: debug\n")
	c := mustLoad(t, path, nil)
	want := Default()
	want.Log.Level = "debug"
	if !reflect.DeepEqual(*c, want) {
		t.Fatalf("Load = %+v\nwant %+v", *c, want)
	}
	for _, body := range []string{"", "# nothing\n"} {
		if c := mustLoad(t, writeFile(t, body), nil); !reflect.DeepEqual(*c, Default()) {
			t.Fatalf("Load(%q) = %+v", body, *c)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.yaml")
	_, err := Load(missing, nil)
	wantError(t, err, missing, "file not found")
	if err.Error() != "config: "+missing+": file not found" {
		t.Fatalf("Error() = %q", err.Error())
	}

	for _, tc := range []struct {
		name, body string
		env        []string
		key, part  string
	}{
		{"unknown key", "kommo:\n  base_url: https://a.kommo.com\n  bogus: 1\n", nil, "kommo.bogus", "unknown key"},
		{"unknown section", "kommo:\n  base_url: https://a.kommo.com\nextra:\n  a: 1\n", nil, "extra.a", "unknown key"},
		{"unknown top-level scalar", "verbose: true\n", nil, "verbose", "unknown key"},
		{"first unknown key in sorted order", "log:\n  zzz: 1\nkommo:\n  aaa: 1\n", nil, "kommo.aaa", "unknown key"},
		{"section as a value", "kommo: 5\n", nil, "kommo", "must be a section"},
		{"value as a section", "kommo:\n  base_url:\n    host: x\n", nil, "kommo.base_url", "must be a single value"},
		{"float", "kommo:\n  requests_per_second: fast\n", nil, "kommo.requests_per_second", `must be a number, got "fast"`},
		{"int", "kommo:\n  batch_size: lots\n", nil, "kommo.batch_size", `must be a whole number, got "lots"`},
		{"int from a list", "llm:\n  max_tokens: [1, 2]\n", nil, "llm.max_tokens", "must be a whole number, got a list"},
		{"duration", "kommo:\n  timeout: 30 seconds\n", nil, "kommo.timeout", `must be a duration like "30s"`},
		{"bare number duration", "kommo:\n  timeout: 30\n", nil, "kommo.timeout", "must be a duration"},
		{"string from a list", "llm:\n  model: [a, b]\n", nil, "llm.model", "must be a single text value"},
		{"env float", "", []string{"KOMMO_SUMMARIZER_KOMMO_REQUESTS_PER_SECOND=fast"}, "kommo.requests_per_second",
			`must be a number, got "fast" (from KOMMO_SUMMARIZER_KOMMO_REQUESTS_PER_SECOND)`},
		{"env duration", "", []string{"KOMMO_SUMMARIZER_LLM_TIMEOUT=60"}, "llm.timeout", "(from KOMMO_SUMMARIZER_LLM_TIMEOUT)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, tc.body)
			_, err := Load(path, tc.env)
			wantError(t, err, tc.key, tc.part)
		})
	}

	t.Run("bad YAML", func(t *testing.T) {
		path := writeFile(t, "kommo:\n\tbase_url: x\n")
		_, err := Load(path, nil)
		wantError(t, err, path, "invalid YAML: yaml: line 2")
		if !strings.HasPrefix(err.Error(), "config: "+path+": invalid YAML: ") {
			t.Fatalf("Error() = %q", err)
		}
	})
	t.Run("YAML that is not a mapping", func(t *testing.T) {
		path := writeFile(t, "- a\n- b\n")
		_, err := Load(path, nil)
		wantError(t, err, path, "cannot unmarshal !!seq")
	})
	t.Run("a directory", func(t *testing.T) {
		_, err := Load(dir, nil)
		wantError(t, err, dir, "")
		// The path is the Key; the problem must not repeat it.
		if ce := err.(*Error); strings.Contains(ce.Problem, dir) || ce.Problem == "" {
			t.Fatalf("Problem = %q", ce.Problem)
		}
	})
}

// valid returns a configuration that passes Validate(needAll).
func valid() Config {
	c := Default()
	c.Kommo.BaseURL = "https://acme.kommo.com"
	c.Kommo.ClientID = "id"
	c.Kommo.ClientSecret = "secret"
	c.Kommo.RedirectURI = "https://example.com/oauth"
	c.Chats.ChannelID = "chan"
	c.Chats.ChannelSecret = "chan-secret"
	c.LLM.APIKey = "sk-x"
	return c
}

func TestValidate(t *testing.T) {
	if err := func() *Config { c := valid(); return &c }().Validate(needAll); err != nil {
		t.Fatalf("valid().Validate(needAll) = %v", err)
	}
	for _, tc := range []struct {
		name   string
		need   Need
		change func(c *Config)
		want   string // Error() without the "config: " prefix; "" = valid
	}{
		{"base_url required", NeedKommo, func(c *Config) { c.Kommo.BaseURL = "" }, "kommo.base_url: required"},
		{"base_url required for the OAuth app", NeedOAuthApp, func(c *Config) { c.Kommo.BaseURL = "" }, "kommo.base_url: required"},
		{"base_url not required without need", NeedLLM, func(c *Config) { c.Kommo.BaseURL = "" }, ""},
		{"base_url scheme", 0, func(c *Config) { c.Kommo.BaseURL = "ftp://acme.kommo.com" }, "kommo.base_url: must be an http or https URL"},
		{"base_url host", 0, func(c *Config) { c.Kommo.BaseURL = "acme.kommo.com" }, "kommo.base_url: must be an http or https URL"},
		{"base_url with api path", 0, func(c *Config) { c.Kommo.BaseURL = "https://acme.kommo.com/api/v4" },
			"kommo.base_url: must be the account address without /api/v4, like https://SUBDOMAIN.kommo.com"},
		{"client_id", NeedOAuthApp, func(c *Config) { c.Kommo.ClientID = "" }, "kommo.client_id: required"},
		{"client_secret", NeedOAuthApp, func(c *Config) { c.Kommo.ClientSecret = "" }, "kommo.client_secret: required"},
		{"redirect_uri", NeedOAuthApp, func(c *Config) { c.Kommo.RedirectURI = "" }, "kommo.redirect_uri: required"},
		{"redirect_uri URL", 0, func(c *Config) { c.Kommo.RedirectURI = "example.com/cb" }, "kommo.redirect_uri: must be an http or https URL"},
		{"no credential", NeedKommo, func(c *Config) { c.Kommo.ClientID, c.Kommo.ClientSecret = "", "" },
			"kommo.long_lived_token: required (or kommo.client_id and kommo.client_secret to run `auth login`, or kommo.access_token and kommo.refresh_token)"},
		{"client id alone is no credential", NeedKommo, func(c *Config) { c.Kommo.ClientSecret = "" }, "kommo.long_lived_token: required (or"},
		{"long-lived token is a credential", NeedKommo, func(c *Config) {
			c.Kommo.ClientID, c.Kommo.ClientSecret, c.Kommo.LongLivedToken = "", "", "llt"
		}, ""},
		{"refresh token is a credential", NeedKommo, func(c *Config) {
			c.Kommo.ClientID, c.Kommo.ClientSecret, c.Kommo.RefreshToken = "", "", "rt"
		}, ""},
		{"access token is a credential", NeedKommo, func(c *Config) {
			c.Kommo.ClientID, c.Kommo.ClientSecret, c.Kommo.AccessToken = "", "", "at"
		}, ""},
		{"summary_field_id", 0, func(c *Config) { c.Kommo.SummaryFieldID = -1 }, "kommo.summary_field_id: must be a field id, or 0 to write notes only"},
		{"kommo rps low", 0, func(c *Config) { c.Kommo.RequestsPerSecond = 0.05 }, "kommo.requests_per_second: must be between 0.1 and 50"},
		{"kommo rps high", 0, func(c *Config) { c.Kommo.RequestsPerSecond = 51 }, "kommo.requests_per_second: must be between 0.1 and 50"},
		{"kommo rps edge", 0, func(c *Config) { c.Kommo.RequestsPerSecond = 0.1 }, ""},
		{"batch_size", 0, func(c *Config) { c.Kommo.BatchSize = 251 }, "kommo.batch_size: must be between 1 and 250"},
		{"kommo timeout", 0, func(c *Config) { c.Kommo.Timeout = 0 }, `kommo.timeout: must be at least 1s, like "30s"`},
		{"kommo timeout under a second", 0, func(c *Config) { c.Kommo.Timeout = 999 * time.Millisecond }, `kommo.timeout: must be at least 1s, like "30s"`},
		{"kommo timeout edge", 0, func(c *Config) { c.Kommo.Timeout = time.Second }, ""},
		{"kommo rps NaN", 0, func(c *Config) { c.Kommo.RequestsPerSecond = math.NaN() }, "kommo.requests_per_second: must be a finite number"},
		{"chats base_url required", NeedChats, func(c *Config) { c.Chats.BaseURL = "" }, "chats.base_url: required"},
		{"chats base_url URL", 0, func(c *Config) { c.Chats.BaseURL = "amojo" }, "chats.base_url: must be an http or https URL"},
		{"channel_id", NeedChats, func(c *Config) { c.Chats.ChannelID = "" }, "chats.channel_id: required"},
		{"channel_secret", NeedChats, func(c *Config) { c.Chats.ChannelSecret = "" }, "chats.channel_secret: required"},
		{"half a channel", NeedKommo | NeedOAuthApp | NeedStore, func(c *Config) { c.Chats.ChannelSecret = "" }, "chats.channel_secret: required"},
		{"no channel: the message log alone", NeedKommo | NeedLLM | NeedStore, func(c *Config) { c.Chats.ChannelID, c.Chats.ChannelSecret = "", "" }, ""},
		{"chats rps", 0, func(c *Config) { c.Chats.RequestsPerSecond = 0 }, "chats.requests_per_second: must be between 0.1 and 50"},
		{"llm base_url required", NeedLLM, func(c *Config) { c.LLM.BaseURL = "" }, "llm.base_url: required"},
		{"llm base_url URL", 0, func(c *Config) { c.LLM.BaseURL = "localhost:8080" }, "llm.base_url: must be an http or https URL"},
		{"api_key", NeedLLM, func(c *Config) { c.LLM.APIKey = "" }, "llm.api_key: required (or set OPENAI_API_KEY)"},
		{"api_key not needed on 127.0.0.1", NeedLLM, func(c *Config) { c.LLM.APIKey, c.LLM.BaseURL = "", "http://127.0.0.1:11434/v1" }, ""},
		{"api_key not needed on localhost", NeedLLM, func(c *Config) { c.LLM.APIKey, c.LLM.BaseURL = "", "http://localhost:8080/v1" }, ""},
		{"api_key not needed on ::1", NeedLLM, func(c *Config) { c.LLM.APIKey, c.LLM.BaseURL = "", "http://[::1]:8080/v1" }, ""},
		{"api_key needed on the LAN", NeedLLM, func(c *Config) { c.LLM.APIKey, c.LLM.BaseURL = "", "http://10.0.0.5/v1" }, "llm.api_key: required (or set OPENAI_API_KEY)"},
		{"api_key not needed for auth", NeedKommo | NeedOAuthApp, func(c *Config) { c.LLM.APIKey = "" }, ""},
		{"model", NeedLLM, func(c *Config) { c.LLM.Model = "" }, "llm.model: required"},
		{"language", NeedLLM, func(c *Config) { c.LLM.Language = "" }, "llm.language: required"},
		{"temperature", 0, func(c *Config) { c.LLM.Temperature = 2.5 }, "llm.temperature: must be between 0 and 2"},
		{"send_temperature", 0, func(c *Config) { c.LLM.SendTemperature = "sometimes" }, "llm.send_temperature: must be auto, always or never"},
		{"max_tokens", 0, func(c *Config) { c.LLM.MaxTokens = 0 }, "llm.max_tokens: must be at least 1"},
		{"concurrency", 0, func(c *Config) { c.LLM.Concurrency = 65 }, "llm.concurrency: must be between 1 and 64"},
		{"price in", 0, func(c *Config) { c.LLM.PriceInputPer1M = -1 }, "llm.price_input_per_1m: must not be negative"},
		{"price out", 0, func(c *Config) { c.LLM.PriceOutputPer1M = -1 }, "llm.price_output_per_1m: must not be negative"},
		{"llm timeout", 0, func(c *Config) { c.LLM.Timeout = -time.Second }, `llm.timeout: must be at least 1s, like "60s"`},
		{"temperature NaN", 0, func(c *Config) { c.LLM.Temperature = math.NaN() }, "llm.temperature: must be a finite number"},
		{"price in NaN", 0, func(c *Config) { c.LLM.PriceInputPer1M = math.NaN() }, "llm.price_input_per_1m: must be a finite number"},
		{"price out Inf", 0, func(c *Config) { c.LLM.PriceOutputPer1M = math.Inf(1) }, "llm.price_output_per_1m: must be a finite number"},
		{"store path", NeedStore, func(c *Config) { c.Store.Path = "" }, "store.path: required"},
		{"note_type", 0, func(c *Config) { c.Summary.NoteType = "call_in" },
			"summary.note_type: must be one of common, service_message, extended_service_message"},
		{"note_service", 0, func(c *Config) { c.Summary.NoteType, c.Summary.NoteService = "extended_service_message", "" },
			"summary.note_service: required when summary.note_type is extended_service_message"},
		{"note_service unused by common", 0, func(c *Config) { c.Summary.NoteService = "" }, ""},
		{"field_max_chars", 0, func(c *Config) { c.Summary.FieldMaxChars = 0 }, "summary.field_max_chars: must be at least 1"},
		{"timezone", 0, func(c *Config) { c.Summary.Timezone = "Mars/Base" }, `summary.timezone: unknown time zone "Mars/Base"`},
		{"timezone empty", 0, func(c *Config) { c.Summary.Timezone = "" }, `summary.timezone: required (an IANA name like "Europe/Moscow", or "UTC")`},
		{"max_message_chars", 0, func(c *Config) { c.Summary.MaxMessageChars = 0 }, "summary.max_message_chars: must be at least 1"},
		{"head_messages", 0, func(c *Config) { c.Summary.HeadMessages = 0 }, "summary.head_messages: must be at least 1"},
		{"tail_messages", 0, func(c *Config) { c.Summary.TailMessages = 0 }, "summary.tail_messages: must be at least 1"},
		{"fetch_workers", 0, func(c *Config) { c.Sweep.FetchWorkers = 33 }, "sweep.fetch_workers: must be between 1 and 32"},
		{"lock_stale_after", 0, func(c *Config) { c.Sweep.LockStaleAfter = 0 }, `sweep.lock_stale_after: must be at least 2s, like "2m"`},
		// 3ns passed once, and the heartbeat's ticker of a quarter of it panicked.
		{"lock_stale_after 3ns", 0, func(c *Config) { c.Sweep.LockStaleAfter = 3 }, `sweep.lock_stale_after: must be at least 2s, like "2m"`},
		{"lock_stale_after edge", 0, func(c *Config) { c.Sweep.LockStaleAfter = 10 * time.Second }, ""},
		{"log level", 0, func(c *Config) { c.Log.Level = "verbose" }, "log.level: must be one of debug, info, warn, error"},
		{"log format", 0, func(c *Config) { c.Log.Format = "xml" }, "log.format: must be one of auto, json, text"},
		{"first problem wins", needAll, func(c *Config) { c.Log.Format = "xml"; c.Kommo.BaseURL = "" }, "kommo.base_url: required"},
		{"first problem wins across sections", needAll, func(c *Config) { c.LLM.APIKey = ""; c.Chats.ChannelSecret = "" },
			"chats.channel_secret: required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.change(&c)
			err := c.Validate(tc.need)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Validate = %v (%T), want *config.Error", err, err)
			}
			// A prefix, so that a row may leave out the end of a long message.
			if got := err.Error(); !strings.HasPrefix(got, "config: "+tc.want) {
				t.Fatalf("Validate =\n  %q\nwant\n  %q", got, "config: "+tc.want)
			}
			if key, _, _ := strings.Cut(tc.want, ": "); ce.Key != key {
				t.Fatalf("Key = %q, want %q", ce.Key, key)
			}
		})
	}
}

// Every number key, present and future: a float that is not finite and a
// duration under its minimum fail Validate, naming the key.
func TestValidateEveryNumberKey(t *testing.T) {
	set := func(c *Config, k key, v any) {
		reflect.ValueOf(c).Elem().FieldByIndex(k.index).Set(reflect.ValueOf(v).Convert(k.typ))
	}
	for _, k := range leafKeys() {
		switch {
		case k.typ == durationType:
			least, ok := minDuration[k.name]
			if !ok || least <= 0 {
				t.Errorf("%s: no minimum in minDuration", k.name)
				continue
			}
			c := valid()
			set(&c, k, least)
			if err := c.Validate(needAll); err != nil {
				t.Errorf("%s = %s (the minimum): %v", k.name, least, err)
			}
			for _, d := range []time.Duration{least - 1, 3, 0, -time.Second} {
				c := valid()
				set(&c, k, d)
				wantError(t, c.Validate(needAll), k.name, "must be at least "+least.String())
			}
		case k.typ.Kind() == reflect.Float64:
			for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
				c := valid()
				set(&c, k, f)
				wantError(t, c.Validate(needAll), k.name, "must be a finite number")
			}
		}
	}
}

// Numbers as YAML and the environment spell them: NaN and infinities reach
// Validate, which refuses them; a fraction or a boolean for a whole number
// never gets past Load (mapstructure would read 2.5 as 2, true as 1).
func TestLoadNumbers(t *testing.T) {
	for _, k := range leafKeys() {
		section, name, _ := strings.Cut(k.name, ".")
		yaml := func(v string) string { return fmt.Sprintf("%s:\n  %s: %s\n", section, name, v) }
		switch k.typ.Kind() {
		case reflect.Float64:
			for _, v := range []string{".nan", ".inf", "-.inf", ".NaN"} {
				c := mustLoad(t, writeFile(t, yaml(v)), nil)
				wantError(t, c.Validate(0), k.name, "must be a finite number")
			}
			for _, v := range []string{"nan", "Inf", "-inf"} {
				c := mustLoad(t, "", []string{EnvName(k.name) + "=" + v})
				wantError(t, c.Validate(0), k.name, "must be a finite number")
			}
			_, err := Load(writeFile(t, yaml("true")), nil)
			wantError(t, err, k.name, "must be a number, got true")
		case reflect.Int, reflect.Int64:
			if k.typ == durationType {
				continue
			}
			for _, v := range []string{"2.5", "-0.5", ".nan", ".inf", "1e30", "true"} {
				_, err := Load(writeFile(t, yaml(v)), nil)
				wantError(t, err, k.name, "must be a whole number, got ")
			}
			_, err := Load("", []string{EnvName(k.name) + "=2.5"})
			wantError(t, err, k.name, `must be a whole number, got "2.5"`)
			c := mustLoad(t, writeFile(t, yaml("12.0")), nil)
			if got := reflect.ValueOf(*c).FieldByIndex(k.index).Int(); got != 12 {
				t.Errorf("%s: 12.0 read as %d, want 12", k.name, got)
			}
		}
	}
}

func TestHasKommoCredentials(t *testing.T) {
	c := Default()
	c.Kommo.LongLivedToken = "llt"
	if c.HasKommoCredentials() {
		t.Fatal("a token without base_url counts as credentials")
	}
	c.Kommo.BaseURL = "https://acme.kommo.com"
	if !c.HasKommoCredentials() {
		t.Fatal("base_url + long-lived token does not count")
	}
}

func TestWarnings(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(c *Config)
		want   []string
	}{
		{"https everywhere", func(c *Config) {}, nil},
		{"remote plain http", func(c *Config) {
			c.Kommo.BaseURL = "http://example.com"
			c.Chats.BaseURL = "http://chats.example.com:8080"
			c.LLM.BaseURL = "http://llm.example.com/v1"
		}, []string{
			"kommo.base_url is plain http to example.com: the access token would travel unencrypted",
			"chats.base_url is plain http to chats.example.com: the chat history would travel unencrypted",
			"llm.base_url is plain http to llm.example.com: the API key would travel unencrypted",
		}},
		{"loopback plain http", func(c *Config) {
			c.Kommo.BaseURL = "http://127.0.0.1:8080"
			c.Chats.BaseURL = "http://localhost:8081"
			c.LLM.BaseURL = "http://[::1]:8082/v1"
		}, nil},
		{"no secrets to leak", func(c *Config) {
			c.Kommo.BaseURL, c.Kommo.ClientSecret, c.Kommo.ClientID = "http://example.com", "", ""
			c.Chats.BaseURL, c.Chats.ChannelSecret = "http://example.com", ""
			c.LLM.BaseURL, c.LLM.APIKey = "http://example.com/v1", ""
		}, nil},
		{"a long-lived token alone", func(c *Config) {
			c.Kommo.BaseURL, c.Kommo.ClientSecret, c.Kommo.LongLivedToken = "http://example.com", "", "llt"
		}, []string{"kommo.base_url is plain http to example.com: the access token would travel unencrypted"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.change(&c)
			if got := c.Warnings(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Warnings() =\n  %q\nwant\n  %q", got, tc.want)
			}
		})
	}
}

// A file that gives secrets a value and that the group or others can read
// gets a warning naming the file and the fix, as ssh does for a key file.
func TestWarningsFileMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no group and other mode bits")
	}
	for _, tc := range []struct {
		name, body string
		mode       os.FileMode
		want       string // "" = no warning
	}{
		{"secret, 0644", "llm:\n  api_key: sk-1\n", 0o644, "(llm.api_key) and other users can read it (mode 0644): chmod 600 "},
		{"secrets, group-readable", "kommo:\n  long_lived_token: t\n  client_secret: s\nchats:\n  channel_secret: c\n", 0o640,
			"(kommo.client_secret, kommo.long_lived_token, chats.channel_secret) and other users can read it (mode 0640)"},
		{"every secret key", "kommo:\n  client_secret: a\n  access_token: b\n  refresh_token: c\n", 0o604,
			"(kommo.client_secret, kommo.access_token, kommo.refresh_token)"},
		{"secret, 0600", "llm:\n  api_key: sk-1\n", 0o600, ""},
		{"secret, 0400", "llm:\n  api_key: sk-1\n", 0o400, ""},
		{"no secret, 0644", "llm:\n  model: m\n  api_key: \"\"\n", 0o644, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, tc.body)
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			w := mustLoad(t, path, nil).Warnings()
			if tc.want == "" {
				if len(w) != 0 {
					t.Fatalf("Warnings() = %q, want none", w)
				}
				return
			}
			if len(w) != 1 || !strings.HasPrefix(w[0], path+" holds secrets ") || !strings.Contains(w[0], tc.want) ||
				!strings.HasSuffix(w[0], "chmod 600 "+path) {
				t.Fatalf("Warnings() = %q, want one naming %s and containing %q", w, path, tc.want)
			}
		})
	}
	// A secret from the environment is not the file's.
	path := writeFile(t, "llm:\n  model: m\n")
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if w := mustLoad(t, path, []string{"KOMMO_SUMMARIZER_LLM_API_KEY=sk-1"}).Warnings(); len(w) != 0 {
		t.Fatalf("Warnings() = %q, want none", w)
	}
}

func TestEnvName(t *testing.T) {
	if got := EnvName("kommo.base_url"); got != "KOMMO_SUMMARIZER_KOMMO_BASE_URL" {
		t.Fatalf("EnvName = %q", got)
	}
}

// exampleKeys walks Config on its own (not with the package's walker), so
// that a field added without a mapstructure tag or a file entry is caught.
func exampleKeys(t *testing.T) []string {
	var keys []string
	ct := reflect.TypeFor[Config]()
	for i := range ct.NumField() {
		sec := ct.Field(i)
		if !sec.IsExported() {
			continue // Load's own state, not a key
		}
		sname := sec.Tag.Get("mapstructure")
		if sname == "" || sec.Type.Kind() != reflect.Struct {
			t.Fatalf("Config.%s has no mapstructure tag or is not a section", sec.Name)
		}
		for j := range sec.Type.NumField() {
			f := sec.Type.Field(j)
			name := f.Tag.Get("mapstructure")
			if name == "" {
				t.Fatalf("Config.%s.%s has no mapstructure tag", sec.Name, f.Name)
			}
			keys = append(keys, sname+"."+name)
		}
	}
	return keys
}

func TestExampleConfig(t *testing.T) {
	path := filepath.Join("..", "..", "config.example.yaml")
	example, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A copy that only its owner can read, as the example tells: its
	// placeholders are secrets, and a checkout is world-readable.
	c, err := Load(writeFile(t, string(example)), nil)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	if err := c.Validate(needAll); err != nil {
		t.Fatalf("the example does not validate: %v", err)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Fatalf("the example has warnings: %q", w)
	}

	// Every key is written out, so the file documents all of them.
	v := viper.New()
	v.SetConfigFile(path)
	if err := v.ReadInConfig(); err != nil {
		t.Fatal(err)
	}
	for _, k := range exampleKeys(t) {
		if !v.InConfig(k) {
			t.Errorf("config.example.yaml does not mention %s", k)
		}
	}

	// Every key has a comment right above it, and the comment of every leaf
	// ends with "Default: X." where X is the real default.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defaults := map[string]any{}
	def := reflect.ValueOf(Default())
	for i := range def.NumField() {
		if !def.Type().Field(i).IsExported() {
			continue
		}
		sec := def.Type().Field(i).Tag.Get("mapstructure")
		for j := range def.Field(i).NumField() {
			defaults[sec+"."+def.Field(i).Type().Field(j).Tag.Get("mapstructure")] = def.Field(i).Field(j).Interface()
		}
	}
	keyLine := regexp.MustCompile(`^(\s*)([a-z0-9_]+):`)
	var comment []string
	section := ""
	stated := 0
	for i, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			comment = append(comment, strings.TrimSpace(strings.TrimPrefix(trimmed, "#")))
			continue
		}
		m := keyLine.FindStringSubmatch(line)
		if m == nil {
			comment = nil
			continue
		}
		if len(comment) == 0 {
			t.Errorf("config.example.yaml:%d: %s has no comment above it", i+1, m[2])
		}
		if m[1] == "" {
			section = m[2]
			comment = nil
			continue
		}
		k := section + "." + m[2]
		text := strings.Join(comment, " ")
		comment = nil
		_, after, ok := strings.Cut(text, "Default: ")
		if !ok {
			t.Errorf("config.example.yaml:%d: the comment of %s does not state its default", i+1, k)
			continue
		}
		stated++
		after = strings.TrimSuffix(after, ".")
		var got any
		switch want := defaults[k].(type) {
		case string:
			got = after
			if after == "empty" {
				got = ""
			}
		case time.Duration:
			got, err = time.ParseDuration(after)
		case float64:
			got, err = strconv.ParseFloat(after, 64)
		case int:
			got, err = strconv.Atoi(after)
		case int64:
			got, err = strconv.ParseInt(after, 10, 64)
		case bool:
			got, err = strconv.ParseBool(after)
		case []string:
			if strings.Join(want, ", ") != after {
				t.Errorf("config.example.yaml:%d: %s states \"Default: %s\", the default is %s", i+1, k, after, strings.Join(want, ", "))
			}
			continue
		default:
			t.Fatalf("%s: no rule for a default of type %T", k, want)
		}
		if err != nil || got != defaults[k] {
			t.Errorf("config.example.yaml:%d: %s states \"Default: %s\", the default is %v", i+1, k, after, defaults[k])
		}
	}
	if stated != len(defaults) {
		t.Errorf("config.example.yaml states %d defaults, Config has %d keys", stated, len(defaults))
	}
}

// needAll is every part of the configuration.
const needAll = NeedKommo | NeedOAuthApp | NeedChats | NeedLLM | NeedStore

func TestQualityKeys(t *testing.T) {
	c := mustLoad(t, "", []string{"KOMMO_SUMMARIZER_PRIVACY_REDACT=false", "KOMMO_SUMMARIZER_BUDGET_MAX_USD_PER_DAY=1.5"})
	if c.Privacy.Redact || c.Budget.MaxUSDPerDay != 1.5 || c.Summary.RebuildEvery != 5 || c.Summary.FieldOverwrite != FieldKeepHuman {
		t.Fatalf("privacy %+v budget %+v summary %+v", c.Privacy, c.Budget, c.Summary)
	}
	_, err := Load("", []string{"KOMMO_SUMMARIZER_PRIVACY_REDACT=maybe"})
	wantError(t, err, "privacy.redact", "must be true or false")
	for _, tc := range []struct {
		edit     func(*Config)
		key, msg string
	}{
		{func(c *Config) { c.Summary.FieldOverwrite = "never" }, "summary.field_overwrite", "keep_human or always"},
		{func(c *Config) { c.Summary.RebuildEvery = 0 }, "summary.rebuild_every", "at least 1"},
		{func(c *Config) { c.Summary.MaxPromptTokens = 100 }, "summary.max_prompt_tokens", "at least 500"},
		{func(c *Config) { c.Budget.MaxUSDPerRun = -1 }, "budget.max_usd_per_run", "must not be negative"},
		{func(c *Config) { c.Budget.MaxUSDPerDay = -0.5 }, "budget.max_usd_per_day", "must not be negative"},
	} {
		c := Default()
		tc.edit(&c)
		wantError(t, c.Validate(0), tc.key, tc.msg)
	}
}
