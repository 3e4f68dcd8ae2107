package bot

import (
	"slices"
	"sync"
	"time"
)

// editsPerMinute keeps all threads' edits under chat.update's Tier 3 limit
// (50+ a minute per workspace), leaving room for other apps' bursts.
const editsPerMinute = 45

// editQueue hands out chat.update turns across every thread: at most one
// per `every`, first come first served. A thread waits for at most one turn
// at a time, so a busy thread cannot crowd out others, and a thread that
// ends leaves the queue without spending a turn: a burst of short-lived
// threads does not starve the next render's edits (and its Cancel button).
type editQueue struct {
	every time.Duration
	now   func() time.Time

	mu      sync.Mutex
	waiting []*editTicket
	next    time.Time     // the earliest time of the next turn
	changed chan struct{} // closed (and replaced) when the head or next changes
}

// editTicket is one waiting edit; it has a field so every ticket has its own address.
type editTicket struct{ _ byte }

func newEditQueue(every time.Duration, now func() time.Time) *editQueue {
	return &editQueue{every: every, now: now, changed: make(chan struct{})}
}

// take is the queue's pure decision for ticket t at now: granted (the turn
// is booked and t leaves the queue), or how long the head must still wait
// (0 with !granted: t is not at the head; wait for a change).
func (q *editQueue) take(t *editTicket, now time.Time) (granted bool, wait time.Duration) {
	if len(q.waiting) == 0 || q.waiting[0] != t {
		return false, 0
	}
	if d := q.next.Sub(now); d > 0 {
		return false, d
	}
	q.waiting = q.waiting[1:]
	q.next = now.Add(q.every)
	return true, 0
}

// leave removes t from the queue (its thread ended).
func (q *editQueue) leave(t *editTicket) {
	if i := slices.Index(q.waiting, t); i >= 0 {
		q.waiting = slices.Delete(q.waiting, i, i+1)
	}
}

// broadcast wakes every waiter to look again; the caller holds mu.
func (q *editQueue) broadcast() {
	close(q.changed)
	q.changed = make(chan struct{})
}

// wait blocks until it is the caller's turn (true), or stop or done
// closes (false).
func (q *editQueue) wait(stop, done <-chan struct{}) bool {
	t := &editTicket{}
	q.mu.Lock()
	q.waiting = append(q.waiting, t)
	q.mu.Unlock()
	for {
		q.mu.Lock()
		granted, d := q.take(t, q.now())
		changed := q.changed
		if granted {
			q.broadcast()
		}
		q.mu.Unlock()
		if granted {
			return true
		}
		var timer <-chan time.Time
		var tm *time.Timer
		if d > 0 {
			tm = time.NewTimer(d)
			timer = tm.C
		}
		select {
		case <-stop:
			q.quit(t)
			return false
		case <-done:
			q.quit(t)
			return false
		case <-changed:
		case <-timer:
		}
		if tm != nil {
			tm.Stop()
		}
	}
}

// quit takes t out of the queue and lets the others look again.
func (q *editQueue) quit(t *editTicket) {
	q.mu.Lock()
	q.leave(t)
	q.broadcast()
	q.mu.Unlock()
}
