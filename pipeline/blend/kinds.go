package blend

import (
	"encoding/hex"
	"path"
	"path/filepath"
	"strings"
)

// The extractors for the kinds other than images and libraries. Each reads
// its datablock's members by on-disk name (see pathFields) and records the
// files; BAT's documentation of what it traces was the checklist.

// storedPath reads the block's stored-path member (pathFields).
func (x *extraction) storedPath() string {
	f, ok := x.ft.bf.dna.pathField(x.structName())
	if !ok {
		return ""
	}
	s, _ := readString(x.data, f)
	return s
}

// modifierUser is "OBplane/Ocean": the owning object and the modifier's name.
func (x *extraction) modifierUser() string {
	name := x.str("modifier.name")
	if name == "" {
		return x.user()
	}
	return x.user() + "/" + name
}

func extractMovieClip(x *extraction) {
	stored := x.str("name", "filepath")
	if stored == "" {
		return
	}
	r := resolveStored(stored, x.ft.dir)
	if src, _ := x.int("source"); src == 1 { // MCLIP_SRC_SEQUENCE
		x.files(DepMovieClip, stored, r, x.user(), frameFiles)
		return
	}
	x.file(DepMovieClip, stored, r, x.user())
}

func extractFont(x *extraction) {
	stored := x.str("name", "filepath")
	if stored == "" || stored == "<builtin>" || x.packed() {
		return
	}
	x.file(DepFont, stored, resolveStored(stored, x.ft.dir), x.user())
}

func extractSound(x *extraction) {
	stored := x.str("name", "filepath")
	if stored == "" || x.packed() {
		return
	}
	x.file(DepSound, stored, resolveStored(stored, x.ft.dir), x.user())
}

func extractCacheFile(x *extraction) {
	stored := x.str("filepath")
	if stored == "" {
		return
	}
	r := resolveStored(stored, x.ft.dir)
	if seq, _ := x.int("is_sequence"); seq != 0 {
		x.files(DepCacheFile, stored, r, x.user(), frameFiles)
		return
	}
	x.file(DepCacheFile, stored, r, x.user())
}

// extractCacheFileLayer: Alembic layers (3.0+) override the base file.
func extractCacheFileLayer(x *extraction) {
	stored := x.str("filepath")
	if stored == "" {
		return
	}
	x.file(DepCacheFile, stored, resolveStored(stored, x.ft.dir), x.user())
}

func extractVolume(x *extraction) {
	stored := x.str("filepath")
	if stored == "" || x.packed() {
		return
	}
	r := resolveStored(stored, x.ft.dir)
	if seq, _ := x.int("is_sequence"); seq != 0 {
		x.files(DepVolume, stored, r, x.user(), frameFiles)
		return
	}
	x.file(DepVolume, stored, r, x.user())
}

// PointCache flags (DNA_pointcache_types.h).
const (
	ptcacheBaked    = 1 << 0
	ptcacheDisk     = 1 << 6
	ptcacheExternal = 1 << 9
)

// extractPointCache lists the files of a point cache kept on disk
// (particles, cloth, soft body, dynamic paint, rigid body, 2.8x smoke).
// Blender names them <prefix>_<frame>_<index>.bphys in
// //blendcache_<blend name>/, the prefix being the cache's name or, when
// it has none, the owner's name in hex; an external cache reads them from
// its own folder. A cache on disk that is not baked is recomputed by the
// render, so it is only listed when files exist, and listed missing only
// when it says it is baked.
func extractPointCache(x *extraction) {
	flag, _ := x.int("flag")
	if flag&ptcacheDisk == 0 && flag&ptcacheExternal == 0 {
		return
	}
	prefix := x.str("name")
	stored := x.str("path")
	if flag&ptcacheExternal == 0 || stored == "" {
		if flag&ptcacheExternal != 0 {
			return // external without a folder: nothing to read
		}
		blendName := strings.TrimSuffix(filepath.Base(x.ft.path), filepath.Ext(x.ft.path))
		stored = "//blendcache_" + blendName + "/"
		if prefix == "" {
			owner := x.user()
			if len(owner) > 2 {
				owner = owner[2:]
			}
			prefix = strings.ToUpper(hex.EncodeToString([]byte(owner)))
		}
	}
	r := resolveStored(stored, x.ft.dir)
	var found []string
	if r.local {
		for _, name := range listDir(r.file) {
			if prefix == "" || strings.HasPrefix(name, prefix+"_") {
				found = append(found, path.Join(r.file, name))
			}
		}
	}
	x.folder(DepPointCache, stored, r, x.user(), found, flag&ptcacheBaked != 0)
}

