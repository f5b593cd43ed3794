// Package serve is the HTTP server of `serve`: Kommo's account webhooks into
// the message log, the chat-close queue that summarises a lead when its chat
// closes, the log's retention, a health check, and the routes that other
// features (Salesbot) mount on it.
//
// Every request is hostile until it proves otherwise: Kommo does not sign
// its webhooks, so the secret in the path is what lets a body in, and the
// account id in the body must be ours.
package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/sweep"
)

// Options configure the server. Zero durations take the defaults in
// withDefaults.
type Options struct {
	DB *store.DB
	// AccountID is the Kommo account whose webhooks are accepted.
	AccountID int64
	// WebhookSecret is the secret path segment of the webhook URL.
	WebhookSecret string
	MaxBodyBytes  int64
	CloseDebounce time.Duration
	// Retention is how long the message log keeps a message (0: forever).
	Retention time.Duration

	// Engine summarises the leads of closed chats; nil: no close queue.
	Engine *sweep.Engine
	// ClosePoll is how often the close queue is looked at (1 s).
	ClosePoll time.Duration

	// Mounts are other handlers, by pattern ("POST /salesbot/widget_request").
	Mounts map[string]http.Handler
	// Workers run beside the server and stop with it (the Salesbot job
	// worker); an error from one is logged.
	Workers []func(ctx context.Context) error

	// ShutdownTimeout bounds how long in-flight requests may take to finish
	// after a SIGTERM (10 s).
	ShutdownTimeout time.Duration

	Now    func() time.Time
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.CloseDebounce <= 0 {
		o.CloseDebounce = 2 * time.Minute
	}
	if o.ClosePoll <= 0 {
		o.ClosePoll = time.Second
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Server is the running server.
type Server struct {
	o   Options
	in  *ingester
	mux *http.ServeMux
}

// New builds the server; Serve runs it.
func New(o Options) (*Server, error) {
	o = o.withDefaults()
	if o.DB == nil || o.AccountID <= 0 || o.WebhookSecret == "" {
		return nil, errors.New("serve: the store, the account id and the webhook secret are required")
	}
	s := &Server{o: o, in: newIngester(o.DB, o.CloseDebounce, o.Logger), mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("POST /webhooks/kommo/{secret}", s.webhook)
	s.mux.HandleFunc("POST /webhooks/kommo/{secret}/", s.webhook)
	for pattern, h := range o.Mounts {
		s.mux.Handle(pattern, h)
	}
	return s, nil
}

// Handler is the server's routes, for tests that serve them themselves.
func (s *Server) Handler() http.Handler { return s.mux }

// Serve serves on ln until ctx ends, then shuts down gracefully: it stops
// accepting, lets the requests in hand finish (their bodies are stored
// before they are answered), lets the close queue finish the run in hand,
// and returns nil.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.o.Logger.Handler(), slog.LevelWarn),
	}
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { s.in.run(bg) })
	if s.o.Engine != nil {
		wg.Go(func() { s.closeLoop(bg) })
	}
	if s.o.Retention > 0 {
		wg.Go(func() { s.purgeLoop(bg) })
	}
	for _, work := range s.o.Workers {
		wg.Go(func() {
			if err := work(bg); err != nil && bg.Err() == nil {
				s.o.Logger.Error("a background worker stopped", "err", err)
			}
		})
	}

	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	s.o.Logger.Info("serving", "addr", ln.Addr().String())

	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		s.o.Logger.Info("shutting down: finishing the requests in hand")
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.o.ShutdownTimeout)
		err = hs.Shutdown(sctx)
		cancel()
		<-errc
	}
	stopBG()
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	s.o.Logger.Info("stopped")
	return nil
}

// closeLoop summarises the leads whose chats closed, once their debounce
// has passed. A lead whose chat has nothing new gets no note: the engine
// finds it unchanged.
func (s *Server) closeLoop(ctx context.Context) {
	t := time.NewTicker(s.o.ClosePoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		due, err := s.o.DB.DueCloses(ctx, s.o.Now(), 50)
		if err != nil {
			s.o.Logger.Error("could not read the close queue", "err", err)
			continue
		}
		if len(due) == 0 {
			continue
		}
		ids := make([]int64, len(due))
		for i, q := range due {
			ids[i] = q.LeadID
		}
		rep, err := s.o.Engine.Run(ctx, sweep.Request{Command: "close", LeadIDs: ids, Single: true})
		if err != nil && (sweep.Fatal(err) || errors.Is(err, sweep.ErrInterrupted) || rep == nil) {
			// Kept in the queue: the next poll tries again.
			s.o.Logger.Error("summaries of closed chats failed; they stay queued", "leads", len(ids), "err", err)
			continue
		}
		for _, q := range due {
			if err := s.o.DB.DoneClose(context.WithoutCancel(ctx), q); err != nil {
				s.o.Logger.Error("could not take a lead out of the close queue", "lead_id", q.LeadID, "err", err)
			}
		}
		s.o.Logger.Info("summarised closed chats", "leads", len(ids), "summarized", rep.Summarized,
			"unchanged", rep.SkippedUnchanged, "failed", rep.Failed)
	}
}

// purgeLoop deletes what the message log keeps past its retention, at start
// and hourly.
func (s *Server) purgeLoop(ctx context.Context) {
	for {
		n, err := s.o.DB.PurgeMessages(ctx, s.o.Now().Add(-s.o.Retention))
		switch {
		case err != nil && ctx.Err() == nil:
			s.o.Logger.Error("could not purge the message log", "err", err)
		case n > 0:
			s.o.Logger.Info("purged the message log", "messages", n, "older_than", s.o.Retention.String())
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Hour):
		}
	}
}
