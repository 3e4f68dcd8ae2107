package blend

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// pathFields names, per struct, the char-array member that stores a
// file or folder path, by its on-disk SDNA name. Where Blender renamed the
// member in its code the file keeps the old name: Image.filepath is stored
// as "name". The first candidate that exists in the file's catalogue is
// the one; later ones cover other Blender versions. Library lists "name"
// before "filepath" because 2.8x stores the runtime absolute path in a
// member called "filepath" next to the stored one.
var pathFields = map[string][]string{
	"Image":                 {"name", "filepath"},
	"Library":               {"name", "filepath"},
	"VFont":                 {"name", "filepath"},
	"bSound":                {"name", "filepath"},
	"MovieClip":             {"name", "filepath"},
	"CacheFile":             {"filepath"},
	"CacheFileLayer":        {"filepath"},
	"Volume":                {"filepath"},
	"PointCache":            {"path"},
	"FluidDomainSettings":   {"cache_directory"},
	"MeshCacheModifierData": {"filepath"},
	"OceanModifierData":     {"cachepath"},
	"CustomDataExternal":    {"filename", "filepath"},
	"Strip":                 {"dir", "dirpath"},
	"NodeShaderTexIES":      {"filepath"},
}

// pathField finds the stored-path member of struct structName.
func (d *sdna) pathField(structName string) (field, bool) {
	for _, name := range pathFields[structName] {
		f, ok, err := d.lookup(structName, name)
		if err == nil && ok && !f.pointer && d.types[f.typ] == "char" && f.size > 0 {
			return f, true
		}
	}
	return field{}, false
}

// ErrPathTooLong is returned (wrapped in a *PathTooLongError) when a
// replacement does not fit the fixed-size field it must go into.
var ErrPathTooLong = errors.New("replacement path too long for its field")

// PathTooLongError names the path that did not fit.
type PathTooLongError struct {
	Struct      string // "Image"
	Stored      string // the path as stored
	Replacement string
	Max         int // bytes available, without the terminating NUL
}

func (e *PathTooLongError) Error() string {
	return fmt.Sprintf("cannot store %q in place of %q: %s paths hold at most %d bytes, the replacement has %d; fix: use a shorter project root or workspace path",
		e.Replacement, e.Stored, e.Struct, e.Max, len(e.Replacement))
}

func (e *PathTooLongError) Unwrap() error { return ErrPathTooLong }

// RewritePaths copies the .blend at src to dst (uncompressed), replacing each
// stored path p for which remap(p) returns (q, true) by q. The workspace copy
// of a scene is rewritten this way so that files outside the project root, or
// stored with absolute or Windows paths, resolve inside the render workspace.
// A replacement longer than the field it goes into is an error
// (*PathTooLongError, errors.Is ErrPathTooLong); nothing useful is then in dst.
//
// remap sees every path-valued field of every datablock exactly as stored,
// reached by a scene or not: image, library, font, sound, movie clip, cache
// file (and its layers), volume, mesh cache, multires and IES files, and the
// folders of point caches, fluid caches, ocean bakes and sequencer strips.
// These are the StoredPath values Trace reports. Paths are rewritten in
// place (Blender's path fields are fixed-size char arrays), so every other
// byte of the file, pointers and offsets included, is unchanged.
func RewritePaths(src string, dst io.Writer, remap func(stored string) (string, bool)) error {
	bf, closer, err := openBlockFile(src, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	defer closer.Close()
	if err := bf.rewrite(dst, remap); err != nil {
		return fmt.Errorf("rewriting paths of %s: %w", src, err)
	}
	return nil
}

func (bf *blockFile) rewrite(dst io.Writer, remap func(string) (string, bool)) error {
	var pos int64
	copyTo := func(end int64) error {
		if end <= pos {
			return nil
		}
		if _, err := io.Copy(dst, io.NewSectionReader(bf.r, pos, end-pos)); err != nil {
			return err
		}
		pos = end
		return nil
	}
	for _, b := range bf.heads {
		name := bf.structName(b)
		f, ok := bf.dna.pathField(name)
		if !ok || b.sdna == 0 {
			continue
		}
		stride := bf.dna.tlen[bf.dna.structs[b.sdna].typ]
		if stride == 0 || f.offset+f.size > stride {
			continue
		}
		p, err := bf.payload(b)
		if err != nil {
			return err
		}
		p = bytes.Clone(p) // the payload may be the file's own memory
		changed := false
		count := min(b.nr, int64(len(p)/stride))
		for e := int64(0); e < count; e++ {
			ef := f
			ef.offset += int(e) * stride
			stored, _ := readString(p, ef)
			if stored == "" {
				continue
			}
			q, ok := remap(stored)
			if !ok || q == stored {
				continue
			}
			if len(q) >= f.size || strings.IndexByte(q, 0) >= 0 {
				if strings.IndexByte(q, 0) >= 0 {
					return fmt.Errorf("replacement for %q contains a NUL byte", stored)
				}
				return &PathTooLongError{Struct: name, Stored: stored, Replacement: q, Max: f.size - 1}
			}
			dstField := p[ef.offset : ef.offset+f.size]
			copy(dstField, q)
			clear(dstField[len(q):])
			changed = true
		}
		if !changed {
			continue
		}
		start := bf.payloadStart(b)
		if err := copyTo(start); err != nil {
			return err
		}
		if _, err := dst.Write(p); err != nil {
			return err
		}
		pos = start + int64(len(p))
	}
	return copyTo(bf.size)
}
