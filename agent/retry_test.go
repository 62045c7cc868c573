package agent_test

import (
	"context"
	"errors"
	"math"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/sztp-agent/sztp-agent/agent"
	"github.com/sztp-agent/sztp-agent/lab"
)

// TestBackoffSchedule shows the wait between passes over the sources:
// exponential growth of the ceiling, the cap, full jitter, Retry-After.
func TestBackoffSchedule(t *testing.T) {
	top := func() float64 { return math.Nextafter(1, 0) } // the largest value rand can return
	b := agent.Backoff{Initial: 5 * time.Second, Max: 5 * time.Minute, Rand: top}
	var ceilings []time.Duration
	for pass := 1; pass <= 9; pass++ {
		ceilings = append(ceilings, b.Delay(pass, 0).Round(time.Second))
	}
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
		160 * time.Second, 300 * time.Second, 300 * time.Second, 300 * time.Second}
	if !slices.Equal(ceilings, want) {
		t.Errorf("ceilings %v\nwant     %v", ceilings, want)
	}
	// Full jitter: delays spread over [0, ceiling), not clustered.
	var seq []float64
	for i := 0; i < 1000; i++ {
		seq = append(seq, float64(i)/1000)
	}
	i := 0
	b.Rand = func() float64 { v := seq[i%len(seq)]; i++; return v }
	lo, hi := time.Hour, time.Duration(0)
	for n := 0; n < 1000; n++ {
		d := b.Delay(4, 0)
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo > time.Second || hi < 39*time.Second || hi >= 40*time.Second {
		t.Errorf("pass-4 delays span [%v, %v], want about [0, 40s)", lo, hi)
	}
	// Retry-After wins when longer, bounded by MaxRetryAfter.
	b.Rand = func() float64 { return 0 }
	if d := b.Delay(1, 90*time.Second); d != 90*time.Second {
		t.Errorf("Retry-After 90s: delay %v", d)
	}
	b.MaxRetryAfter = time.Minute
	if d := b.Delay(1, 10*time.Hour); d != time.Minute {
		t.Errorf("Retry-After 10h capped: delay %v", d)
	}
}

// TestRunLoopsWithBackoffAndRetryAfter: without --once the agent loops
// (RFC 8572 §5.2), sleeping by the schedule, honouring a server's
// Retry-After, until a source bootstraps the device.
func TestRunLoopsWithBackoffAndRetryAfter(t *testing.T) {
	d := newDevice(t)
	d.cfg.Once = false
	s := d.startServer("lab-1", &lab.Definition{Status: http.StatusServiceUnavailable}, nil)
	var slept []time.Duration
	d.cfg.Retry = agent.Backoff{Initial: time.Second, Max: 4 * time.Second, Rand: func() float64 { return 0.5 },
		Sleep: func(ctx context.Context, dur time.Duration) error {
			slept = append(slept, dur)
			if len(slept) == 4 {
				s.SetDefinition(fullOnboarding(d, nil)) // the server is ready now
			}
			return nil
		}}
	outcome, err := d.run(s.URL())
	if err != nil || outcome != agent.Bootstrapped {
		t.Fatalf("outcome %v, error %v", outcome, err)
	}
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 2 * time.Second}
	if !slices.Equal(slept, want) {
		t.Errorf("slept %v, want %v", slept, want)
	}
	if n := len(s.Requests()); n != 5 {
		t.Errorf("%d requests, want 5 passes", n)
	}
	// A cancelled context ends the loop.
	d2 := newDevice(t)
	d2.cfg.Once = false
	s2 := d2.startServer("lab-2", &lab.Definition{Status: http.StatusServiceUnavailable}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	d2.cfg.Retry = agent.Backoff{Sleep: func(context.Context, time.Duration) error { cancel(); return context.Canceled }}
	d2.cfg.BootstrapURLs = []string{s2.URL()}
	a, _ := agent.New(d2.cfg)
	if _, err := a.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled run: %v", err)
	}
}
