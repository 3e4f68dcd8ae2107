package pipeline

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/pipeline/store"
)

// With leaseHolderEnv set, the test binary is a process hosting a run: it
// records run leaseHolderRun in the store directory the variable names,
// holding its lease for an hour, says "leased" and waits for stdin to close.
const (
	leaseHolderEnv = "FRAMEFLEET_TEST_LEASE_HOLDER"
	leaseHolderRun = "held0001"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(leaseHolderEnv); dir != "" {
		os.Exit(leaseHolderMain(dir))
	}
	os.Exit(m.Run())
}

func leaseHolderMain(dir string) int {
	ctx := context.Background()
	st, err := store.NewFile(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	runs := &Runs{Store: st, LeaseTTL: time.Hour}
	now := time.Now().UTC()
	rec := &RunRecord{Schema: RecordSchema, ID: leaseHolderRun, State: RunRunning, Engine: "local", HostBound: true,
		Handle: &Handle{Engine: "local", RenderID: "render-1", StitchID: "stitch-1"}, Host: runs.lease(), CreatedAt: now, UpdatedAt: now}
	data, err := encodeRecord(rec)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, kv := range [][2]string{{RecordKey(rec.ID), string(data)}, {indexIDPrefix + rec.ID, "{}"}, {timeIndexKey(now, rec.ID), "{}"}} {
		if err := st.Put(ctx, kv[0], strings.NewReader(kv[1])); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	fmt.Println("leased")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

func TestHolderGone(t *testing.T) {
	self := procIdentity{Boot: "boot-1", PIDNS: "pid:[4026531836]", PID: 100, Start: 5000}
	lease := RunHost{ID: "h", PID: 200, Boot: "boot-1", PIDNS: "pid:[4026531836]", Start: 7000}
	alive := procSighting{Exists: true, Start: 7000}
	tests := []struct {
		name  string
		host  func(h *RunHost)
		self  func(s *procIdentity)
		seen  procSighting
		err   error
		gone  bool
		probe bool // whether /proc may be asked at all
	}{
		{name: "holder alive", seen: alive, probe: true},
		{name: "PID no longer exists", seen: procSighting{}, gone: true, probe: true},
		{name: "holder is a zombie", seen: procSighting{Exists: true, Start: 7000, Dead: true}, gone: true, probe: true},
		{name: "PID reused by a later process", seen: procSighting{Exists: true, Start: 9000}, gone: true, probe: true},
		{name: "/proc unreadable", err: fmt.Errorf("permission denied"), probe: true},
		{name: "another boot", host: func(h *RunHost) { h.Boot = "boot-0" }},
		{name: "another PID namespace (container)", host: func(h *RunHost) { h.PIDNS = "pid:[4026532999]" }},
		{name: "record from an older framefleet", host: func(h *RunHost) { h.Boot, h.PIDNS, h.Start = "", "", 0 }},
		{name: "no start time recorded", host: func(h *RunHost) { h.Start = 0 }},
		{name: "no PID recorded", host: func(h *RunHost) { h.PID = 0 }},
		{name: "this system cannot tell", self: func(s *procIdentity) { *s = procIdentity{} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, s := lease, self
			if tc.host != nil {
				tc.host(&h)
			}
			if tc.self != nil {
				tc.self(&s)
			}
			asked := false
			got := holderGone(&h, s, func(pid int) (procSighting, error) {
				asked = true
				if pid != h.PID {
					t.Errorf("probed PID %d, want the holder's %d", pid, h.PID)
				}
				return tc.seen, tc.err
			})
			if got != tc.gone {
				t.Errorf("holderGone = %v, want %v", got, tc.gone)
			}
			if asked && !tc.probe {
				t.Error("asked /proc about a PID that is not this machine's, boot's and namespace's to judge")
			}
		})
	}
	if holderGone(nil, self, func(int) (procSighting, error) { return procSighting{}, nil }) {
		t.Error("no lease at all counts as a gone holder")
	}
}

func TestEffectiveState(t *testing.T) {
	now := t0
	live := &RunHost{ID: "h", Expires: now.Add(time.Minute)}
	expired := &RunHost{ID: "h", Expires: now.Add(-time.Second)}
	local := &Handle{Engine: "local"}
	batch := &Handle{Engine: "batch"}
	tests := []struct {
		name string
		rec  RunRecord
		gone bool
		want RunState
	}{
		{"hosted, holder alive", RunRecord{State: RunRunning, HostBound: true, Handle: local, Host: live}, false, RunRunning},
		{"hosted, holder gone before its lease ends", RunRecord{State: RunRunning, HostBound: true, Handle: local, Host: live}, true, RunInterrupted},
		{"lease expired", RunRecord{State: RunRunning, HostBound: true, Handle: local, Host: expired}, false, RunInterrupted},
		{"finished, holder gone", RunRecord{State: RunSucceeded, HostBound: true, Handle: local, Host: live}, true, RunSucceeded},
		{"submitting (no jobs yet), holder gone", RunRecord{State: RunPlanned, Host: live}, true, RunInterrupted},
		{"batch jobs outlive their submitter", RunRecord{State: RunRunning, Handle: batch, Host: live}, true, RunRunning},
		{"no host", RunRecord{State: RunSubmitted, Handle: batch}, true, RunSubmitted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := effectiveState(&tc.rec, now, func(h *RunHost) bool {
				if h != tc.rec.Host {
					t.Errorf("asked about host %+v, want the record's", h)
				}
				return tc.gone
			})
			if got != tc.want {
				t.Errorf("effectiveState = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestMergeLabels(t *testing.T) {
	tests := []struct {
		name      string
		have, add map[string]string
		want      map[string]string
		changed   bool
	}{
		{"new keys are added", map[string]string{"github.pr": "7"}, map[string]string{"slack.thread": "1.2"},
			map[string]string{"github.pr": "7", "slack.thread": "1.2"}, true},
		{"existing keys keep their values", map[string]string{"requested_by": "ana"}, map[string]string{"requested_by": "bob", "ticket": "PRJ-12"},
			map[string]string{"requested_by": "ana", "ticket": "PRJ-12"}, true},
		{"nothing new", map[string]string{"github.pr": "7"}, map[string]string{"github.pr": "8"}, map[string]string{"github.pr": "7"}, false},
		{"no labels asked", map[string]string{"github.pr": "7"}, nil, map[string]string{"github.pr": "7"}, false},
		{"a run without labels", nil, map[string]string{"ticket": "PRJ-12"}, map[string]string{"ticket": "PRJ-12"}, true},
		{"an empty value is a label too", map[string]string{}, map[string]string{"draft": ""}, map[string]string{"draft": ""}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := maps.Clone(tc.have)
			got, changed := mergeLabels(tc.have, tc.add)
			if !maps.Equal(got, tc.want) || changed != tc.changed {
				t.Errorf("mergeLabels = %v, %v; want %v, %v", got, changed, tc.want, tc.changed)
			}
			if !maps.Equal(tc.have, before) {
				t.Errorf("the run's labels were changed in place: %v, was %v", tc.have, before)
			}
		})
	}
}
