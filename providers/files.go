package providers

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
)

// filesKey is the context key of an evaluation's file collector.
type filesKey struct{}

// Files collects the local files that providers read during one
// evaluation, so that the cache can watch them: when one changes, the
// environments that read it are evaluated again. It is safe for concurrent
// use.
type Files struct {
	mu    sync.Mutex
	paths []string // GUARDED_BY(mu): absolute, without repeats
}

// WithFiles returns a context whose provider calls report the files they
// read into the returned collector.
func WithFiles(ctx context.Context) (context.Context, *Files) {
	f := &Files{}
	return context.WithValue(ctx, filesKey{}, f), f
}

// ReportFile tells the evaluation running in ctx that a provider's result
// depends on the file at path (say, a Pulumi stack checkpoint on a file://
// backend). Outside an evaluation it does nothing.
func ReportFile(ctx context.Context, path string) {
	f, ok := ctx.Value(filesKey{}).(*Files)
	if !ok || path == "" {
		return
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Contains(f.paths, path) {
		f.paths = append(f.paths, path)
	}
}

// Paths returns the files reported, in the order first reported.
func (f *Files) Paths() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.paths)
}
