package blend

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// How the tracer decides what a scene needs, without Blender:
//
// Reachability. Blender loads everything in a file, but renders only what
// the scenes reach. The tracer starts at every scene (SC block) and follows
// every pointer the struct catalogue (SDNA) describes, block to block, as
// Blender's own file expansion does for linked data. That finds images
// through materials, node groups, worlds, brushes, modifiers, sequencer
// strips and anything added in a later Blender, with no per-version table.
// Only ID.next/ID.prev (the list of all datablocks of a type) and a few
// runtime back-pointers are not followed: they would reach every
// datablock, used or not. A datablock no scene reaches (an orphan, or one
// kept only by a fake user) is therefore not a dependency.
//
// Libraries. A datablock linked from another .blend is stored as an "ID"
// placeholder naming the datablock and pointing to its library (LI). The
// tracer opens the library, starts at the named datablocks there and
// follows pointers again, with the library's folder as the base of its own
// "//" paths; libraries that library links are followed the same way.
//
// Paths. The datablocks that reach files are read by field name through
// SDNA (Image.name, Library.name, ...), so the byte layout of each Blender
// version does not matter.

// notFollowed are pointer members that do not mean "uses" for a render:
// the list of all datablocks of a type (ID.next/prev), runtime links, the
// library that first linked a library indirectly (Library.parent), which
// the datablocks in use reach on their own, and the scene's editing tool
// settings (brushes and their textures, palettes), which only painting
// and sculpting use.
var notFollowed = map[string]map[string]bool{
	"ID":      {"next": true, "prev": true, "newid": true, "orig_id": true},
	"Library": {"parent": true, "filedata": true},
	"Scene":   {"toolsettings": true},
}

// member looks up a dotted member path ("packedfiles.first") of a struct,
// remembering the answer: extractors ask the same few questions for
// every datablock.
func (d *sdna) member(structName, dotted string) (field, bool) {
	if m, ok := d.members[structName][dotted]; ok {
		return m.f, m.ok
	}
	if d.members == nil {
		d.members = map[string]map[string]memberAnswer{}
	}
	if d.members[structName] == nil {
		d.members[structName] = map[string]memberAnswer{}
	}
	f, ok, err := d.lookup(structName, strings.Split(dotted, ".")...)
	ok = ok && err == nil
	d.members[structName][dotted] = memberAnswer{f, ok}
	return f, ok
}

type memberAnswer struct {
	f  field
	ok bool
}

// ptrSlot is one pointer inside a struct, at a byte offset.
type ptrSlot struct {
	off    int
	double bool // a "**x" member: the target block is an array of pointers
}

// maxEmbedDepth bounds recursion into embedded structs: real catalogues
// nest a handful of levels; a malformed one could nest a struct in itself.
const maxEmbedDepth = 16

// pointerSlots returns every pointer member of struct si, embedded structs
// included, with its offset from the start of the struct.
func (d *sdna) pointerSlots(si int) ([]ptrSlot, error) {
	if d.slots == nil {
		d.slots = map[int][]ptrSlot{}
	}
	if s, ok := d.slots[si]; ok {
		return s, nil
	}
	var out []ptrSlot
	if err := d.collectSlots(si, 0, 0, &out); err != nil {
		return nil, err
	}
	d.slots[si] = out
	return out, nil
}

func (d *sdna) collectSlots(si, base, depth int, out *[]ptrSlot) error {
	if depth > maxEmbedDepth {
		return newError(ErrCorrupt, d.blockOff, "DNA1: structs nest more than %d levels deep", maxEmbedDepth)
	}
	s := d.structs[si]
	structName := d.types[s.typ]
	// Validates that the members fit the struct's size.
	if _, err := d.layoutOf(structName); err != nil {
		return err
	}
	off := 0
	for _, f := range s.fields {
		name := d.names[f[1]]
		fieldBase, ptr, n, ok := parseFieldName(name)
		if !ok {
			return newError(ErrCorrupt, d.blockOff, "DNA1: struct %s has malformed field name %q", structName, name)
		}
		if ptr {
			size := d.ptrSize * n
			if !strings.HasPrefix(name, "(*") && !notFollowed[structName][fieldBase] {
				for i := 0; i < n; i++ {
					*out = append(*out, ptrSlot{off: base + off + i*d.ptrSize, double: strings.HasPrefix(name, "**")})
				}
			}
			off += size
			continue
		}
		elem := d.tlen[f[0]]
		if sub, isStruct := d.byName[d.types[f[0]]]; isStruct && elem > 0 && sub != si {
			for i := 0; i < n; i++ {
				if err := d.collectSlots(sub, base+off+i*elem, depth+1, out); err != nil {
					return err
				}
			}
		}
		off += elem * n
	}
	return nil
}

