package pipeline

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/framefleet/framefleet/internal/s3test"
	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline/store"
)

// acceptingEngine accepts every job and runs nothing: the benchmark
// measures what submitting stores, not rendering.
type acceptingEngine struct{ n atomic.Int64 }

func (e *acceptingEngine) Submit(ctx context.Context, j Job) (Handle, error) {
	id := fmt.Sprint(e.n.Add(1))
	return Handle{Engine: "accepting", RenderID: "render-" + id, StitchID: "stitch-" + id}, nil
}
func (e *acceptingEngine) Status(context.Context, Handle) (Status, error) {
	return Status{Render: StateRunnable, Stitch: StatePending}, nil
}
func (e *acceptingEngine) Cancel(context.Context, Handle, string) error   { return nil }
func (e *acceptingEngine) BlenderVersion(context.Context) (string, error) { return "3.4.1", nil }

// uploadCounter counts the bytes stored under inputs/.
type uploadCounter struct {
	store.Store
	bytes, objects atomic.Int64
}

func (u *uploadCounter) PutFile(ctx context.Context, key, path string) error {
	if strings.HasPrefix(key, "inputs/") {
		if fi, err := os.Stat(path); err == nil {
			u.bytes.Add(fi.Size())
		}
		u.objects.Add(1)
	}
	return u.Store.PutFile(ctx, key, path)
}

// writeTexture writes a sparse file of size bytes whose first bytes make it
// unique: cheap to make, yet each has its own hash.
func writeTexture(b *testing.B, path string, size int64, tag string) {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.WriteString(tag); err == nil {
		err = f.Truncate(size)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkInputUpload2GB submits a scene whose material reads 256 textures
// of 8 MiB (a 2 GiB dependency tree, sparse files) to the S3 test server,
// then measures a second submission of the unchanged tree (with force, so
// it is a new run that checks every input, not a cache hit) and one with a
// single texture changed. Inputs are stored by content, so the unchanged
// tree uploads nothing (one HEAD per input) and the changed one uploads one
// object. Each op is one submission: hashing the tree and the store checks.
func BenchmarkInputUpload2GB(b *testing.B) {
	const count, size = 256, 8 << 20
	dir := b.TempDir()
	scene := filepath.Join(dir, "shot.blend")
	testenv.BlenderScript(b, filepath.Join("testdata", "make_many_textures.py"), scene, fmt.Sprint(count))
	if err := os.MkdirAll(filepath.Join(dir, "textures"), 0o755); err != nil {
		b.Fatal(err)
	}
	for i := range count {
		writeTexture(b, filepath.Join(dir, "textures", fmt.Sprintf("tex_%03d.png", i)), size, fmt.Sprintf("texture %d v1\n", i))
	}
	srv := s3test.Start(b)
	ctx := context.Background()
	s3, err := store.NewS3(ctx, srv.Bucket, "bench", store.Options{
		Region: srv.Region, Endpoint: srv.Endpoint, UsePathStyle: true, Credentials: srv.Credentials()})
	if err != nil {
		b.Fatal(err)
	}
	st := &uploadCounter{Store: s3}
	eng := &acceptingEngine{}
	runs := &Runs{Store: st, EngineName: "accepting", Engine: func(context.Context, string) (Engine, error) { return eng, nil }}
	req := Request{BlendPath: scene, Force: true}
	submit := func() (bytes, objects int64, puts, heads int) {
		b.Helper()
		st.bytes.Store(0)
		st.objects.Store(0)
		srv.Reset()
		if _, err := runs.Submit(ctx, req); err != nil {
			b.Fatal(err)
		}
		onInputs := func(method string) int {
			return srv.Count(func(r s3test.Request) bool {
				return r.Method == method && strings.Contains(r.Path, "/bench/inputs/")
			})
		}
		return st.bytes.Load(), st.objects.Load(), onInputs(http.MethodPut) + onInputs(http.MethodPost), onInputs(http.MethodHead)
	}

	firstBytes, firstObjects, _, _ := submit()
	if firstObjects != count+1 || firstBytes < count*size {
		b.Fatalf("first submission stored %d objects (%d bytes), want the scene and %d textures", firstObjects, firstBytes, count)
	}
	// Without force the cache key matches: the first run is returned.
	req.Force = false
	cachedBytes, _, cachedPuts, cachedHeads := submit()
	if cachedBytes != 0 || cachedPuts+cachedHeads != 0 {
		b.Fatalf("an identical request made %d input requests (%d bytes), want none", cachedPuts+cachedHeads, cachedBytes)
	}
	req.Force = true
	var againBytes, againObjects int64
	var againPuts, againHeads int
	b.ResetTimer()
	for b.Loop() {
		againBytes, againObjects, againPuts, againHeads = submit()
	}
	b.StopTimer()
	if againBytes != 0 || againObjects != 0 || againPuts != 0 {
		b.Fatalf("unchanged tree uploaded %d bytes in %d objects (%d PUTs), want nothing", againBytes, againObjects, againPuts)
	}
	writeTexture(b, filepath.Join(dir, "textures", "tex_100.png"), size, "texture 100 v2\n")
	changedBytes, changedObjects, changedPuts, _ := submit()
	if changedObjects != 1 || changedPuts != 1 || changedBytes != size {
		b.Fatalf("one changed texture uploaded %d objects (%d PUTs, %d bytes), want exactly it", changedObjects, changedPuts, changedBytes)
	}
	b.ReportMetric(float64(firstBytes)/(1<<20), "first-MiB")
	b.ReportMetric(float64(cachedPuts+cachedHeads), "cached-input-requests")
	b.ReportMetric(float64(againBytes), "unchanged-bytes")
	b.ReportMetric(float64(againPuts), "unchanged-puts")
	b.ReportMetric(float64(againHeads), "unchanged-heads")
	b.ReportMetric(float64(changedObjects), "changed-objects")
	b.ReportMetric(float64(changedBytes)/(1<<20), "changed-MiB")
}
