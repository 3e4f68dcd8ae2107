// Package store keeps a run's inputs and outputs under one documented layout
// (see layout.go) in a local directory (file://) or an S3 bucket (s3://).
//
// Records that several processes update (a run's record: a watcher and a
// cancel) use GetVersioned and PutIfVersion, a compare-and-swap: S3's
// conditional writes (If-None-Match / If-Match), or in a directory a
// content hash checked under a per-key flock, kept in .framefleet-locks/ at
// the root, so processes on one machine never lose each other's update.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// ErrNotFound is returned (wrapped) when a key does not exist.
var ErrNotFound = errors.New("not found in store")

// ErrConflict is returned (wrapped) by PutIfVersion when the object is not
// in the state the writer expected: another writer got there first. Read it
// again, re-apply the change and retry.
var ErrConflict = errors.New("changed by another writer")

// Version identifies one stored content of a key: an S3 ETag, or the SHA-256
// of a file store object. It is opaque: compare it only for equality and pass
// it back to PutIfVersion.
type Version string

// MaxListPage is the most objects one ListPage call returns (S3's MaxKeys limit).
const MaxListPage = 1000

// Object describes a stored object.
type Object struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// Store is the storage every stage shares. Keys are slash-separated and
// relative to the store's root (a directory, or a bucket plus prefix).
type Store interface {
	// Put stores r under key; readers never observe a partial object.
	Put(ctx context.Context, key string, r io.Reader) error
	// PutFile stores a local file under key.
	PutFile(ctx context.Context, key, path string) error
	// Get opens key for reading.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// GetFile copies key into a local file, replacing it atomically.
	GetFile(ctx context.Context, key, path string) error
	// Stat describes key or returns ErrNotFound.
	Stat(ctx context.Context, key string) (Object, error)
	// List returns every object whose key starts with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]Object, error)
	// Link returns a URL a person can open: a file:// URL for local stores,
	// a presigned GET URL (expiry at most 7 days) for S3. It only signs: it
	// does not check that key exists (use Stat or List), so linking ten
	// thousand frames costs no request.
	Link(ctx context.Context, key string, expiry time.Duration) (string, error)
	// GetVersioned reads a whole (small) object and its version; a missing
	// key is an error wrapping ErrNotFound.
	GetVersioned(ctx context.Context, key string) ([]byte, Version, error)
	// PutIfVersion writes data under key only if the key is in the state
	// match names: match "" means "only if absent", any other value "only
	// if the current version is match". It returns the new version, or an
	// error wrapping ErrConflict when the condition does not hold. Two
	// writers (goroutines or processes) never both win against one version.
	PutIfVersion(ctx context.Context, key string, data []byte, match Version) (Version, error)
	// ListPage returns at most limit objects whose keys start with prefix and
	// sort after startAfter ("" for the first page), ascending by key, and
	// whether more follow. On S3 it is one request. limit <= 0 or above
	// MaxListPage means MaxListPage.
	ListPage(ctx context.Context, prefix, startAfter string, limit int) ([]Object, bool, error)
	// Delete removes key; a key that does not exist is not an error.
	Delete(ctx context.Context, key string) error
	// URI is the store's own address, e.g. file:///home/me/renders or s3://bucket/prefix.
	URI() string
}

// Options configure stores that need them.
type Options struct {
	// S3 settings; ignored by file stores.
	Region       string
	Endpoint     string // custom endpoint for S3-compatible servers, with scheme
	UsePathStyle bool

	// Credentials replaces the default AWS credential chain (environment,
	// shared config, web identity, ECS/EC2 roles); tests pass static keys.
	Credentials aws.CredentialsProvider
	// HTTPClient replaces the SDK's HTTP client (nil: the SDK default).
	HTTPClient *http.Client
	// MaxAttempts is how often one S3 call is tried before giving up
	// (default 8), so transient 500/503/throttling answers do not fail a render.
	MaxAttempts int
	// MaxBackoff caps the wait between two attempts (default 20s).
	MaxBackoff time.Duration
	// PartSize is the multipart part size in bytes (default 8 MiB, at least 5 MiB).
	PartSize int64
	// MultipartThreshold: objects at least this large are uploaded in parts
	// (default 16 MiB).
	MultipartThreshold int64
	// Concurrency is how many parts of one object move at once (default 5).
	Concurrency int
	// Timeouts bound every call, so a server that accepts connections and
	// never answers is an outage like a refused connection (zero fields:
	// the defaults, see Timeouts).
	Timeouts Timeouts
	// FailFast treats refused connections, unknown names, TLS handshakes
	// against a plain-HTTP port and refused signatures as configuration
	// mistakes (a *HintError with FirstContact, not retried) until the store
	// has answered once in this process; after that, an attempt that got no
	// answer at all (refused, reset, stalled) is handed back at once rather
	// than retried by the SDK for minutes, so the caller's outage loop can
	// say that it waits. Front-ends set it; workers do not, since a worker
	// that starts during an outage must ride it out on its own.
	FailFast bool
	// PresignExpiry is the lifetime of a link when Link is given expiry 0
	// (default 24h, at most 7 days; with CloudFront at most 366 days).
	PresignExpiry time.Duration
	// CloudFront, when set, makes Link return CloudFront signed URLs, which
	// outlive the credentials, instead of presigned S3 URLs.
	CloudFront CloudFront
}

// Open returns the store for a URI: file:///abs/dir, a plain directory path,
// or s3://bucket/optional/prefix.
//
// A URI may name a trust scope, s3://bucket/prefix?scope=preview: the store
// is then that scope's (NewScoped), as a scoped store's URI says.
func Open(ctx context.Context, uri string, opts Options) (Store, error) {
	if uri == "" {
		return nil, errors.New("no store given: use a directory, file:///dir or s3://bucket/prefix")
	}
	base, scope, err := SplitScope(uri)
	if err != nil {
		return nil, err
	}
	if scope != TrustedScope {
		st, err := openRoot(ctx, base, opts)
		if err != nil {
			return nil, err
		}
		return NewScoped(st, scope)
	}
	return openRoot(ctx, uri, opts)
}

func openRoot(ctx context.Context, uri string, opts Options) (Store, error) {
	if !strings.Contains(uri, "://") {
		return NewFile(uri)
	}
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("store %q is not a valid URI: %w", uri, err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("store %q names a host: use file:///absolute/path", uri)
		}
		return NewFile(u.Path)
	case "s3":
		if u.Host == "" {
			return nil, fmt.Errorf("store %q has no bucket: use s3://bucket/prefix", uri)
		}
		return NewS3(ctx, u.Host, strings.Trim(u.Path, "/"), opts)
	}
	return nil, fmt.Errorf("store %q: unknown scheme %q: use file:// or s3://", uri, u.Scheme)
}

// pageLimit applies ListPage's limit rules.
func pageLimit(limit int) int {
	if limit <= 0 || limit > MaxListPage {
		return MaxListPage
	}
	return limit
}

// checkPrefix rejects list prefixes that could escape the store root.
func checkPrefix(prefix string) error {
	if strings.HasPrefix(prefix, "/") || strings.Contains(prefix, "\\") || slices.Contains(strings.Split(prefix, "/"), "..") {
		return fmt.Errorf("invalid store prefix %q: use a relative prefix such as runs/<id>/", prefix)
	}
	return nil
}

// checkKey rejects keys that could escape the store root.
func checkKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "\\") {
		return fmt.Errorf("invalid store key %q", key)
	}
	for _, part := range strings.Split(key, "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("invalid store key %q", key)
		}
	}
	return nil
}
