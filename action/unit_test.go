package action

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/framefleet/framefleet/internal/testenv"
)

func TestParseInputs(t *testing.T) {
	good := map[string]string{"github-token": "t"}
	tests := []struct {
		name   string
		inputs map[string]string
		check  func(Inputs) bool
		errs   []string // each must appear in the error
	}{
		{"defaults", good, func(in Inputs) bool {
			return in.Mode == ModeRender && in.Wait && in.Comment && !in.Compare && len(in.Paths) == 1 && in.Paths[0] == "**/*.blend"
		}, nil},
		{"lists and numbers", map[string]string{"github-token": "t", "paths": "scenes/**/*.blend\n!scenes/wip/**, shots/*.blend", "chunk-size": "5",
			"resolution": "50", "samples": "16", "frames": "1-100x5", "wait": "false", "compare": "true", "mode": "refresh"},
			func(in Inputs) bool {
				return len(in.Paths) == 3 && in.ChunkSize == 5 && in.Resolution == 50 && in.Samples == 16 && !in.Wait && in.Compare && in.Mode == ModeRefresh
			}, nil},
		{"every problem at once", map[string]string{"mode": "rerun", "engine": "k8s", "chunk-size": "0", "resolution": "half",
			"samples": "-1", "wait": "yes", "frames": "1-", "bucket": "s3://b/p", "region": "useast", "paths": "!x/**"},
			nil, []string{"input mode \"rerun\"", "input engine \"k8s\"", "input chunk-size \"0\"", "input resolution \"half\"",
				"input samples \"-1\"", "input wait \"yes\" is not a boolean: use true or false", "input frames \"1-\"",
				"input bucket", "input region", "input paths", "input github-token \"\" is empty"}},
		{"bad glob", map[string]string{"github-token": "t", "paths": "scenes/[.blend"}, nil, []string{"input paths \"scenes/[.blend\" is not a glob"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, err := ParseInputs(func(k string) string { return tc.inputs[k] })
			if tc.errs == nil {
				if err != nil {
					t.Fatal(err)
				}
				if !tc.check(in) {
					t.Fatalf("parsed %+v", in)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range tc.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%v", want, err)
				}
			}
		})
	}
}

func TestGlobs(t *testing.T) {
	g := Globs{"**/*.blend", "!wip/**", "!**/*_old.blend"}
	for p, want := range map[string]bool{
		"a.blend": true, "scenes/shot/a.blend": true, "wip/a.blend": false, "x/wip/a.blend": true,
		"scenes/a_old.blend": false, "a.blend1": false, "scenes/a.txt": false,
	} {
		if got := g.Match(p); got != want {
			t.Errorf("Match(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestParseNameStatus(t *testing.T) {
	got, err := parseNameStatus(strings.Split("M\x00a.blend\x00R087\x00old/b.blend\x00new/b.blend\x00D\x00c.blend\x00A\x00d e.blend", "\x00"))
	if err != nil {
		t.Fatal(err)
	}
	want := []ChangedFile{{Path: "a.blend", Status: "modified"}, {Path: "new/b.blend", Previous: "old/b.blend", Status: "renamed"},
		{Path: "c.blend", Status: "removed"}, {Path: "d e.blend", Status: "added"}}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if _, err := parseNameStatus([]string{"R100", "only-one"}); err == nil {
		t.Error("a rename with one path parsed")
	}
}

// TestRateLimitTransport: rate-limit answers are waited out as GitHub's
// headers say, then retried with the same body; mutations are paced.
func TestRateLimitTransport(t *testing.T) {
	clock := newFakeClock()
	reset := strconv.FormatInt(clock.Now().Add(90*time.Second).Unix(), 10)
	tests := []struct {
		name     string
		status   int
		header   http.Header
		body     string
		wantWait time.Duration
		retried  bool
	}{
		{"Retry-After", 403, http.Header{"Retry-After": {"30"}}, `{"message":"You have exceeded a secondary rate limit"}`, 30 * time.Second, true},
		{"429 Retry-After", 429, http.Header{"Retry-After": {"7"}}, `{}`, 7 * time.Second, true},
		{"x-ratelimit-reset", 403, http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {reset}}, `{"message":"API rate limit exceeded"}`, 91 * time.Second, true},
		{"secondary without headers", 403, nil, `{"message":"You have exceeded a secondary rate limit."}`, time.Minute, true},
		{"plain forbidden", 403, nil, `{"message":"Resource not accessible by integration"}`, 0, false},
		{"reset too far away", 403, http.Header{"Retry-After": {"7200"}}, `{}`, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			var bodies []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				bodies = append(bodies, string(b))
				if calls.Add(1) == 1 {
					for k, v := range tc.header {
						w.Header()[k] = v
					}
					w.WriteHeader(tc.status)
					io.WriteString(w, tc.body)
					return
				}
				w.WriteHeader(201)
			}))
			defer srv.Close()
			c := newFakeClock()
			tr := NewRateLimitTransport(nil, c, slog.New(slog.DiscardHandler))
			req, _ := http.NewRequest("POST", srv.URL, strings.NewReader(`{"body":"x"}`))
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if tc.retried {
				if resp.StatusCode != 201 || calls.Load() != 2 || bodies[1] != `{"body":"x"}` {
					t.Fatalf("status %d after %d calls (bodies %q): want the retry to succeed with the same body", resp.StatusCode, calls.Load(), bodies)
				}
				var waited time.Duration
				for _, d := range c.slept() {
					if d != mutationGap {
						waited += d
					}
				}
				if waited != tc.wantWait {
					t.Errorf("waited %v (%v), want %v", waited, c.slept(), tc.wantWait)
				}
			} else if resp.StatusCode != tc.status || calls.Load() != 1 {
				t.Fatalf("status %d after %d calls: want the answer passed on untouched", resp.StatusCode, calls.Load())
			}
		})
	}
}

