package pipeline

// TEMPORARY until branch `store` lands its CAS primitives (store-api:):
// these helpers stand in for store.Store's GetVersioned, PutIfVersion,
// ListPage and Delete, emulated with Get/Put/List under a process-local lock.
// Deleted after `git merge store`.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/framefleet/framefleet/pipeline/store"
)

type storeVersion = string

var errConflict = errors.New("changed by another writer")

var casMu sync.Mutex

func getVersioned(ctx context.Context, st store.Store, key string) ([]byte, storeVersion, error) {
	rc, err := st.Get(ctx, key)
	if err != nil {
		return nil, "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, "", err
	}
	s := sha256.Sum256(b)
	return b, hex.EncodeToString(s[:]), nil
}

func putIfVersion(ctx context.Context, st store.Store, key string, data []byte, match storeVersion) (storeVersion, error) {
	casMu.Lock()
	defer casMu.Unlock()
	_, cur, err := getVersioned(ctx, st, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if match != "" {
			return "", fmt.Errorf("put %s: %w", key, errConflict)
		}
	case err != nil:
		return "", err
	case match == "" || cur != match:
		return "", fmt.Errorf("put %s: %w", key, errConflict)
	}
	if err := st.Put(ctx, key, bytes.NewReader(data)); err != nil {
		return "", err
	}
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:]), nil
}

func listPage(ctx context.Context, st store.Store, prefix, startAfter string, limit int) ([]store.Object, bool, error) {
	all, err := st.List(ctx, prefix)
	if err != nil {
		return nil, false, err
	}
	var out []store.Object
	for _, o := range all {
		if o.Key <= startAfter {
			continue
		}
		if len(out) == limit {
			return out, true, nil
		}
		out = append(out, o)
	}
	return out, false, nil
}

func deleteKey(ctx context.Context, st store.Store, key string) error {
	if p, ok := st.(interface{ Path(string) string }); ok {
		if err := os.Remove(p.Path(key)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	return fmt.Errorf("delete %s: %s", key, strings.TrimSpace("not supported before the store merge"))
}
