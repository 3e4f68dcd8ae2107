package pipeline

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline/store"
)

// failingUploads fails every input upload after the first allow (an outage
// that outlasts the request's budget).
type failingUploads struct {
	store.Store
	allow   int64
	uploads atomic.Int64
}

var errUploadBroken = errors.New("the network went away")

func (f *failingUploads) PutFile(ctx context.Context, key, path string) error {
	if strings.HasPrefix(key, "inputs/") && f.uploads.Add(1) > f.allow {
		return errUploadBroken
	}
	return f.Store.PutFile(ctx, key, path)
}

// TestInterruptedSubmissionUploadsOnlyWhatIsMissing: a submission whose
// uploads fail half-way fails its run; submitted again, it uploads only
// the inputs the store does not have yet, and the run goes on.
func TestInterruptedSubmissionUploadsOnlyWhatIsMissing(t *testing.T) {
	proj := testenv.MakeProject(t, t.TempDir())
	fs, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	eng := &acceptingEngine{}
	broken := &failingUploads{Store: fs, allow: 2}
	runs := &Runs{Store: broken, EngineName: "accepting", Engine: func(context.Context, string) (Engine, error) { return eng, nil }}
	req := Request{BlendPath: proj.Scene, StoreOutageBudget: time.Second}
	if _, err := runs.Submit(context.Background(), req); !errors.Is(err, errUploadBroken) {
		t.Fatalf("first submission: err = %v, want the broken upload", err)
	}
	stored, err := fs.List(context.Background(), "inputs/")
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 2 {
		t.Fatalf("%d inputs stored before the failure, want 2", len(stored))
	}
	counting := &uploadCounter{Store: fs}
	runs.Store = counting
	rec, err := runs.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if n := counting.objects.Load(); n != 2 {
		t.Errorf("the second submission uploaded %d inputs, want the 2 still missing of 4", n)
	}
	if rec.State != RunSubmitted || rec.Inputs == nil || rec.Inputs.Files != 4 {
		t.Errorf("record state %s inputs %+v, want submitted with 4 input files", rec.State, rec.Inputs)
	}
}

// dyingStore stands for a submitter killed while uploading the inputs:
// from its first input upload on, nothing it writes reaches the store.
type dyingStore struct {
	store.Store
	dead atomic.Bool
}

func (d *dyingStore) PutFile(ctx context.Context, key, path string) error {
	if strings.HasPrefix(key, "inputs/") {
		d.dead.Store(true)
	}
	if d.dead.Load() {
		return context.Canceled
	}
	return d.Store.PutFile(ctx, key, path)
}

func (d *dyingStore) Put(ctx context.Context, key string, r io.Reader) error {
	if d.dead.Load() {
		return context.Canceled
	}
	return d.Store.Put(ctx, key, r)
}

func (d *dyingStore) PutIfVersion(ctx context.Context, key string, data []byte, match store.Version) (store.Version, error) {
	if d.dead.Load() {
		return "", context.Canceled
	}
	return d.Store.PutIfVersion(ctx, key, data, match)
}

// TestSubmitterKilledWhileUploadingIsTakenOver: a submitter that died
// before submitting any job leaves a planned run holding the cache key;
// once its lease lapsed, the same request makes a new run (uploading the
// inputs) instead of attaching to one that can never start.
func TestSubmitterKilledWhileUploadingIsTakenOver(t *testing.T) {
	proj := testenv.MakeProject(t, t.TempDir())
	fs, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	eng := &acceptingEngine{}
	factory := func(context.Context, string) (Engine, error) { return eng, nil }
	dying := &dyingStore{Store: fs}
	first := &Runs{Store: dying, EngineName: "accepting", Engine: factory}
	req := Request{BlendPath: proj.Scene, StoreOutageBudget: time.Second}
	if _, err := first.Submit(context.Background(), req); err == nil {
		t.Fatal("the dying submitter's submission succeeded")
	}
	page, err := (&Runs{Store: fs}).List(context.Background(), ListFilter{})
	if err != nil || len(page.Runs) != 1 || page.Runs[0].State != RunPlanned {
		t.Fatalf("runs %+v (%v), want the dead submitter's planned run", page.Runs, err)
	}
	dead := page.Runs[0].ID

	counting := &uploadCounter{Store: fs}
	second := &Runs{Store: counting, EngineName: "accepting", Engine: factory, Clock: aheadClock{2 * time.Minute}} // its lease has lapsed
	rec, err := second.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if rec.ID == dead || rec.State != RunSubmitted || counting.objects.Load() != 4 {
		t.Errorf("run %s state %s uploaded %d inputs, want a new run (not %s) submitted with the 4 inputs", rec.ID, rec.State, counting.objects.Load(), dead)
	}
}
