package filetree

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// ConfigMap writes a directory the way the kubelet fills a ConfigMap
// volume (pkg/volume/util/atomic_writer.go): the data lives in a
// timestamped hidden directory, "..data" points at it, and every key is a
// symlink through "..data".
type ConfigMap struct {
	Dir string // the volume directory
	ts  string // the current timestamped directory, by name
}

// Publish writes files as the volume's new content: a new timestamped
// directory, "..data_tmp" pointing at it, renamed over "..data" (the atomic
// step), the keys' symlinks on first use, and the old directory removed.
func (c *ConfigMap) Publish(t testing.TB, files map[string]string) {
	t.Helper()
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	check(os.MkdirAll(c.Dir, 0o755))
	ts, err := os.MkdirTemp(c.Dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	check(err)
	check(os.Chmod(ts, 0o755)) // as the kubelet's, readable by the pod's user
	for name, content := range files {
		check(os.MkdirAll(filepath.Dir(filepath.Join(ts, name)), 0o755))
		check(os.WriteFile(filepath.Join(ts, name), []byte(content), 0o644))
	}
	tmp := filepath.Join(c.Dir, "..data_tmp")
	check(os.Symlink(filepath.Base(ts), tmp))
	check(os.Rename(tmp, filepath.Join(c.Dir, "..data")))
	for name := range files {
		link := filepath.Join(c.Dir, name)
		if _, err := os.Lstat(link); errors.Is(err, os.ErrNotExist) {
			check(os.Symlink(filepath.Join("..data", name), link))
		}
	}
	if c.ts != "" {
		check(os.RemoveAll(filepath.Join(c.Dir, c.ts)))
	}
	c.ts = filepath.Base(ts)
}
