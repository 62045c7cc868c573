package agent

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/sztp-agent/sztp-agent/agent/restconf"
)

// Backoff is the wait between two passes over the bootstrap sources: RFC 8572
// §5.2 loops forever, so the delay grows exponentially from Initial up to Max,
// with full jitter so a rack of devices powered on together spreads out. A
// server's Retry-After is honoured when it asks for longer (up to MaxRetryAfter).
type Backoff struct {
	Initial       time.Duration // 0 means 5s
	Max           time.Duration // 0 means 5 minutes
	MaxRetryAfter time.Duration // 0 means 1 hour
	// Rand returns a number in [0,1); nil means math/rand/v2.
	Rand func() float64
	// Sleep waits d or until ctx ends; nil means a real timer.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Delay returns the wait after the given failed pass (1-based).
func (b Backoff) Delay(pass int, retryAfter time.Duration) time.Duration {
	initial, maxDelay, maxRA := b.Initial, b.Max, b.MaxRetryAfter
	if initial <= 0 {
		initial = 5 * time.Second
	}
	if maxDelay <= 0 {
		maxDelay = 5 * time.Minute
	}
	if maxRA <= 0 {
		maxRA = time.Hour
	}
	ceiling := initial
	for i := 1; i < pass && ceiling < maxDelay; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, maxDelay)
	random := rand.Float64
	if b.Rand != nil {
		random = b.Rand
	}
	d := time.Duration(random() * float64(ceiling))
	if retryAfter > d {
		d = min(retryAfter, maxRA)
	}
	return d
}

func (b Backoff) sleep(ctx context.Context, d time.Duration) error {
	if b.Sleep != nil {
		return b.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retryAfter finds the longest Retry-After any server of the pass sent.
func retryAfter(err error) time.Duration {
	var longest time.Duration
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		var se *restconf.StatusError
		if errors.As(err, &se) && se.RetryAfter > longest {
			longest = se.RetryAfter
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
	return longest
}
