package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/pipeline/store"
)

func TestStoppedRunsShowNoChunkRunning(t *testing.T) {
	for _, tc := range []struct {
		name  string
		state RunState
		stop  func(r *Runs) error
	}{
		{"cancelled", RunRunning, func(r *Runs) error { _, err := r.Cancel(context.Background(), "aaaa0001", "wrong camera"); return err }},
		{"failed", RunRunning, func(r *Runs) error {
			r.recordFailure(context.Background(), "aaaa0001", &RunFailure{Message: "gave up"})
			return nil
		}},
		{"cancelled before this framefleet settled chunks", RunCancelled, func(*Runs) error { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newFileStore(t)
			putRun(t, st, RunRecord{ID: "aaaa0001", State: tc.state, CreatedAt: time.Now().UTC(), FramesTotal: 8,
				Progress: Progress{FramesDone: 2, Chunks: map[JobState]int{StateRunning: 2, StateRunnable: 1, StateSucceeded: 1}}})
			r := &Runs{Store: st}
			if err := tc.stop(r); err != nil {
				t.Fatal(err)
			}
			if tc.state != RunCancelled { // stopped now: the record itself says so
				raw, _, err := readRecord(context.Background(), st, "aaaa0001")
				if err != nil {
					t.Fatal(err)
				}
				if raw.Progress.Chunks[StateRunning] != 0 || raw.Progress.Chunks[StateRunnable] != 0 {
					t.Errorf("stored record shows chunks %v after it stopped", raw.Progress.Chunks)
				}
			}
			rec, err := r.Get(context.Background(), "aaaa0001")
			if err != nil {
				t.Fatal(err)
			}
			if n := rec.Progress.Chunks[StateRunning] + rec.Progress.Chunks[StateRunnable]; n != 0 || rec.Progress.Chunks[StateSucceeded] != 1 {
				t.Errorf("%s run shows chunks %v; want none running or waiting, the succeeded one kept", rec.State, rec.Progress.Chunks)
			}
		})
	}
}

func TestFailedRunCountsTheFramesTheStoreHolds(t *testing.T) {
	st := newFileStore(t)
	ctx := context.Background()
	putRun(t, st, RunRecord{ID: "aaaa0001", State: RunRunning, CreatedAt: time.Now().UTC(), FramesTotal: 8,
		Progress: Progress{FramesDone: 1}})
	for f := 1; f <= 3; f++ { // stored after the last poll the record knows of
		if err := st.Put(ctx, store.FrameKey("aaaa0001", f, "png"), strings.NewReader("png")); err != nil {
			t.Fatal(err)
		}
	}
	r := &Runs{Store: st}
	rec := r.recordFailure(ctx, "aaaa0001", &RunFailure{Message: "gave up"})
	if rec == nil || rec.Progress.FramesDone != 3 {
		t.Fatalf("failed record %+v; want 3 frames done, as the store holds", rec)
	}
}

func TestLogsHintNamesWhereTheLogsReallyAre(t *testing.T) {
	st := newFileStore(t)
	ctx := context.Background()
	r := &Runs{Store: st}
	const local = "failed attempts' worker logs (*.err, *.out) in /tmp/ff/logs"
	for _, tc := range []struct {
		name      string
		storeDown bool
		stored    bool
		want      []string
		not       string
	}{
		{"store unreachable", true, false, []string{local, "could not be reached", "may never have reached runs/aaaa0001/logs/"}, "Blender's log of each chunk"},
		{"no log stored", false, false, []string{local, "no Blender chunk log reached the store"}, "Blender's log of each chunk"},
		{"logs stored", false, true, []string{local, "Blender's log of each chunk under runs/aaaa0001/logs/"}, "no Blender chunk log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.stored {
				if err := st.Put(ctx, store.ChunkLogKey("aaaa0001", 0), strings.NewReader("log")); err != nil {
					t.Fatal(err)
				}
			}
			hint := r.logsHint(ctx, local, "aaaa0001", tc.storeDown)
			for _, w := range tc.want {
				if !strings.Contains(hint, w) {
					t.Errorf("hint %q lacks %q", hint, w)
				}
			}
			if strings.Contains(hint, tc.not) {
				t.Errorf("hint %q says %q", hint, tc.not)
			}
			if !strings.HasPrefix(hint, local) {
				t.Errorf("hint %q does not start with the local worker logs", hint)
			}
		})
	}
}

func TestOutageSaysSinceWhenAndUntilWhenItRetries(t *testing.T) {
	for _, tc := range []struct {
		name      string
		step      time.Duration // the clock's advance per attempt
		failures  int           // attempts that fail before one succeeds (-1: all)
		want      []string
		wantOutOf bool
	}{
		{"brief failure: no news", time.Second, 2, nil, false},
		{"lasting outage", 35 * time.Second, -1, []string{
			"store unreachable since 12:03, retrying until 12:05 (outage budget 2 min): connection refused",
			"store unreachable since 12:03, retrying until 12:05 (outage budget 2 min): connection refused",
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Date(2026, 12, 6, 12, 3, 0, 0, time.UTC)
			var notices []string
			o := &outage{budget: 2 * time.Minute, now: func() time.Time { t := now; now = now.Add(tc.step); return t },
				notify: func(ev Event) {
					if ev.Kind != EventStoreUnreachable {
						t.Errorf("notice of kind %s", ev.Kind)
					}
					notices = append(notices, ev.Message)
				}}
			attempts := 0
			err := o.do(context.Background(), "record the run", func() error {
				attempts++
				if tc.failures >= 0 && attempts > tc.failures {
					return nil
				}
				return errors.New("connection refused")
			})
			var oe *OutageError
			if errors.As(err, &oe) != tc.wantOutOf {
				t.Fatalf("do: %v; want an OutageError: %v", err, tc.wantOutOf)
			}
			if !slices.Equal(notices, tc.want) {
				t.Errorf("notices %q, want %q", notices, tc.want)
			}
		})
	}
}

func TestShortCauseKeepsWhatAPersonWaitingNeeds(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("store s3://b/p/x: operation error S3: PutObject, request send failed: %w", refused), "dial tcp: connect: connection refused"},
		{fmt.Errorf("record the run: %w", &store.TimeoutError{Op: "read", Where: "s3://b/x", After: 10 * time.Second, Last: "long SDK text"}), "no answer within 10s"},
		{errors.New("something else"), "something else"},
	} {
		if got := shortCause(tc.err); got != tc.want {
			t.Errorf("shortCause(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