// folder records the files found for a cache folder; with none, the folder
// itself as missing when the owner says it was baked.
func (x *extraction) folder(kind DepKind, stored string, r resolvedPath, user string, found []string, baked bool) {
	if len(found) == 0 {
		if baked {
			x.tr.add(Dependency{Kind: kind, StoredPath: stored, File: strings.TrimSuffix(r.file, "/"), UsedBy: []string{user},
				Blend: filepath.ToSlash(x.ft.path)})
		}
		return
	}
	for _, f := range found {
		x.file(kind, stored, resolvedPath{file: f, local: true}, user)
	}
}

// fluidBaked are FluidDomainSettings.cache_flag bits for a finished bake
// (data, noise, mesh, particles, guides).
const fluidBaked = 1<<1 | 1<<3 | 1<<5 | 1<<7 | 1<<9

// extractFluidCache lists every file under a Mantaflow domain's cache
// folder (config/, data/, mesh/, noise/, particles/, guiding/).
func extractFluidCache(x *extraction) {
	stored := x.str("cache_directory")
	if stored == "" {
		return
	}
	flag, _ := x.int("cache_flag")
	r := resolveStored(stored, x.ft.dir)
	var found []string
	if r.local {
		found = walkFiles(r.file)
	}
	x.folder(DepPointCache, stored, r, x.user(), found, flag&fluidBaked != 0)
}

func extractMeshCache(x *extraction) {
	stored := x.str("filepath")
	if stored == "" {
		return
	}
	x.file(DepMeshCache, stored, resolveStored(stored, x.ft.dir), x.modifierUser())
}

// extractOceanCache lists the baked ocean maps (disp_, normal_, foam_ and
// spray EXRs) when the modifier says it reads from its cache.
func extractOceanCache(x *extraction) {
	if cached, _ := x.int("cached"); cached == 0 {
		return
	}
	stored := x.str("cachepath")
	if stored == "" {
		return
	}
	r := resolveStored(stored, x.ft.dir)
	var found []string
	if r.local {
		for _, name := range listDir(r.file) {
			for _, p := range []string{"disp_", "normal_", "foam_", "spray_", "spray_inverse_"} {
				if strings.HasPrefix(name, p) {
					found = append(found, path.Join(r.file, name))
					break
				}
			}
		}
	}
	x.folder(DepOcean, stored, r, x.modifierUser(), found, true)
}

// extractMultires: a mesh whose multires displacement is saved to an
// external .btx file (CustomData external).
func extractMultires(x *extraction) {
	stored := x.str("filename", "filepath")
	if stored == "" {
		return
	}
	x.file(DepMultires, stored, resolveStored(stored, x.ft.dir), x.user())
}

// Sequence types (DNA_sequence_types.h).
const (
	seqTypeImage = 0
	seqTypeMovie = 3
)

