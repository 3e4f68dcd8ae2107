package deploy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/framefleet/framefleet/internal/s3test"
	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/store"
)

// policyGuard is an S3 client transport that lets through only what a role
// of the template may do, as IAM would decide it: every request is mapped to
// its S3 action and resource (or s3:prefix) and evaluated against the role's
// statements; a denied request is answered 403 AccessDenied and recorded.
type policyGuard struct {
	t        *testing.T
	next     http.RoundTripper
	bucket   string
	policies []map[string]any
	mu       sync.Mutex
	denied   []string
	written  []string // object keys (bucket-relative) written through the guard
}

// s3Request is the IAM view of one S3 HTTP request (path-style addressing).
func (g *policyGuard) s3Requests(req *http.Request) []request {
	path := strings.TrimPrefix(req.URL.Path, "/"+g.bucket)
	key := strings.TrimPrefix(path, "/")
	q := req.URL.Query()
	obj := "arn:aws:s3:::" + sampleBucket + "/" + key
	if key == "" {
		prefix := q.Get("prefix")
		return []request{{action: "s3:ListBucket", resource: "arn:aws:s3:::" + sampleBucket,
			context: map[string][]string{"s3:prefix": {prefix}}}}
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		return []request{{action: "s3:GetObject", resource: obj}}
	case http.MethodDelete:
		if q.Has("uploadId") {
			return []request{{action: "s3:AbortMultipartUpload", resource: obj}}
		}
		return []request{{action: "s3:DeleteObject", resource: obj}}
	case http.MethodPut, http.MethodPost:
		out := []request{{action: "s3:PutObject", resource: obj}}
		if req.Header.Get("X-Amz-Tagging") != "" || q.Has("tagging") {
			out = append(out, request{action: "s3:PutObjectTagging", resource: obj})
		}
		return out
	}
	g.t.Errorf("S3 request %s %s is not mapped to IAM here", req.Method, req.URL)
	return nil
}

func (g *policyGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	for _, r := range g.s3Requests(req) {
		if !allowed(g.t, g.policies, r) {
			g.mu.Lock()
			g.denied = append(g.denied, r.action+" "+r.resource+fmt.Sprint(r.context["s3:prefix"]))
			g.mu.Unlock()
			body := "<Error><Code>AccessDenied</Code><Message>denied by the template's policy</Message></Error>"
			return &http.Response{StatusCode: http.StatusForbidden, Status: "403 Forbidden", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
				Header: http.Header{"Content-Type": {"application/xml"}}, Body: io.NopCloser(strings.NewReader(body)),
				ContentLength: int64(len(body)), Request: req}, nil
		}
	}
	if req.Method == http.MethodPut || req.Method == http.MethodPost {
		g.mu.Lock()
		g.written = append(g.written, strings.TrimPrefix(req.URL.Path, "/"+g.bucket+"/"))
		g.mu.Unlock()
	}
	return g.next.RoundTrip(req)
}

// recordingEngine takes submissions and runs nothing.
type recordingEngine struct {
	mu   sync.Mutex
	jobs []pipeline.Job
}

func (e *recordingEngine) Submit(_ context.Context, job pipeline.Job) (pipeline.Handle, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.jobs = append(e.jobs, job)
	return pipeline.Handle{Engine: "recording", RenderID: "r-" + job.RunID, StitchID: "s-" + job.RunID}, nil
}

func (e *recordingEngine) Status(context.Context, pipeline.Handle) (pipeline.Status, error) {
	return pipeline.Status{Render: pipeline.StateRunnable, Stitch: pipeline.StatePending}, nil
}
func (e *recordingEngine) Cancel(context.Context, pipeline.Handle, string) error { return nil }
func (e *recordingEngine) BlenderVersion(context.Context) (string, error)        { return "4.2.0", nil }

