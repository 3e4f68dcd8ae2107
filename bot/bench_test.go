package bot

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/slackfake"
	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/config"
	"github.com/framefleet/framefleet/pipeline/store"
)

// BenchmarkAckLatency: 100 /render commands at once over signed HTTP; every
// one must be acknowledged well within Slack's 3 s. Reports p50 and p99.
func BenchmarkAckLatency(b *testing.B) {
	h := newHarness(b, func(c *config.Config) { c.Slack.AllowedUsers = nil })
	h.slack.AddFile(slackfake.File{ID: "F1", Name: "a.blend", Channel: testChannel, Created: time.Now(), Data: []byte("BLENDER-v304")})
	var all []time.Duration
	for b.Loop() {
		lat := make([]time.Duration, 100)
		var wg sync.WaitGroup
		for i := range lat {
			wg.Add(1)
			go func() {
				defer wg.Done()
				form := h.command(fmt.Sprintf("U%06d", i), testChannel, "file:a.blend frames=1-10")
				start := time.Now()
				status, body := h.post(PathCommands, form, testSecret, time.Now())
				lat[i] = time.Since(start)
				if status != 200 || !strings.Contains(body, "On it") {
					b.Errorf("ack %d: %d %s", i, status, body)
				}
			}()
		}
		wg.Wait()
		all = append(all, lat...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
}

// fastEngine is a fake engine at the network edge (where AWS Batch would
// be): it "renders" every frame of the plan within a fixed time, however
// many frames there are, storing what real workers store.
type fastEngine struct {
	st       store.Store
	duration time.Duration
	// failAfter > 0: chunk 0 fails for good once that many frames are stored.
	failAfter int
	// failChunks > 0: that many chunks fail for good at once, same cause.
	failChunks int
	// reportCancelled: after Cancel, every chunk is reported failed with
	// "cancelled: <reason>", as an engine that fails queued children does.
	reportCancelled bool
	mu              sync.Mutex
	done            map[string]bool
	stored          map[string]int
	chunks          map[string]int
	cancelled       map[string]string
	// quit stops every render goroutine (the test is over); wg waits for them.
	quit chan struct{}
	wg   sync.WaitGroup
}

func (e *fastEngine) BlenderVersion(context.Context) (string, error) { return "3.4.1", nil }
func (e *fastEngine) Cancel(_ context.Context, h pipeline.Handle, reason string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cancelled == nil {
		e.cancelled = map[string]string{}
	}
	e.cancelled[h.RenderID] = reason
	return nil
}

func (e *fastEngine) Submit(ctx context.Context, job pipeline.Job) (pipeline.Handle, error) {
	rc, err := e.st.Get(ctx, store.PlanKey(job.RunID))
	if err != nil {
		return pipeline.Handle{}, err
	}
	var plan struct {
		Frames []int  `json:"frames"`
		Scene  string `json:"scene"`
	}
	err = json.NewDecoder(rc).Decode(&plan)
	rc.Close()
	if err != nil {
		return pipeline.Handle{}, err
	}
	e.mu.Lock()
	if e.chunks == nil {
		e.chunks = map[string]int{}
	}
	e.chunks[job.RunID] = job.Chunks
	e.mu.Unlock()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		ctx := context.Background()
		step := e.duration / time.Duration(len(plan.Frames))
		for i, f := range plan.Frames {
			e.mu.Lock()
			_, cancelled := e.cancelled[job.RunID]
			e.mu.Unlock()
			if cancelled {
				return
			}
			select {
			case <-e.quit:
				return
			default:
			}
			if e.failAfter > 0 && i == e.failAfter {
				e.mu.Lock()
				e.stored[job.RunID] = -1
				e.mu.Unlock()
				return
			}
			time.Sleep(step)
			_ = e.st.Put(ctx, store.FrameKey(job.RunID, f, "png"), strings.NewReader("png"))
		}
		video := store.VideoKey(job.RunID, plan.Scene)
		_ = e.st.Put(ctx, video, bytes.NewReader(make([]byte, 2048)))
		_ = e.st.Put(ctx, store.PreviewKey(job.RunID), strings.NewReader("GIF89a"))
		m, _ := json.Marshal(pipeline.Manifest{RunID: job.RunID, Scene: plan.Scene, VideoKey: video, PreviewKey: store.PreviewKey(job.RunID), FrameCount: len(plan.Frames), FPS: "24"})
		_ = e.st.Put(ctx, store.ManifestKey(job.RunID), bytes.NewReader(m))
		e.mu.Lock()
		e.done[job.RunID] = true
		e.mu.Unlock()
	}()
	return pipeline.Handle{Engine: "fast", RenderID: job.RunID, StitchID: job.RunID + "-stitch"}, nil
}

func (e *fastEngine) Status(ctx context.Context, h pipeline.Handle) (pipeline.Status, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if reason, ok := e.cancelled[h.RenderID]; ok && e.reportCancelled {
		st := pipeline.Status{Render: pipeline.StateFailed, Stitch: pipeline.StateFailed, Children: map[pipeline.JobState]int{pipeline.StateFailed: e.chunks[h.RenderID]}}
		for i := range e.chunks[h.RenderID] {
			st.Failures = append(st.Failures, pipeline.ChildFailure{Index: i, Reason: "cancelled: " + reason})
		}
		return st, nil
	}
	if e.failChunks > 0 {
		st := pipeline.Status{Render: pipeline.StateRunning, Stitch: pipeline.StatePending, Children: map[pipeline.JobState]int{pipeline.StateFailed: e.failChunks}}
		for i := range e.failChunks {
			st.Failures = append(st.Failures, pipeline.ChildFailure{Index: i, Attempts: 3, Reason: "Blender exited with code 1", WorkerError: "out of GPU memory"})
		}
		return st, nil
	}
	if e.stored[h.RenderID] < 0 {
		code := 1
		return pipeline.Status{Render: pipeline.StateFailed, Stitch: pipeline.StatePending, Children: map[pipeline.JobState]int{pipeline.StateFailed: 1},
			Failures: []pipeline.ChildFailure{{Index: 0, Attempts: 1, Reason: "Blender exited with code 1", ExitCode: &code, WorkerError: blenderLog}}}, nil
	}
	if e.done[h.RenderID] {
		return pipeline.Status{Render: pipeline.StateSucceeded, Stitch: pipeline.StateSucceeded, Children: map[pipeline.JobState]int{pipeline.StateSucceeded: 1}}, nil
	}
	return pipeline.Status{Render: pipeline.StateRunning, Stitch: pipeline.StatePending, Children: map[pipeline.JobState]int{pipeline.StateRunning: 1}}, nil
}

// blenderLog is what a failing Blender prints: a long preamble, then the
// error (a blind cut at 200 bytes would show only the preamble).
var blenderLog = "Blender 3.4.1 (hash 55485cb379f7 built 2022-12-20 01:51:19)\n" +
	"Read prefs: /root/.config/blender/3.4/config/userpref.blend\n" +
	"Read blend: /tmp/framefleet-worker-1234/scene.blend\n" +
	"Fra:3 Mem:12.00M (Peak 12.00M) | Time:00:00.05 | Syncing Cube\n" +
	"Fra:3 Mem:14.21M (Peak 14.21M) | Time:00:00.09 | Syncing Light\n" +
	"Error: Cannot read file '/tmp/framefleet-worker-1234/textures/wood.png': No such file or directory\n"

// BenchmarkSlackCallsPerRun: Slack Web API calls for one /render of 10 and of
// 1,000 frames, each rendered by the fast engine in the same 8 s: edits are
// coalesced to one per update interval, so the count follows the render's
// duration, not its frame count.
func BenchmarkSlackCallsPerRun(b *testing.B) {
	demo, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "examples", "demo.blend"))
	if err != nil {
		b.Fatal(err)
	}
	for _, frames := range []int{10, 1000} {
		b.Run(strconv.Itoa(frames)+"-frames", func(b *testing.B) {
			var calls, edits float64
			for b.Loop() {
				h := newHarness(b, func(c *config.Config) { c.Slack.UpdateInterval = config.Duration(2 * time.Second) })
				h.useFastEngine(&fastEngine{duration: 8 * time.Second})
				h.slack.AddFile(slackfake.File{ID: "F1", Name: "demo.blend", Channel: testChannel, Created: time.Now(), Data: demo})
				h.post(PathCommands, h.command(testUser, testChannel, fmt.Sprintf("file frames=1-%d", frames)), testSecret, time.Now())
				eventually(b, time.Minute, "the preview, the last thing posted", func() bool {
					for _, u := range h.slack.Uploads() {
						if strings.HasSuffix(u.Name, "-preview.gif") {
							return true
						}
					}
					return false
				})
				n := 0
				for method, c := range h.slack.Calls() {
					if strings.HasPrefix(method, "chat.") || strings.HasPrefix(method, "files.") && method != "files.list" {
						n += c
					}
				}
				b.Logf("%d frames: %v", frames, h.slack.Calls())
				calls += float64(n)
				edits += float64(h.slack.Calls()["chat.update"])
				h.cancel()
				h.bot.Wait()
			}
			b.ReportMetric(calls/float64(b.N), "slack-calls/run")
			b.ReportMetric(edits/float64(b.N), "edits/run")
		})
	}
}

// useFastEngine makes every run of h render on e.
func (h *harness) useFastEngine(e *fastEngine) {
	e.st, e.done, e.stored, e.quit = h.runs.Fleet.Store, map[string]bool{}, map[string]int{}, make(chan struct{})
	h.t.Cleanup(func() {
		close(e.quit)
		e.wg.Wait()
	})
	h.runs.Runs.Engine = func(context.Context, string) (pipeline.Engine, error) { return e, nil }
}
