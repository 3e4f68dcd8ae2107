package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/framefleet/framefleet/pipeline/blend"
)

// InputManifestSchema is the input manifest's format version.
const InputManifestSchema = 1

// InputFile is one file of a render's workspace.
type InputFile struct {
	// Path is where the file goes in the workspace: slash-separated,
	// relative to the project root ("shots/shot.blend", "textures/wood.png",
	// "_external/3fa2c1d09b1e-tex/a.png" for files from outside the root).
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// Kind is what the scene uses the file as ("" for the scene itself).
	// Workers copy (never link) the kinds Blender may write to.
	Kind blend.DepKind `json:"kind,omitempty"`
}

// MissingInput is a file the scene needs that did not exist when the
// render was submitted.
type MissingInput struct {
	Kind       blend.DepKind `json:"kind"`
	StoredPath string        `json:"stored_path"`
	// File is where it was looked for on the submitting machine.
	File   string   `json:"file"`
	UsedBy []string `json:"used_by"`
	// Blend is the .blend that stores the path (the scene or a linked
	// library), relative to the project root when inside it.
	Blend string `json:"blend"`
	// OutsideRoot: the file exists but outside the project root, and the
	// render was confined to it (Request.Confine), so it is not sent.
	OutsideRoot bool `json:"outside_root,omitempty"`
}

// InputManifest is everything a render reads, stored at
// runs/<id>/inputs.json: the workers lay these files out as a workspace
// and open Scene inside it.
type InputManifest struct {
	Schema int `json:"schema"`
	// Scene is the scene's path in the workspace.
	Scene string `json:"scene"`
	// Root is the project root on the submitting machine, for people.
	Root string `json:"root,omitempty"`
	// Files is sorted by Path; the scene is one of them.
	Files   []InputFile    `json:"files"`
	Missing []MissingInput `json:"missing,omitempty"`
}

// Digest identifies the workspace's content and layout: the scene's place
// and every file's place and content. It is part of the cache key, and the
// plan carries it so a worker knows the manifest it reads is the plan's.
func (m *InputManifest) Digest() string {
	h := sha256.New()
	fmt.Fprintf(h, "scene %q\n", m.Scene)
	for _, f := range m.Files {
		fmt.Fprintf(h, "%q %s %d\n", f.Path, f.SHA256, f.Size)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Bytes is the workspace's total size.
func (m *InputManifest) Bytes() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// Validate checks a manifest read from a store before a worker lays it
// out: every path must stay inside the workspace.
func (m *InputManifest) Validate() error {
	if m.Schema < 1 || m.Schema > InputManifestSchema {
		return fmt.Errorf("input manifest schema %d, this framefleet understands %d: use the same framefleet version for submit and worker", m.Schema, InputManifestSchema)
	}
	seen := make(map[string]bool, len(m.Files))
	for _, f := range m.Files {
		if err := CheckWorkspacePath(f.Path); err != nil {
			return err
		}
		if len(f.SHA256) != 64 || strings.Trim(f.SHA256, "0123456789abcdef") != "" {
			return fmt.Errorf("input %s: %q is not a SHA-256", f.Path, f.SHA256)
		}
		if seen[f.Path] {
			return fmt.Errorf("input %s is listed twice", f.Path)
		}
		seen[f.Path] = true
	}
	if !seen[m.Scene] {
		return fmt.Errorf("the scene %q is not among the inputs", m.Scene)
	}
	return nil
}

// CheckWorkspacePath refuses a workspace path that could leave the
// workspace: absolute, with "..", backslashes or empty parts.
func CheckWorkspacePath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") || strings.ContainsRune(p, 0) ||
		(len(p) > 1 && p[1] == ':') || path.Clean(p) != p || p == "." ||
		slices.Contains(strings.Split(p, "/"), "..") {
		return fmt.Errorf("input path %q leaves the workspace", p)
	}
	return nil
}

// MissingInputsError refuses a render whose scene needs files that do not
// exist, before anything is stored or submitted.
type MissingInputsError struct {
	// Scene is the scene's path, as the request gave it.
	Scene   string
	Missing []MissingInput
	// AllowHint is how the front-end's user renders anyway ("--allow-missing",
	// "allow-missing: true"); empty names the setting render.allow_missing.
	AllowHint string
}

func (e *MissingInputsError) Error() string {
	var b strings.Builder
	files := "files that do not"
	if len(e.Missing) == 1 {
		files = "a file that does not"
	}
	fmt.Fprintf(&b, "%s needs %s exist, so it would render wrong (magenta textures, absent objects):", e.Scene, files)
	for _, m := range e.Missing {
		fmt.Fprintf(&b, "\n  %s %s", m.Kind, m.StoredPath)
		switch {
		case m.OutsideRoot:
			fmt.Fprintf(&b, " (%s is outside the project, so it is not sent)", m.File)
		case m.File != "" && m.File != m.StoredPath:
			fmt.Fprintf(&b, " (looked for %s)", m.File)
		}
		if len(m.UsedBy) > 0 {
			fmt.Fprintf(&b, ", used by %s", strings.Join(m.UsedBy, ", "))
		}
		if m.Blend != "" {
			fmt.Fprintf(&b, " in %s", m.Blend)
		}
	}
	hint := e.AllowHint
	if hint == "" {
		hint = "set " + KeyAllowMissing
	}
	fmt.Fprintf(&b, "\nfix: put each file where it is looked for (or fix the path in Blender: File > External Data > Find Missing Files), "+
		"or pack it into the .blend (File > External Data > Pack Resources); to render anyway, %s", hint)
	return b.String()
}

// encodeManifest is the stored form of a manifest.
func encodeManifest(m *InputManifest) ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode the input manifest: %w", err)
	}
	return append(b, '\n'), nil
}
