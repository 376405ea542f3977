package fs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escfs/escfs/internal/filetree"
)

// layoutLimit bounds the wait for a layout change to show through the
// mount: the debounce, a rescan, an evaluation, and a wide margin for a
// loaded machine. It is a bound, not a speed assertion.
const layoutLimit = 10 * time.Second

// withDir makes the store serve dir instead of the directory mountT fills.
func withDir(dir string) mountOpt { return func(s *mountSettings) { s.store.Dir = dir } }

// configMap writes a directory as the kubelet writes a ConfigMap volume
// (pkg/volume/util/atomic_writer.go): the data in a timestamped hidden
// directory, "..data" pointing at it, each key a symlink through "..data".
type configMap struct {
	dir string // the volume directory
	ts  string // the current timestamped directory, by name
}

// publish writes files as the volume's new content, in the kubelet's
// order: a new timestamped directory with the files, "..data_tmp" pointing
// at it renamed over "..data" (the atomic step), the keys' symlinks on
// first use, then the old timestamped directory removed.
func (c *configMap) publish(tb testing.TB, files map[string]string) {
	tb.Helper()
	ts, err := os.MkdirTemp(c.dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		tb.Fatal(err)
	}
	for name, content := range files {
		filetree.WriteFile(tb, filepath.Join(ts, name), content)
	}
	tmp := filepath.Join(c.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, "..data")); err != nil {
		tb.Fatal(err)
	}
	for name := range files {
		link := filepath.Join(c.dir, name)
		if _, err := os.Lstat(link); errors.Is(err, os.ErrNotExist) {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if c.ts != "" {
		if err := os.RemoveAll(filepath.Join(c.dir, c.ts)); err != nil {
			tb.Fatal(err)
		}
	}
	c.ts = filepath.Base(ts)
}

// TestLayoutConfigMapThroughMount serves a Kubernetes ConfigMap volume as
// the definitions directory. Each update swaps "..data" exactly as the
// kubelet does and shows on the next reads of the environment and of its
// importer through the mount; the hidden entries are never environments.
func TestLayoutConfigMapThroughMount(t *testing.T) {
	needRoot(t, "mounts")
	cm := &configMap{dir: t.TempDir()}
	importer := "imports: [prod]\nvalues:\n  environmentVariables:\n    W: imported-${v}\n"
	cm.publish(t, map[string]string{"prod.yaml": valueDef("one"), "app.yaml": importer})
	tm := mountT(t, nil, withDir(cm.dir))

	if got := join(names(t, tm.mnt)); got != "app,prod" {
		t.Fatalf("mount lists %q, want app,prod (no hidden entries)", got)
	}
	envHas := func(env, want string) func() (bool, string) {
		return func() (bool, string) {
			b, err := readFile(t, tm.path(env, "env"))
			return err == nil && strings.Contains(string(b), want), fmt.Sprintf("%s/env = %q %v", env, b, err)
		}
	}
	eventually(t, layoutLimit, "initial", envHas("prod", "V='one'"))
	eventually(t, layoutLimit, "initial importer", envHas("app", "W='imported-one'"))

	for _, v := range []string{"two", "three"} {
		cm.publish(t, map[string]string{"prod.yaml": valueDef(v), "app.yaml": importer})
		took := eventually(t, layoutLimit, "update "+v, envHas("prod", "V='"+v+"'"))
		eventually(t, layoutLimit, "update "+v+": importer", envHas("app", "W='imported-"+v+"'"))
		t.Logf("update %s: visible after %v", v, took.Round(time.Millisecond))
	}
	if got := join(names(t, tm.mnt)); got != "app,prod" {
		t.Fatalf("after updates the mount lists %q, want app,prod", got)
	}
	if st := tm.statusOf("prod"); st.State != "ok" || !strings.HasPrefix(st.Definition, cm.dir) {
		t.Fatalf("status = %+v", st)
	}
}
