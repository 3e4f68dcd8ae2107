package pipeline

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/framefleet/framefleet/pipeline/blend"
	"github.com/framefleet/framefleet/pipeline/store"
)

// uploaders bounds the inputs uploaded at once.
const uploaders = 8

// UploadStats counts what a submission uploaded.
type UploadStats struct {
	Files         int   // distinct contents in the workspace
	Bytes         int64 // their total size
	Uploaded      int   // contents that were not in the store yet
	UploadedBytes int64
}

func (u UploadStats) String() string {
	return fmt.Sprintf("%d input file(s), %d new (%s uploaded)", u.Files, u.Uploaded, humanBytes(u.UploadedBytes))
}

// humanBytes writes a size for people.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// uploadInputs stores every content of the workspace under inputs/<sha256>
// that the store does not have yet, a few at once. Contents are stored by
// hash and each Put is atomic, so an interrupted submission run again
// uploads only what is still missing, and a changed texture is the only
// new object. Each file rides out a store outage for budget.
func uploadInputs(ctx context.Context, st store.Store, budget time.Duration, now func() time.Time, ws *workspace) (UploadStats, error) {
	type content struct {
		sha, local string
		size       int64
	}
	var todo []content
	seen := map[string]bool{}
	for _, f := range ws.manifest.Files {
		if seen[f.SHA256] {
			continue
		}
		seen[f.SHA256] = true
		todo = append(todo, content{f.SHA256, ws.local[f.Path], f.Size})
	}
	stats := UploadStats{Files: len(todo)}
	for _, c := range todo {
		stats.Bytes += c.size
	}
	var uploaded, uploadedBytes atomic.Int64
	err := forEach(ctx, len(todo), uploaders, func(i int) error {
		c := todo[i]
		key := store.InputKey(c.sha)
		out := &outage{budget: budget, now: now}
		return out.do(ctx, "upload "+filepath.Base(c.local), func() error {
			if _, err := st.Stat(ctx, key); err == nil {
				return nil
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if err := st.PutFile(ctx, key, c.local); err != nil {
				return fmt.Errorf("upload %s: %w", c.local, err)
			}
			uploaded.Add(1)
			uploadedBytes.Add(c.size)
			return nil
		})
	})
	stats.Uploaded, stats.UploadedBytes = int(uploaded.Load()), uploadedBytes.Load()
	return stats, err
}

// missingInputs lists the scene's dependencies that do not exist (or were
// confined out: outside names them), each .blend named relative to root
// when inside it.
func missingInputs(root string, deps *blend.Deps, outside map[string]bool) []MissingInput {
	var out []MissingInput
	for _, d := range deps.Missing() {
		b := d.Blend
		if b == "" {
			b = deps.Scene
		}
		if f := filepath.FromSlash(b); inside(root, f) {
			rel, _ := filepath.Rel(root, f)
			b = filepath.ToSlash(rel)
		}
		out = append(out, MissingInput{Kind: d.Kind, StoredPath: d.StoredPath, File: d.File, UsedBy: d.UsedBy, Blend: b,
			OutsideRoot: outside[d.File]})
	}
	return out
}

// scene is the manifest's entry for the scene.
func (w *workspace) scene() InputFile {
	for _, f := range w.manifest.Files {
		if f.Path == w.manifest.Scene {
			return f
		}
	}
	return InputFile{}
}

// confine keeps a render to the files inside root: every dependency that
// exists outside it, or inside it only through a symbolic link leading
// out, is marked missing, and returned by its File.
func confine(root string, deps *blend.Deps) (map[string]bool, error) {
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, fmt.Errorf("project root %s: %w", root, err)
	}
	outside := map[string]bool{}
	for i := range deps.Dependencies {
		d := &deps.Dependencies[i]
		if !d.Exists {
			continue
		}
		file := filepath.FromSlash(d.File)
		real, err := filepath.EvalSymlinks(file)
		if err == nil && inside(root, file) && inside(realRoot, real) {
			continue
		}
		d.Exists, d.Size = false, 0
		outside[d.File] = true
	}
	return outside, nil
}
