package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/s3test"
	"github.com/framefleet/framefleet/pipeline/store"
)

// BenchmarkListNewestRuns lists the newest 20 runs of a store holding 100
// or 10,000 of them, on the S3 test server through the real SDK.
// s3-requests/op is counted by the server: one ListObjectsV2 of the time
// index and one GetObject per listed run, whatever the number of runs.
func BenchmarkListNewestRuns(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprintf("runs=%d", n), func(b *testing.B) {
			srv := s3test.Start(b)
			ctx := context.Background()
			st, err := store.NewS3(ctx, srv.Bucket, "bench", store.Options{
				Region: srv.Region, Endpoint: srv.Endpoint, UsePathStyle: true, Credentials: srv.Credentials()})
			if err != nil {
				b.Fatal(err)
			}
			seedRuns(b, srv, n)
			runs := &Runs{Store: st}
			srv.Reset()
			b.ResetTimer()
			for b.Loop() {
				page, err := runs.List(ctx, ListFilter{Limit: 20})
				if err != nil {
					b.Fatal(err)
				}
				if len(page.Runs) != 20 || page.Next == "" || page.Runs[0].ID != benchRunID(n-1) {
					b.Fatalf("listed %d runs starting %s, want the newest 20 of %d", len(page.Runs), page.Runs[0].ID, n)
				}
			}
			b.StopTimer()
			reqs := srv.Requests()
			lists := srv.Count(func(r s3test.Request) bool { return r.Method == http.MethodGet && r.Query.Has("list-type") })
			b.ReportMetric(float64(len(reqs))/float64(b.N), "s3-requests/op")
			b.ReportMetric(float64(lists)/float64(b.N), "s3-lists/op")
		})
	}
}

func benchRunID(i int) string { return fmt.Sprintf("b%07d", i) }

// seedRuns stores n records and their index entries straight into the
// server's memory (seeding 30,000 objects through HTTP would dominate the run).
func seedRuns(b *testing.B, srv *s3test.Server, n int) {
	b.Helper()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	put := func(key string, data []byte) {
		if _, err := srv.Backend.PutObject(srv.Bucket, "bench/"+key, map[string]string{}, bytes.NewReader(data), int64(len(data)), nil); err != nil {
			b.Fatal(err)
		}
	}
	for i := range n {
		id := benchRunID(i)
		created := start.Add(time.Duration(i) * time.Minute)
		rec := &RunRecord{Schema: RecordSchema, ID: id, State: RunSucceeded, Engine: "batch", Scene: "Scene",
			Source:      RunSource{Name: "shot.blend", SHA256: strings.Repeat("a", 64), Size: 1 << 20, Key: store.BlendKey(strings.Repeat("a", 64))},
			FramesTotal: 240, ChunkTotal: 24, Width: 1920, Height: 1080, FrameRate: "24",
			Labels:    map[string]string{"github.repo": "acme/film", "github.pr": fmt.Sprint(i % 50)},
			CreatedAt: created, UpdatedAt: created, Progress: Progress{FramesDone: 240, FramesTotal: 240}}
		data, err := encodeRecord(rec)
		if err != nil {
			b.Fatal(err)
		}
		put(RecordKey(id), data)
		put(indexIDPrefix+id, []byte("{}"))
		put(timeIndexKey(created, id), []byte("{}"))
	}
}