// extractStrip lists the files of image and movie strips: the strip's
// folder (Strip.dir) plus each element's file name. Sound strips use a
// sound datablock, listed as a sound.
func extractStrip(x *extraction) {
	typ, _ := x.int("type")
	if typ != seqTypeImage && typ != seqTypeMovie {
		return
	}
	bf := x.ft.bf
	si, ok := bf.byOld[x.ptr("strip")]
	if !ok || x.ptr("strip") == 0 {
		return
	}
	sp, err := x.ft.payload(si)
	if err != nil {
		return
	}
	strip := &extraction{tr: x.tr, ft: x.ft, block: si, data: sp}
	if strip.structName() != "Strip" {
		return
	}
	dir := strip.storedPath()
	elemPtr := strip.ptr("stripdata")
	ei, ok := bf.byOld[elemPtr]
	if !ok || elemPtr == 0 || dir == "" {
		return
	}
	eb := bf.heads[ei]
	ep, err := x.ft.payload(ei)
	if err != nil || bf.structName(eb) != "StripElem" {
		return
	}
	nameField, ok, err := bf.dna.lookup("StripElem", "name")
	if err != nil || !ok {
		if nameField, ok, err = bf.dna.lookup("StripElem", "filename"); err != nil || !ok {
			return
		}
	}
	stride := bf.dna.tlen[bf.dna.structs[eb.sdna].typ]
	if stride <= 0 {
		return
	}
	count := min(eb.nr, int64(len(ep)/stride))
	if typ == seqTypeMovie {
		count = min(count, 1)
	}
	seqName := x.str("name")
	if len(seqName) > 2 {
		seqName = seqName[2:] // drop the "SQ" code
	}
	user := x.user() + "/" + seqName
	base := resolveStored(dir, x.ft.dir)
	for e := int64(0); e < count; e++ {
		f := nameField
		f.offset += int(e) * stride
		name, _ := readString(ep, f)
		if name == "" {
			continue
		}
		r := base
		if base.local {
			r.file = filepath.ToSlash(filepath.Join(filepath.FromSlash(base.file), filepath.FromSlash(name)))
		} else {
			r.file = strings.TrimSuffix(base.file, "/") + "/" + name
		}
		x.file(DepSequence, dir, r, user)
	}
}

// extractNodesBake lists Geometry Nodes bakes (3.6 simulations, 4.1+ bakes): the files
// under the modifier's bake folder and under each bake's own folder.
// These folders are strings held in their own blocks (char *), not
// fixed-size fields.
func extractNodesBake(x *extraction) {
	var dirs []string
	if d := x.cString("bake_directory"); d != "" {
		dirs = append(dirs, d)
	}
	if d := x.cString("simulation_bake_directory"); d != "" { // 3.6
		dirs = append(dirs, d)
	}
	// Baking sets bake_directory when it was empty (to
	// //blendcache_<blend>/<object>_<modifier>), so a bake on disk always
	// has its folder stored; a node with its own folder stores that too.
	dirs = append(dirs, x.bakeDirectories()...)
	for _, stored := range dirs {
		r := resolveStored(stored, x.ft.dir)
		var found []string
		if r.local {
			found = walkFiles(r.file)
		}
		x.folder(DepPointCache, stored, r, x.modifierUser(), found, false)
	}
}

// cString reads a char * member: a NUL-terminated string in its own block.
func (x *extraction) cString(name string) string {
	p := x.ptr(name)
	if p == 0 {
		return ""
	}
	i, ok := x.ft.bf.byOld[p]
	if !ok {
		return ""
	}
	data, err := x.ft.payload(i)
	if err != nil {
		return ""
	}
	if n := strings.IndexByte(string(data), 0); n >= 0 {
		data = data[:n]
	}
	return string(data)
}

// bakeDirectories reads NodesModifierData.bakes[].directory (4.1+).
func (x *extraction) bakeDirectories() []string {
	bf := x.ft.bf
	p := x.ptr("bakes")
	n, _ := x.int("bakes_num")
	bi, ok := bf.byOld[p]
	if p == 0 || !ok || n <= 0 {
		return nil
	}
	b := bf.heads[bi]
	data, err := x.ft.payload(bi)
	if err != nil || bf.structName(b) != "NodesModifierBake" {
		return nil
	}
	f, ok, err := bf.dna.lookup("NodesModifierBake", "directory")
	if err != nil || !ok || !f.pointer {
		return nil
	}
	stride := bf.dna.tlen[bf.dna.structs[b.sdna].typ]
	if stride <= 0 {
		return nil
	}
	var out []string
	count := min(n, b.nr, int64(len(data)/stride))
	for e := int64(0); e < count; e++ {
		y := &extraction{tr: x.tr, ft: x.ft, block: bi, data: data[int(e)*stride:]}
		if d := y.cString("directory"); d != "" {
			out = append(out, d)
		}
	}
	return out
}

// extractIES: an IES Texture node in External mode reads its profile from
// a file (mode 1); in Internal mode it uses a text datablock.
func extractIES(x *extraction) {
	if mode, _ := x.int("mode"); mode != 1 {
		return
	}
	stored := x.str("filepath")
	if stored == "" {
		return
	}
	x.file(DepIES, stored, resolveStored(stored, x.ft.dir), x.user())
}
