package bot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/google/go-github/v62/github"

	"github.com/framefleet/framefleet/internal/lfstest"
	"github.com/framefleet/framefleet/internal/s3test"
	"github.com/framefleet/framefleet/pipeline/config"
	"github.com/framefleet/framefleet/pipeline/store"
)

// fakeGitHub serves the contents API (metadata and raw), checking the
// bot's token; Git LFS objects come from internal/lfstest.
func fakeGitHub(t *testing.T, files map[string][]byte) (*httptest.Server, *int) {
	t.Helper()
	downloads := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/repos/acme/film/contents/") {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Authorization") != "Bearer ghp_test" {
			http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
			return
		}
		path := strings.TrimPrefix(r.URL.Path, "/repos/acme/film/contents/")
		data, ok := files[path+"@"+r.URL.Query().Get("ref")]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"message":"Not Found"}`)
			return
		}
		if strings.Contains(r.Header.Get("Accept"), "raw") {
			downloads++
			_, _ = w.Write(data)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"type": "file", "name": path, "path": path, "size": len(data), "encoding": "base64", "content": ""})
	}))
	t.Cleanup(srv.Close)
	return srv, &downloads
}

func TestFetchGitHub(t *testing.T) {
	plain := []byte("BLENDER-v304 plain scene")
	big := bytes.Repeat([]byte("B"), 4500)
	lfsObj := []byte("BLENDER-v304 the real LFS scene")
	lfsHuge := bytes.Repeat([]byte("L"), 5000)
	lfs := lfstest.Start(t, lfstest.WithBasicAuth("x-access-token", "ghp_test"))
	lfs.Add(lfsObj)
	lfs.Add(lfsHuge)
	srv, ghDownloads := fakeGitHub(t, map[string][]byte{
		"scenes/plain.blend@main": plain, "scenes/big.blend@main": big,
		"scenes/lfs.blend@v2": lfstest.Pointer(lfsObj), "scenes/huge-lfs.blend@main": lfstest.Pointer(lfsHuge),
		"scenes/missing-lfs.blend@main": lfstest.Pointer([]byte("gone")),
	})
	downloads := func() int {
		n := *ghDownloads
		for _, r := range lfs.Requests() {
			if r.Method == http.MethodGet && r.Status == http.StatusOK {
				n++
			}
		}
		return n
	}
	gh := github.NewClient(nil).WithAuthToken("ghp_test")
	gh.BaseURL, _ = url.Parse(srv.URL + "/")
	f := &Fetcher{GitHub: gh, GitHubToken: "ghp_test", LFSURL: lfs.URL, MaxBytes: 4000, Dir: t.TempDir()}

	for _, tc := range []struct {
		src       string
		want      []byte
		err       string
		downloads int
	}{
		{"acme/film/scenes/plain.blend@main", plain, "", 1},
		{"acme/film/scenes/lfs.blend@v2", lfsObj, "", 2}, // the pointer, then the object
		{"acme/film/scenes/big.blend@main", nil, "more than the", 0},
		{"acme/film/scenes/huge-lfs.blend@main", nil, "more than the", 1}, // only the pointer
		{"acme/film/scenes/missing-lfs.blend@main", nil, "Git LFS cannot give", 1},
		{"acme/film/scenes/nope.blend@main", nil, "was not found", 0},
	} {
		t.Run(tc.src, func(t *testing.T) {
			before := downloads()
			src, err := ParseSource(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			path, name, err := f.Fetch(context.Background(), src, "")
			if got := downloads() - before; got != tc.downloads {
				t.Errorf("%d downloads, want %d", got, tc.downloads)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer os.Remove(path)
			if got, _ := os.ReadFile(path); !bytes.Equal(got, tc.want) {
				t.Errorf("fetched %q", got)
			}
			if name != tc.src {
				t.Errorf("name %q", name)
			}
		})
	}
	var tl *TooLargeError
	_, _, err := f.Fetch(context.Background(), Source{Kind: SourceGitHub, Owner: "acme", Repo: "film", Path: "scenes/big.blend", Ref: "main"}, "")
	if !errors.As(err, &tl) || tl.Size != 4500 || tl.Max != 4000 {
		t.Errorf("too large: %v", err)
	}
}

func TestFetchS3(t *testing.T) {
	s3 := s3test.Start(t)
	ctx := context.Background()
	opts := store.Options{Region: s3.Region, Endpoint: s3.Endpoint, UsePathStyle: true, Credentials: s3.Credentials(), MaxAttempts: 1}
	seed, err := store.Open(ctx, "s3://"+s3.Bucket, opts)
	if err != nil {
		t.Fatal(err)
	}
	scene := []byte("BLENDER-v304 from S3")
	if err := seed.Put(ctx, "shots/a.blend", bytes.NewReader(scene)); err != nil {
		t.Fatal(err)
	}
	if err := seed.Put(ctx, "shots/big.blend", bytes.NewReader(make([]byte, 5000))); err != nil {
		t.Fatal(err)
	}
	allowed := config.SlackSources{S3Buckets: []string{s3.Bucket + "/shots/"}}
	f := &Fetcher{MaxBytes: 4000, Dir: t.TempDir(), AllowS3: allowed.AllowsS3, OpenStore: func(ctx context.Context, uri string) (store.Store, error) {
		return store.Open(ctx, uri, opts)
	}}
	path, name, err := f.Fetch(ctx, Source{Kind: SourceS3, Bucket: s3.Bucket, Key: "shots/a.blend"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, scene) || name != "s3://"+s3.Bucket+"/shots/a.blend" {
		t.Errorf("fetched %q as %q", got, name)
	}
	gets := func() int {
		return s3.Count(func(r s3test.Request) bool {
			return r.Method == http.MethodGet && strings.HasSuffix(r.Path, "big.blend")
		})
	}
	if _, _, err := f.Fetch(ctx, Source{Kind: SourceS3, Bucket: s3.Bucket, Key: "shots/big.blend"}, ""); err == nil || !strings.Contains(err.Error(), "more than the") {
		t.Errorf("too large: %v", err)
	}
	if gets() != 0 {
		t.Errorf("the too-large object was downloaded")
	}
	if _, _, err := f.Fetch(ctx, Source{Kind: SourceS3, Bucket: s3.Bucket, Key: "shots/none.blend"}, ""); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing: %v", err)
	}
	// Outside the allowed prefix, or another bucket: refused before any
	// request, and the refusal names no bucket.
	before := s3.Count(func(s3test.Request) bool { return true })
	for _, src := range []Source{{Kind: SourceS3, Bucket: s3.Bucket, Key: "private/a.blend"}, {Kind: SourceS3, Bucket: "payroll", Key: "a.blend"}} {
		_, _, err := f.Fetch(ctx, src, "")
		if err == nil || err.Error() != NotAllowedS3 {
			t.Errorf("%s: %v, want the refusal", src, err)
		}
	}
	if s3.Count(func(s3test.Request) bool { return true }) != before {
		t.Error("a refused source was asked from S3")
	}
	// An S3 error is not shown as is: the public text names neither the
	// bucket's error code nor the request.
	denied := &Fetcher{MaxBytes: 4000, Dir: t.TempDir(), AllowS3: func(string, string) bool { return true }, OpenStore: func(ctx context.Context, uri string) (store.Store, error) {
		o := opts
		o.Credentials = nil
		o.Region = "nowhere-1"
		o.Endpoint = "http://127.0.0.1:1"
		return store.Open(ctx, uri, o)
	}}
	_, _, err = denied.Fetch(ctx, Source{Kind: SourceS3, Bucket: s3.Bucket, Key: "shots/a.blend"}, "")
	var se *SourceError
	if !errors.As(err, &se) || strings.Contains(se.Public, "127.0.0.1") || !strings.Contains(se.Public, "bot's log") {
		t.Errorf("unreadable source: %v", err)
	}
}
