package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Trust scopes (deploy/README.md "Trust scopes"). Every run belongs to one:
// TrustedScope for the default branch, protected refs and operators, and
// named scopes (preview, bot, bot-<name>) for everyone else. The trusted
// scope is the store's root; another scope is the store under
// ScopePrefix(name), so whatever it writes lands there and nowhere else,
// and the trusted scope, which never looks under scopes/, cannot read it.
const (
	TrustedScope = "trusted"
	// ScopesDir holds every scope but the trusted one.
	ScopesDir = "scopes/"
	// ScopeParam is the store URI query parameter that names a scope, e.g.
	// s3://bucket/prefix?scope=preview: the record and the worker get the
	// scoped store from one string.
	ScopeParam = "scope"
)

var scopeName = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)

// CheckScope validates a scope name.
func CheckScope(name string) error {
	if len(name) > 40 || !scopeName.MatchString(name) {
		return fmt.Errorf("trust scope %q is not a valid name: use trusted, preview, bot or bot-<name> (lower-case letters, digits and hyphens, at most 40 characters)", name)
	}
	return nil
}

// ScopePrefix is where a scope's keys live, relative to the store: "" for
// the trusted scope, scopes/<name>/ for any other.
func ScopePrefix(name string) string {
	if name == "" || name == TrustedScope {
		return ""
	}
	return ScopesDir + name + "/"
}

// trustedReadable are the prefixes a scope may read from the trusted scope
// when it lacks the key itself: scenes and inputs, which are stored by
// content hash (so a copy is the same bytes, and the worker checks the
// hash), and runs' files (a pull request compares its render with main's,
// which a trusted cache hit names). Run records (read with GetVersioned),
// listings and cache entries never fall back: a scope decides what to
// render from its own, and finds trusted results only through Runs'
// read-only view of finished runs.
var trustedReadable = []string{"blends/", "inputs/", "runs/"}

// ErrReadOnly is returned (wrapped) by every write to a ReadOnly store.
var ErrReadOnly = errors.New("the store is read-only here")

// Scoped is a store for one non-trusted scope: every key is under the
// scope's prefix of base, so the scope writes nothing outside it; reads of
// scenes and inputs fall back to the trusted scope's copy, read-only.
type Scoped struct {
	base   Store
	name   string
	prefix string
}

// NewScoped returns the store of scope name on base, a store's root; the
// trusted scope is base itself.
func NewScoped(base Store, name string) (Store, error) {
	if err := CheckScope(name); err != nil {
		return nil, err
	}
	if name == TrustedScope {
		return base, nil
	}
	if s, ok := base.(*Scoped); ok {
		return nil, fmt.Errorf("store %s is already the scope %s: open the store's root for scope %s", s.URI(), s.name, name)
	}
	return &Scoped{base: base, name: name, prefix: ScopePrefix(name)}, nil
}

// Scope is the scope's name.
func (s *Scoped) Scope() string { return s.name }

// Trusted is a read-only view of the trusted scope of the same store.
func (s *Scoped) Trusted() Store { return ReadOnly(s.base) }

// ScopeOf names the scope of a store: its name for a scoped store, the
// trusted scope otherwise.
func ScopeOf(st Store) string {
	if s, ok := st.(*Scoped); ok {
		return s.name
	}
	return TrustedScope
}

// TrustedView is a read-only view of the trusted scope of st's store, or
// nil when st is the trusted scope (which reads only itself).
func TrustedView(st Store) Store {
	if s, ok := st.(*Scoped); ok {
		return s.Trusted()
	}
	return nil
}

func (s *Scoped) key(k string) (string, error) {
	if err := checkKey(k); err != nil {
		return "", err
	}
	return s.prefix + k, nil
}

// fallsBack reports whether a missing key may be read from the trusted scope.
func fallsBack(key string, err error) bool {
	if !errors.Is(err, ErrNotFound) {
		return false
	}
	for _, p := range trustedReadable {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

func (s *Scoped) Put(ctx context.Context, key string, r io.Reader) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	return s.base.Put(ctx, k, r)
}

func (s *Scoped) PutFile(ctx context.Context, key, path string) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	return s.base.PutFile(ctx, k, path)
}

func (s *Scoped) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	k, err := s.key(key)
	if err != nil {
		return nil, err
	}
	rc, err := s.base.Get(ctx, k)
	if fallsBack(key, err) {
		return s.base.Get(ctx, key)
	}
	return rc, err
}

func (s *Scoped) GetFile(ctx context.Context, key, path string) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	err = s.base.GetFile(ctx, k, path)
	if fallsBack(key, err) {
		return s.base.GetFile(ctx, key, path)
	}
	return err
}

func (s *Scoped) Stat(ctx context.Context, key string) (Object, error) {
	k, err := s.key(key)
	if err != nil {
		return Object{}, err
	}
	o, err := s.base.Stat(ctx, k)
	if fallsBack(key, err) {
		return s.base.Stat(ctx, key)
	}
	o.Key = key
	return o, err
}

