package store

import (
	"context"
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
	if err := checkKey(key); err != nil {
		return err
	}
	dst := s.Path(key)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("store %s: %w", key, err)
	}
	tmp, err := createTemp(dst)
	if err != nil {
		return fmt.Errorf("store %s: %w", key, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, ctxReader{ctx, r}); err != nil {
		tmp.Close()
		return fmt.Errorf("store %s: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("store %s: %w", key, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("store %s: %w", key, err)
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