// Trace finds every external file the .blend at path needs, following
// linked libraries recursively, without Blender. Packed files and data
// no user of the scene reaches are not dependencies.
//
// Errors: the scene file itself must be readable (a *FormatError or an
// open error otherwise). Libraries that are missing are listed as missing
// dependencies; libraries that exist but cannot be read are listed as
// found, with the problem in Deps.Warnings.
func Trace(ctx context.Context, path string) (*Deps, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	return traceFile(ctx, path, abs, newFileCache())
}

func traceFile(ctx context.Context, path, abs string, cache *fileCache) (*Deps, error) {
	bf, closer, err := openBlockFile(abs, cache)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer closer.Close()
	deps, err := traceBlockFile(ctx, abs, bf, cache)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return deps, nil
}

// traceBlockFile traces an opened scene file; abs is where it lives, the
// base of its "//" paths.
func traceBlockFile(ctx context.Context, abs string, bf *blockFile, dnas *fileCache) (*Deps, error) {
	tr := &tracer{ctx: ctx, files: map[string]*fileTrace{}, deps: map[string]int{}, dnas: dnas}
	defer func() {
		for _, c := range tr.closers {
			c.Close()
		}
	}()
	root := tr.addFile(abs, bf)
	var roots []int32
	for i, b := range root.bf.heads {
		if isCode(b.code, "SC\x00\x00") {
			roots = append(roots, int32(i))
		}
	}
	if len(roots) == 0 {
		return nil, newError(ErrNoScene, -1, "the file has no SC (scene) block among its %d blocks", len(root.bf.heads))
	}
	if err := tr.reach(root, roots); err != nil {
		return nil, err
	}
	root.bf.release()
	if err := tr.followLibraries(); err != nil {
		return nil, err
	}
	out := &Deps{Scene: filepath.ToSlash(abs), Dependencies: tr.out, Warnings: tr.warnings}
	for i := range out.Dependencies {
		d := &out.Dependencies[i]
		slices.Sort(d.UsedBy)
		d.UsedBy = slices.Compact(d.UsedBy)
	}
	slices.SortStableFunc(out.Dependencies, func(a, b Dependency) int {
		if c := strings.Compare(string(a.Kind), string(b.Kind)); c != 0 {
			return c
		}
		return strings.Compare(a.File, b.File)
	})
	if out.Dependencies == nil {
		out.Dependencies = []Dependency{}
	}
	return out, nil
}

// tracer is one Trace call: the files opened so far and what was found.
type tracer struct {
	ctx      context.Context
	files    map[string]*fileTrace // by absolute path
	closers  []io.Closer
	out      []Dependency
	deps     map[string]int // resolved file → index in out
	dnas     *fileCache
	warnings []string
	// pending are libraries to follow: file → datablock names asked for.
	pending []libRequest
}

type libRequest struct {
	file  string
	names []string
}

// fileTrace is one .blend being traced: its blocks and what was reached.
type fileTrace struct {
	path  string // absolute, OS form
	dir   string
	bf    *blockFile
	seen  []bool
	owner []int32 // the ID block a DATA block was reached from
	// idByName maps "OBCube" to its block, built when a library is asked
	// for datablocks by name.
	idByName map[string]int32
	// libUsers collects, per LI block, the placeholders that link from it.
	libUsers map[int32][]string
	info     os.FileInfo // identity of the file on disk, for sameFile
}

func (tr *tracer) open(abs string) (*fileTrace, io.Closer, error) {
	bf, closer, err := openBlockFile(abs, tr.dnas)
	if err != nil {
		return nil, nil, err
	}
	return tr.addFile(abs, bf), closer, nil
}

func (tr *tracer) addFile(abs string, bf *blockFile) *fileTrace {
	ft := &fileTrace{path: abs, dir: filepath.Dir(abs), bf: bf,
		seen: make([]bool, len(bf.heads)), owner: make([]int32, len(bf.heads)),
		libUsers: map[int32][]string{}}
	ft.info, _ = os.Stat(abs) // nil for in-memory input (fuzzing): never matched
	tr.files[abs] = ft
	return ft
}

func (ft *fileTrace) payload(i int32) ([]byte, error) { return ft.bf.payload(ft.bf.heads[i]) }

// idName reads the ID name ("IMwood") at the start of an ID block.
func (ft *fileTrace) idName(p []byte) string {
	f, ok, err := ft.bf.dna.lookup("ID", "name")
	if err != nil || !ok {
		return ""
	}
	s, _ := readString(p, f)
	return s
}