func TestMutationsArePaced(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	c := newFakeClock()
	hc := &http.Client{Transport: NewRateLimitTransport(nil, c, slog.New(slog.DiscardHandler))}
	start := c.Now()
	for range 3 {
		req, _ := http.NewRequest("PATCH", srv.URL, strings.NewReader("{}"))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		get, _ := hc.Get(srv.URL)
		get.Body.Close()
	}
	if got := c.Now().Sub(start); got != 2*mutationGap {
		t.Errorf("3 mutations took %v of clock time, want %v (GETs unpaced)", got, 2*mutationGap)
	}
}

func TestReadEvent(t *testing.T) {
	_, err := ReadEvent("pull_request_target", "/dev/null", "o/r", "abc")
	if err == nil || !strings.Contains(err.Error(), "trigger the workflow on pull_request instead") {
		t.Errorf("pull_request_target: %v", err)
	}
	_, err = ReadEvent("issues", "/dev/null", "o/r", "abc")
	if err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("issues: %v", err)
	}
	if _, err := ReadEvent("push", "", "o/r", "abc"); err == nil {
		t.Error("no event path accepted")
	}
}

// TestReportSame: a published report is not edited again for fresh link
// signatures alone, unless its links expire soon.
func TestReportSame(t *testing.T) {
	c := newFakeClock() // 2026-11-30 12:00 UTC
	p := &reporter{clock: c}
	link := func(date, sig string) string {
		return "[video](https://b.s3.amazonaws.com/v.mp4?X-Amz-Date=" + date + "&X-Amz-Expires=604800&X-Amz-Signature=" + sig + ")"
	}
	tests := []struct {
		name, published, next string
		want                  bool
	}{
		{"identical", "a " + link("20261130T110000Z", "aa"), "a " + link("20261130T110000Z", "aa"), true},
		{"fresh signature only", "a " + link("20261130T110000Z", "aa"), "a " + link("20261130T115900Z", "bb"), true},
		{"fresh signature and expiry note", link("20261130T110000Z", "aa") + "\nLinks expire 2026-12-07 11:00 UTC",
			link("20261130T115900Z", "bb") + "\nLinks expire 2026-12-07 11:59 UTC", true},
		{"published links expire within a day", "a " + link("20261124T000000Z", "aa"), "a " + link("20261130T115900Z", "bb"), false},
		{"text changed", "a " + link("20261130T110000Z", "aa"), "b " + link("20261130T115900Z", "bb"), false},
		{"temporary credentials", strings.Replace(link("20261130T110000Z", "aa"), "X-Amz-Date", "X-Amz-Security-Token=t&X-Amz-Date", 1),
			strings.Replace(link("20261130T115900Z", "bb"), "X-Amz-Date", "X-Amz-Security-Token=u&X-Amz-Date", 1), false},
	}
	for _, tc := range tests {
		if got := p.same(tc.published, tc.next); got != tc.want {
			t.Errorf("%s: same = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestInputsMatchActionYAML: ParseInputs reads exactly the inputs
// action.yml declares, and the outputs it sets are declared too.
func TestInputsMatchActionYAML(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Inputs  map[string]any `yaml:"inputs"`
		Outputs map[string]any `yaml:"outputs"`
	}
	if err := yaml.Unmarshal(data, &meta); err != nil {
		t.Fatal(err)
	}
	read := map[string]bool{}
	ParseInputs(func(name string) string { read[name] = true; return "" })
	for name := range meta.Inputs {
		if !read[name] {
			t.Errorf("action.yml declares input %q, which the action never reads", name)
		}
	}
	for name := range read {
		if _, ok := meta.Inputs[name]; !ok {
			t.Errorf("the action reads input %q, which action.yml does not declare", name)
		}
	}
	for _, out := range []string{"runs", "failures"} {
		if _, ok := meta.Outputs[out]; !ok {
			t.Errorf("the action sets output %q, which action.yml does not declare", out)
		}
	}
}

// TestReportIndexKeepsTheNewestPush: a job for an older push that saves
// its report last does not replace the newer push's report.
func TestReportIndexKeepsTheNewestPush(t *testing.T) {
	ws := t.TempDir()
	runs, err := OpenFleet(t.Context(), Inputs{Engine: "local"}, FleetOptions{Workspace: ws, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	save := func(sha string, started time.Time) {
		t.Helper()
		rep := Report{Repo: "o/r", PR: 3, SHA: sha, StartedAt: started, Files: []ReportFile{{Path: "a.blend", Run: RunRef{ID: "r" + sha}}}}
		if err := runs.SaveReport(t.Context(), rep); err != nil {
			t.Fatal(err)
		}
	}
	save("bbb", t0.Add(time.Minute)) // the newer push's job saves first
	save("aaa", t0)                  // the older push's job ends later
	save("ccc", t0.Add(2*time.Minute))
	save("ccc", t0.Add(3*time.Minute)) // a re-run of the newest replaces it
	reps, err := runs.Reports(t.Context(), "o/r", t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 1 || reps[0].SHA != "ccc" || !reps[0].StartedAt.Equal(t0.Add(3*time.Minute)) {
		t.Fatalf("reports %+v: want PR 3's newest push only", reps)
	}
	if other, _ := runs.Reports(t.Context(), "o/other", time.Time{}); len(other) != 0 {
		t.Errorf("another repository's reports: %+v", other)
	}
}
