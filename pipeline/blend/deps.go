package blend

// DepKind is what sort of external file a scene needs.
type DepKind string

const (
	DepImage      DepKind = "image"      // Image datablocks: single files, UDIM tiles, sequences
	DepMovieClip  DepKind = "movieclip"  // MovieClip datablocks
	DepLibrary    DepKind = "library"    // linked .blend libraries (followed recursively)
	DepFont       DepKind = "font"       // VFont datablocks (not the built-in <builtin>)
	DepSound      DepKind = "sound"      // bSound datablocks
	DepCacheFile  DepKind = "cachefile"  // CacheFile datablocks: Alembic, USD
	DepVolume     DepKind = "volume"     // Volume datablocks: OpenVDB files and sequences
	DepPointCache DepKind = "pointcache" // point caches and physics bakes on disk (particles, smoke/fluid, Geometry Nodes bakes)
	DepMeshCache  DepKind = "meshcache"  // MeshCache modifier (MDD/PC2)
	DepMultires   DepKind = "multires"   // multires external data (CustomData external file)
	DepOcean      DepKind = "ocean"      // ocean modifier bake folder
	DepSequence   DepKind = "sequence"   // sequencer strips: image sequences and movies (sound strips use a sound)
	DepIES        DepKind = "ies"        // IES light profiles read by an IES Texture node from a file
)

// Dependency is one external file that a scene (or one of its libraries) needs.
// A sequence, UDIM set or cache folder gives one Dependency per file that
// exists; a missing one gives one item naming the pattern's first file
// (frame as stored, tile 1001), or the folder of a cache that says it is
// baked but has no files. A cache that is not baked (Blender recomputes it)
// and has no files is not listed.
type Dependency struct {
	Kind DepKind `json:"kind"`
	// StoredPath is the path exactly as the .blend stores it ("//../tex/a.png",
	// "C:\\Users\\me\\a.png"), before any expansion. A point cache in
	// Blender's default place stores no path: StoredPath is then the folder
	// Blender derives from the .blend's name ("//blendcache_shot/"), which
	// RewritePaths never sees (it moves with the .blend).
	StoredPath string `json:"stored_path"`
	// File is the resolved absolute path on this machine (slash-separated).
	// A Windows path traced elsewhere ("C:\\x", "\\\\server\\x") cannot
	// resolve: File is then that path with slashes and Exists is false.
	File   string `json:"file"`
	Exists bool   `json:"exists"`
	Size   int64  `json:"size"`
	// UsedBy names the datablocks that use it, sorted: the datablock that
	// stores the path ("IMwood", "SObeep.wav"), the object and modifier
	// ("OBplane/MeshCache"), the scene and strip ("SCScene/cards"), or for
	// a library the linked datablocks ("OBProp").
	UsedBy []string `json:"used_by"`
	// Blend is the absolute path of the .blend file whose datablock stores
	// StoredPath: the scene itself or a linked library (paths in a library
	// are relative to that library).
	Blend string `json:"blend"`
	// Refs lists every (blend, stored path) pair that names this file: a
	// library linked as "//lib/a.blend" by the scene and as "//a.blend" by
	// another library is one item with two refs. Blend/StoredPath are the
	// first ref. For a sequence, UDIM set or cache folder, StoredPath is the
	// pattern as stored (first frame, <UDIM> token, folder), shared by all
	// its files.
	Refs []PathRef `json:"refs"`
}

// PathRef is one place a path is stored: the .blend and the path in it.
type PathRef struct {
	Blend      string `json:"blend"`
	StoredPath string `json:"stored_path"`
}

// Deps is everything a scene needs, libraries included, sorted by kind
// then file.
type Deps struct {
	// Scene is the absolute path of the traced .blend.
	Scene        string       `json:"scene"`
	Dependencies []Dependency `json:"dependencies"`
	// Warnings are problems that did not stop the trace, such as a library
	// that exists but cannot be read (its own files are then not listed).
	Warnings []string `json:"warnings,omitempty"`
}

// Missing returns the dependencies that do not exist on this machine.
func (d *Deps) Missing() []Dependency {
	var out []Dependency
	for _, dep := range d.Dependencies {
		if !dep.Exists {
			out = append(out, dep)
		}
	}
	return out
}
