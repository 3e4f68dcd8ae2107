package pipeline

import "sync"

// deliverer hands events to an observer from its own goroutine, so a slow
// observer (a Slack call, a PR comment) never stalls polling. Progress events
// waiting to be delivered are coalesced: the observer gets the newest one,
// and every other kind of event, in order.
type deliverer struct {
	obs func(Event)
	// view makes each event's RunView (on the delivering goroutine: it may
	// read the store) from the event and the view delivered last.
	view func(ev Event, last *RunView) *RunView
	last *RunView
	mu   sync.Mutex
	cond *sync.Cond
	q    []Event
	done bool
	idle chan struct{} // closed when the goroutine ends
}

func newDeliverer(obs func(Event)) *deliverer {
	d := &deliverer{obs: obs, idle: make(chan struct{})}
	d.cond = sync.NewCond(&d.mu)
	if obs == nil {
		close(d.idle)
		return d
	}
	go d.loop()
	return d
}

// send queues ev; it never blocks on the observer.
func (d *deliverer) send(ev Event) {
	if d.obs == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done {
		return
	}
	if ev.Kind == EventProgress && len(d.q) > 0 && d.q[len(d.q)-1].Kind == EventProgress {
		prev := d.q[len(d.q)-1]
		if ev.Preview == nil { // a newer progress without a new frame keeps the last preview
			ev.Preview = prev.Preview
			if ev.View != nil && ev.View.Latest == nil && prev.View != nil {
				ev.View.Latest = prev.View.Latest
			}
		}
		d.q[len(d.q)-1] = ev
	} else {
		d.q = append(d.q, ev)
	}
	d.cond.Signal()
}

func (d *deliverer) loop() {
	defer close(d.idle)
	for {
		d.mu.Lock()
		for len(d.q) == 0 && !d.done {
			d.cond.Wait()
		}
		if len(d.q) == 0 {
			d.mu.Unlock()
			return
		}
		ev := d.q[0]
		d.q = d.q[1:]
		d.mu.Unlock()
		if d.view != nil {
			ev.View = d.view(ev, d.last)
			d.last = ev.View
		}
		d.obs(ev)
	}
}

// close delivers what is queued and waits for the observer to return.
func (d *deliverer) close() {
	d.mu.Lock()
	d.done = true
	d.cond.Signal()
	d.mu.Unlock()
	<-d.idle
}
