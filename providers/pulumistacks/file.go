package pulumistacks

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/escfs/escfs/providers"
)

// fileStore is the store of a file:// backend: a directory.
type fileStore struct {
	root string // absolute
}

// newFileBackend opens file://PATH as the Pulumi CLI does: a query
// (?no_tmp_dir=...) is ignored, a leading ~ is the home directory, and a
// relative path is relative to the working directory. The directory must
// exist.
func newFileBackend(url string) (Backend, error) {
	p := url[len("file://"):]
	p, _, _ = strings.Cut(p, "?")
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("backend %s: %w", url, err)
		}
		p = filepath.Join(home, p[1:])
	}
	if p == "" {
		return nil, fmt.Errorf("backend %s: no path", url)
	}
	root, err := filepath.Abs(p)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", url, err)
	}
	fi, err := os.Stat(root)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("backend %s: directory %s does not exist", url, root)
	case err != nil:
		return nil, fmt.Errorf("backend %s: %w", url, err)
	case !fi.IsDir():
		return nil, fmt.Errorf("backend %s: %s is not a directory", url, root)
	}
	return &diyBackend{url: url, store: fileStore{root: root}}, nil
}

func (s fileStore) path(key string) string { return filepath.Join(s.root, filepath.FromSlash(key)) }

func (s fileStore) modTimes(_ context.Context, keys []string) (map[string]time.Time, error) {
	times := map[string]time.Time{}
	for _, k := range keys {
		fi, err := os.Stat(s.path(k))
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			continue
		}
		if err != nil {
			return nil, unwrapPath(err)
		}
		if fi.Mode().IsRegular() {
			times[k] = fi.ModTime()
		}
	}
	return times, nil
}

func (s fileStore) read(_ context.Context, key string) ([]byte, error) {
	b, err := os.ReadFile(s.path(key))
	if err != nil {
		return nil, unwrapPath(err)
	}
	return b, nil
}

func (s fileStore) where(key string) string { return s.path(key) }

// watch reports the file at key, if its directory exists (a directory that
// does not exist cannot be watched).
func (s fileStore) watch(ctx context.Context, key string) {
	p := s.path(key)
	if fi, err := os.Stat(filepath.Dir(p)); err == nil && fi.IsDir() {
		providers.ReportFile(ctx, p)
	}
}

// unwrapPath drops the path of a *fs.PathError: the messages name it already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
