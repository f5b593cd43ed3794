package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/amojo"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/auth"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/config"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommo"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/llm"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/pace"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/summarize"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/sweep"
)

// app is what a command has built from the config. Fields are nil when the
// command did not ask for them.
type app struct {
	cfg    *config.Config
	log    *slog.Logger
	db     *store.DB
	kommo  *kommo.Client
	tokens *auth.Source // nil with a long-lived token
	oauth  kommo.OAuthApp
	amojo  *amojo.Client
	llm    *llm.Client
}

func (a *app) Close() {
	if a.db != nil {
		_ = a.db.Close()
	}
}

// build opens the store and the API clients the need asks for. The REST
// client and the token endpoint share one pacer: Kommo counts them together.
//
// logAttrs go on every log line, the API clients' included (a sweep's run_id).
func build(ctx context.Context, io IO, cfg *config.Config, need config.Need, logAttrs ...any) (*app, error) {
	a := &app{cfg: cfg, log: newLogger(io, cfg, logAttrs...)}
	db, err := store.Open(ctx, cfg.Store.Path)
	if err != nil {
		return nil, err
	}
	a.db = db
	if need&(config.NeedKommo|config.NeedOAuthApp) != 0 {
		httpc := &http.Client{Timeout: cfg.Kommo.Timeout}
		restPacer := pace.New(cfg.Kommo.RequestsPerSecond)
		guard := &kommo.Guard{} // one IP block guard for the account host
		a.oauth = kommo.OAuthApp{
			BaseURL: cfg.Kommo.BaseURL, ClientID: cfg.Kommo.ClientID, ClientSecret: cfg.Kommo.ClientSecret,
			RedirectURI: cfg.Kommo.RedirectURI, HTTPClient: httpc, Pacer: restPacer, Guard: guard,
		}
		var tokens kommo.TokenSource
		if cfg.Kommo.LongLivedToken != "" {
			tokens = kommo.StaticToken(cfg.Kommo.LongLivedToken)
		} else {
			a.tokens = &auth.Source{DB: db, App: a.oauth, Logger: a.log}
			if err := a.tokens.Seed(ctx, cfg.Kommo.AccessToken, cfg.Kommo.RefreshToken); err != nil {
				a.Close()
				return nil, err
			}
			tokens = a.tokens
		}
		a.kommo, err = kommo.New(kommo.Options{
			BaseURL: cfg.Kommo.BaseURL, HTTPClient: httpc, Tokens: tokens, Pacer: restPacer,
			ClientID: cfg.Kommo.ClientID, Logger: a.log, Guard: guard,
		})
		if err != nil {
			a.Close()
			return nil, &config.Error{Key: "kommo.base_url", Problem: err.Error()}
		}
	}
	if need&config.NeedChats != 0 {
		if err := a.buildChats(ctx); err != nil {
			a.Close()
			return nil, err
		}
	}
	if need&config.NeedLLM != 0 {
		if err := a.buildLLM(); err != nil {
			a.Close()
			return nil, err
		}
	}
	return a, nil
}

// buildChats sets up the Chats API client. Without chats.scope_id it asks
// Kommo for the account's amojo_id: scope_id is channel_id + "_" + amojo_id.
func (a *app) buildChats(ctx context.Context) error {
	cfg := a.cfg
	scope := cfg.Chats.ScopeID
	if scope == "" {
		acc, err := a.kommo.Account(ctx, "amojo_id")
		if err != nil {
			return fmt.Errorf("find the Chats API scope_id (GET /api/v4/account?with=amojo_id): %w", err)
		}
		if acc.AmojoID == "" {
			return &config.Error{Key: "chats.scope_id", Problem: "Kommo did not return the account's amojo_id: set chats.scope_id"}
		}
		scope = cfg.Chats.ChannelID + "_" + acc.AmojoID
	}
	c, err := amojo.New(amojo.Options{
		BaseURL: cfg.Chats.BaseURL, ScopeID: scope, ChannelSecret: cfg.Chats.ChannelSecret,
		HTTPClient: &http.Client{Timeout: cfg.Kommo.Timeout}, Pacer: pace.New(cfg.Chats.RequestsPerSecond), Logger: a.log,
	})
	if err != nil {
		return &config.Error{Key: "chats.base_url", Problem: err.Error()}
	}
	a.amojo = c
	return nil
}

