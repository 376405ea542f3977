// Package testutil holds the small helpers that tests in several packages
// share: a buffer safe for a writing child process and a reading test, and
// the lookup of the project's own files from a test's working directory.
package testutil

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"filippo.io/age"
)

// Buffer is a bytes.Buffer safe for one writer and concurrent readers, such
// as a child process's output read while it runs.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// FindUp looks for rel (such as ".ci/build-kumo") in the working directory
// and its parents and returns its path.
func FindUp(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, rel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%s not found above the working directory", rel)
		}
		dir = parent
	}
}

// MemTempDir returns a new directory on a tmpfs (/dev/shm), removed when
// the test ends: for tests of what must never reach a disk.
func MemTempDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "escfs-test-")
	if err != nil {
		tb.Fatalf("a tmpfs directory for the test (every Linux has /dev/shm): %v", err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// AgeIdentity returns a fresh age identity and its recipient.
func AgeIdentity(tb testing.TB) (*age.X25519Identity, string) {
	tb.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		tb.Fatal(err)
	}
	return id, id.Recipient().String()
}
