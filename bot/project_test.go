package bot

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-github/v62/github"

	"github.com/framefleet/framefleet/internal/pipelinetest"
	"github.com/framefleet/framefleet/internal/s3test"
	"github.com/framefleet/framefleet/internal/slackfake"
	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/blend"
	"github.com/framefleet/framefleet/pipeline/local"
	"github.com/framefleet/framefleet/pipeline/store"
)

// projectFiles reads the textured project's files by repository path.
func projectFiles(t *testing.T, proj testenv.Project, ref string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, p := range []string{"shots/shot.blend", "lib/prop.blend", "textures/left.png", "lib/tex/right.png"} {
		data, err := os.ReadFile(filepath.Join(proj.Root, filepath.FromSlash(p)))
		if err != nil {
			t.Fatal(err)
		}
		out[p+"@"+ref] = data
	}
	return out
}

// TestGitHubSourceWithTexturesRendersRight: a GitHub source's scene comes
// with the files it needs, fetched from the same repository at the same
// ref and laid out as there; rendered from that project root (as the bot
// submits it) it shows its textures: green | blue, never magenta.
func TestGitHubSourceWithTexturesRendersRight(t *testing.T) {
	if testing.Short() {
		t.Skip("renders with Blender")
	}
	testenv.FFmpeg(t)
	proj := testenv.MakeProject(t, t.TempDir())
	files := projectFiles(t, proj, "v1")
	files["textures/left.png@main"] = []byte("another ref's texture")
	srv, downloads := fakeGitHub(t, files)
	gh := github.NewClient(nil).WithAuthToken("ghp_test")
	gh.BaseURL, _ = url.Parse(srv.URL + "/")
	f := &Fetcher{GitHub: gh, GitHubToken: "ghp_test", MaxBytes: 1 << 20, Dir: t.TempDir()}

	src, err := ParseSource("acme/film/shots/shot.blend@v1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p, err := f.FetchProject(ctx, src, "")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Remove()
	if *downloads != 4 || p.Blend != filepath.Join(p.Root, "shots", "shot.blend") {
		t.Errorf("%d downloads, scene at %s: want the scene and its 3 files, laid out as in the repository", *downloads, p.Blend)
	}

	e, err := local.New(local.Options{WorkerCommand: []string{buildFramefleet(t), "worker"}, Blender: testenv.Blender(t), VersionCache: "-", RetryBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	res, err := pipelinetest.Render(ctx, e, st, pipeline.Request{BlendPath: p.Blend, Root: p.Root, Threads: 1, PollInterval: 100 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := st.Get(ctx, store.FrameKey(res.RunID, 1, "png"))
	if err != nil {
		t.Fatal(err)
	}
	frame, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if left, right := testenv.HalvesOf(t, frame); !testenv.Near(left, testenv.Green) || !testenv.Near(right, testenv.Blue) {
		t.Errorf("left %v right %v, want green | blue", left, right)
	}
}

// TestSharedBlendNeedingFilesGetsTheList: /render of a .blend shared in the
// channel whose textures and library were not shared with it is answered
// with the files it needs and how to fix it; nothing is rendered.
func TestSharedBlendNeedingFilesGetsTheList(t *testing.T) {
	proj := testenv.MakeProject(t, t.TempDir())
	data, err := os.ReadFile(proj.Scene)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, nil)
	h.slack.AddFile(slackfake.File{ID: "F1", Name: "shot.blend", Channel: testChannel, Created: time.Now(), Data: data})
	h.post(PathCommands, h.command(testUser, testChannel, "file"), testSecret, time.Now())
	var text string
	eventually(t, 30*time.Second, "the refusal", func() bool {
		for _, ps := range h.slack.Parents() {
			for _, m := range h.slack.Replies(ps.TS) {
				if strings.Contains(m.Text, "Could not get the scene") {
					text = m.Text
					return true
				}
			}
		}
		return false
	})
	for _, want := range []string{"shot.blend needs files that were not shared with it", "//../textures/left.png", "//../lib/prop.blend",
		"Pack Resources", "GitHub", "S3"} {
		if !strings.Contains(text, want) {
			t.Errorf("reply lacks %q:\n%s", want, text)
		}
	}
	if n := h.runCount(); n != 0 {
		t.Errorf("%d runs were made for a scene that cannot render right", n)
	}
	var needs *NeedsFilesError
	_, err = h.bot.fetch.FetchProject(context.Background(), Source{Kind: SourceChannel}, testChannel)
	if !errors.As(err, &needs) || len(needs.Missing) != 2 {
		t.Errorf("FetchProject: %v, want *NeedsFilesError with the texture and the library", err)
	}
}

// buildFramefleet builds ./cmd/framefleet for the local engine's workers.
func buildFramefleet(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "framefleet")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/framefleet")
	cmd.Dir = testenv.RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build framefleet: %v\n%s", err, b)
	}
	return out
}

// TestS3SourceBringsItsFiles: an s3:// source's scene comes with the files
// it names, fetched from the same bucket at the same relative keys.
func TestS3SourceBringsItsFiles(t *testing.T) {
	proj := testenv.MakeProject(t, t.TempDir())
	srv := s3test.Start(t)
	ctx := context.Background()
	opts := store.Options{Region: srv.Region, Endpoint: srv.Endpoint, UsePathStyle: true, Credentials: srv.Credentials(), MaxAttempts: 1}
	seed, err := store.Open(ctx, "s3://"+srv.Bucket, opts)
	if err != nil {
		t.Fatal(err)
	}
	for key, data := range projectFiles(t, proj, "") {
		if err := seed.Put(ctx, "film/"+strings.TrimSuffix(key, "@"), bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	f := &Fetcher{MaxBytes: 1 << 20, Dir: t.TempDir(), OpenStore: func(ctx context.Context, uri string) (store.Store, error) {
		return store.Open(ctx, uri, opts)
	}, AllowS3: func(bucket, key string) bool { return bucket == srv.Bucket && strings.HasPrefix(key, "film/") }}
	p, err := f.FetchProject(ctx, Source{Kind: SourceS3, Bucket: srv.Bucket, Key: "film/shots/shot.blend"}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Remove()
	deps, err := blend.Trace(ctx, p.Blend)
	if err != nil {
		t.Fatal(err)
	}
	if miss := deps.Missing(); len(miss) != 0 || len(deps.Dependencies) != 3 {
		t.Errorf("fetched project: %d dependencies, missing %+v; want the library and both textures present", len(deps.Dependencies), miss)
	}
	if want := filepath.Join(p.Root, "film", "shots", "shot.blend"); p.Blend != want {
		t.Errorf("scene at %s, want %s (laid out as in the bucket)", p.Blend, want)
	}
}
