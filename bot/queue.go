package bot

import (
	"context"
	"sync"
)

// queue runs at most `slots` renders at once on this host (the local
// engine) and tells every waiter its position whenever it changes.
type queue struct {
	mu      sync.Mutex
	slots   int
	running int
	waiting []*ticket
}

type ticket struct {
	ready    chan struct{}
	position func(int) // called with the 1-based position, under no lock
}

func newQueue(slots int) *queue { return &queue{slots: max(slots, 1)} }

// acquire waits for a slot, reporting the position while queued. It returns
// a release function, or ctx's error (the ticket is then withdrawn).
func (q *queue) acquire(ctx context.Context, position func(int)) (func(), error) {
	q.mu.Lock()
	if q.running < q.slots && len(q.waiting) == 0 {
		q.running++
		q.mu.Unlock()
		return q.releaser(), nil
	}
	t := &ticket{ready: make(chan struct{}), position: position}
	q.waiting = append(q.waiting, t)
	pos := len(q.waiting)
	q.mu.Unlock()
	position(pos)

	select {
	case <-t.ready:
		return q.releaser(), nil
	case <-ctx.Done():
		q.mu.Lock()
		select {
		case <-t.ready: // granted just now: hand the slot back
			q.mu.Unlock()
			q.releaser()()
			return nil, ctx.Err()
		default:
		}
		for i, w := range q.waiting {
			if w == t {
				q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
				break
			}
		}
		moved := q.snapshot()
		q.mu.Unlock()
		notify(moved)
		return nil, ctx.Err()
	}
}

// take occupies a slot without waiting (a run resumed after a restart is
// already rendering).
func (q *queue) take() func() {
	q.mu.Lock()
	q.running++
	q.mu.Unlock()
	return q.releaser()
}

func (q *queue) releaser() func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			q.mu.Lock()
			q.running--
			var next *ticket
			if q.running < q.slots && len(q.waiting) > 0 {
				next, q.waiting = q.waiting[0], q.waiting[1:]
				q.running++
			}
			moved := q.snapshot()
			q.mu.Unlock()
			if next != nil {
				close(next.ready)
			}
			notify(moved)
		})
	}
}

type moved struct {
	t   *ticket
	pos int
}

func (q *queue) snapshot() []moved {
	out := make([]moved, len(q.waiting))
	for i, t := range q.waiting {
		out[i] = moved{t, i + 1}
	}
	return out
}

func notify(ms []moved) {
	for _, m := range ms {
		m.t.position(m.pos)
	}
}
