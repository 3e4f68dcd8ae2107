package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/framefleet/framefleet/internal/logstest"
	"github.com/framefleet/framefleet/pipeline/config"
	"github.com/framefleet/framefleet/pipeline/fleet"
	"github.com/framefleet/framefleet/pipeline/store"
)

func TestStreamTail(t *testing.T) {
	isolateAWS(t, "eu-west-3")
	srv := logstest.Start(t)
	t.Setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", srv.URL)
	const stream = "framefleet/default/4f1c2e"
	var lines []string
	for i := range 30 {
		lines = append(lines, fmt.Sprintf("Fra:%d Mem:12M | Rendering", i))
	}
	srv.Append(fleet.BatchLogGroup, stream, append(lines, "Error: Cannot read file\n")...)
	srv.Append("/other/group", "framefleet/default/other", "not this one")

	f, err := fleet.Open(context.Background(), configWith(t, map[string]string{"store": t.TempDir()}), fleet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		stream  string
		lines   int
		want    []string
		wantErr string
	}{
		{"the newest lines, oldest first", stream, 3, []string{"Fra:28 Mem:12M | Rendering", "Fra:29 Mem:12M | Rendering", "Error: Cannot read file"}, ""},
		{"a stream that is gone", "framefleet/default/gone", 5, nil, "retention"},
		{"no stream yet", "", 5, nil, "once an attempt has started"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := f.StreamTail(context.Background(), tc.stream, tc.lines)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var msgs []string
			for _, l := range got {
				msgs = append(msgs, l.Message)
				if l.Time.IsZero() {
					t.Errorf("line %q has no time", l.Message)
				}
			}
			if strings.Join(msgs, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("lines %q, want %q", msgs, tc.want)
			}
		})
	}
	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d GetLogEvents calls, want 2 (none without a stream)", len(reqs))
	}
	if r := reqs[0]; r.LogGroupName != "/aws/batch/job" || r.LogStreamName != stream || r.Limit == nil || *r.Limit != 3 ||
		r.StartFromHead == nil || *r.StartFromHead {
		t.Errorf("request %+v: want /aws/batch/job, the stream, limit 3, startFromHead false", r)
	}
}

func TestStoredLog(t *testing.T) {
	dir := t.TempDir()
	f, err := fleet.Open(context.Background(), configWith(t, map[string]string{"store": dir, "engine": config.EngineLocal}), fleet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Store.Put(context.Background(), store.ChunkLogKey("r1", 2), strings.NewReader("Blender quit\n")); err != nil {
		t.Fatal(err)
	}
	got, err := f.StoredLog(context.Background(), "r1", 2)
	if err != nil || got != "Blender quit\n" {
		t.Errorf("StoredLog = %q, %v", got, err)
	}
	if _, err := f.StoredLog(context.Background(), "r1", 3); !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "chunk 3") {
		t.Errorf("missing log: %v, want ErrNotFound naming the chunk", err)
	}
}

// The group the workers log to is the configured batch.log_group, else
// Batch's default; StreamTail reads that group.
func TestLogGroupIsTheConfiguredOne(t *testing.T) {
	isolateAWS(t, "eu-west-3")
	srv := logstest.Start(t)
	t.Setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", srv.URL)
	const stream = "framefleet/default/77aa"
	srv.Append("/framefleet/workers", stream, "from the configured group")
	srv.Append(fleet.BatchLogGroup, stream, "from the default group")
	for _, tc := range []struct{ set, want, line string }{
		{"", "/aws/batch/job", "from the default group"},
		{"/framefleet/workers", "/framefleet/workers", "from the configured group"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			sets := map[string]string{"store": t.TempDir()}
			if tc.set != "" {
				sets["batch.log_group"] = tc.set
			}
			f, err := fleet.Open(context.Background(), configWith(t, sets), fleet.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got := f.LogGroup(); got != tc.want {
				t.Errorf("LogGroup() = %q, want %q", got, tc.want)
			}
			lines, err := f.StreamTail(context.Background(), stream, 5)
			if err != nil || len(lines) != 1 || lines[0].Message != tc.line {
				t.Errorf("StreamTail = %+v, %v; want %q", lines, err, tc.line)
			}
		})
	}
}
