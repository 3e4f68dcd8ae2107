package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/framefleet/framefleet/pipeline/store"
)

// Trust scopes (deploy/README.md "Trust scopes"): every run belongs to the
// scope of whoever asked. Runs writes only in its store's scope; a scope's
// cache hits may come from the trusted scope, read-only.
const (
	ScopeTrusted = store.TrustedScope
	ScopePreview = "preview"
	ScopeBot     = "bot"
)

// KeyScope is the configuration key of a front-end's scope.
const KeyScope = "scope"

// CheckScope checks a scope name: trusted, preview, bot or bot-<name>.
func CheckScope(name string) error {
	if err := store.CheckScope(name); err != nil {
		return &SettingError{Key: KeyScope, Value: name, Reason: "use trusted, preview, bot or bot-<name> (lower-case letters, digits and hyphens)", Err: err}
	}
	return nil
}

// GitHubScope decides a GitHub Actions run's scope from its event, ref and
// environment: the default branch, a protected ref or the trusted
// environment is trusted; a pull request (of any kind) and any other ref is
// a preview. The roles make this binding: the preview role cannot write the
// trusted scope, whatever a workflow claims.
func GitHubScope(event, ref, defaultBranch, environment, trustedEnvironment string, protected []string) string {
	switch event {
	case "pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment", "merge_group":
		return ScopePreview
	}
	if trustedEnvironment != "" && environment == trustedEnvironment {
		return ScopeTrusted
	}
	if defaultBranch != "" && ref == "refs/heads/"+defaultBranch {
		return ScopeTrusted
	}
	for _, p := range protected {
		if p != "" && ref == p {
			return ScopeTrusted
		}
	}
	return ScopePreview
}

// Ceiling is the most a single request may ask for: frames and chunks (array
// children, each a container start). Zero fields take the scope's default.
type Ceiling struct {
	MaxFrames int
	MaxChunks int
}

// Setting keys of the ceiling.
const (
	KeyMaxFrames = "limits.max_frames"
	KeyMaxChunks = "limits.max_chunks"
)

// Default ceilings: a trusted request may use a whole Batch array (10,000
// children); a preview, which any pull request can start, far less.
var (
	TrustedCeiling = Ceiling{MaxFrames: 20000, MaxChunks: 10000}
	PreviewCeiling = Ceiling{MaxFrames: 500, MaxChunks: 50}
	BotCeiling     = Ceiling{MaxFrames: 5000, MaxChunks: 500}
)

// DefaultCeiling is a scope's ceiling when the configuration sets none.
func DefaultCeiling(scope string) Ceiling {
	switch {
	case scope == "" || scope == ScopeTrusted:
		return TrustedCeiling
	case scope == ScopeBot || len(scope) > len(ScopeBot) && scope[:len(ScopeBot)+1] == ScopeBot+"-":
		return BotCeiling
	}
	return PreviewCeiling
}

// For fills c's zero fields with the scope's defaults.
func (c Ceiling) For(scope string) Ceiling {
	d := DefaultCeiling(scope)
	if c.MaxFrames == 0 {
		c.MaxFrames = d.MaxFrames
	}
	if c.MaxChunks == 0 {
		c.MaxChunks = d.MaxChunks
	}
	return c
}

// CheckCeilingSettings checks configured limits (0 is the scope's default).
func CheckCeilingSettings(c Ceiling) error {
	if c.MaxFrames < 0 {
		return settingError(KeyMaxFrames, c.MaxFrames, "give a positive number of frames per request, or 0 for the scope's default", nil)
	}
	if c.MaxChunks < 0 {
		return settingError(KeyMaxChunks, c.MaxChunks, "give a positive number of chunks per request, or 0 for the scope's default", nil)
	}
	return nil
}

