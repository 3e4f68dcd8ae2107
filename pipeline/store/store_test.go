package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/s3test"
	"github.com/framefleet/framefleet/pipeline/store"
)

// TestMain keeps the AWS SDK away from the developer's AWS setup and from
// the network: no shared config, no instance metadata, no endpoint override.
func TestMain(m *testing.M) {
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	os.Setenv("AWS_CONFIG_FILE", os.DevNull)
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	for _, v := range []string{"AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION",
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_CA_BUNDLE"} {
		os.Unsetenv(v)
	}
	os.Exit(m.Run())
}

// s3Options are the options every S3 test store uses against srv.
func s3Options(srv *s3test.Server) store.Options {
	return store.Options{
		Region:       srv.Region,
		Endpoint:     srv.Endpoint,
		UsePathStyle: true,
		Credentials:  srv.Credentials(),
		MaxBackoff:   5 * time.Millisecond, // keep retried tests quick
	}
}

// newS3 starts a fake S3 and opens a store under prefix in its bucket.
func newS3(t *testing.T, prefix string, mod func(*store.Options), srvOpts ...s3test.Option) (store.Store, *s3test.Server) {
	t.Helper()
	srv := s3test.Start(t, srvOpts...)
	opts := s3Options(srv)
	if mod != nil {
		mod(&opts)
	}
	st, err := store.NewS3(context.Background(), srv.Bucket, prefix, opts)
	if err != nil {
		t.Fatalf("NewS3: %v", err)
	}
	return st, srv
}

