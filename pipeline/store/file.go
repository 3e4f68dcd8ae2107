package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// File is a store in a local directory.
type File struct {
	root string
}

// NewFile opens (and creates) a directory store.
func NewFile(dir string) (*File, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("store directory %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("create store directory: %w", err)
	}
	return &File{root: abs}, nil
}

// Root is the directory holding the store.
func (s *File) Root() string { return s.root }

// Path is the local path of key.
func (s *File) Path(key string) string { return filepath.Join(s.root, filepath.FromSlash(key)) }

// URI implements Store.
func (s *File) URI() string { return (&url.URL{Scheme: "file", Path: s.root}).String() }

// Put writes to a temporary file and renames it, so a reader (or a killed
// writer) never leaves a partial object behind under the real key.
func (s *File) Put(ctx context.Context, key string, r io.Reader) error {
	if err := checkFileKey(key); err != nil {
		return err
	}
	return s.write(ctx, key, r, false, nil)
}

// write copies r to a temporary file beside key's and renames it into place
// under the key's lock, so the rename cannot fall between a conditional
// writer's check and its own rename. check, if any, runs under the lock
// first and may refuse the rename; sync makes the bytes durable before it.
func (s *File) write(ctx context.Context, key string, r io.Reader, sync bool, check func(dst string) error) error {
	dst := s.Path(key)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("store %s: %w", key, err)
	}
	tmp, err := createTemp(dst)
	if err != nil {
		return fmt.Errorf("store %s: %w", key, err)
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, ctxReader{ctx, r})
	if err == nil && sync {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store %s: %w", key, err)
	}
	unlock, err := s.lock(key)
	if err != nil {
		return fmt.Errorf("store %s: %w", key, err)
	}
	defer unlock()
	if check != nil {
		if err := check(dst); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("store %s: %w", key, err)
	}
	return nil
}

// lockDir holds the key locks, inside the root but outside the key space:
// checkFileKey refuses keys under it and List skips it.
const lockDir = ".framefleet-locks"

// lock takes the cross-process lock guarding key's content. Keys share 256
// lock files (by the first byte of their hash): a lock is held only for a
// check and a rename, so keys sharing one barely wait, and the store does not
// grow a lock file for every frame it holds.
func (s *File) lock(key string) (unlock func(), err error) {
	dir := filepath.Join(s.root, lockDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(key))
	return lockFile(filepath.Join(dir, fmt.Sprintf("%02x.lock", sum[0])))
}

// checkFileKey is checkKey plus the file store's reserved names.
func checkFileKey(key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if key == lockDir || strings.HasPrefix(key, lockDir+"/") {
		return fmt.Errorf("invalid store key %q: %s/ is reserved for the store's locks", key, lockDir)
	}
	return nil
}

// fileVersion is the version of a file store object: its content hash, so
// rewriting identical bytes keeps the version and any change makes a new one.
func fileVersion(data []byte) Version {
	sum := sha256.Sum256(data)
	return Version(hex.EncodeToString(sum[:]))
}

// GetVersioned implements Store. Writers rename whole files into place, so
// the bytes read are always one complete version.
func (s *File) GetVersioned(ctx context.Context, key string) ([]byte, Version, error) {
	if err := checkFileKey(key); err != nil {
		return nil, "", err
	}
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	data, err := os.ReadFile(s.Path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", key, err)
	}
	return data, fileVersion(data), nil
}

// PutIfVersion implements Store: the data goes to a synced temporary file
// first, then, under the key's flock, the current version is checked and the
// file renamed into place.
func (s *File) PutIfVersion(ctx context.Context, key string, data []byte, match Version) (Version, error) {
	if err := checkFileKey(key); err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	// Records written this way are the ones a crash must not empty: synced.
	err := s.write(ctx, key, bytes.NewReader(data), true, func(dst string) error {
		cur, err := os.ReadFile(dst)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if match != "" {
				return fmt.Errorf("store %s: %w: it was deleted", key, ErrConflict)
			}
		case err != nil:
			return fmt.Errorf("store %s: read current version: %w", key, err)
		case match == "":
			return fmt.Errorf("store %s: %w: it exists already", key, ErrConflict)
		case fileVersion(cur) != match:
			return fmt.Errorf("store %s: %w: it is no longer version %.12s", key, ErrConflict, match)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return fileVersion(data), nil
}

// ListPage implements Store.
func (s *File) ListPage(ctx context.Context, prefix, startAfter string, limit int) ([]Object, bool, error) {
	limit = pageLimit(limit)
	all, err := s.List(ctx, prefix)
	if err != nil {
		return nil, false, err
	}
	i := sort.Search(len(all), func(i int) bool { return all[i].Key > startAfter })
	page := all[i:]
	if len(page) > limit {
		return page[:limit:limit], true, nil
	}
	return page, false, nil
}

// Delete implements Store.
func (s *File) Delete(ctx context.Context, key string) error {
	if err := checkFileKey(key); err != nil {
		return err
	}
	unlock, err := s.lock(key)
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	defer unlock()
	if err := os.Remove(s.Path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// PutFile implements Store.
func (s *File) PutFile(ctx context.Context, key, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("store %s: %w", key, err)
	}
	defer f.Close()
	return s.Put(ctx, key, f)
}

// Get implements Store.
func (s *File) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	f, err := os.Open(s.Path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return f, nil
}

// GetFile implements Store.
func (s *File) GetFile(ctx context.Context, key, path string) error {
	rc, err := s.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	return writeFileAtomic(ctx, path, rc)
}

// Stat implements Store.
func (s *File) Stat(ctx context.Context, key string) (Object, error) {
	if err := checkKey(key); err != nil {
		return Object{}, err
	}
	fi, err := os.Stat(s.Path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return Object{}, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if err != nil {
		return Object{}, fmt.Errorf("stat %s: %w", key, err)
	}
	return Object{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List implements Store.
func (s *File) List(ctx context.Context, prefix string) ([]Object, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	// Walk only the deepest directory the prefix names.
	dir := s.root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dir = s.Path(prefix[:i])
	}
	var out []Object
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() && p == filepath.Join(s.root, lockDir) {
			return filepath.SkipDir
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".tmp-") {
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // removed while walking
		}
		out = append(out, Object{Key: key, Size: fi.Size(), ModTime: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Link implements Store; local files need no signing, so expiry is ignored.
func (s *File) Link(ctx context.Context, key string, expiry time.Duration) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	return (&url.URL{Scheme: "file", Path: s.Path(key)}).String(), nil
}

func writeFileAtomic(ctx context.Context, path string, r io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := createTemp(path)
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, ctxReader{ctx, r}); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ctxReader stops long copies when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// createTemp makes the temporary file that is renamed to path. CreateTemp's
// 0600 would make renders unreadable to anyone the user shares them with.
func createTemp(path string) (*os.File, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return nil, err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, err
	}
	return tmp, nil
}
