package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/framefleet/framefleet/pipeline/store"
)

func newFileStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// putRun stores a record and its index entries as Submit does.
func putRun(t *testing.T, st store.Store, rec RunRecord) {
	t.Helper()
	ctx := context.Background()
	if rec.Schema == 0 {
		rec.Schema = RecordSchema
	}
	data, err := encodeRecord(&rec)
	if err != nil {
		t.Fatal(err)
	}
	putRaw(t, st, rec.ID, rec.CreatedAt, string(data))
	_ = ctx
}

func putRaw(t *testing.T, st store.Store, id string, created time.Time, data string) {
	t.Helper()
	ctx := context.Background()
	for _, kv := range [][2]string{{RecordKey(id), data}, {indexIDPrefix + id, "{}"}, {timeIndexKey(created, id), "{}"}} {
		if err := st.Put(ctx, kv[0], strings.NewReader(kv[1])); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRecordsNewerSchemaAndDamagedRecordsAreTypedAndOthersStillList(t *testing.T) {
	st := newFileStore(t)
	runs := &Runs{Store: st}
	ctx := context.Background()
	putRun(t, st, RunRecord{ID: "good0001", State: RunSucceeded, CreatedAt: t0})
	putRaw(t, st, "newer001", t0.Add(time.Minute), `{"schema": 99, "id": "newer001", "state": "teleporting"}`)
	putRaw(t, st, "broken01", t0.Add(2*time.Minute), `{"schema": 1, "id": "broken01", "state": `)
	putRun(t, st, RunRecord{ID: "good0002", State: RunFailed, CreatedAt: t0.Add(3 * time.Minute)})

	var tooNew *SchemaTooNewError
	if _, err := runs.Get(ctx, "newer001"); !errors.As(err, &tooNew) || tooNew.Schema != 99 || !strings.Contains(err.Error(), "upgrade framefleet") {
		t.Errorf("newer schema: err = %v, want a *SchemaTooNewError saying to upgrade", err)
	}
	var corrupt *CorruptRecordError
	if _, err := runs.Get(ctx, "broken01"); !errors.As(err, &corrupt) || corrupt.Key != RecordKey("broken01") {
		t.Errorf("damaged record: err = %v, want a *CorruptRecordError naming its key", err)
	}
	page, err := runs.List(ctx, ListFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range page.Runs {
		ids = append(ids, r.ID)
	}
	if strings.Join(ids, ",") != "good0002,good0001" {
		t.Errorf("listed %v, want the readable runs newest first", ids)
	}
	if len(page.Unreadable) != 2 || page.Unreadable[0].ID != "broken01" || page.Unreadable[1].ID != "newer001" {
		t.Errorf("unreadable %+v, want broken01 then newer001", page.Unreadable)
	}
}

func TestGetByUniquePrefix(t *testing.T) {
	st := newFileStore(t)
	runs := &Runs{Store: st}
	ctx := context.Background()
	for i, id := range []string{"k3x9p2ad", "k3x7aaaa", "m1234567", "m1234"} {
		putRun(t, st, RunRecord{ID: id, State: RunRunning, CreatedAt: t0.Add(time.Duration(i) * time.Second)})
	}
	tests := []struct {
		in, want string
		err      any
	}{
		{in: "k3x9p2ad", want: "k3x9p2ad"},
		{in: "k3x9", want: "k3x9p2ad"},
		{in: " K3X7 ", want: "k3x7aaaa"},
		{in: "m1234", want: "m1234"}, // an exact id wins over longer ones it prefixes
		{in: "k3x", err: new(*AmbiguousRunError)},
		{in: "zzz", err: new(*RunNotFoundError)},
		{in: "../x", err: new(*RunNotFoundError)},
		{in: "", err: new(*RunNotFoundError)},
	}
	for _, tc := range tests {
		rec, err := runs.Get(ctx, tc.in)
		if tc.err != nil {
			if err == nil || !errors.As(err, tc.err) {
				t.Errorf("Get(%q) err = %v, want %T", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || rec.ID != tc.want {
			t.Errorf("Get(%q) = %v, %v; want %s", tc.in, rec, err, tc.want)
		}
	}
	_, err := runs.Get(ctx, "k3x")
	if !strings.Contains(err.Error(), "k3x9p2ad") || !strings.Contains(err.Error(), "k3x7aaaa") {
		t.Errorf("ambiguity error %q does not name the candidates", err)
	}
}

func TestListFiltersAndPages(t *testing.T) {
	st := newFileStore(t)
	runs := &Runs{Store: st, Clock: frozenClock{t0.Add(time.Hour)}}
	ctx := context.Background()
	for i := range 25 {
		state := RunSucceeded
		if i%5 == 0 {
			state = RunFailed
		}
		putRun(t, st, RunRecord{ID: fmt.Sprintf("run%05d", i), State: state, CreatedAt: t0.Add(time.Duration(i) * time.Minute),
			Labels: map[string]string{"github.pr": fmt.Sprint(i % 2)}})
	}
	// A local run whose host's lease expired lists as interrupted.
	putRun(t, st, RunRecord{ID: "orphan01", State: RunRunning, HostBound: true, Handle: &Handle{Engine: "local"},
		Host: &RunHost{ID: "gone", Expires: t0}, CreatedAt: t0.Add(-time.Minute)})

	var all []string
	cursor := ""
	for pages := 0; ; pages++ {
		page, err := runs.List(ctx, ListFilter{Limit: 10, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Runs {
			all = append(all, r.ID)
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
		if pages > 5 {
			t.Fatal("paging does not end")
		}
	}
	if len(all) != 26 || all[0] != "run00024" || all[24] != "run00000" || all[25] != "orphan01" {
		t.Errorf("paged listing %v: want 26 runs, newest first", all)
	}
	page, err := runs.List(ctx, ListFilter{States: []RunState{RunFailed}, Labels: map[string]string{"github.pr": "0"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range page.Runs {
		got = append(got, r.ID)
	}
	if strings.Join(got, ",") != "run00020,run00010,run00000" {
		t.Errorf("failed runs of PR 0: %v", got)
	}
	page, err = runs.List(ctx, ListFilter{States: []RunState{RunInterrupted}})
	if err != nil || len(page.Runs) != 1 || page.Runs[0].ID != "orphan01" {
		t.Errorf("interrupted runs: %+v, %v; want orphan01", page.Runs, err)
	}
	if _, err := runs.List(ctx, ListFilter{Cursor: "runs/../x"}); err == nil {
		t.Error("a made-up cursor was accepted")
	}
}

// Writers that race on one record never lose each other's update.
func TestUpdateRecordConcurrentWritersLoseNothing(t *testing.T) {
	st := newFileStore(t)
	putRun(t, st, RunRecord{ID: "shared01", State: RunRunning, CreatedAt: t0, Labels: map[string]string{}})
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := updateRecord(context.Background(), st, "shared01", SystemClock{}, func(r *RunRecord) error {
				if r.Labels == nil {
					r.Labels = map[string]string{}
				}
				r.Labels[fmt.Sprintf("writer%d", i)] = "yes"
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	rec, _, err := readRecord(context.Background(), st, "shared01")
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Labels) != 20 {
		t.Errorf("%d of 20 updates survived: %v", len(rec.Labels), rec.Labels)
	}
}

func TestValidateNamesTheSettingKey(t *testing.T) {
	ok := Request{BlendPath: "x.blend"}
	tests := []struct {
		name string
		req  func(r *Request)
		key  string
	}{
		{"attempts too many", func(r *Request) { r.Attempts = 11 }, KeyAttempts},
		{"attempts negative", func(r *Request) { r.Attempts = -1 }, KeyAttempts},
		{"resolution too big", func(r *Request) { r.ResolutionPercentage = 32768 }, KeyResolution},
		{"samples negative", func(r *Request) { r.Samples = -1 }, KeySamples},
		{"chunk negative", func(r *Request) { r.Chunk = -2 }, KeyChunk},
		{"threads negative", func(r *Request) { r.Threads = -1 }, KeyThreads},
		{"timeout negative", func(r *Request) { r.AttemptTimeout = -time.Second }, KeyTimeout},
		{"batch timeout under a minute", func(r *Request) { r.Engine = "batch"; r.AttemptTimeout = 30 * time.Second }, KeyTimeout},
		{"stitch unknown", func(r *Request) { r.Stitch = "zip" }, KeyStitch},
		{"frames backwards", func(r *Request) { r.Frames = "5-1" }, KeyFrames},
		{"too many frames", func(r *Request) { r.Frames = "1-1000000" }, KeyFrames},
		{"too many samples", func(r *Request) { r.Samples = 2000000000 }, KeySamples},
		{"too large a resolution", func(r *Request) { r.ResolutionPercentage = 32767 }, KeyResolution},
		{"no file", func(r *Request) { r.BlendPath = "" }, KeySource},
		{"fine", func(r *Request) {
			r.Attempts, r.ResolutionPercentage, r.AttemptTimeout, r.Frames = 10, MaxResolutionPercentage, 30*time.Second, "1-3"
		}, ""},
		{"fine on batch", func(r *Request) { r.Engine = "batch"; r.AttemptTimeout = time.Minute }, ""},
	}
	for _, tc := range tests {
		r := ok
		tc.req(&r)
		err := r.Validate()
		var se *SettingError
		switch {
		case tc.key == "" && err != nil:
			t.Errorf("%s: unexpected error %v", tc.name, err)
		case tc.key != "" && (!errors.As(err, &se) || se.Key != tc.key):
			t.Errorf("%s: err = %v, want a *SettingError for %s", tc.name, err, tc.key)
		case err != nil && strings.Contains(err.Error(), "--"):
			t.Errorf("%s: %q names a command-line flag", tc.name, err)
		}
	}
}

// Watchers racing to take over an interrupted run: exactly one gets the
// lease, so exactly one resubmits it; a live lease is never taken.
func TestTakeOverGivesTheLeaseToOneWatcher(t *testing.T) {
	st := newFileStore(t)
	now := time.Now()
	putRun(t, st, RunRecord{ID: "orphan02", State: RunRunning, HostBound: true, Handle: &Handle{Engine: "local", RenderID: "gone"},
		Host: &RunHost{ID: "dead-host", Expires: now.Add(-time.Second)}, CreatedAt: now})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var winners []*Runs
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &Runs{Store: st}
			_, took, err := r.takeOver(context.Background(), &outage{budget: time.Second, now: time.Now}, "orphan02", false)
			if err != nil {
				t.Error(err)
			}
			if took {
				mu.Lock()
				winners = append(winners, r)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("%d watchers took the run over, want 1", len(winners))
	}
	rec, _, err := readRecord(context.Background(), st, "orphan02")
	if err != nil || !winners[0].ours(rec.Host) || rec.State != RunInterrupted {
		t.Errorf("record %+v, %v: want it interrupted and hosted by the winner", rec, err)
	}
	late := &Runs{Store: st}
	if _, took, err := late.takeOver(context.Background(), &outage{budget: time.Second, now: time.Now}, "orphan02", false); took || err != nil {
		t.Errorf("a live lease was taken over (%v, %v)", took, err)
	}
}

// Two watchers finishing the same run record the same cost, not twice it.
func TestFinishRunIsIdempotent(t *testing.T) {
	st := newFileStore(t)
	ctx := context.Background()
	m := Manifest{RunID: "done0001", Scene: "S", VideoKey: store.VideoKey("done0001", "S"), FrameCount: 1}
	data, _ := json.Marshal(m)
	for k, v := range map[string]string{store.ManifestKey("done0001"): string(data), m.VideoKey: "mp4"} {
		if err := st.Put(ctx, k, strings.NewReader(v)); err != nil {
			t.Fatal(err)
		}
	}
	s := Status{Attempts: []Attempt{{Index: 0, StartedAt: t0, StoppedAt: t0.Add(10 * time.Second), VCPUs: 1}}}
	for range 2 {
		res, err := finishRun(ctx, st, "done0001", s, 5, 3.6, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if res.VCPUSeconds != 15 || res.CostUSD < 0.0149999 || res.CostUSD > 0.0150001 {
			t.Errorf("cost %v vCPU-s $%v, want 15 (5 before a resume + 10) and $0.015", res.VCPUSeconds, res.CostUSD)
		}
	}
}

func TestOutageRetriesTransientErrorsWithinTheBudget(t *testing.T) {
	down := errors.New("dial tcp: connection refused")
	tests := []struct {
		name     string
		failures int   // calls that fail before one succeeds
		err      error // what they fail with
		step     time.Duration
		want     string // "" success, "outage", "permanent"
		calls    int
	}{
		{name: "an outage shorter than the budget is ridden out", failures: 3, err: down, step: time.Minute, calls: 4},
		{name: "an outage longer than the budget gives up", failures: 100, err: down, step: 2 * time.Minute, want: "outage", calls: 4},
		{name: "not found is an answer, not an outage", failures: 1, err: store.ErrNotFound, step: time.Minute, want: "permanent", calls: 1},
		{name: "a conflict is for the caller to resolve", failures: 1, err: store.ErrConflict, step: time.Minute, want: "permanent", calls: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := t0
			o := &outage{budget: 5 * time.Minute, now: func() time.Time { now = now.Add(tc.step); return now }}
			calls := 0
			err := o.do(context.Background(), "store the plan", func() error {
				calls++
				if calls <= tc.failures {
					return tc.err
				}
				return nil
			})
			var oe *OutageError
			switch tc.want {
			case "":
				if err != nil {
					t.Errorf("err = %v, want success", err)
				}
			case "outage":
				if !errors.As(err, &oe) || !errors.Is(err, down) || !strings.Contains(err.Error(), "store the plan") {
					t.Errorf("err = %v, want an *OutageError naming the step", err)
				}
			case "permanent":
				if !errors.Is(err, tc.err) || errors.As(err, &oe) {
					t.Errorf("err = %v, want %v at once", err, tc.err)
				}
			}
			if calls != tc.calls {
				t.Errorf("%d calls, want %d", calls, tc.calls)
			}
		})
	}
}
