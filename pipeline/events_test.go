package pipeline

import (
	"slices"
	"testing"
)

// A slow observer must not hold up the poller: send never blocks, progress
// the observer missed is coalesced to the newest, other events all arrive in order.
func TestDelivererCoalescesProgressForASlowObserver(t *testing.T) {
	release := make(chan struct{})
	var got []Event
	d := newDeliverer(func(ev Event) {
		if ev.Kind == EventSubmitted {
			<-release // the observer is stuck in a slow call
		}
		got = append(got, ev)
	})
	d.send(Event{Kind: EventSubmitted})
	for i := 1; i <= 1000; i++ { // would block here if send waited for the observer
		d.send(Event{Kind: EventProgress, FramesDone: i})
		if i == 500 {
			d.send(Event{Kind: EventChunkRetried})
			d.send(Event{Kind: EventProgress, FramesDone: i, Preview: &FramePreview{Frame: 500}})
		}
	}
	d.send(Event{Kind: EventSucceeded})
	close(release)
	d.close()
	want := []EventKind{EventSubmitted, EventProgress, EventChunkRetried, EventProgress, EventSucceeded}
	if k := kinds(got); !slices.Equal(k, want) {
		t.Fatalf("delivered %v, want %v", k, want)
	}
	if got[1].FramesDone != 500 || got[3].FramesDone != 1000 {
		t.Errorf("coalesced progress %d and %d, want the newest before and after the retry (500, 1000)", got[1].FramesDone, got[3].FramesDone)
	}
	if got[3].Preview == nil || got[3].Preview.Frame != 500 {
		t.Errorf("coalescing dropped the last preview: %+v", got[3].Preview)
	}
}
