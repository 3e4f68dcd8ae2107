package pipeline

import "time"

// frozenClock always says at; waits are real (they are short in tests).
type frozenClock struct{ at time.Time }

func (c frozenClock) Now() time.Time                         { return c.at }
func (c frozenClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// steppingClock moves on by each wait at once: nothing really waits.
type steppingClock struct {
	at    time.Time
	waits int
}

func (c *steppingClock) Now() time.Time { return c.at }
func (c *steppingClock) After(d time.Duration) <-chan time.Time {
	c.at = c.at.Add(d)
	c.waits++
	ch := make(chan time.Time, 1)
	ch <- c.at
	return ch
}