func (s *Scoped) List(ctx context.Context, prefix string) ([]Object, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	objs, err := s.base.List(ctx, s.prefix+prefix)
	return trimKeys(objs, s.prefix), err
}

func (s *Scoped) ListPage(ctx context.Context, prefix, startAfter string, limit int) ([]Object, bool, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, false, err
	}
	after := ""
	if startAfter != "" {
		after = s.prefix + startAfter
	}
	objs, more, err := s.base.ListPage(ctx, s.prefix+prefix, after, limit)
	return trimKeys(objs, s.prefix), more, err
}

// Link signs the scope's own key, or the trusted copy of a scene or input
// the scope lacks. It asks the store only for those (Link alone does not).
func (s *Scoped) Link(ctx context.Context, key string, expiry time.Duration) (string, error) {
	k, err := s.key(key)
	if err != nil {
		return "", err
	}
	if s.lacks(ctx, key, k) {
		return s.base.Link(ctx, key, expiry)
	}
	return s.base.Link(ctx, k, expiry)
}

// lacks reports whether the scope lacks key (stored at k) and may read the
// trusted scope's copy instead; it asks the store only for such keys.
func (s *Scoped) lacks(ctx context.Context, key, k string) bool {
	if !fallsBack(key, ErrNotFound) {
		return false
	}
	_, err := s.base.Stat(ctx, k)
	return fallsBack(key, err)
}

func (s *Scoped) GetVersioned(ctx context.Context, key string) ([]byte, Version, error) {
	k, err := s.key(key)
	if err != nil {
		return nil, "", err
	}
	return s.base.GetVersioned(ctx, k)
}

func (s *Scoped) PutIfVersion(ctx context.Context, key string, data []byte, match Version) (Version, error) {
	k, err := s.key(key)
	if err != nil {
		return "", err
	}
	return s.base.PutIfVersion(ctx, k, data, match)
}

func (s *Scoped) Delete(ctx context.Context, key string) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	return s.base.Delete(ctx, k)
}

// URI is the base store's with ?scope=<name>; Open turns it back into this store.
func (s *Scoped) URI() string { return WithScope(s.base.URI(), s.name) }

// WithScope adds the scope to a store URI (the trusted scope adds nothing).
func WithScope(uri, scope string) string {
	if scope == "" || scope == TrustedScope {
		return uri
	}
	return uri + "?" + ScopeParam + "=" + url.QueryEscape(scope)
}

// SplitScope separates a store URI's scope parameter from the store's own
// URI. A URI without one is the trusted scope.
func SplitScope(uri string) (base, scope string, err error) {
	base, query, ok := strings.Cut(uri, "?")
	if !ok {
		return uri, TrustedScope, nil
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", "", fmt.Errorf("store %q: bad query: %w", uri, err)
	}
	for k := range q {
		if k != ScopeParam {
			return "", "", fmt.Errorf("store %q: unknown parameter %q: the only one is ?%s=<trust scope>", uri, k, ScopeParam)
		}
	}
	scope = q.Get(ScopeParam)
	if err := CheckScope(scope); err != nil {
		return "", "", fmt.Errorf("store %q: %w", uri, err)
	}
	return base, scope, nil
}

// readOnly refuses every write: the trusted scope as another scope sees it.
type readOnly struct{ Store }

// ReadOnly is a view of st that refuses every write with ErrReadOnly.
func ReadOnly(st Store) Store { return readOnly{st} }

func (r readOnly) refuse(key string) error {
	return fmt.Errorf("write %s in %s: %w (a scope may only read the trusted scope)", key, r.Store.URI(), ErrReadOnly)
}

func (r readOnly) Put(_ context.Context, key string, _ io.Reader) error { return r.refuse(key) }
func (r readOnly) PutFile(_ context.Context, key, _ string) error       { return r.refuse(key) }
func (r readOnly) Delete(_ context.Context, key string) error           { return r.refuse(key) }
func (r readOnly) PutIfVersion(_ context.Context, key string, _ []byte, _ Version) (Version, error) {
	return "", r.refuse(key)
}

// Path is the local file of a key when the store is a directory ("" on S3),
// as the trusted scope's File store answers it.
func (s *Scoped) Path(key string) string {
	lp, ok := s.base.(interface{ Path(string) string })
	if !ok {
		return ""
	}
	k, err := s.key(key)
	if err != nil {
		return ""
	}
	if s.lacks(context.Background(), key, k) {
		return lp.Path(key)
	}
	return lp.Path(k)
}

// LinksExpireAt is the base store's (links of a scope are the base's links).
func (s *Scoped) LinksExpireAt(ctx context.Context, expiry time.Duration) *time.Time {
	return LinksExpireAt(ctx, s.base, expiry)
}

func (r readOnly) Path(key string) string {
	if lp, ok := r.Store.(interface{ Path(string) string }); ok {
		return lp.Path(key)
	}
	return ""
}

func (r readOnly) LinksExpireAt(ctx context.Context, expiry time.Duration) *time.Time {
	return LinksExpireAt(ctx, r.Store, expiry)
}