// storeKinds are the implementations every conformance case runs against.
var storeKinds = []struct {
	name string
	// open returns a fresh empty store and the options that reopen it by URI.
	open func(t *testing.T) (store.Store, store.Options)
}{
	{"file", func(t *testing.T) (store.Store, store.Options) {
		st, err := store.NewFile(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return st, store.Options{}
	}},
	{"s3", func(t *testing.T) (store.Store, store.Options) {
		// Small parts so the "large" cases really are multipart uploads.
		small := func(o *store.Options) {
			o.PartSize = store.MinPartSize
			o.MultipartThreshold = store.MinPartSize
		}
		st, srv := newS3(t, "conformance/prefix", small)
		opts := s3Options(srv)
		small(&opts)
		return st, opts
	}},
}

// linkExists reports whether opening link finds an object.
func linkExists(t *testing.T, link string) bool {
	t.Helper()
	if path, ok := strings.CutPrefix(link, "file://"); ok {
		u, err := url.Parse(link)
		if err == nil {
			path = u.Path
		}
		_, err = os.Stat(path)
		return err == nil
	}
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// fetchLink reads what a person opening the URL from Link would get.
func fetchLink(t *testing.T, link string) []byte {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatalf("link %q: %v", link, err)
	}
	switch u.Scheme {
	case "file":
		b, err := os.ReadFile(u.Path)
		if err != nil {
			t.Fatalf("open file link: %v", err)
		}
		return b
	case "http", "https":
		resp, err := http.Get(link)
		if err != nil {
			t.Fatalf("GET link: %v", err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET link: %s: %s", resp.Status, b)
		}
		return b
	}
	t.Fatalf("link %q: unexpected scheme", link)
	return nil
}

func randomBytes(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func mustGet(t *testing.T, st store.Store, key string) []byte {
	t.Helper()
	rc, err := st.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

func mustPut(t *testing.T, st store.Store, key string, data []byte) {
	t.Helper()
	if err := st.Put(context.Background(), key, bytes.NewReader(data)); err != nil {
		t.Fatalf("Put %s: %v", key, err)
	}
}

// onlyReader hides Seek, as a pipe or network stream would.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

var conformance = []struct {
	name string
	run  func(t *testing.T, st store.Store, opts store.Options)
}{
	{"put get round trip", func(t *testing.T, st store.Store, _ store.Options) {
		for i, data := range [][]byte{[]byte("hello"), {}, randomBytes(100_000, 1)} {
			key := fmt.Sprintf("runs/r1/obj%d.bin", i)
			mustPut(t, st, key, data)
			if got := mustGet(t, st, key); !bytes.Equal(got, data) {
				t.Errorf("%s: got %d bytes, want %d", key, len(got), len(data))
			}
			obj, err := st.Stat(context.Background(), key)
			if err != nil {
				t.Fatalf("Stat %s: %v", key, err)
			}
			if obj.Key != key || obj.Size != int64(len(data)) {
				t.Errorf("Stat %s = %+v, want key %s size %d", key, obj, key, len(data))
			}
		}
	}},
	{"large unseekable put is stored whole", func(t *testing.T, st store.Store, _ store.Options) {
		data := randomBytes(12<<20+123, 2)
		if err := st.Put(context.Background(), "runs/r1/big.bin", onlyReader{bytes.NewReader(data)}); err != nil {
			t.Fatal(err)
		}
		if got := mustGet(t, st, "runs/r1/big.bin"); sha256.Sum256(got) != sha256.Sum256(data) {
			t.Errorf("got %d bytes back, want the %d put", len(got), len(data))
		}
	}},
	{"put replaces", func(t *testing.T, st store.Store, _ store.Options) {
		mustPut(t, st, "cache/k.json", []byte("old"))
		mustPut(t, st, "cache/k.json", []byte("new"))
		if got := mustGet(t, st, "cache/k.json"); string(got) != "new" {
			t.Errorf("got %q, want new", got)
		}
	}},
	{"missing key is ErrNotFound", func(t *testing.T, st store.Store, _ store.Options) {
		ctx := context.Background()
		if _, err := st.Stat(ctx, "runs/nope/plan.json"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Stat: err = %v, want ErrNotFound", err)
		}
		if _, err := st.Get(ctx, "runs/nope/plan.json"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get: err = %v, want ErrNotFound", err)
		}
		if err := st.GetFile(ctx, "runs/nope/plan.json", filepath.Join(t.TempDir(), "x")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetFile: err = %v, want ErrNotFound", err)
		}
		// Link only signs: a link to a missing object is made without a
		// request, and opening it finds nothing.
		if link, err := st.Link(ctx, "runs/nope/plan.json", time.Hour); err != nil {
			t.Errorf("Link to a missing key: %v", err)
		} else if linkExists(t, link) {
			t.Errorf("Link to a missing key %s opens something", link)
		}
	}},
	{"list returns prefix matches sorted", func(t *testing.T, st store.Store, _ store.Options) {
		keys := []string{
			store.FrameKey("r2", 10, "png"), store.FrameKey("r2", 2, "png"), store.PlanKey("r2"),
			store.FrameKey("r22", 1, "png"), store.BlendKey("abc"), store.FrameKey("r2", -5, "png"),
		}
		for i, k := range keys {
			mustPut(t, st, k, bytes.Repeat([]byte{'x'}, i+1))
		}
		for _, tc := range []struct {
			prefix string
			want   []string
		}{
			{store.FramesPrefix("r2"), []string{"runs/r2/frames/frame_-00005.png", "runs/r2/frames/frame_000002.png", "runs/r2/frames/frame_000010.png"}},
			{store.RunPrefix("r2"), []string{"runs/r2/frames/frame_-00005.png", "runs/r2/frames/frame_000002.png", "runs/r2/frames/frame_000010.png", "runs/r2/plan.json"}},
			{"runs/r2", []string{"runs/r2/frames/frame_-00005.png", "runs/r2/frames/frame_000002.png", "runs/r2/frames/frame_000010.png", "runs/r2/plan.json", "runs/r22/frames/frame_000001.png"}},
			{"runs/r2/frames/frame_0000", []string{"runs/r2/frames/frame_000002.png", "runs/r2/frames/frame_000010.png"}},
			{"runs/none/", nil},
		} {
			got, err := st.List(context.Background(), tc.prefix)
			if err != nil {
				t.Fatalf("List %q: %v", tc.prefix, err)
			}
			var gotKeys []string
			for _, o := range got {
				gotKeys = append(gotKeys, o.Key)
				if o.Size <= 0 {
					t.Errorf("List %q: %s has size %d", tc.prefix, o.Key, o.Size)
				}
			}
			if strings.Join(gotKeys, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("List %q = %q, want %q", tc.prefix, gotKeys, tc.want)
			}
		}
		all, err := st.List(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != len(keys) {
			t.Errorf("List \"\" gave %d objects, want %d", len(all), len(keys))
		}
	}},
	{"putfile getfile replaces atomically", func(t *testing.T, st store.Store, _ store.Options) {
		ctx := context.Background()
		dir := t.TempDir()
		src := filepath.Join(dir, "src.bin")
		data := randomBytes(300_000, 3)
		if err := os.WriteFile(src, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := st.PutFile(ctx, "runs/r3/segments/chunk_00001.mp4", src); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "out", "dst.bin")
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, []byte("previous content"), 0o644); err != nil {
			t.Fatal(err)
		}
		// A failed download leaves the old file alone.
		if err := st.GetFile(ctx, "runs/r3/missing.bin", out); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetFile missing: %v", err)
		}
		if b, _ := os.ReadFile(out); string(b) != "previous content" {
			t.Fatalf("failed GetFile changed the destination to %d bytes", len(b))
		}
		if err := st.GetFile(ctx, "runs/r3/segments/chunk_00001.mp4", out); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(out); !bytes.Equal(b, data) {
			t.Fatalf("GetFile wrote %d bytes, want %d", len(b), len(data))
		}
		entries, _ := os.ReadDir(filepath.Dir(out))
		if len(entries) != 1 {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("GetFile left extra files: %q", names)
		}
		// Into a directory that does not exist yet.
		deep := filepath.Join(dir, "a", "b", "c.bin")
		if err := st.GetFile(ctx, "runs/r3/segments/chunk_00001.mp4", deep); err != nil {
			t.Fatal(err)
		}
	}},
	{"empty object getfile", func(t *testing.T, st store.Store, _ store.Options) {
		mustPut(t, st, "runs/r4/empty", nil)
		out := filepath.Join(t.TempDir(), "empty")
		if err := st.GetFile(context.Background(), "runs/r4/empty", out); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(out); err != nil || fi.Size() != 0 {
			t.Errorf("empty download: %v %v", fi, err)
		}
	}},
	{"bad keys are rejected", func(t *testing.T, st store.Store, _ store.Options) {
		ctx := context.Background()
		for _, key := range []string{"", "../escape", "runs/../../etc/passwd", "/abs/key", "a//b", "a/./b", `a\b`, "trailing/"} {
			if err := st.Put(ctx, key, strings.NewReader("x")); err == nil {
				t.Errorf("Put %q: no error", key)
			}
			if _, err := st.Get(ctx, key); err == nil {
				t.Errorf("Get %q: no error", key)
			}
			if _, err := st.Stat(ctx, key); err == nil || errors.Is(err, store.ErrNotFound) {
				t.Errorf("Stat %q: err = %v, want invalid key", key, err)
			}
			if err := st.GetFile(ctx, key, filepath.Join(t.TempDir(), "x")); err == nil {
				t.Errorf("GetFile %q: no error", key)
			}
			if _, err := st.Link(ctx, key, time.Hour); err == nil {
				t.Errorf("Link %q: no error", key)
			}
		}
	}},
	{"link opens the object", func(t *testing.T, st store.Store, _ store.Options) {
		data := randomBytes(50_000, 4)
		key := store.VideoKey("r5", "Ünïcode scene: v2")
		mustPut(t, st, key, data)
		link, err := st.Link(context.Background(), key, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if got := fetchLink(t, link); !bytes.Equal(got, data) {
			t.Errorf("link %s gave %d bytes, want %d", link, len(got), len(data))
		}
	}},
	{"uri reopens the same store", func(t *testing.T, st store.Store, opts store.Options) {
		mustPut(t, st, "runs/r6/plan.json", []byte(`{"run":"r6"}`))
		again, err := store.Open(context.Background(), st.URI(), opts)
		if err != nil {
			t.Fatalf("Open(%q): %v", st.URI(), err)
		}
		if again.URI() != st.URI() {
			t.Errorf("reopened URI %q, want %q", again.URI(), st.URI())
		}
		if got := mustGet(t, again, "runs/r6/plan.json"); string(got) != `{"run":"r6"}` {
			t.Errorf("reopened store gave %q", got)
		}
	}},
}

func TestConformance(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			for _, tc := range conformance {
				t.Run(tc.name, func(t *testing.T) {
					st, opts := kind.open(t)
					tc.run(t, st, opts)
				})
			}
		})
	}
}
