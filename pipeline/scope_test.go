package pipeline

import (
	"errors"
	"strings"
	"testing"

	"github.com/framefleet/framefleet/pipeline/store"
)

func TestGitHubScope(t *testing.T) {
	tests := []struct {
		event, ref, env string
		protected       []string
		want            string
	}{
		{"push", "refs/heads/main", "", nil, ScopeTrusted},
		{"workflow_dispatch", "refs/heads/main", "", nil, ScopeTrusted},
		{"pull_request", "refs/pull/7/merge", "", nil, ScopePreview},
		{"pull_request", "refs/heads/main", "", nil, ScopePreview}, // a PR is a preview whatever its ref says
		{"push", "refs/heads/feature/water", "", nil, ScopePreview},
		{"push", "refs/tags/v1.0.0", "", nil, ScopePreview},
		{"push", "refs/heads/release-2", "", []string{"refs/heads/release-2"}, ScopeTrusted},
		{"workflow_dispatch", "refs/heads/feature", "framefleet-trusted", nil, ScopeTrusted},
		{"workflow_dispatch", "refs/heads/feature", "staging", nil, ScopePreview},
	}
	for _, tt := range tests {
		if got := GitHubScope(tt.event, tt.ref, "main", tt.env, "framefleet-trusted", tt.protected); got != tt.want {
			t.Errorf("%s %s env %q: %s, want %s", tt.event, tt.ref, tt.env, got, tt.want)
		}
	}
}

// The ceiling goes through Validate (for what a request says) and the
// planned check (for a scene's own range), per scope, with the lower
// preview default, and names the setting and the fix.
func TestCeilingPerScope(t *testing.T) {
	tests := []struct {
		name    string
		req     Request
		wantKey string // "" = valid
		wantMsg string
	}{
		{"trusted may render many frames", Request{BlendPath: "x.blend", Frames: "1-5000", Scope: ScopeTrusted}, "", ""},
		{"preview may not", Request{BlendPath: "x.blend", Frames: "1-5000", Scope: ScopePreview}, KeyFrames, "5000 frames, but a preview request may render at most 500"},
		{"preview within its ceiling", Request{BlendPath: "x.blend", Frames: "1-500", Chunk: 10, Scope: ScopePreview}, "", ""},
		{"preview with too many chunks", Request{BlendPath: "x.blend", Frames: "1-200", Chunk: 1, Scope: ScopePreview}, KeyChunk, "200 chunks, but a preview request may use at most 50: give at least 4 frames per chunk"},
		{"a bot installation has the bot's", Request{BlendPath: "x.blend", Frames: "1-6000", Scope: "bot-studio"}, KeyFrames, "a bot-studio request may render at most 5000"},
		{"a configured ceiling replaces the default", Request{BlendPath: "x.blend", Frames: "1-600", Scope: ScopePreview, Ceiling: Ceiling{MaxFrames: 1000}}, "", ""},
		{"a negative ceiling", Request{BlendPath: "x.blend", Ceiling: Ceiling{MaxChunks: -1}}, KeyMaxChunks, "give a positive number"},
		{"a bad scope", Request{BlendPath: "x.blend", Scope: "Main"}, KeyScope, "use trusted, preview"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.req.Validate()
			var se *SettingError
			switch {
			case tt.wantKey == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.wantKey != "" && (!errors.As(err, &se) || se.Key != tt.wantKey || !strings.Contains(se.Error(), tt.wantMsg)):
				t.Fatalf("Validate: %v, want a %s error saying %q", err, tt.wantKey, tt.wantMsg)
			}
		})
	}
	// A scene's own range is checked once planned.
	if err := CheckCeiling(ScopePreview, Ceiling{}, 501, 1); err == nil {
		t.Error("a planned preview of 501 frames passes")
	}
	if err := CheckCeiling(ScopeTrusted, Ceiling{}, 20000, 10000); err != nil {
		t.Errorf("a planned trusted render at the ceiling: %v", err)
	}
}

// Runs takes the request's scope from its store and refuses a claim of another.
func TestRequestScopeComesFromTheStore(t *testing.T) {
	root, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	preview, _ := store.NewScoped(root, ScopePreview)
	for _, tt := range []struct {
		st        store.Store
		ask, want string
		ok        bool
	}{
		{root, "", ScopeTrusted, true},
		{preview, "", ScopePreview, true},
		{preview, ScopePreview, ScopePreview, true},
		{preview, ScopeTrusted, "", false},
		{root, ScopePreview, "", false},
	} {
		r := &Runs{Store: tt.st}
		req := Request{Scope: tt.ask}
		err := r.requestScope(&req)
		if (err == nil) != tt.ok || (tt.ok && req.Scope != tt.want) {
			t.Errorf("store %s asked %q: scope %q, %v", tt.st.URI(), tt.ask, req.Scope, err)
		}
	}
}
