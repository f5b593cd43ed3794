package salesbot

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommo"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
)

// pollEvery bounds the worker's sleep when nothing wakes it: a job stored by
// another process (or a lease that ran out) is picked up within it.
const pollEvery = 5 * time.Second

// claimDelay is how long the worker lets a burst of requests settle before
// it claims them.
const claimDelay = 5 * time.Millisecond

// Run works the stored jobs until ctx ends: it builds each reply and makes
// the continue call, retrying 429s and 5xx with backoff. Jobs left by an
// earlier process are taken over at start (one serve per store). Once ctx
// ends it stops claiming, gives the jobs in hand ShutdownGrace to finish,
// and returns nil; a job cut short stays queued for the next start.
func (s *Service) Run(ctx context.Context) error {
	if err := s.o.DB.ReleaseBotLeases(ctx); err != nil {
		return err
	}
	if _, err := s.accountID(ctx); err != nil {
		// Not fatal: the handler asks again with each request.
		s.log.Warn("salesbot: account id not known yet", "err", err)
	}
	// Jobs in hand outlive ctx by the grace period, not longer.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(s.o.ShutdownGrace, cancelWork) })
	defer stop()

	var wg sync.WaitGroup
	slots := make(chan struct{}, s.o.Workers)
	done := make(chan struct{}, s.o.Workers)
	for {
		free := s.o.Workers - len(slots)
		if free > 0 && ctx.Err() == nil {
			jobs, err := s.o.DB.ClaimBotJobs(ctx, s.o.Lease, free)
			if err != nil && ctx.Err() == nil {
				s.log.Error("salesbot: cannot read the job queue", "err", err)
			}
			for _, j := range jobs {
				slots <- struct{}{}
				wg.Add(1)
				go func() {
					defer wg.Done()
					s.process(work, j)
					<-slots
					select {
					case done <- struct{}{}:
					default:
					}
				}()
			}
		}
		wait := pollEvery
		if due, ok, err := s.o.DB.NextBotJobDue(ctx); err == nil && ok {
			wait = min(wait, max(due.Sub(s.now()), 10*time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			wg.Wait()
			return nil
		case <-s.wake:
			// Requests come in bursts: claim them together, and leave the
			// write lock to the handlers storing the rest of the burst.
			time.Sleep(claimDelay)
		case <-done:
		case <-t.C:
		}
		t.Stop()
	}
}

// process takes one job as far as it goes: build (once), continue, record.
func (s *Service) process(ctx context.Context, j store.BotJob) {
	log := s.log.With("lead_id", j.LeadID, "job_id", j.ID, "attempt", j.Attempts)
	start := time.Now()
	if j.Body == "" {
		out := s.build(ctx, j.LeadID, j.Message)
		if ctx.Err() != nil {
			// Shutting down mid-reply: the next start builds it again.
			_ = s.o.DB.RetryBotJob(context.WithoutCancel(ctx), j.ID, s.now(), "interrupted while building the reply")
			return
		}
		if out.err != nil {
			log.Error("salesbot: no AI reply, the bot goes on with status fail", "err", out.err)
		}
		body, _ := json.Marshal(out.body)
		r := store.BotReply{Status: out.body.Data.Status, Reply: out.body.Data.Reply, Body: body}
		msgs, err := s.logMessages(ctx, j.LeadID, j.ContactID, j.Message, out.body)
		if err != nil {
			log.Error("salesbot: cannot read the message log: the messages are not logged", "err", err)
		}
		r.Messages = msgs
		if out.handoff != "" {
			now := s.now()
			r.Handoff = &store.BotHandoff{LeadID: j.LeadID, At: now, QuietUntil: now.Add(s.o.HandoffQuiet), Reason: out.handoff}
			log.Info("salesbot: chat handed to a manager", "reason", out.handoff, "quiet_until", r.Handoff.QuietUntil)
		}
		if err := s.o.DB.SaveBotReply(ctx, j.ID, r); err != nil {
			// The reply still goes out: a bot left waiting is worse than a
			// reply missing from the log.
			log.Error("salesbot: cannot save the reply", "err", err)
		}
		j.Body, j.Status = string(body), out.body.Data.Status
	}
	err := s.o.Kommo.ContinueBot(ctx, j.ReturnURL, json.RawMessage(j.Body))
	bg := context.WithoutCancel(ctx)
	switch {
	case err == nil:
		log.Info("salesbot: bot resumed", "status", j.Status, "duration", time.Since(start))
		s.finish(bg, log, j, store.BotJobDone, "")
	case errors.Is(err, kommo.ErrNotFound):
		log.Warn("salesbot: the bot no longer waits for this reply (404): dropped", "status", j.Status)
		s.finish(bg, log, j, store.BotJobDropped, err.Error())
	case ctx.Err() != nil:
		_ = s.o.DB.RetryBotJob(bg, j.ID, s.now(), "interrupted before the continue call was answered")
	case retryable(err) && j.Attempts < s.o.MaxAttempts:
		wait := s.o.RetryBase << min(j.Attempts-1, 6)
		log.Warn("salesbot: the continue call failed, retrying", "wait", wait, "err", err)
		if rerr := s.o.DB.RetryBotJob(bg, j.ID, s.now().Add(wait), err.Error()); rerr != nil {
			log.Error("salesbot: cannot requeue the job", "err", rerr)
		}
	default:
		log.Error("salesbot: the continue call failed: the bot was not resumed", "err", err)
		s.finish(bg, log, j, store.BotJobFailed, err.Error())
	}
}

func (s *Service) finish(ctx context.Context, log *slog.Logger, j store.BotJob, state, errText string) {
	if err := s.o.DB.FinishBotJob(ctx, j.ID, state, errText); err != nil {
		log.Error("salesbot: cannot record the job's end", "state", state, "err", err)
	}
}

// retryable: Kommo rate-limited us, failed (5xx), or did not answer. A 4xx
// (bad body, dead token), an IP block or a foreign return_url will not get
// better.
func retryable(err error) bool {
	var rl *kommo.RateLimitError
	var e *kommo.Error
	var ae *kommo.AuthError
	var ip *kommo.IPBlockedError
	switch {
	case errors.As(err, &rl):
		return true
	case errors.As(err, &ae), errors.As(err, &ip), errors.Is(err, kommo.ErrForeignReturnURL):
		return false
	case errors.As(err, &e):
		return e.Status >= 500
	}
	return true // no answer at all
}
