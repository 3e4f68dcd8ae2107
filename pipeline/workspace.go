package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/framefleet/framefleet/pipeline/blend"
)

// A render's workspace is the project as the workers see it: every file the
// scene needs at its path relative to the project root, so the scene's
// relative paths ("//../textures/wood.png") and its libraries' resolve as
// they do on the submitting machine.
//
// Files that are not reachable that way (outside the root, or stored as
// absolute or Windows paths) are placed under _external/ and the paths that
// name them are rewritten in the workspace copy of the .blend that stores
// them, at submit time, with blend.RewritePaths. Rewriting at submit
// rather than remapping in Blender before the render means the worker needs
// no Blender Python to fix paths (and no Blender feature that may differ
// between versions), both engines open byte-identical files, and the
// rewritten .blend is just another content-addressed input: it has its own
// hash, is uploaded once, and is part of the cache key. A scene whose
// paths all resolve inside the root is not rewritten at all.

// externalDir holds the workspace's files from outside the project root.
const externalDir = "_external"

// workspace is a built workspace: the manifest, and for each workspace
// path the local file holding its bytes (the original, or a rewritten copy
// in tmp).
type workspace struct {
	manifest InputManifest
	local    map[string]string
	tmp      string
}

// close removes the rewritten copies.
func (w *workspace) close() {
	if w != nil && w.tmp != "" {
		_ = os.RemoveAll(w.tmp)
	}
}

// ProjectRoot is the folder a render's workspace is laid out from: root
// when given; else the git top level when the scene is inside a
// repository; else the deepest folder holding the scene and every
// dependency it names with a relative (//) path. Files named by absolute
// paths do not widen that folder (a texture in /home/me/library would
// make it /home): they are placed under _external/ instead.
func ProjectRoot(scene, root string, deps *blend.Deps) (string, error) {
	scene, err := filepath.Abs(scene)
	if err != nil {
		return "", err
	}
	if root != "" {
		abs, err := filepath.Abs(root)
		if err != nil {
			return "", err
		}
		if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
			return "", &SettingError{Key: KeyRoot, Value: root, Reason: "is not a folder: give the project's top folder"}
		}
		if !inside(abs, scene) {
			return "", &SettingError{Key: KeyRoot, Value: root, Reason: fmt.Sprintf("does not hold the scene %s: give a folder that holds it", scene)}
		}
		return abs, nil
	}
	if top := gitTop(filepath.Dir(scene)); top != "" {
		return top, nil
	}
	out := filepath.Dir(scene)
	if deps != nil {
		for _, g := range groups(deps) {
			if !strings.HasPrefix(g.stored, "//") {
				continue
			}
			for _, d := range g.deps {
				if d.Exists {
					out = commonDir(out, g.anchor(d))
				}
			}
		}
	}
	return out, nil
}

// gitTop is the top level of the git work tree holding dir, or "".
func gitTop(dir string) string {
	for d := dir; ; {
		if _, err := os.Lstat(filepath.Join(d, ".git")); err == nil {
			return d
		}
		parent := filepath.Dir(d)
		if parent == d {
			return ""
		}
		d = parent
	}
}

