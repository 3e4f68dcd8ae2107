package store_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/s3test"
	"github.com/framefleet/framefleet/pipeline/store"
)

// shortTimeouts keep a test against a hung server short; what is asserted
// is the kind of error, never how long it took.
var shortTimeouts = store.Timeouts{Connect: time.Second, ResponseHeader: 300 * time.Millisecond, Call: 500 * time.Millisecond, Stall: 300 * time.Millisecond}

func TestHungServerCallsEndWithTimeout(t *testing.T) {
	st, srv := newS3(t, "hang", func(o *store.Options) { o.Timeouts = shortTimeouts })
	ctx := context.Background()
	if err := st.Put(ctx, "runs/r/plan.json", bytes.NewReader([]byte("{}"))); err != nil {
		t.Fatal(err)
	}
	srv.Hang()
	defer srv.Resume()
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"stat", func() error { _, err := st.Stat(ctx, "runs/r/plan.json"); return err }},
		{"list page", func() error { _, _, err := st.ListPage(ctx, "runs/", "", 10); return err }},
		{"list", func() error { _, err := st.List(ctx, "runs/"); return err }},
		{"read versioned", func() error { _, _, err := st.GetVersioned(ctx, "runs/r/plan.json"); return err }},
		{"conditional write", func() error { _, err := st.PutIfVersion(ctx, "runs/r/run.json", []byte("{}"), ""); return err }},
		{"get", func() error { _, err := st.Get(ctx, "runs/r/plan.json"); return err }},
		{"delete", func() error { return st.Delete(ctx, "runs/r/x") }},
		{"put (transfer)", func() error { return st.Put(ctx, "runs/r/frames/frame_000001.png", bytes.NewReader([]byte("png"))) }},
		{"download (transfer)", func() error { return st.GetFile(ctx, "runs/r/plan.json", t.TempDir()+"/plan.json") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, store.ErrTimeout) {
				t.Fatalf("against a hung server: %v; want an error matching store.ErrTimeout", err)
			}
			if errors.Is(err, context.DeadlineExceeded) || store.IsPermanent(err) {
				t.Errorf("a timeout must be an outage (retried), not the caller's deadline or permanent: %v", err)
			}
		})
	}
	if srv.Held() == 0 {
		t.Error("no request reached the hung server")
	}
	srv.Resume()
	if _, err := st.Stat(ctx, "runs/r/plan.json"); err != nil {
		t.Errorf("after the server resumed: %v", err)
	}
}

// countingClient counts connection attempts, so a test can tell a failure
// reported at once from one the SDK retried.
func countingClient(dials *atomic.Int64) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return d.DialContext(ctx, network, addr)
	}}}
}

func TestConfigurationMistakesFailFastOnFirstContact(t *testing.T) {
	srv := s3test.Start(t)
	for _, tc := range []struct {
		name     string
		endpoint string
		kind     store.HintKind
	}{
		{"refused port", s3test.RefusedEndpoint(t), store.HintEndpoint},
		{"https on a plain-HTTP port", srv.WrongSchemeEndpoint(), store.HintScheme},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dials atomic.Int64
			opts := s3Options(srv)
			opts.Endpoint, opts.FailFast, opts.HTTPClient = tc.endpoint, true, countingClient(&dials)
			st, err := store.NewS3(context.Background(), srv.Bucket, "p", opts)
			if err != nil {
				t.Fatal(err)
			}
			_, err = st.Stat(context.Background(), "runs/r/plan.json")
			var hint *store.HintError
			if !errors.As(err, &hint) {
				t.Fatalf("error %v; want a *store.HintError", err)
			}
			if hint.Kind != tc.kind || !hint.FirstContact || hint.Setting != "s3.endpoint" {
				t.Errorf("hint kind %q, first contact %v, setting %q; want %q, true, s3.endpoint", hint.Kind, hint.FirstContact, hint.Setting, tc.kind)
			}
			if !store.IsPermanent(err) {
				t.Errorf("a configuration mistake must not be retried as an outage: %v", err)
			}
			if n := dials.Load(); n != 1 {
				t.Errorf("%d connection attempts; want 1: the mistake must be reported without retries", n)
			}
			if tc.kind == store.HintScheme && hint.Value != srv.Endpoint {
				t.Errorf("hint value %q; want the endpoint with http: %s", hint.Value, srv.Endpoint)
			}
		})
	}
}

