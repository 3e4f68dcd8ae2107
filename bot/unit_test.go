package bot

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/framefleet/framefleet/pipeline"
)

func TestVerifyRequest(t *testing.T) {
	// Slack's documented example ("Verifying requests from Slack").
	const secret = "8f742231b10e8888abcd99yyyzzz85a5"
	body := []byte("token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
	const ts = "1531420618"
	const sig = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
	at := time.Unix(1531420618, 0)
	hdr := func(sig, ts string) http.Header {
		h := http.Header{}
		if sig != "" {
			h.Set("X-Slack-Signature", sig)
		}
		if ts != "" {
			h.Set("X-Slack-Request-Timestamp", ts)
		}
		return h
	}
	tampered := append([]byte(nil), body...)
	tampered[10] = 'X'
	for _, tc := range []struct {
		name string
		h    http.Header
		body []byte
		now  time.Time
		want error
	}{
		{"Slack's example", hdr(sig, ts), body, at, nil},
		{"4 minutes later", hdr(sig, ts), body, at.Add(4 * time.Minute), nil},
		{"6 minutes later", hdr(sig, ts), body, at.Add(6 * time.Minute), ErrStaleTimestamp},
		{"6 minutes early", hdr(sig, ts), body, at.Add(-6 * time.Minute), ErrStaleTimestamp},
		{"tampered body", hdr(sig, ts), tampered, at, ErrBadSignature},
		{"other timestamp", hdr(sig, "1531420619"), body, at, ErrBadSignature},
		{"no signature", hdr("", ts), body, at, ErrNoSignature},
		{"no timestamp", hdr(sig, ""), body, at, ErrNoSignature},
		{"timestamp not a number", hdr(sig, "yesterday"), body, at, ErrStaleTimestamp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := VerifyRequest(tc.h, tc.body, secret, tc.now); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	if Sign(secret, ts, body) != sig {
		t.Error("Sign does not reproduce Slack's example")
	}
}

func TestParseCommandAccepts(t *testing.T) {
	for _, tc := range []struct {
		text string
		want Command
	}{
		{"s3://renders/shots/a.blend", Command{Kind: CmdRender, Source: Source{Kind: SourceS3, Bucket: "renders", Key: "shots/a.blend"}}},
		{"acme/film/scenes/shot 1.blend@main", Command{}}, // a space splits the words: caught below
		{"acme/film/scenes/shot.blend@v1.2 frames=1-100x2 chunk=10 resolution=50 samples=16", Command{Kind: CmdRender,
			Source: Source{Kind: SourceGitHub, Owner: "acme", Repo: "film", Path: "scenes/shot.blend", Ref: "v1.2"},
			Frames: "1-100x2", Chunk: 10, Resolution: 50, Samples: 16}},
		{"file", Command{Kind: CmdRender, Source: Source{Kind: SourceChannel}}},
		{"file:My Shot.blend", Command{}},
		{"file:shot_02.blend FRAMES=3,7,12-20", Command{Kind: CmdRender, Source: Source{Kind: SourceChannel, Name: "shot_02.blend"}, Frames: "3,7,12-20"}},
		{"status", Command{Kind: CmdStatus}},
		{"STATUS k3x9p2ad", Command{Kind: CmdStatus, RunID: "k3x9p2ad"}},
		{"cancel k3x9", Command{Kind: CmdCancel, RunID: "k3x9"}},
		{"runs", Command{Kind: CmdRuns}},
		{"help", Command{Kind: CmdHelp}},
		{"file frames=-5--1", Command{Kind: CmdRender, Source: Source{Kind: SourceChannel}, Frames: "-5--1"}},
		{"file frames=1..100 samples=65536 resolution=1000", Command{Kind: CmdRender, Source: Source{Kind: SourceChannel}, Frames: "1..100", Samples: 65536, Resolution: 1000}},
	} {
		got, err := ParseCommand("/render", tc.text)
		if tc.want.Kind == "" {
			if err == nil {
				t.Errorf("%q: no error, got %+v", tc.text, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.text, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.text, got, tc.want)
		}
	}
}

func TestParseCommandRefuses(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"s3://Bad_Bucket/a.blend", "no valid bucket name"},
		{"s3://bucket/a.txt", "does not name a .blend"},
		{"https://example.com/a.blend", "not a source I can fetch"},
		{"acme/film/shot.blend", "owner/repo/path/scene.blend@ref"},
		{"acme/film/shot.blend@", "owner/repo/path/scene.blend@ref"},
		{"acme/film/shot.blend@$(id)", "not a git ref"},
		{"acme/.git/shot.blend@main", "invalid path part"},
		{"file:../x.blend", "does not name a .blend file shared here"},
		{"s3://bucket/a.blend frames=1-10 frames=2", "given twice"},
		{"s3://bucket/a.blend chunk=-1", "`chunk=-1` is out of range"},
		{"s3://bucket/a.blend samples=1e3", "`samples=1e3` is out of range"},
		{"s3://bucket/a.blend <@U123>", "is not a setting"},
		{"cancel ../../etc", "is not a run ID"},
		{"runs all", "takes no arguments"},
		{"file resolution=32767", "`resolution=32767` is out of range: give a percentage from 1 to 1000"},
		{"file samples=2000000000", "`samples=2000000000` is out of range: give at most 65536 samples"},
		{"file frames=1-1000000", "`frames=1-1000000` is 1000000 frames, more than the 100000 one render may have"},
		{"file frames=1-x", "`frames=1-x` is not a frame list"},
	} {
		_, err := ParseCommand("/render", tc.text)
		var ue *UsageError
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to contain %q", tc.text, err, tc.want)
		} else if !asUsage(err, &ue) || !strings.HasPrefix(ue.Usage, "Usage: `/render") {
			t.Errorf("%q: no usage shown: %v", tc.text, err)
		}
		if err != nil && strings.Contains(err.Error(), "<@U123>") {
			t.Errorf("%q: user text reaches the reply unescaped: %v", tc.text, err)
		}
	}
}

func asUsage(err error, target **UsageError) bool {
	ue, ok := err.(*UsageError)
	*target = ue
	return ok
}

func TestQueuePositions(t *testing.T) {
	q := newQueue(1)
	rel1, err := q.acquire(context.Background(), func(int) { t.Error("the first render waited") })
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	positions := map[string][]int{}
	record := func(name string) func(int) {
		return func(p int) { mu.Lock(); positions[name] = append(positions[name], p); mu.Unlock() }
	}
	got := make(chan string, 3)
	ctxB, cancelB := context.WithCancel(context.Background())
	go func() {
		if rel, err := q.acquire(context.Background(), record("a")); err == nil {
			got <- "a"
			rel()
		}
	}()
	waitPositions := func(name string, n int) {
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			k := len(positions[name])
			mu.Unlock()
			if k >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d position reports, want %d", name, k, n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitPositions("a", 1)
	go func() {
		if _, err := q.acquire(ctxB, record("b")); err != nil {
			got <- "b cancelled"
		}
	}()
	waitPositions("b", 1)
	go func() {
		if rel, err := q.acquire(context.Background(), record("c")); err == nil {
			got <- "c"
			rel()
		}
	}()
	waitPositions("c", 1)
	cancelB() // b leaves the queue: c moves from 3 to 2
	if r := <-got; r != "b cancelled" {
		t.Fatalf("got %s first", r)
	}
	waitPositions("c", 2)
	rel1()
	if a, c := <-got, <-got; a != "a" || c != "c" {
		t.Errorf("order %s, %s", a, c)
	}
	mu.Lock()
	defer mu.Unlock()
	if p := positions["a"]; p[0] != 1 {
		t.Errorf("a's positions %v", p)
	}
	if p := positions["c"]; p[0] != 3 || p[1] != 2 {
		t.Errorf("c's positions %v, want 3 then 2 (then 1)", p)
	}
}

func TestParentMessage(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	running := View{Source: "acme/film/<shot>.blend@main", Scene: "Shot", RequestedBy: "U1", Phase: PhaseRunning, Now: now,
		ThumbnailURL: "https://bucket.s3.amazonaws.com/thumb.jpg",
		Run: Run{ID: "k3x9p2ad", State: pipeline.RunRunning, Scene: "Shot", Frames: "1-100x2", FramesDone: 10, FramesTotal: 50,
			Width: 960, Height: 540, Engine: "batch", CreatedAt: now.Add(-100 * time.Second), FailedChunk: -1}}
	text, blocks := Parent(running)
	raw, _ := json.Marshal(blocks)
	js := string(raw)
	for _, want := range []string{"Rendering \\u003cshot\\u003e.blend · Shot", "20%", "10 / 50 frames", "1-100x2 (50)", "*ETA*\\n6m40s", "\\u003c@U1\\u003e",
		ActionCancel, `"confirm"`, `"style":"danger"`, "thumb.jpg", "k3x9p2ad", "acme/film/\\u0026lt;shot\\u0026gt;.blend@main"} {
		if !strings.Contains(js, want) {
			t.Errorf("running message lacks %s:\n%s", want, js)
		}
	}
	if !strings.Contains(text, "10/50 frames") {
		t.Errorf("fallback text %q", text)
	}
	if len(blocks) > 50 || len(js) > 12000 {
		t.Errorf("%d blocks, %d bytes: over Slack's limits", len(blocks), len(js))
	}
	done := running
	done.Phase, done.Run.State, done.Run.FramesDone, done.Run.FinishedAt = PhaseDone, pipeline.RunSucceeded, 50, now
	done.VideoURL = "https://bucket.s3.amazonaws.com/shot.mp4?X-Amz-Signature=abc"
	_, blocks = Parent(done)
	raw, _ = json.Marshal(blocks)
	if js := string(raw); strings.Contains(js, ActionCancel) || !strings.Contains(js, "Rendered \\u003cshot\\u003e.blend · Shot") || !strings.Contains(js, "100%") ||
		!strings.Contains(js, `"url":"https://bucket.s3.amazonaws.com/shot.mp4?X-Amz-Signature=abc"`) {
		t.Errorf("done message:\n%s", js)
	}
	queued := View{Source: "file", RequestedBy: "U1", Phase: PhaseQueued, QueuePosition: 3, Now: now}
	_, blocks = Parent(queued)
	raw, _ = json.Marshal(blocks)
	if js := string(raw); !strings.Contains(js, "position 3") || !strings.Contains(js, ActionCancel) {
		t.Errorf("queued message:\n%s", js)
	}
	var bs slack.Blocks
	if err := json.Unmarshal(raw, &bs); err != nil {
		t.Errorf("blocks do not parse back: %v", err)
	}
}

func TestETA(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		done, total int
		elapsed     time.Duration
		want        time.Duration
	}{
		{0, 10, time.Minute, 0},
		{5, 10, time.Minute, time.Minute},
		{1, 100, time.Second, 99 * time.Second},
		{10, 10, time.Minute, 0},
	} {
		r := Run{FramesDone: tc.done, FramesTotal: tc.total, CreatedAt: t0}
		if got := ETA(r, t0.Add(tc.elapsed)); got != tc.want {
			t.Errorf("%d/%d after %s: %s, want %s", tc.done, tc.total, tc.elapsed, got, tc.want)
		}
	}
	if got := ProgressBar(1, 4, 8); got != "`██░░░░░░` 25%" {
		t.Errorf("ProgressBar = %q", got)
	}
}

func TestEditQueueIsFair(t *testing.T) {
	now := time.Unix(100, 0)
	q := newEditQueue(time.Second, func() time.Time { return now })
	a, b, c := &editTicket{}, &editTicket{}, &editTicket{}
	q.waiting = []*editTicket{a, b, c}
	type step struct {
		who     *editTicket
		advance time.Duration
		granted bool
		wait    time.Duration
	}
	for i, s := range []step{
		{a, 0, true, 0},            // the head gets the first turn at once
		{c, 0, false, 0},           // not at the head: waits for a change
		{b, 0, false, time.Second}, // at the head: one turn per second
		{b, time.Second, true, 0},  // its turn
		{c, 500 * time.Millisecond, false, 500 * time.Millisecond},
	} {
		now = now.Add(s.advance)
		granted, wait := q.take(s.who, now)
		if granted != s.granted || wait != s.wait {
			t.Errorf("step %d: granted %v wait %s, want %v %s", i, granted, wait, s.granted, s.wait)
		}
	}
	// A thread that ends leaves without spending a turn: the next one is
	// served as soon as the spacing allows, however many left before it.
	var ended []*editTicket
	for range 100 {
		e := &editTicket{}
		ended = append(ended, e)
		q.waiting = append(q.waiting, e)
	}
	d := &editTicket{}
	q.waiting = append(q.waiting, d)
	for _, e := range ended {
		q.leave(e)
	}
	now = now.Add(time.Second)
	if granted, _ := q.take(c, now); !granted {
		t.Fatal("c was not served")
	}
	now = now.Add(time.Second)
	if granted, wait := q.take(d, now); !granted {
		t.Errorf("the render after 100 ended threads waits %s", wait)
	}
}