// inside reports whether p is dir or below it (both absolute and clean).
func inside(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// commonDir is the deepest folder holding both a and b.
func commonDir(a, b string) string {
	for !inside(a, b) {
		parent := filepath.Dir(a)
		if parent == a {
			return a
		}
		a = parent
	}
	return a
}

// depGroup is the files one stored path names in one .blend: one file, or
// a sequence, UDIM set or cache folder.
type depGroup struct {
	blend, stored string
	deps          []blend.Dependency
}

// isDir reports whether the stored path names a folder (a cache folder).
func (g *depGroup) isDir() bool {
	return strings.HasSuffix(g.stored, "/") || strings.HasSuffix(g.stored, `\`)
}

// anchor is the folder whose place in the workspace decides the stored
// path: the file's own folder, or the cache folder a folder path names.
func (g *depGroup) anchor(d blend.Dependency) string {
	file := filepath.FromSlash(d.File)
	if g.isDir() {
		if dir, ok := resolveStoredDir(g.blend, g.stored); ok && inside(dir, file) {
			return dir
		}
	}
	return filepath.Dir(file)
}

// tail is the stored path's last part (a file name, a sequence or UDIM
// pattern), kept when the path is rewritten; "" for a folder.
func (g *depGroup) tail() string {
	if g.isDir() {
		return ""
	}
	s := g.stored
	if i := strings.LastIndexAny(s, `/\`); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// resolveStoredDir resolves a folder path stored in blendFile, when it is
// relative (//) or absolute on this system, by the rule Trace resolved its
// files with.
func resolveStoredDir(blendFile, stored string) (string, bool) {
	s := strings.ReplaceAll(stored, `\`, "/")
	if !strings.HasPrefix(s, "//") && !filepath.IsAbs(filepath.FromSlash(s)) {
		return "", false
	}
	dir, local := blend.ResolvePath(stored, blendFile)
	return filepath.FromSlash(dir), local
}

// groups gathers the dependencies by (blend, stored path), in a stable
// order. A file named from several places (a library linked by the scene
// and by another library) is in each of their groups.
func groups(deps *blend.Deps) []*depGroup {
	byKey := map[[2]string]*depGroup{}
	var out []*depGroup
	for _, d := range deps.Dependencies {
		refs := d.Refs
		if len(refs) == 0 {
			refs = []blend.PathRef{{Blend: d.Blend, StoredPath: d.StoredPath}}
		}
		for _, ref := range refs {
			b := ref.Blend
			if b == "" {
				b = deps.Scene
			}
			k := [2]string{b, ref.StoredPath}
			g := byKey[k]
			if g == nil {
				g = &depGroup{blend: b, stored: ref.StoredPath}
				byKey[k] = g
				out = append(out, g)
			}
			g.deps = append(g.deps, d)
		}
	}
	return out
}

// writableKinds are the inputs Blender may write while rendering (caches
// it can bake into): workers copy them rather than link the store's object.
var writableKinds = []blend.DepKind{blend.DepPointCache, blend.DepOcean}

// WritableInput reports whether a worker must copy (never link) an input of this kind.
func WritableInput(k blend.DepKind) bool { return slices.Contains(writableKinds, k) }

// buildWorkspace lays out the scene at scenePath and its traced
// dependencies under root, rewriting the .blend files whose stored paths
// would not resolve in the workspace (copies in a temporary folder).
func buildWorkspace(ctx context.Context, scenePath, root string, deps *blend.Deps, outside map[string]bool) (_ *workspace, err error) {
	scene, err := filepath.Abs(scenePath)
	if err != nil {
		return nil, err
	}
	ws := &workspace{local: map[string]string{}}
	defer func() {
		if err != nil {
			ws.close()
		}
	}()
	gs := groups(deps)

	// Folders outside the root keep their inner layout under one
	// _external/<hash>-<name>/ each: the outermost anchor holding them.
	var anchors []string
	for _, g := range gs {
		for _, d := range g.deps {
			if d.Exists && !inside(root, filepath.FromSlash(d.File)) {
				anchors = append(anchors, g.anchor(d))
			}
		}
	}
	tops := outermost(anchors)
	// placeBelow is where a path below the root or an anchor is stored.
	placeBelow := func(p string) (string, bool) {
		if inside(root, p) {
			rel, _ := filepath.Rel(root, p)
			return filepath.ToSlash(rel), true
		}
		for _, t := range tops {
			if inside(t, p) {
				rel, _ := filepath.Rel(t, p)
				return path.Join(externalPlace(t), filepath.ToSlash(rel)), true
			}
		}
		return "", false
	}
	place := func(file string) string {
		if p, ok := placeBelow(file); ok {
			return p
		}
		// Not below any anchor (cannot happen for traced files): its own folder.
		return path.Join(externalPlace(filepath.Dir(file)), filepath.Base(file))
	}
	placeDir := func(dir string) string {
		if p, ok := placeBelow(dir); ok {
			return p
		}
		return externalPlace(dir)
	}
	if !inside(root, scene) {
		return nil, &SettingError{Key: KeyRoot, Value: root, Reason: fmt.Sprintf("does not hold the scene %s: give a folder that holds it", scene)}
	}

	// Each .blend's new stored paths, for the paths that would not resolve.
	rewrites := map[string]map[string]string{} // blend file -> stored -> new
	kinds := map[string]blend.DepKind{}        // workspace path -> kind
	files := map[string]string{}               // workspace path -> local file
	for _, g := range gs {
		for _, d := range g.deps {
			if !d.Exists {
				continue
			}
			file := filepath.FromSlash(d.File)
			fi, err := os.Stat(file)
			if err != nil {
				return nil, fmt.Errorf("%s %s (%s): %w", d.Kind, d.StoredPath, d.File, err)
			}
			if fi.IsDir() {
				continue
			}
			p := place(file)
			files[p] = file
			if _, ok := kinds[p]; !ok || WritableInput(d.Kind) {
				kinds[p] = d.Kind
			}
		}
		if len(g.deps) == 0 || !needsRewrite(root, g) {
			continue
		}
		var first *blend.Dependency
		for i := range g.deps {
			if g.deps[i].Exists {
				first = &g.deps[i]
				break
			}
		}
		if first == nil {
			continue // missing: nothing to point it at
		}
		from := path.Dir(place(filepath.FromSlash(g.blend)))
		rel, err := filepath.Rel(filepath.FromSlash(from), filepath.FromSlash(placeDir(g.anchor(*first))))
		if err != nil {
			return nil, fmt.Errorf("place %s: %w", first.File, err)
		}
		to := "//" + path.Join(filepath.ToSlash(rel), g.tail())
		switch {
		case g.isDir():
			to = strings.TrimSuffix(to, "/") + "/"
		case rel == ".":
			to = "//" + g.tail()
		}
		if to == g.stored {
			continue
		}
		if rewrites[g.blend] == nil {
			rewrites[g.blend] = map[string]string{}
		}
		rewrites[g.blend][g.stored] = to
	}
	scenePlace := place(scene)
	files[scenePlace] = scene
	kinds[scenePlace] = ""

	if len(rewrites) > 0 {
		if ws.tmp, err = os.MkdirTemp("", "framefleet-workspace-"); err != nil {
			return nil, fmt.Errorf("rewrite paths: %w", err)
		}
		blends := make([]string, 0, len(rewrites))
		for b := range rewrites {
			blends = append(blends, b)
		}
		sort.Strings(blends)
		for i, b := range blends {
			p := place(filepath.FromSlash(b))
			src, ok := files[p]
			if !ok {
				continue // a library that does not exist here
			}
			dst := filepath.Join(ws.tmp, fmt.Sprintf("%03d-%s", i, filepath.Base(src)))
			if err := rewriteBlend(src, dst, rewrites[b]); err != nil {
				return nil, err
			}
			files[p] = dst
		}
	}

	ws.manifest.Missing = missingInputs(root, deps, outside)
	ws.manifest.Schema = InputManifestSchema
	ws.manifest.Scene = scenePlace
	ws.manifest.Root = root
	ws.local = files
	ws.manifest.Files, err = hashInputs(ctx, files, kinds)
	if err != nil {
		return nil, err
	}
	return ws, nil
}

// needsRewrite reports whether a stored path would not resolve in the
// workspace: not relative (absolute, a Windows drive), written with
// backslashes, or naming a file outside the root.
func needsRewrite(root string, g *depGroup) bool {
	if !strings.HasPrefix(g.stored, "//") || strings.Contains(g.stored, `\`) {
		return true
	}
	for _, d := range g.deps {
		if d.Exists && !inside(root, filepath.FromSlash(d.File)) {
			return true
		}
	}
	return false
}

// outermost keeps the folders not below another one of them, sorted.
func outermost(dirs []string) []string {
	slices.Sort(dirs)
	dirs = slices.Compact(dirs)
	var out []string
	for _, d := range dirs {
		if len(out) > 0 && inside(out[len(out)-1], d) {
			continue
		}
		out = append(out, d)
	}
	return out
}

// externalPlace is the workspace folder of a folder outside the root:
// _external/<hash of its path>-<its name>, unique and readable.
func externalPlace(dir string) string {
	sum := sha256.Sum256([]byte(filepath.ToSlash(dir)))
	name := strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ':' || r < 0x20 {
			return '_'
		}
		return r
	}, filepath.Base(dir))
	if name == "" || name == "." || name == ".." || name == "_" {
		name = "root"
	}
	return path.Join(externalDir, hex.EncodeToString(sum[:6])+"-"+name)
}

// rewriteBlend writes src with its stored paths replaced to dst.
func rewriteBlend(src, dst string, remap map[string]string) error {
	f, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("rewrite paths of %s: %w", src, err)
	}
	err = blend.RewritePaths(src, f, func(stored string) (string, bool) {
		q, ok := remap[stored]
		return q, ok
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("rewrite the paths of %s for the render workspace: %w", src, err)
	}
	return nil
}

// hashers bounds the files hashed at once.
const hashers = 4

// hashInputs hashes every workspace file, a few at once, sorted by path.
func hashInputs(ctx context.Context, files map[string]string, kinds map[string]blend.DepKind) ([]InputFile, error) {
	out := make([]InputFile, 0, len(files))
	for p := range files {
		out = append(out, InputFile{Path: p, Kind: kinds[p]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	err := forEach(ctx, len(out), hashers, func(i int) error {
		sum, size, err := hashFile(files[out[i].Path])
		if err != nil {
			return fmt.Errorf("input %s: %w", out[i].Path, err)
		}
		out[i].SHA256, out[i].Size = sum, size
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, f := range out {
		if err := CheckWorkspacePath(f.Path); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// forEach runs fn(0..n-1) with at most parallel at once, stopping at the
// first error (which it returns; errors of calls already running are joined).
func forEach(ctx context.Context, n, parallel int, fn func(i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	next := make(chan int)
	for range min(parallel, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					cancel()
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return context.Cause(ctx)
}

// windowsAbsolute matches a path saved on Windows: a drive letter or a UNC share.
var windowsAbsolute = regexp.MustCompile(`^([A-Za-z]:[\\/]|\\\\)`)

// findForeign finds the files a scene made on Windows names by absolute
// Windows paths ("C:\Users\artist\proj\textures\wood.png"), which cannot
// exist on this machine as stored: the longest tail of the path that is a
// file under root is taken for it (root/textures/wood.png). A library
// found this way is traced too, so its own files travel with it. deps is
// changed in place; the paths are rewritten in the workspace copy like any
// other path that would not resolve there.
func findForeign(ctx context.Context, root string, deps *blend.Deps) error {
	traced := map[string]bool{}
	for i := 0; i < len(deps.Dependencies); i++ {
		d := &deps.Dependencies[i]
		if d.Exists || !windowsAbsolute.MatchString(d.StoredPath) {
			continue
		}
		parts := strings.FieldsFunc(d.StoredPath[2:], func(r rune) bool { return r == '\\' || r == '/' })
		for k := range len(parts) {
			tail := parts[k:]
			if slices.Contains(tail, "..") || slices.Contains(tail, ".") {
				continue
			}
			cand := filepath.Join(append([]string{root}, tail...)...)
			fi, err := os.Stat(cand)
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			d.File, d.Exists, d.Size = filepath.ToSlash(cand), true, fi.Size()
			break
		}
		if d.Exists && d.Kind == blend.DepLibrary && !traced[d.File] {
			traced[d.File] = true
			lib, err := blend.Trace(ctx, filepath.FromSlash(d.File))
			if err != nil {
				return fmt.Errorf("find the files the library %s needs: %w", d.File, err)
			}
			have := map[string]bool{}
			for _, x := range deps.Dependencies {
				have[x.File] = true
			}
			for _, x := range lib.Dependencies {
				if !have[x.File] {
					deps.Dependencies = append(deps.Dependencies, x)
				}
			}
		}
	}
	return nil
}