func (a *app) buildLLM() error {
	cfg := a.cfg
	c, err := llm.New(llm.Options{
		BaseURL: cfg.LLM.BaseURL, APIKey: cfg.LLM.APIKey, Model: cfg.LLM.Model,
		Temperature: cfg.LLM.Temperature, SendTemperature: llm.TemperatureMode(cfg.LLM.SendTemperature), MaxTokens: cfg.LLM.MaxTokens,
		HTTPClient: &http.Client{Timeout: cfg.LLM.Timeout}, Logger: a.log,
	})
	if err != nil {
		return &config.Error{Key: "llm.base_url", Problem: err.Error()}
	}
	a.llm = c
	return nil
}

// sweepEngineOptions are engineOptions for `sweep`: the Chats API source
// reuses contacts' chats for sweep.contacts_cache_ttl (the change feed drops
// a contact's entry when an event names a new talk). Other commands read
// them afresh.
func (a *app) sweepEngineOptions() (sweep.Options, error) {
	so, err := a.engineOptions()
	if err != nil || a.amojo == nil || a.cfg.Sweep.ContactsCacheTTL <= 0 {
		return so, err
	}
	so.Sources[0] = sweep.ChatsAPI(sweep.CachedContactChats(a.kommo, a.db, a.cfg.Sweep.ContactsCacheTTL, time.Now), a.amojo)
	return so, nil
}

// engineOptions turns the config into the engine's options. The Chats API
// is a source only when a channel is configured; the message log always is.
func (a *app) engineOptions() (sweep.Options, error) {
	loc, err := a.cfg.Location()
	if err != nil {
		return sweep.Options{}, err
	}
	c := a.cfg
	var sources []sweep.Source
	if a.amojo != nil {
		sources = append(sources, sweep.ChatsAPI(a.kommo, a.amojo))
	}
	sources = append(sources, sweep.MessageLog(a.db))
	return sweep.Options{
		Kommo: a.kommo, Sources: sources, LLM: a.llm, DB: a.db,
		Prompt: summarize.Options{Language: c.LLM.Language, Location: loc, MaxMessageChars: c.Summary.MaxMessageChars, MaxWords: 150,
			MaxPromptTokens: c.Summary.MaxPromptTokens},
		Redact: c.Privacy.Redact, RebuildEvery: c.Summary.RebuildEvery, KeepHumanField: c.Summary.FieldOverwrite != config.FieldAlways,
		MaxUSDPerRun: c.Budget.MaxUSDPerRun, MaxUSDPerDay: c.Budget.MaxUSDPerDay, MaxOutputTokens: c.LLM.MaxTokens,
		Head: c.Summary.HeadMessages, Tail: c.Summary.TailMessages,
		NoteType: c.Summary.NoteType, NoteService: c.Summary.NoteService,
		FieldID: c.Kommo.SummaryFieldID, FieldMaxChars: c.Summary.FieldMaxChars,
		BatchSize: c.Kommo.BatchSize, FetchWorkers: c.Sweep.FetchWorkers, LLMWorkers: c.LLM.Concurrency,
		PriceInputPer1M: c.LLM.PriceInputPer1M, PriceOutputPer1M: c.LLM.PriceOutputPer1M,
		LockStaleAfter: c.Sweep.LockStaleAfter, ExitCode: exitCode,
		FullEvery: c.Sweep.FullEvery, EventsMargin: c.Sweep.EventsMargin,
		Logger: a.log, Now: time.Now,
	}, nil
}
