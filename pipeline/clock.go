package pipeline

import "time"

// Clock tells the time and waits. Runs takes one (Runs.Clock) for both,
// so the lease, the polls, the outage budget and the retries all follow
// the same time, which a test can drive.
type Clock interface {
	Now() time.Time
	// After is time.After on this clock.
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the real clock, Runs' default.
type SystemClock struct{}

func (SystemClock) Now() time.Time                         { return time.Now() }
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
