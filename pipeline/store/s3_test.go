package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/s3test"
	"github.com/framefleet/framefleet/pipeline/store"
)

func TestS3MultipartUploadAndDownload(t *testing.T) {
	ctx := context.Background()
	st, srv := newS3(t, "mp", func(o *store.Options) { o.PartSize = store.MinPartSize })
	data := randomBytes(20<<20, 7)
	src := filepath.Join(t.TempDir(), "video.mp4")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	srv.Reset()
	if err := st.PutFile(ctx, "runs/r/video.mp4", src); err != nil {
		t.Fatal(err)
	}
	if n := srv.Count(s3test.Request.IsCreateMultipartUpload); n != 1 {
		t.Errorf("%d multipart uploads started, want 1", n)
	}
	if n := srv.Count(s3test.Request.IsUploadPart); n != 4 {
		t.Errorf("%d parts uploaded, want 4 (20 MiB in 5 MiB parts)", n)
	}

	// GetFile downloads in ranged parts and must reassemble them in order.
	srv.Reset()
	out := filepath.Join(t.TempDir(), "got.mp4")
	if err := st.GetFile(ctx, "runs/r/video.mp4", out); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("GetFile gave %d bytes that differ from the %d uploaded", len(got), len(data))
	}
	ranged := srv.Count(func(r s3test.Request) bool { return r.Method == "GET" })
	if ranged < 4 {
		t.Errorf("GetFile made %d GETs, want one per 5 MiB part (4)", ranged)
	}
	if got := mustGet(t, st, "runs/r/video.mp4"); !bytes.Equal(got, data) {
		t.Errorf("Get gave %d bytes that differ from the upload", len(got))
	}
}

func TestS3SmallUploadIsSinglePut(t *testing.T) {
	st, srv := newS3(t, "", nil)
	mustPut(t, st, "runs/r/frames/frame_000001.png", randomBytes(1<<20, 8))
	if n := srv.Count(s3test.Request.IsCreateMultipartUpload); n != 0 {
		t.Errorf("1 MiB upload started %d multipart uploads, want a single PUT", n)
	}
}

func TestS3KeysLiveUnderPrefix(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	a, err := store.NewS3(ctx, srv.Bucket, "/team/a/", s3Options(srv))
	if err != nil {
		t.Fatal(err)
	}
	b, err := store.NewS3(ctx, srv.Bucket, "team/b", s3Options(srv))
	if err != nil {
		t.Fatal(err)
	}
	root, err := store.NewS3(ctx, srv.Bucket, "", s3Options(srv))
	if err != nil {
		t.Fatal(err)
	}
	if a.URI() != "s3://"+srv.Bucket+"/team/a" || root.URI() != "s3://"+srv.Bucket {
		t.Errorf("URIs %q and %q", a.URI(), root.URI())
	}
	mustPut(t, a, "runs/x/plan.json", []byte("a"))
	mustPut(t, b, "runs/x/plan.json", []byte("b"))
	if got := mustGet(t, root, "team/a/runs/x/plan.json"); string(got) != "a" {
		t.Errorf("object not stored under the prefix: got %q", got)
	}
	objs, err := a.List(ctx, "runs/")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].Key != "runs/x/plan.json" {
		t.Errorf("List in prefix a = %+v, want only runs/x/plan.json", objs)
	}
}

func TestS3ListPaginates(t *testing.T) {
	st, srv := newS3(t, "p", nil)
	// gofakes3 answers at most 1000 keys a page.
	const n = 1203
	for i := 0; i < n; i++ {
		mustPut(t, st, store.FrameKey("r", n-i, "png"), []byte{byte(i)})
	}
	srv.Reset()
	objs, err := st.List(context.Background(), store.FramesPrefix("r"))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != n {
		t.Fatalf("List gave %d objects, want %d", len(objs), n)
	}
	for i, o := range objs {
		if want := store.FrameKey("r", i+1, "png"); o.Key != want {
			t.Fatalf("objs[%d] = %s, want %s", i, o.Key, want)
		}
	}
	if pages := srv.Count(func(r s3test.Request) bool { return r.Query.Get("list-type") == "2" }); pages < 2 {
		t.Errorf("List made %d ListObjectsV2 calls, want at least 2 pages", pages)
	}
}

