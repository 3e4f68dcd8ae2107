package testenv_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/framefleet/framefleet/internal/testenv"
)

// pinned is a raw.githubusercontent.com URL at a full commit SHA: a branch
// name would let upstream change the bytes under the tests.
var pinned = regexp.MustCompile(`^https://raw\.githubusercontent\.com/[\w.-]+/[\w.-]+/[0-9a-f]{40}/\S+$`)

// TestSharedSourcesDescribeTheSharedDir checks .ci/shared-sources.txt, from
// which CI downloads the shared data, against the shared directory the tests
// use here: every file it pins has exactly the bytes the tests were written
// against, and every file expected.json describes is pinned.
//
// The checksums say nothing of the commits: whether a commit has those bytes,
// or is still on its repository's default branch, is known only to the
// upstream's history, which the tests cannot reach offline. With
// FRAMEFLEET_SHARED_MIRROR naming a directory of git mirrors (the layout
// .ci/fetch-shared.sh reads), each pin's commit is checked there too.
func TestSharedSourcesDescribeTheSharedDir(t *testing.T) {
	sources, err := testenv.SharedSources()
	if err != nil {
		t.Fatal(err)
	}
	dir := testenv.Shared(t)
	mirror := os.Getenv("FRAMEFLEET_SHARED_MIRROR")
	if st, err := os.Stat(mirror); mirror == "" || err != nil || !st.IsDir() {
		t.Log("commits not checked: set FRAMEFLEET_SHARED_MIRROR to a directory of git mirrors of the upstreams to check them")
		mirror = ""
	}
	listed := map[string]bool{}
	for _, src := range sources {
		if listed[src.Path] {
			t.Errorf("%s is listed twice", src.Path)
		}
		listed[src.Path] = true
		if !pinned.MatchString(src.URL) {
			t.Errorf("%s: URL %s is not a raw GitHub URL at a 40-hex commit", src.Path, src.URL)
		}
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(src.Path)))
		if err != nil {
			t.Errorf("%s: %v", src.Path, err)
			continue
		}
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != src.SHA256 {
			t.Errorf("%s in %s has SHA-256 %x, shared-sources.txt says %s", src.Path, dir, sum, src.SHA256)
		}
		if mirror != "" {
			if err := checkPinInMirror(mirror, src); err != nil {
				t.Error(err)
			}
		}
	}
	if !listed["scenes/pottery.blend"] {
		t.Error("scenes/pottery.blend is not pinned")
	}
	for name := range testenv.CorpusExpected(t) {
		if !listed["blendfiles/"+name] {
			t.Errorf("expected.json describes %s, which shared-sources.txt does not pin", name)
		}
	}
}
