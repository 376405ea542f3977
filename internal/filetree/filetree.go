// Package filetree writes the file trees tests need and saves files the
// ways real tools do: careful editors (a new file renamed over the old),
// editors and shell redirections that save in place (truncate, then
// write), and the kubelet publishing a ConfigMap volume. Every test that
// writes definitions uses it, so each save pattern is written once.
package filetree

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Write writes files (slash-separated path relative to dir -> content)
// under dir, creating directories as needed; an empty dir means a new
// temporary directory. It returns dir.
func Write(tb testing.TB, dir string, files map[string]string) string {
	tb.Helper()
	if dir == "" {
		dir = tb.TempDir()
	}
	for rel, content := range files {
		WriteFile(tb, filepath.Join(dir, filepath.FromSlash(rel)), content)
	}
	return dir
}

// WriteFile writes content at p, creating its directory.
func WriteFile(tb testing.TB, p, content string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// Symlink creates link pointing at target.
func Symlink(tb testing.TB, target, link string) {
	tb.Helper()
	if err := os.Symlink(target, link); err != nil {
		tb.Fatal(err)
	}
}

// Rename renames from to to.
func Rename(tb testing.TB, from, to string) {
	tb.Helper()
	if err := os.Rename(from, to); err != nil {
		tb.Fatal(err)
	}
}

// SaveByRename saves content at p as careful editors do: a new hidden file
// beside it, renamed over it. It returns an error rather than failing the
// test, so that writers on other goroutines can use it.
func SaveByRename(p, content string) error {
	tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".new~")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return fmt.Errorf("save %s by rename: %w", p, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("save %s by rename: %w", p, err)
	}
	return nil
}

// SaveInPlace saves content at p as `>` redirections and many editors do:
// truncate the file, and pause before writing it in two halves, 2 ms
// apart, so that a reader can see it empty and then cut.
func SaveInPlace(p, content string, pause time.Duration) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("save %s in place: %w", p, err)
	}
	defer f.Close()
	time.Sleep(pause)
	half := len(content) / 2
	if _, err := f.WriteString(content[:half]); err != nil {
		return fmt.Errorf("save %s in place: %w", p, err)
	}
	time.Sleep(2 * time.Millisecond)
	if _, err := f.WriteString(content[half:]); err != nil {
		return fmt.Errorf("save %s in place: %w", p, err)
	}
	return f.Close()
}

// WriteByRename writes files (slash-separated path relative to dir ->
// content) into dir as SaveByRename does, creating directories as needed,
// so that a watcher never sees half a file.
func WriteByRename(tb testing.TB, dir string, files map[string]string) {
	tb.Helper()
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := SaveByRename(p, content); err != nil {
			tb.Fatal(err)
		}
	}
}