// CheckCeiling checks a planned request against its scope's ceiling.
func CheckCeiling(scope string, c Ceiling, frames, chunks int) error {
	c = c.For(scope)
	if scope == "" {
		scope = ScopeTrusted
	}
	if frames > c.MaxFrames {
		return &SettingError{Key: KeyFrames, Reason: fmt.Sprintf("%d frames, but a %s request may render at most %d: render fewer (e.g. every 5th frame with 1-1000x5), or have an operator raise %s",
			frames, scope, c.MaxFrames, KeyMaxFrames)}
	}
	if chunks > c.MaxChunks {
		return &SettingError{Key: KeyChunk, Reason: fmt.Sprintf("%d chunks, but a %s request may use at most %d: give at least %d frames per chunk, or have an operator raise %s",
			chunks, scope, c.MaxChunks, int(math.Ceil(float64(frames)/float64(c.MaxChunks))), KeyMaxChunks)}
	}
	return nil
}

// checkRequestCeiling checks what Validate can know before the scene is
// read: an explicit frame list (frames, as Validate parsed r.Frames), and
// its chunks when the chunk size is given.
func (r Request) checkRequestCeiling(frames []int) error {
	if err := CheckCeilingSettings(r.Ceiling); err != nil {
		return err
	}
	if r.Frames == "" {
		return nil // the scene's range: checked once planned
	}
	chunks := 0
	if r.Chunk > 0 {
		chunks = (len(frames) + r.Chunk - 1) / r.Chunk
	}
	return CheckCeiling(r.Scope, r.Ceiling, len(frames), chunks)
}

// checkRequestScope checks the request's scope against the store's: a
// front-end may not ask for another scope than the one its store writes.
func (r Request) checkRequestScope() error {
	if r.Scope == "" {
		return nil
	}
	return CheckScope(r.Scope)
}

// ScopeName is the run's trust scope; records from before scopes, which
// live at the store's root, are the trusted scope's.
func (rec *RunRecord) ScopeName() string {
	if rec.Scope == "" {
		return ScopeTrusted
	}
	return rec.Scope
}

// requestScope sets a request's scope to its store's, and refuses another:
// what a run writes is decided by the store it is given, never by a claim.
func (r *Runs) requestScope(req *Request) error {
	have := store.ScopeOf(r.Store)
	switch req.Scope {
	case "":
		req.Scope = have
	case have:
	default:
		return &SettingError{Key: KeyScope, Value: req.Scope, Reason: fmt.Sprintf(
			"the store %s is the %s scope's: open the %s scope's store (framefleet.yaml scope) or ask for %s", r.Store.URI(), have, req.Scope, have)}
	}
	return nil
}

// trustedCacheHit looks, for a scope whose own cache has no entry (ownErr
// wraps ErrNotFound), at the trusted scope's, read-only: a finished trusted
// run with the same inputs is served as is. Only finished runs count (this
// scope cannot watch or label a trusted run), and nothing is ever written
// there. The trusted scope itself has no such fallback: it reads nothing
// of another scope.
func (r *Runs) trustedCacheHit(ctx context.Context, pr *prepared, ownErr error) (*RunRecord, error) {
	tv := store.TrustedView(r.Store)
	if tv == nil || pr.req.Force || !errors.Is(ownErr, store.ErrNotFound) {
		return nil, nil
	}
	data, _, err := tv.GetVersioned(ctx, store.CacheKey(pr.key))
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			r.log().Warn("cannot read the trusted scope's cache; rendering in this scope", "err", err)
		}
		return nil, nil
	}
	var entry cacheEntry
	if json.Unmarshal(data, &entry) != nil || entry.RunID == "" {
		return nil, nil
	}
	rec, _, err := readRecord(ctx, tv, entry.RunID)
	if err != nil || rec.State != RunSucceeded {
		return nil, nil
	}
	res, err := cachedResult(ctx, tv, rec.ID, pr.req.LinkExpiry)
	if err != nil || res == nil {
		return nil, nil // its files are gone, or unreadable here: render in this scope
	}
	rec.Result = res
	return rec, nil
}
