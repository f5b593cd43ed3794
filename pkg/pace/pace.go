// Package pace keeps the requests to one API under its published rate limit.
//
// One Pacer is shared by every goroutine that calls the same API, so the
// whole process, not each worker, stays under the limit.
package pace

import (
	"context"
	"time"

	"golang.org/x/time/rate"
)

// Margin widens the spacing between two requests a little, so that the jitter
// of goroutine scheduling and of the network can never put more than the limit
// into one second on the server's clock.
const Margin = 4 * time.Millisecond

// Pacer spaces requests evenly: at most perSecond of them start in any window
// of one second.
type Pacer struct {
	lim *rate.Limiter
}

// New returns a Pacer for perSecond requests per second. Zero or a negative
// value means no limit.
func New(perSecond float64) *Pacer {
	if perSecond <= 0 {
		return &Pacer{lim: rate.NewLimiter(rate.Inf, 1)}
	}
	every := time.Duration(float64(time.Second)/perSecond) + Margin
	return &Pacer{lim: rate.NewLimiter(rate.Every(every), 1)}
}

// Wait blocks until the next request may start, or ctx ends. A nil Pacer
// never waits.
func (p *Pacer) Wait(ctx context.Context) error {
	if p == nil {
		return ctx.Err()
	}
	return p.lim.Wait(ctx)
}
