package batch_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/batchtest"
)

// BenchmarkStatusPoll measures one Status poll of a running render with one
// failed child, through the real SDK against the Batch test server, for
// arrays of 20, 200 and 2,000 children (1,000, 10,000 and 100,000 frames in
// chunks of 50). batch-calls/op is the number of Batch API calls per poll.
func BenchmarkStatusPoll(b *testing.B) {
	for _, chunks := range []int{20, 200, 2000} {
		b.Run(fmt.Sprintf("children=%d", chunks), func(b *testing.B) {
			release := make(chan struct{})
			defer close(release)
			srv := batchtest.New(batchtest.Options{MaxRunning: 8, Executor: func(ctx context.Context, j batchtest.ExecJob) (int, error) {
				if j.ArrayIndex == 0 {
					return 1, nil
				}
				select {
				case <-release:
				case <-ctx.Done():
				}
				return 0, nil
			}})
			defer srv.Close()
			e := newEngine(b, srv, testSpec())
			ctx := context.Background()
			h, err := e.Submit(ctx, testJob(fmt.Sprintf("bench%d", chunks), chunks))
			if err != nil {
				b.Fatal(err)
			}
			for {
				if st, _, _ := srv.JobStatus(h.RenderID + ":0"); st == batchtest.Failed {
					break
				}
				time.Sleep(time.Millisecond)
			}
			if _, err := e.Status(ctx, h); err != nil { // learns the failure once
				b.Fatal(err)
			}
			srv.ResetCalls()
			b.ResetTimer()
			for b.Loop() {
				if _, err := e.Status(ctx, h); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			calls := 0
			for _, n := range srv.Calls() {
				calls += n
			}
			b.ReportMetric(float64(calls)/float64(b.N), "batch-calls/op")
		})
	}
}