type visit struct {
	block  int32
	owner  int32
	double bool
}

// reach follows pointers from roots, visiting every block reached once.
func (tr *tracer) reach(ft *fileTrace, roots []int32) error {
	bf := ft.bf
	stack := make([]visit, 0, 64)
	for _, r := range roots {
		stack = append(stack, visit{block: r, owner: r})
	}
	steps := 0
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if ft.seen[v.block] {
			continue
		}
		ft.seen[v.block] = true
		if steps++; steps%4096 == 0 {
			if err := tr.ctx.Err(); err != nil {
				return err
			}
		}
		b := bf.heads[v.block]
		owner := v.owner
		if isIDCode(b.code) {
			owner = v.block
		}
		ft.owner[v.block] = owner
		var slots []ptrSlot
		stride := 0
		switch {
		case v.double:
			slots, stride = []ptrSlot{{off: 0}}, bf.hdr.ptrSize
		case b.sdna > 0 && b.sdna < int64(len(bf.dna.structs)):
			var err error
			if slots, err = bf.dna.pointerSlots(int(b.sdna)); err != nil {
				return err
			}
			stride = bf.dna.tlen[bf.dna.structs[b.sdna].typ]
		}
		interesting := tr.interesting(ft, b)
		if (len(slots) == 0 || stride == 0) && !interesting {
			continue
		}
		p, err := ft.payload(v.block)
		if err != nil {
			// A block too large to hold (over 64 MiB, in a file read block
			// by block) or unreadable: what it points to is not followed,
			// and the answer says so rather than failing.
			tr.warnings = append(tr.warnings, fmt.Sprintf("%s: block %q at offset %d was not followed: %v", ft.path, b.name(), b.offset, err))
			continue
		}
		if interesting {
			tr.extract(ft, v.block, p)
		}
		if stride == 0 {
			continue
		}
		count := int64(len(p) / stride)
		if !v.double && b.nr < count {
			count = b.nr
		}
		for e := int64(0); e < count; e++ {
			base := int(e) * stride
			for _, s := range slots {
				ptr, ok := bf.dna.readPointer(p, field{offset: base + s.off, pointer: true})
				if !ok || ptr == 0 {
					continue
				}
				t, ok := bf.byOld[ptr]
				if !ok || ft.seen[t] {
					continue
				}
				tb := bf.heads[t]
				// An untyped block (SDNA 0 is written for raw bytes) is only
				// followed as an array of pointers, and only through "**".
				if tb.sdna == 0 && !s.double && !isIDCode(tb.code) {
					continue
				}
				stack = append(stack, visit{block: t, owner: owner, double: s.double && !isIDCode(tb.code)})
			}
		}
	}
	return nil
}

// followLibraries traces the datablocks asked for in each library, until
// no new library or datablock is asked for.
func (tr *tracer) followLibraries() error {
	for len(tr.pending) > 0 {
		req := tr.pending[0]
		tr.pending = tr.pending[1:]
		if err := tr.ctx.Err(); err != nil {
			return err
		}
		ft, ok := tr.files[req.file]
		if !ok {
			ft, ok = tr.sameFile(req.file)
		}
		if !ok {
			var closer io.Closer
			var err error
			ft, closer, err = tr.open(req.file)
			if err != nil {
				tr.warnings = append(tr.warnings, fmt.Sprintf("library %s cannot be read, so the files it needs are not listed: %v", req.file, err))
				tr.files[req.file] = nil
				continue
			}
			tr.closers = append(tr.closers, closer)
		}
		if ft == nil {
			continue // unreadable, already reported
		}
		if ft.idByName == nil {
			ft.indexNames()
		}
		var roots []int32
		for _, name := range req.names {
			if i, ok := ft.idByName[name]; ok {
				roots = append(roots, i)
				continue
			}
			if len(name) > 2 {
				tr.warnings = append(tr.warnings, fmt.Sprintf("library %s has no %s named %q (renamed or deleted there?): Blender will show it as missing", req.file, idKind(name[:2]), name[2:]))
			}
		}
		if err := tr.reach(ft, roots); err != nil {
			tr.warnings = append(tr.warnings, fmt.Sprintf("library %s: %v", req.file, err))
		}
		ft.bf.release()
	}
	return nil
}

