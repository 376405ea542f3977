package runner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/escfs/escfs/eval"
)

// NewFilesDir creates a fresh directory, readable only by its owner (0700),
// for an environment's files entries, in parent or, if parent is "", on a
// memory filesystem (MemoryDir: $XDG_RUNTIME_DIR, else /dev/shm), never on
// disk: the files hold secrets.
func NewFilesDir(parent string) (string, error) {
	if parent == "" {
		mem, err := MemoryDir()
		if err != nil {
			return "", err
		}
		parent = mem
	}
	return newPrivateDir(parent, "escfs-")
}

// newPrivateDir creates a new directory named prefix followed by random
// digits in parent (os.TempDir() if "") with mode 0700.
func newPrivateDir(parent, prefix string) (string, error) {
	dir, err := os.MkdirTemp(parent, prefix+"*")
	if err != nil {
		return "", fmt.Errorf("create files directory: %w", err)
	}
	// MkdirTemp already uses 0700; make it explicit, whatever the platform.
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", errors.Join(fmt.Errorf("restrict files directory: %w", err), os.Remove(dir))
	}
	return dir, nil
}

// WriteFiles writes each files entry into dir as a new file readable only by
// its owner (0600). A file that already exists is an error.
func WriteFiles(dir string, files []eval.File) error {
	for _, f := range files {
		if err := writeFile(filepath.Join(dir, f.Name), f.Content); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path string, content []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write files entry: %w", err)
	}
	if _, err := f.Write(content); err != nil {
		return errors.Join(fmt.Errorf("write files entry %s: %w", path, err), f.Close())
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write files entry %s: %w", path, err)
	}
	return nil
}
