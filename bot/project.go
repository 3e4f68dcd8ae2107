package bot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/framefleet/framefleet/pipeline/blend"
	"github.com/framefleet/framefleet/pipeline/store"
)

// Project is a fetched scene with the files it needs, laid out as in its
// source (a repository, a bucket) under Root.
type Project struct {
	Blend string // the .blend on this host
	Root  string // the project root the render lays its workspace out from
	Name  string // the source as the user named it
}

// Remove deletes the fetched files.
func (p *Project) Remove() {
	if p != nil && p.Root != "" {
		_ = os.RemoveAll(p.Root)
	}
}

// maxFetchRounds bounds the rounds of fetching a project's files: each
// round may bring libraries whose own files the next round fetches.
const maxFetchRounds = 8

// NeedsFilesError refuses a blend shared as a Slack file that needs files
// it does not carry: a file upload brings the .blend alone.
type NeedsFilesError struct {
	Name    string
	Missing []blend.Dependency
}

func (e *NeedsFilesError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s needs files that were not shared with it, so it would render wrong:", e.Name)
	for _, d := range e.Missing {
		fmt.Fprintf(&b, "\n• %s %s", d.Kind, d.StoredPath)
		if len(d.UsedBy) > 0 {
			fmt.Fprintf(&b, " (used by %s)", strings.Join(d.UsedBy, ", "))
		}
	}
	b.WriteString("\nFix: in Blender, File > External Data > Pack Resources (and link libraries as appended data) and share the .blend again, " +
		"or render it from a GitHub (owner/repo/path.blend@ref) or S3 (s3://bucket/path.blend) source that holds those files beside it")
	return b.String()
}

// FetchProject fetches src and every file it needs from the same place: a
// GitHub source's files from the same repository at the same ref, an S3
// source's from the same bucket, each at its path relative to the scene as
// the scene names it. A file the source does not have is left missing (the
// render then refuses it, listing it). A blend shared in Slack carries no
// files: one that needs any is refused with *NeedsFilesError.
func (f *Fetcher) FetchProject(ctx context.Context, src Source, channel string) (_ *Project, err error) {
	file, name, err := f.Fetch(ctx, src, channel)
	if err != nil {
		return nil, err
	}
	defer os.Remove(file)
	dir := f.Dir
	if dir == "" {
		dir = os.TempDir()
	}
	root, err := os.MkdirTemp(dir, "framefleet-bot-project-")
	if err != nil {
		return nil, fmt.Errorf("create a folder for %s: %w", name, err)
	}
	p := &Project{Root: root, Name: name}
	defer func() {
		if err != nil {
			p.Remove()
		}
	}()
	// The scene keeps its place in its source, so the paths it stores
	// ("//../textures/wood.png") name the source's own files.
	var rel string
	switch src.Kind {
	case SourceGitHub:
		rel = src.Path
	case SourceS3:
		rel = src.Key
	default:
		rel = store.SafeName(path.Base(name))
		if !strings.HasSuffix(strings.ToLower(rel), ".blend") {
			rel += ".blend"
		}
	}
	if rel = path.Clean(strings.TrimPrefix(rel, "/")); rel == "." || strings.HasPrefix(rel, "../") {
		return nil, fmt.Errorf("%s: %q is not a file path", name, rel)
	}
	p.Blend = filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p.Blend), 0o755); err != nil {
		return nil, err
	}
	if err := moveFile(file, p.Blend); err != nil {
		return nil, err
	}
	if src.Kind != SourceGitHub && src.Kind != SourceS3 {
		// A file that cannot be traced is not refused here: the render
		// reads it and says what is wrong with it.
		deps, err := blend.Trace(ctx, p.Blend)
		if err != nil {
			return p, nil
		}
		// Nothing came with the file: every file it names is missing here,
		// whatever exists on this host under that name.
		if len(deps.Dependencies) > 0 {
			return nil, &NeedsFilesError{Name: name, Missing: deps.Dependencies}
		}
		return p, nil
	}
	tried := map[string]bool{}
	for range maxFetchRounds {
		deps, err := blend.Trace(ctx, p.Blend)
		if err != nil {
			return p, nil // the render says what is wrong with the file
		}
		fetched := false
		for _, d := range deps.Missing() {
			rel, err := filepath.Rel(root, filepath.FromSlash(d.File))
			if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
				continue // outside the source: it cannot come from there
			}
			rel = filepath.ToSlash(rel)
			if tried[rel] {
				continue
			}
			tried[rel] = true
			dep := src
			if src.Kind == SourceGitHub {
				dep.Path = rel
			} else {
				dep.Key = rel
			}
			got, _, err := f.Fetch(ctx, dep, channel)
			if err != nil {
				var tooLarge *TooLargeError
				if errors.As(err, &tooLarge) {
					return nil, fmt.Errorf("%s needs %s: %w", name, rel, err)
				}
				continue // not in the source: the render lists it as missing
			}
			dst := filepath.Join(root, filepath.FromSlash(rel))
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				os.Remove(got)
				return nil, err
			}
			if err := moveFile(got, dst); err != nil {
				return nil, err
			}
			fetched = true
		}
		if !fetched {
			break
		}
	}
	return p, nil
}

// moveFile renames src to dst, copying when they are on different file systems.
func moveFile(src, dst string) error {
	if err := os.Rename(src, dst); err == nil {
		return nil
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		return err
	}
	return os.Remove(src)
}