// TestPreviewCannotPoisonTrusted runs requests on the S3 test server with
// each scope's requester policy enforced on every call (the template's own
// prefixes, StorePrefix framefleet): a preview run writes nothing outside
// scopes/preview/, then plants everything a trusted run could be fooled by
// (the scene blob, a cache entry naming a forged finished run, its record,
// manifest and video), and a trusted run of the same scene still uploads and
// renders its own: it reads nothing the preview wrote.
func TestPreviewCannotPoisonTrusted(t *testing.T) {
	t.Setenv("AWS_CA_BUNDLE", "")
	srv := s3test.Start(t)
	s := scopeStack(t, "framefleet")
	ctx := context.Background()
	open := func(roleName, scope string) (store.Store, *policyGuard) {
		r, ok := s.role(roleName)
		if !ok {
			t.Fatalf("no role %s", roleName)
		}
		g := &policyGuard{t: t, next: http.DefaultTransport, bucket: srv.Bucket, policies: r.policies}
		root, err := store.NewS3(ctx, srv.Bucket, "framefleet", store.Options{Region: srv.Region, Endpoint: srv.Endpoint,
			UsePathStyle: true, Credentials: srv.Credentials(), HTTPClient: &http.Client{Transport: g}, MaxAttempts: 1})
		if err != nil {
			t.Fatal(err)
		}
		st, err := store.NewScoped(root, scope)
		if err != nil {
			t.Fatal(err)
		}
		return st, g
	}
	scene := filepath.Join(testenv.Shared(t), "blendfiles", "BlenderDefault_262.blend") // needs no other file
	sceneBytes, err := os.ReadFile(scene)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(sceneBytes)
	sceneKey := store.InputKey(hex.EncodeToString(sum[:])) // the scene is one of the run's content-addressed inputs
	req := pipeline.Request{BlendPath: scene, Frames: "1-2", Engine: "recording"}

	// The preview run, then what it plants.
	previewStore, previewGuard := open("GitHubPreviewRole", "preview")
	previewEngine := &recordingEngine{}
	previewRuns := &pipeline.Runs{Store: previewStore, EngineName: "recording",
		Engine: func(context.Context, string) (pipeline.Engine, error) { return previewEngine, nil }}
	prec, err := previewRuns.Submit(ctx, req)
	if err != nil {
		t.Fatalf("preview submit: %v (denied: %v)", err, previewGuard.denied)
	}
	if prec.ScopeName() != "preview" || len(previewEngine.jobs) != 1 || !strings.Contains(previewEngine.jobs[0].StoreURI, "?scope=preview") {
		t.Errorf("preview run: scope %q, %d submissions (store %v): want one in the preview scope", prec.ScopeName(), len(previewEngine.jobs), previewEngine.jobs)
	}
	const forged = "20260101-forged"
	manifest, _ := json.Marshal(pipeline.Manifest{RunID: forged, Scene: "Scene", VideoKey: store.VideoKey(forged, "Scene"), FrameCount: 2, FPS: "24"})
	record, _ := json.Marshal(map[string]any{"schema": pipeline.RecordSchema, "id": forged, "state": pipeline.RunSucceeded, "cache_key": prec.CacheKey, "scene": "Scene"})
	for key, data := range map[string]string{
		sceneKey:                        "planted scene",
		store.CacheKey(prec.CacheKey):   `{"run_id":"` + forged + `"}`,
		pipeline.RecordKey(forged):      string(record),
		store.ManifestKey(forged):       string(manifest),
		store.VideoKey(forged, "Scene"): "planted video",
	} {
		if err := previewStore.Put(ctx, key, strings.NewReader(data)); err != nil {
			t.Fatalf("preview plants %s: %v", key, err)
		}
	}
	// It cannot write one object outside its prefix: the guard refused nothing
	// it tried, and everything it wrote is under scopes/preview/.
	if len(previewGuard.denied) > 0 {
		t.Errorf("the preview run attempted requests its role denies: %v", previewGuard.denied)
	}
	for _, k := range previewGuard.written {
		if !strings.HasPrefix(k, "framefleet/scopes/preview/") {
			t.Errorf("the preview run wrote %s, outside framefleet/scopes/preview/", k)
		}
	}
	if len(previewGuard.written) == 0 {
		t.Fatal("the preview run wrote nothing: the test checks nothing")
	}
	// Even asked directly, the preview role cannot write the trusted scope.
	previewRoot, _ := open("GitHubPreviewRole", "trusted")
	if err := previewRoot.Put(ctx, store.CacheKey(prec.CacheKey), strings.NewReader(`{"run_id":"`+forged+`"}`)); err == nil {
		t.Error("the preview role wrote the trusted scope's cache entry")
	}

	// The trusted run of the same scene renders its own.
	trustedStore, trustedGuard := open("GitHubRenderRole", "trusted")
	trustedEngine := &recordingEngine{}
	trustedRuns := &pipeline.Runs{Store: trustedStore, EngineName: "recording",
		Engine: func(context.Context, string) (pipeline.Engine, error) { return trustedEngine, nil }}
	trec, err := trustedRuns.Submit(ctx, req)
	if err != nil {
		t.Fatalf("trusted submit: %v (denied: %v)", err, trustedGuard.denied)
	}
	if trec.ID == forged || trec.State == pipeline.RunSucceeded || len(trustedEngine.jobs) != 1 {
		t.Errorf("the trusted run served the preview's planted result: id %s, state %s, %d submissions", trec.ID, trec.State, len(trustedEngine.jobs))
	}
	if trec.ScopeName() != pipeline.ScopeTrusted || strings.Contains(trustedEngine.jobs[0].StoreURI, "scope=") {
		t.Errorf("trusted run: scope %s, worker store %s", trec.ScopeName(), trustedEngine.jobs[0].StoreURI)
	}
	rc, err := trustedStore.Get(ctx, sceneKey)
	if err != nil {
		t.Fatalf("the trusted run did not upload its scene: %v", err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, sceneBytes) {
		t.Errorf("the trusted scope's scene blob is %d bytes of something else (%q...), not the scene", len(got), got[:min(len(got), 20)])
	}
	// The worker reads the scene through the store the job names: the trusted one.
	workerStore, err := store.Open(ctx, trustedEngine.jobs[0].StoreURI, store.Options{Region: srv.Region, Endpoint: srv.Endpoint,
		UsePathStyle: true, Credentials: srv.Credentials()})
	if err != nil {
		t.Fatal(err)
	}
	if o, err := workerStore.Stat(ctx, sceneKey); err != nil || o.Size != int64(len(sceneBytes)) {
		t.Errorf("the trusted worker's scene: %+v, %v", o, err)
	}
	if len(trustedGuard.denied) > 0 {
		t.Errorf("the trusted run attempted requests its role denies (it must read nothing of another scope): %v", trustedGuard.denied)
	}
	u, _ := url.Parse(trustedEngine.jobs[0].StoreURI)
	if u.RawQuery != "" {
		t.Errorf("trusted worker store URI %s names a scope", u)
	}

	// The trusted run finishes (written here as its watcher would); another
	// scope with no cache entry of its own is then served the trusted result,
	// read-only, and submits nothing.
	admin, err := store.NewS3(ctx, srv.Bucket, "framefleet", store.Options{Region: srv.Region, Endpoint: srv.Endpoint,
		UsePathStyle: true, Credentials: srv.Credentials()})
	if err != nil {
		t.Fatal(err)
	}
	data, ver, err := admin.GetVersioned(ctx, pipeline.RecordKey(trec.ID))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	raw["state"] = pipeline.RunSucceeded
	data, _ = json.Marshal(raw)
	if _, err := admin.PutIfVersion(ctx, pipeline.RecordKey(trec.ID), data, ver); err != nil {
		t.Fatal(err)
	}
	video := store.VideoKey(trec.ID, "Scene")
	manifest, _ = json.Marshal(pipeline.Manifest{RunID: trec.ID, Scene: "Scene", VideoKey: video, FrameCount: 2, FPS: "24"})
	for key, body := range map[string]string{store.ManifestKey(trec.ID): string(manifest), video: "trusted video"} {
		if err := admin.Put(ctx, key, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	botStore, botGuard := open("BotRole", "bot")
	botEngine := &recordingEngine{}
	botRuns := &pipeline.Runs{Store: botStore, EngineName: "recording",
		Engine: func(context.Context, string) (pipeline.Engine, error) { return botEngine, nil }}
	brec, err := botRuns.Submit(ctx, req)
	if err != nil {
		t.Fatalf("bot submit: %v (denied: %v)", err, botGuard.denied)
	}
	if brec.ID != trec.ID || brec.Result == nil || !brec.Result.Cached || len(botEngine.jobs) != 0 {
		t.Errorf("the bot scope was not served the trusted result: id %s (trusted %s), result %+v, %d submissions", brec.ID, trec.ID, brec.Result, len(botEngine.jobs))
	}
	if len(botGuard.denied) > 0 {
		t.Errorf("the bot scope attempted requests its role denies: %v", botGuard.denied)
	}
	for _, k := range botGuard.written {
		if !strings.HasPrefix(k, "framefleet/scopes/bot/") {
			t.Errorf("the bot scope wrote %s, outside framefleet/scopes/bot/", k)
		}
	}
}