func TestRefusedConnectionAfterAnAnswerIsAnOutage(t *testing.T) {
	var dials atomic.Int64
	st, srv := newS3(t, "p", func(o *store.Options) {
		o.FailFast, o.Timeouts, o.HTTPClient = true, shortTimeouts, countingClient(&dials)
		o.HTTPClient.Transport.(*http.Transport).DisableKeepAlives = true // one dial per attempt
	})
	ctx := context.Background()
	if _, err := st.Stat(ctx, "runs/r/plan.json"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("first contact: %v; want not found", err)
	}
	srv.Down()
	defer srv.Up()
	before := dials.Load()
	_, err := st.Stat(ctx, "runs/r/plan.json")
	var hint *store.HintError
	if err == nil || errors.As(err, &hint) || store.IsPermanent(err) {
		t.Fatalf("refused after the store answered: %v; want a plain (retryable) failure", err)
	}
	// Handed back after one attempt: the caller's outage loop retries it
	// and says that it waits, rather than the SDK retrying in silence.
	if n := dials.Load() - before; n != 1 {
		t.Errorf("%d connection attempts after the outage began; want 1", n)
	}
}

func TestWithoutFailFastRefusedIsRetried(t *testing.T) {
	var dials atomic.Int64
	opts := store.Options{Region: s3test.Region, Endpoint: s3test.RefusedEndpoint(t), UsePathStyle: true,
		Credentials: (&s3test.Server{}).Credentials(), HTTPClient: countingClient(&dials), MaxAttempts: 3, MaxBackoff: time.Millisecond}
	st, err := store.NewS3(context.Background(), "b", "p", opts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Stat(context.Background(), "runs/r/plan.json")
	var hint *store.HintError
	if err == nil || errors.As(err, &hint) && hint.FirstContact {
		t.Fatalf("a worker (no FailFast) got %v; want a plain failure", err)
	}
	if n := dials.Load(); n != 3 {
		t.Errorf("%d connection attempts; want 3 (every attempt)", n)
	}
}

func TestConditionalWriteProbe(t *testing.T) {
	for _, tc := range []struct {
		name      string
		opts      []s3test.Option
		supported bool
	}{
		{"honours conditions", nil, true},
		{"ignores conditions", []s3test.Option{s3test.WithoutConditionalWrites()}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := newS3(t, "p", nil, tc.opts...)
			ctx := context.Background()
			now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
			c, err := store.CheckConditionalWrites(ctx, st, now)
			if err != nil {
				t.Fatal(err)
			}
			if c.Supported != tc.supported || c.Recorded || (c.Reason == "") == !tc.supported {
				t.Fatalf("check %+v; want supported %v, probed now, a reason when unsupported", c, tc.supported)
			}
			again, err := store.CheckConditionalWrites(ctx, st, now.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if !again.Recorded || again.Supported != tc.supported || !again.CheckedAt.Equal(now) {
				t.Errorf("second check %+v; want the recorded result of the first", again)
			}
			objs, err := st.List(ctx, "framefleet/")
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) != 1 || objs[0].Key != store.ConditionalCheckKey {
				t.Errorf("objects after the probe: %v; want only %s (the probe's scratch key removed)", objs, store.ConditionalCheckKey)
			}
		})
	}
}

func TestFileStoreNeedsNoProbe(t *testing.T) {
	st, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := store.CheckConditionalWrites(context.Background(), st, time.Now())
	if err != nil || !c.Supported {
		t.Fatalf("file store: %+v, %v; want supported", c, err)
	}
	if objs, _ := st.List(context.Background(), ""); len(objs) != 0 {
		t.Errorf("a file store was written to: %v", objs)
	}
}