// sameFile finds a file already opened under another name: a library
// reached through a symbolic link, or "//lib/../lib/a.blend" spelt through
// a linked folder. Without it a folder link that loops (lib/self -> .)
// would make every round a new path and the trace would never end.
func (tr *tracer) sameFile(path string) (*fileTrace, bool) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, false
	}
	for _, ft := range tr.files {
		if ft != nil && ft.info != nil && os.SameFile(ft.info, st) {
			tr.files[path] = ft
			return ft, true
		}
	}
	return nil, false
}

// idKind names an ID code for messages: "OB" → "object".
func idKind(code string) string {
	switch code {
	case "OB":
		return "object"
	case "CO", "GR":
		return "collection"
	case "MA":
		return "material"
	case "ME":
		return "mesh"
	case "NT":
		return "node group"
	case "SC":
		return "scene"
	case "WO":
		return "world"
	case "IM":
		return "image"
	}
	return "datablock (" + code + ")"
}

// indexNames maps every ID block's name to its index.
func (ft *fileTrace) indexNames() {
	ft.idByName = map[string]int32{}
	for i, b := range ft.bf.heads {
		if !isIDCode(b.code) {
			continue
		}
		p, err := ft.payload(int32(i))
		if err != nil {
			continue
		}
		if name := ft.idName(p); name != "" {
			if _, dup := ft.idByName[name]; !dup {
				ft.idByName[name] = int32(i)
			}
		}
	}
}

// interesting reports whether a reached block can name a file.
func (tr *tracer) interesting(ft *fileTrace, b bhead) bool {
	if isIDCode(b.code) {
		_, ok := idExtractors[string(b.code[:2])]
		return ok
	}
	_, ok := dataExtractors[ft.bf.structName(b)]
	return ok
}

func (tr *tracer) extract(ft *fileTrace, i int32, p []byte) {
	b := ft.bf.heads[i]
	x := &extraction{tr: tr, ft: ft, block: i, data: p}
	if isIDCode(b.code) {
		idExtractors[string(b.code[:2])](x)
		return
	}
	dataExtractors[ft.bf.structName(b)](x)
}

// extraction is one reached block that can name files.
type extraction struct {
	tr    *tracer
	ft    *fileTrace
	block int32
	data  []byte
}

func (x *extraction) structName() string { return x.ft.bf.structName(x.ft.bf.heads[x.block]) }

// str reads the first of the named char-array members that exists.
func (x *extraction) str(names ...string) string {
	for _, n := range names {
		f, ok := x.ft.bf.dna.member(x.structName(), n)
		if ok && !f.pointer {
			s, _ := readString(x.data, f)
			return s
		}
	}
	return ""
}

// int reads the first of the named integer members that exists.
func (x *extraction) int(names ...string) (int64, bool) {
	for _, n := range names {
		f, ok := x.ft.bf.dna.member(x.structName(), n)
		if ok && !f.pointer {
			return x.ft.bf.dna.readInt(x.data, f)
		}
	}
	return 0, false
}

// ptr reads the first of the named pointer members that exists.
func (x *extraction) ptr(names ...string) uint64 {
	for _, n := range names {
		f, ok := x.ft.bf.dna.member(x.structName(), n)
		if ok && f.pointer {
			v, _ := x.ft.bf.dna.readPointer(x.data, f)
			return v
		}
	}
	return 0
}

// packed reports whether a datablock carries its file inside the .blend.
func (x *extraction) packed() bool {
	return x.ptr("packedfile") != 0 || x.ptr("packedfiles.first") != 0
}

// user is the name of the ID that owns the block ("IMwood", "OBplane").
func (x *extraction) user() string {
	o := x.ft.owner[x.block]
	p := x.data
	if o != x.block {
		var err error
		if p, err = x.ft.payload(o); err != nil {
			return ""
		}
	}
	return x.ft.idName(p)
}

// file records one resolved file (existing or not) for stored.
func (x *extraction) file(kind DepKind, stored string, r resolvedPath, user string) {
	ok, size := statFile(r)
	x.tr.add(Dependency{Kind: kind, StoredPath: stored, File: r.file, Exists: ok, Size: size,
		UsedBy: []string{user}, Blend: filepath.ToSlash(x.ft.path)})
}

// files records the existing files of a set (frames, tiles, a cache
// folder); when none exists, the stored path's own file as missing.
func (x *extraction) files(kind DepKind, stored string, r resolvedPath, user string, list func(string) []string) {
	var found []string
	if r.local {
		found = list(r.file)
	}
	if len(found) == 0 {
		// Missing: name the first file of the set, as a person would look for it.
		r.file = strings.NewReplacer("<UDIM>", "1001", "<UVTILE>", "u1_v1").Replace(r.file)
		x.file(kind, stored, r, user)
		return
	}
	for _, f := range found {
		x.file(kind, stored, resolvedPath{file: f, local: true}, user)
	}
}