func TestS3LinkExpiry(t *testing.T) {
	ctx := context.Background()
	st, _ := newS3(t, "links", nil)
	mustPut(t, st, "runs/r/out.mp4", []byte("video"))
	for _, tc := range []struct {
		expiry  time.Duration
		wantErr string
		wantQS  string
	}{
		{0, "", "X-Amz-Expires=86400"},
		{time.Hour, "", "X-Amz-Expires=3600"},
		{7 * 24 * time.Hour, "", "X-Amz-Expires=604800"},
		{7*24*time.Hour + time.Second, "7 days", ""},
		{-time.Minute, "negative", ""},
	} {
		link, err := st.Link(ctx, "runs/r/out.mp4", tc.expiry)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Link(%s): err = %v, want one mentioning %q", tc.expiry, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Link(%s): %v", tc.expiry, err)
			continue
		}
		if !strings.Contains(link, tc.wantQS) || !strings.Contains(link, "X-Amz-Signature=") {
			t.Errorf("Link(%s) = %s, want a signed URL with %s", tc.expiry, link, tc.wantQS)
		}
		if got := fetchLink(t, link); string(got) != "video" {
			t.Errorf("Link(%s) fetched %q", tc.expiry, got)
		}
	}
	srv := s3test.Start(t)
	opts := s3Options(srv)
	opts.PresignExpiry = 30 * 24 * time.Hour
	if _, err := store.NewS3(ctx, srv.Bucket, "", opts); err == nil || !strings.Contains(err.Error(), "7 days") {
		t.Errorf("PresignExpiry of 30 days: err = %v, want one about the 7-day limit", err)
	}
}

func TestOpenS3URI(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	st, err := store.Open(ctx, "s3://"+srv.Bucket+"/renders/ci", s3Options(srv))
	if err != nil {
		t.Fatal(err)
	}
	if st.URI() != "s3://"+srv.Bucket+"/renders/ci" {
		t.Errorf("URI = %q", st.URI())
	}
	mustPut(t, st, "runs/1/plan.json", []byte("{}"))
	obj, err := srv.Backend.HeadObject(srv.Bucket, "renders/ci/runs/1/plan.json")
	if err != nil {
		t.Fatalf("object not in the bucket under the URI's prefix: %v", err)
	}
	if obj.Size != 2 {
		t.Errorf("stored size %d, want 2", obj.Size)
	}
}

