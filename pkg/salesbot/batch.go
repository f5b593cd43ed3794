package salesbot

import (
	"context"
	"sync"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
)

// jobBatcher stores jobs with group commit: a request that finds a
// transaction running queues its job, and the next transaction stores the
// whole queue. Fifty requests at once cost a few transactions, not fifty.
type jobBatcher struct {
	db *store.DB

	mu      sync.Mutex
	queue   []*pendingJob
	writing bool
}

type pendingJob struct {
	job  store.BotJob
	id   int64
	err  error
	done chan struct{}
}

// add stores j and returns its id.
func (b *jobBatcher) add(ctx context.Context, j store.BotJob) (int64, error) {
	p := &pendingJob{job: j, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, p)
	if b.writing {
		b.mu.Unlock()
		select {
		case <-p.done:
			return p.id, p.err
		case <-ctx.Done():
			// The job may still be stored; the client is gone either way.
			return 0, ctx.Err()
		}
	}
	b.writing = true
	for len(b.queue) > 0 {
		batch := b.queue
		b.queue = nil
		b.mu.Unlock()
		jobs := make([]store.BotJob, len(batch))
		for i, p := range batch {
			jobs[i] = p.job
		}
		// Not the request's context: the batch holds other requests' jobs.
		ids, err := b.db.AddBotJobs(context.WithoutCancel(ctx), jobs)
		for i, p := range batch {
			if err != nil {
				p.err = err
			} else {
				p.id = ids[i]
			}
			close(p.done)
		}
		b.mu.Lock()
	}
	b.writing = false
	b.mu.Unlock()
	return p.id, p.err
}
