//go:build torture

package torture

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/escfs/escfs/e2e"
)

// layoutWait is how long an edit may take to show through the mount.
const layoutWait = 5 * time.Second

// layoutCase is one deployment layout: setup writes the definitions under
// base and returns the --dir to mount; change (given the mount) makes the
// edit whose result must show as V=v2 in prod.
type layoutCase struct {
	name   string
	setup  func(t *testing.T, base string) (dir string)
	change func(t *testing.T, base string, e *e2e.Escfs)
}

// layoutCases returns the deployment layouts of README's table.
func layoutCases() []layoutCase {
	return []layoutCase{
		{name: "stow symlink", setup: func(t *testing.T, base string) string {
			writeFile(t, base, "dotfiles/prod.yaml", valueDef("v1"))
			writeFile(t, base, "defs/good.yaml", goodDef)
			symlink(t, "../dotfiles/prod.yaml", filepath.Join(base, "defs/prod.yaml"))
			return filepath.Join(base, "defs")
		}, change: func(t *testing.T, base string, _ *e2e.Escfs) {
			// In place, through the link's target.
			if err := os.WriteFile(filepath.Join(base, "dotfiles/prod.yaml"), []byte(valueDef("v2")), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "configmap volume", setup: func(t *testing.T, base string) string {
			cm := &configMap{dir: filepath.Join(base, "cm")}
			cm.publish(t, map[string]string{"prod.yaml": valueDef("v1"), "good.yaml": goodDef})
			configMaps.Store(base, cm)
			return cm.dir
		}, change: func(t *testing.T, base string, _ *e2e.Escfs) {
			cm, _ := configMaps.Load(base)
			cm.(*configMap).publish(t, map[string]string{"prod.yaml": valueDef("v2"), "good.yaml": goodDef})
		}},
		{name: "--dir symlink re-pointed", setup: func(t *testing.T, base string) string {
			for _, v := range []string{"v1", "v2"} {
				writeFile(t, base, v+"/prod.yaml", valueDef(v))
				writeFile(t, base, v+"/good.yaml", goodDef)
			}
			symlink(t, "v1", filepath.Join(base, "current"))
			return filepath.Join(base, "current")
		}, change: func(t *testing.T, base string, _ *e2e.Escfs) {
			symlink(t, "v2", filepath.Join(base, "current.new"))
			rename(t, filepath.Join(base, "current.new"), filepath.Join(base, "current"))
		}},
		{name: "dir rm -rf, recreated", setup: plainDefs, change: func(t *testing.T, base string, e *e2e.Escfs) {
			if err := os.RemoveAll(filepath.Join(base, "defs")); err != nil {
				t.Fatal(err)
			}
			e2e.Eventually(t, layoutWait, func() string {
				if _, err := readWithin(e.Path("prod/env"), 5*time.Second); !errors.Is(err, fs.ErrNotExist) {
					return fmt.Sprintf("prod/env of a deleted definitions directory: %v, want ENOENT", err)
				}
				return ""
			})
			writeFile(t, base, "defs/good.yaml", goodDef)
			writeFile(t, base, "defs/prod.yaml", valueDef("v2"))
		}},
		{name: "mv defs defs.old; mv defs.new defs", setup: func(t *testing.T, base string) string {
			writeFile(t, base, "defs.new/prod.yaml", valueDef("v2"))
			writeFile(t, base, "defs.new/good.yaml", goodDef)
			return plainDefs(t, base)
		}, change: func(t *testing.T, base string, _ *e2e.Escfs) {
			rename(t, filepath.Join(base, "defs"), filepath.Join(base, "defs.old"))
			rename(t, filepath.Join(base, "defs.new"), filepath.Join(base, "defs"))
		}},
		{name: "hidden file noise", setup: plainDefs, change: func(t *testing.T, base string, _ *e2e.Escfs) {
			stop := noise(t, filepath.Join(base, "defs", ".noise.swp"), 3*time.Millisecond)
			t.Cleanup(stop)
			time.Sleep(500 * time.Millisecond)
			renameSave(t, filepath.Join(base, "defs/prod.yaml"), valueDef("v2"))
		}},
	}
}

// configMaps holds each configmap case's volume, by base directory.
var configMaps sync.Map

// plainDefs writes base/defs with prod (V=v1) and good, and returns it.
func plainDefs(t *testing.T, base string) string {
	writeFile(t, base, "defs/prod.yaml", valueDef("v1"))
	writeFile(t, base, "defs/good.yaml", goodDef)
	return filepath.Join(base, "defs")
}

// TestLayouts mounts each layout, checks V=v1, makes its change and expects
// V=v2 through the mount within layoutWait, with status ok.
func TestLayouts(t *testing.T) {
	var mu sync.Mutex
	var slowest time.Duration
	for _, c := range layoutCases() {
		t.Run(c.name, func(t *testing.T) {
			base := t.TempDir()
			dir := c.setup(t, base)
			e := e2e.Mount(t, dir, nil)
			track(t, groupLayouts, e)
			e2e.Eventually(t, layoutWait, shows(e, "v1"))
			start := time.Now()
			c.change(t, base, e)
			e2e.Eventually(t, layoutWait, shows(e, "v2"))
			took := time.Since(start)
			mu.Lock()
			slowest = max(slowest, took)
			mu.Unlock()
			if c.name == "mv defs defs.old; mv defs.new defs" || c.name == "--dir symlink re-pointed" {
				// The new directory's later edits show too.
				renameSave(t, filepath.Join(dir, "prod.yaml"), valueDef("v3"))
				e2e.Eventually(t, layoutWait, shows(e, "v3"))
			}
		})
	}
	note(groupLayouts, "slowest change shown after %v (bound %v)", slowest.Round(10*time.Millisecond), layoutWait)
}

// shows returns a condition for e2e.Eventually: prod/env exports V=v and
// prod/status says ok.
func shows(e *e2e.Escfs, v string) func() string {
	return func() string {
		b, err := readWithin(e.Path("prod/env"), 5*time.Second)
		if err != nil {
			return fmt.Sprintf("prod/env: %v", err)
		}
		if want := "export V='" + v + "'\n"; string(b) != want {
			return fmt.Sprintf("prod/env = %q, want %q", b, want)
		}
		sb, err := readWithin(e.Path("prod/status"), 5*time.Second)
		if err != nil {
			return fmt.Sprintf("prod/status: %v", err)
		}
		if st := decodeStatus(sb); st.State != "ok" {
			return fmt.Sprintf("prod/status state %q with V=%s, want ok", st.State, v)
		}
		return ""
	}
}

// noise rewrites path every period until the returned stop is called.
func noise(t *testing.T, path string, period time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(period)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-tick.C:
				_ = os.WriteFile(path, fmt.Appendf(nil, "noise %d\n", i), 0o644)
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// symlink makes link point at target.
func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// rename renames from to to.
func rename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

// configMap writes a directory as the kubelet writes a ConfigMap volume
// (pkg/volume/util/atomic_writer.go): the data in a timestamped hidden
// directory, "..data" pointing at it, each key a symlink through "..data".
type configMap struct {
	dir string // the volume directory
	ts  string // the current timestamped directory, by name
}

// publish writes files as the volume's new content, in the kubelet's order:
// a new ..TIMESTAMP directory with the files, "..data_tmp" pointing at it
// renamed over "..data" (the atomic step), the keys' symlinks on first use,
// then the old timestamped directory removed.
func (c *configMap) publish(t *testing.T, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ts, err := os.MkdirTemp(c.dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		writeFile(t, ts, name, content)
	}
	tmp := filepath.Join(c.dir, "..data_tmp")
	symlink(t, filepath.Base(ts), tmp)
	rename(t, tmp, filepath.Join(c.dir, "..data"))
	for name := range files {
		link := filepath.Join(c.dir, name)
		if _, err := os.Lstat(link); errors.Is(err, os.ErrNotExist) {
			symlink(t, filepath.Join("..data", name), link)
		}
	}
	if c.ts != "" {
		if err := os.RemoveAll(filepath.Join(c.dir, c.ts)); err != nil {
			t.Fatal(err)
		}
	}
	c.ts = filepath.Base(ts)
}
