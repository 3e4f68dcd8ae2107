package store

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// WithPrefix is a view of st in which every key lives under prefix (for
// example "scopes/team-a/"): what a reader of the view calls "runs/x/"
// is "scopes/team-a/runs/x/" in st. An empty prefix returns st itself.
func WithPrefix(st Store, prefix string) (Store, error) {
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return st, nil
	}
	if err := checkKey(prefix); err != nil {
		return nil, fmt.Errorf("store prefix %q: use slash-separated names without . or .. parts", prefix)
	}
	return prefixed{st: st, prefix: prefix + "/"}, nil
}

type prefixed struct {
	st     Store
	prefix string
}

func (p prefixed) Put(ctx context.Context, key string, r io.Reader) error {
	return p.st.Put(ctx, p.prefix+key, r)
}
func (p prefixed) PutFile(ctx context.Context, key, path string) error {
	return p.st.PutFile(ctx, p.prefix+key, path)
}
func (p prefixed) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return p.st.Get(ctx, p.prefix+key)
}
func (p prefixed) GetFile(ctx context.Context, key, path string) error {
	return p.st.GetFile(ctx, p.prefix+key, path)
}
func (p prefixed) Stat(ctx context.Context, key string) (Object, error) {
	o, err := p.st.Stat(ctx, p.prefix+key)
	o.Key = strings.TrimPrefix(o.Key, p.prefix)
	return o, err
}
func (p prefixed) List(ctx context.Context, prefix string) ([]Object, error) {
	objs, err := p.st.List(ctx, p.prefix+prefix)
	return trimKeys(objs, p.prefix), err
}
func (p prefixed) Link(ctx context.Context, key string, expiry time.Duration) (string, error) {
	return p.st.Link(ctx, p.prefix+key, expiry)
}
func (p prefixed) GetVersioned(ctx context.Context, key string) ([]byte, Version, error) {
	return p.st.GetVersioned(ctx, p.prefix+key)
}
func (p prefixed) PutIfVersion(ctx context.Context, key string, data []byte, match Version) (Version, error) {
	return p.st.PutIfVersion(ctx, p.prefix+key, data, match)
}
func (p prefixed) ListPage(ctx context.Context, prefix, startAfter string, limit int) ([]Object, bool, error) {
	if startAfter != "" {
		startAfter = p.prefix + startAfter
	}
	objs, more, err := p.st.ListPage(ctx, p.prefix+prefix, startAfter, limit)
	return trimKeys(objs, p.prefix), more, err
}
func (p prefixed) Delete(ctx context.Context, key string) error {
	return p.st.Delete(ctx, p.prefix+key)
}
func (p prefixed) URI() string {
	return strings.TrimSuffix(p.st.URI(), "/") + "/" + strings.TrimSuffix(p.prefix, "/")
}

// trimKeys takes prefix off the keys of objs listed under it, in place.
func trimKeys(objs []Object, prefix string) []Object {
	for i := range objs {
		objs[i].Key = strings.TrimPrefix(objs[i].Key, prefix)
	}
	return objs
}