func TestNewS3RejectsBadSettings(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	for _, tc := range []struct {
		name    string
		bucket  string
		prefix  string
		mod     func(*store.Options)
		wantErr string
	}{
		{"bare host:port endpoint", srv.Bucket, "", func(o *store.Options) { o.Endpoint = strings.TrimPrefix(srv.Endpoint, "http://") }, "http://127.0.0.1:9000"},
		{"ftp endpoint", srv.Bucket, "", func(o *store.Options) { o.Endpoint = "ftp://example.com" }, "scheme"},
		{"tiny parts", srv.Bucket, "", func(o *store.Options) { o.PartSize = 1 << 20 }, "at least"},
		{"bucket with slash", "a/b", "", nil, "not a bucket name"},
		{"prefix with ..", srv.Bucket, "a/../b", nil, "prefix"},
		{"no region for AWS", srv.Bucket, "", func(o *store.Options) { o.Region, o.Endpoint = "", "" }, "no AWS region"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := s3Options(srv)
			if tc.mod != nil {
				tc.mod(&opts)
			}
			_, err := store.NewS3(ctx, tc.bucket, tc.prefix, opts)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestS3MissingBucketIsNamed(t *testing.T) {
	srv := s3test.Start(t)
	st, err := store.NewS3(context.Background(), "no-such-bucket", "", s3Options(srv))
	if err != nil {
		t.Fatal(err)
	}
	err = st.Put(context.Background(), "k", strings.NewReader("x"))
	if err == nil || !strings.Contains(err.Error(), `bucket "no-such-bucket" does not exist`) {
		t.Errorf("Put into a missing bucket: err = %v", err)
	}
}

// TestS3SurvivesFaults: with 20% of calls answered 500 InternalError or 503
// SlowDown, a series of stores and reads still completes and returns the
// right bytes, because every call is retried.
func TestS3SurvivesFaults(t *testing.T) {
	ctx := context.Background()
	st, srv := newS3(t, "flaky", func(o *store.Options) {
		o.PartSize, o.MultipartThreshold = store.MinPartSize, store.MinPartSize
	}, s3test.WithFaults(0.2, 42))
	want := map[string][]byte{}
	for i := 0; i < 20; i++ {
		key := store.FrameKey("r", i, "png")
		want[key] = randomBytes(10_000+i, int64(i))
		mustPut(t, st, key, want[key])
	}
	big := randomBytes(11<<20, 99)
	if err := st.Put(ctx, "runs/r/big.bin", onlyReader{bytes.NewReader(big)}); err != nil {
		t.Fatalf("multipart put under faults: %v", err)
	}
	if n := srv.Count(func(r s3test.Request) bool { return r.IsUploadPart() && !r.Fault }); n != 3 {
		t.Errorf("%d parts stored, want 3 (11 MiB in 5 MiB parts)", n)
	}
	for key, data := range want {
		if got := mustGet(t, st, key); !bytes.Equal(got, data) {
			t.Errorf("%s: wrong bytes after faults", key)
		}
		if _, err := st.Stat(ctx, key); err != nil {
			t.Errorf("Stat %s: %v", key, err)
		}
	}
	out := filepath.Join(t.TempDir(), "big.bin")
	if err := st.GetFile(ctx, "runs/r/big.bin", out); err != nil {
		t.Fatalf("GetFile under faults: %v", err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, big) {
		t.Errorf("big object: wrong bytes after faults")
	}
	objs, err := st.List(ctx, "runs/r/")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 21 {
		t.Errorf("List gave %d objects, want 21", len(objs))
	}
	faults, total := srv.Faults(), len(srv.Requests())
	t.Logf("%d of %d requests were answered with injected errors", faults, total)
	if faults == 0 {
		t.Fatal("no faults were injected; the test proves nothing")
	}
	if _, err := st.Stat(ctx, "runs/r/missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Stat missing under faults: %v", err)
	}
}

// TestS3GivesUpAfterMaxAttempts: a server that always fails ends in an
// error naming the object, after exactly MaxAttempts tries.
func TestS3GivesUpAfterMaxAttempts(t *testing.T) {
	st, srv := newS3(t, "", func(o *store.Options) { o.MaxAttempts = 3 }, s3test.WithFaults(1, 1, 503))
	_, err := st.Stat(context.Background(), "runs/r/plan.json")
	if err == nil || errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "runs/r/plan.json") {
		t.Fatalf("err = %v, want a non-NotFound error naming the key", err)
	}
	if n := len(srv.Requests()); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
}

// TestS3EndpointFromEnvironment: a worker that opens the store with empty
// Options still reaches an S3-compatible server named by the SDK's own
// AWS_ENDPOINT_URL_S3 (loopback IP endpoints are addressed path-style).
func TestS3EndpointFromEnvironment(t *testing.T) {
	srv := s3test.Start(t)
	t.Setenv("AWS_ENDPOINT_URL_S3", srv.Endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	t.Setenv("AWS_REGION", srv.Region)
	st, err := store.Open(context.Background(), "s3://"+srv.Bucket+"/env", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, st, "runs/r/plan.json", []byte("{}"))
	if _, err := srv.Backend.HeadObject(srv.Bucket, "env/runs/r/plan.json"); err != nil {
		t.Fatalf("object not stored through the environment's endpoint: %v", err)
	}
}

func TestS3ListRejectsEscapingPrefix(t *testing.T) {
	st, _ := newS3(t, "p", nil)
	for _, prefix := range []string{"../other/", "/abs", "runs/../../x"} {
		if _, err := st.List(context.Background(), prefix); err == nil || !strings.Contains(err.Error(), "invalid store prefix") {
			t.Errorf("List(%q): err = %v, want invalid store prefix", prefix, err)
		}
	}
	mustPut(t, st, "runs/a..b/k", []byte("x"))
	if objs, err := st.List(context.Background(), "runs/a..b/"); err != nil || len(objs) != 1 {
		t.Errorf("List of a prefix with dots in a name: %v, %v", objs, err)
	}
}

// TestS3ListPageIsOneRequest: a page costs one ListObjectsV2 call however
// many objects the prefix holds, and keys come back relative to the store.
func TestS3ListPageIsOneRequest(t *testing.T) {
	st, srv := newS3(t, "deep/prefix", nil)
	for i := range 40 {
		mustPut(t, st, fmt.Sprintf("runs/r%03d/run.json", i), []byte("{}"))
	}
	srv.Reset()
	page, more, err := st.ListPage(context.Background(), "runs/", "runs/r009/run.json", 5)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range page {
		keys = append(keys, o.Key)
	}
	want := []string{"runs/r010/run.json", "runs/r011/run.json", "runs/r012/run.json", "runs/r013/run.json", "runs/r014/run.json"}
	if fmt.Sprint(keys) != fmt.Sprint(want) || !more {
		t.Errorf("ListPage = %q more=%v, want %q more=true", keys, more, want)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 || reqs[0].Query.Get("list-type") != "2" || reqs[0].Query.Get("max-keys") != "5" ||
		reqs[0].Query.Get("start-after") != "deep/prefix/runs/r009/run.json" {
		t.Errorf("ListPage sent %+v, want one ListObjectsV2 with max-keys 5 and start-after under the store prefix", reqs)
	}
}

// TestS3ConditionalWritesSendConditions: the store's conditions travel as
// S3's own headers, so a real S3 (not only the test server) enforces them.
func TestS3ConditionalWritesSendConditions(t *testing.T) {
	st, srv := newS3(t, "", nil)
	ctx := context.Background()
	v1, err := st.PutIfVersion(ctx, "runs/r1/run.json", []byte("one"), "")
	if err != nil {
		t.Fatal(err)
	}
	obj, err := srv.Backend.HeadObject(srv.Bucket, "runs/r1/run.json")
	if err != nil {
		t.Fatal(err)
	}
	if want := store.Version(fmt.Sprintf("%q", fmt.Sprintf("%x", obj.Hash))); v1 != want {
		t.Errorf("version %s, want the object's ETag %s", v1, want)
	}
	if _, err := st.PutIfVersion(ctx, "runs/r1/run.json", []byte("stale"), `"0123456789abcdef0123456789abcdef"`); !errors.Is(err, store.ErrConflict) {
		t.Errorf("stale If-Match: %v, want ErrConflict", err)
	}
	if puts := srv.Count(func(r s3test.Request) bool { return r.Method == http.MethodPut }); puts != 2 {
		t.Errorf("%d PUTs, want 2: a conflict must not be retried", puts)
	}
}

// TestS3RidesOutAnOutage: requests made while the server refuses
// connections are retried by the SDK and succeed once it is back, with the
// objects stored before the outage intact. The outage is far shorter than the
// attempts' total backoff, so the test does not depend on timing.
func TestS3RidesOutAnOutage(t *testing.T) {
	st, srv := newS3(t, "p", func(o *store.Options) {
		o.MaxAttempts = 40
		o.MaxBackoff = 100 * time.Millisecond
	})
	ctx := context.Background()
	v1, err := st.PutIfVersion(ctx, "runs/r/run.json", []byte("one"), "")
	if err != nil {
		t.Fatal(err)
	}
	srv.DownFor(300 * time.Millisecond)
	if !srv.IsDown() {
		t.Fatal("server still up after DownFor")
	}
	if _, err := st.PutIfVersion(ctx, "runs/r/run.json", []byte("two"), v1); err != nil {
		t.Fatalf("write during the outage: %v", err)
	}
	data, _, err := st.GetVersioned(ctx, "runs/r/run.json")
	if err != nil || string(data) != "two" {
		t.Errorf("after the outage: %q %v, want two", data, err)
	}
}