// add merges d into the result: one item per resolved file.
func (tr *tracer) add(d Dependency) {
	ref := PathRef{Blend: d.Blend, StoredPath: d.StoredPath}
	if i, ok := tr.deps[d.File]; ok {
		e := &tr.out[i]
		e.UsedBy = append(e.UsedBy, d.UsedBy...)
		if !slices.Contains(e.Refs, ref) {
			e.Refs = append(e.Refs, ref)
		}
		return
	}
	d.Refs = []PathRef{ref}
	tr.deps[d.File] = len(tr.out)
	tr.out = append(tr.out, d)
}

// idExtractors read the files of ID blocks, by ID code.
var idExtractors = map[string]func(*extraction){
	"IM": extractImage,
	"LI": extractLibrary,
	"ID": extractPlaceholder,
	"MC": extractMovieClip,
	"VF": extractFont,
	"SO": extractSound,
	"CF": extractCacheFile,
	"VO": extractVolume,
}

// dataExtractors read the files of DATA blocks, by struct name (on-disk
// names: Blender 4.4 renamed Sequence/Strip in its code, not in files).
var dataExtractors = map[string]func(*extraction){
	"CacheFileLayer":        extractCacheFileLayer,
	"PointCache":            extractPointCache,
	"FluidDomainSettings":   extractFluidCache,
	"MeshCacheModifierData": extractMeshCache,
	"OceanModifierData":     extractOceanCache,
	"CustomDataExternal":    extractMultires,
	"Sequence":              extractStrip,
	"NodesModifierData":     extractNodesBake,
	"NodeShaderTexIES":      extractIES,
}

// Image sources (Image.source).
const (
	imaSrcFile      = 1
	imaSrcSequence  = 2
	imaSrcMovie     = 3
	imaSrcGenerated = 4
	imaSrcViewer    = 5
	imaSrcTiled     = 6
)

func extractImage(x *extraction) {
	if x.packed() {
		return
	}
	src, _ := x.int("source")
	switch src {
	case imaSrcGenerated, imaSrcViewer:
		return
	}
	stored := x.str("name", "filepath")
	if stored == "" {
		return
	}
	r := resolveStored(stored, x.ft.dir)
	switch {
	case src == imaSrcTiled || hasTileToken(stored):
		x.files(DepImage, stored, r, x.user(), tileFiles)
	case src == imaSrcSequence:
		x.files(DepImage, stored, r, x.user(), frameFiles)
	default:
		x.file(DepImage, stored, r, x.user())
	}
}

func extractLibrary(x *extraction) {
	if x.packed() {
		return
	}
	stored := x.str("name", "filepath")
	if stored == "" {
		return
	}
	r := resolveStored(stored, x.ft.dir)
	users := x.ft.libUsers[x.block]
	if len(users) == 0 {
		users = []string{x.user()}
	}
	for _, u := range users {
		x.file(DepLibrary, stored, r, u)
	}
	if ok, _ := statFile(r); ok {
		x.tr.pending = append(x.tr.pending, libRequest{file: filepath.FromSlash(r.file), names: x.ft.libRequested(x.block)})
	}
}

// extractPlaceholder records which datablock a linked ID names, for its
// library. It runs before the library block is reached, since the library
// is reached through the placeholder's lib pointer.
func extractPlaceholder(x *extraction) {
	name := x.ft.idName(x.data)
	lib := x.ptr("lib")
	if name == "" || lib == 0 {
		return
	}
	li, ok := x.ft.bf.byOld[lib]
	if !ok || !isIDCode(x.ft.bf.heads[li].code) {
		return
	}
	x.ft.libUsers[li] = append(x.ft.libUsers[li], name)
	if x.ft.seen[li] {
		// The library was reached first (through another placeholder or a
		// pointer to the LI block): ask it for this datablock too.
		if p, err := x.ft.payload(li); err == nil {
			y := &extraction{tr: x.tr, ft: x.ft, block: li, data: p}
			stored := y.str("name", "filepath")
			r := resolveStored(stored, x.ft.dir)
			if stored != "" && !y.packed() {
				y.file(DepLibrary, stored, r, name)
				if ok, _ := statFile(r); ok {
					x.tr.pending = append(x.tr.pending, libRequest{file: filepath.FromSlash(r.file), names: []string{name}})
				}
			}
		}
	}
}

// libRequested is what the placeholders reached so far ask of library li.
func (ft *fileTrace) libRequested(li int32) []string { return ft.libUsers[li] }
