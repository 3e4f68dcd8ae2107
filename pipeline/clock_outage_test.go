package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestOutageWaitsOnTheRunsClock: the retries of an outage wait on the
// Runs' clock, so the whole budget passes without real waiting.
func TestOutageWaitsOnTheRunsClock(t *testing.T) {
	clk := &steppingClock{at: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)}
	r := &Runs{Clock: clk}
	o := &outage{budget: 5 * time.Minute, now: r.now, after: r.after}
	calls := 0
	err := o.do(context.Background(), "store the plan", func() error { calls++; return errors.New("connection refused") })
	var oe *OutageError
	if !errors.As(err, &oe) || oe.Budget != 5*time.Minute {
		t.Fatalf("err = %v, want an OutageError after the 5-minute budget", err)
	}
	if clk.waits == 0 || calls != clk.waits+1 {
		t.Errorf("%d calls and %d waits on the clock", calls, clk.waits)
	}
	if spent := clk.at.Sub(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)); spent < 5*time.Minute {
		t.Errorf("the clock moved %v, want at least the budget", spent)
	}
}
