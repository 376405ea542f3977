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

	"github.com/escfs/escfs/internal/escfstest"
	"github.com/escfs/escfs/internal/filetree"
)

// layoutWait is how long an edit may take to show through the mount.
const layoutWait = 5 * time.Second

// layoutCase is one deployment layout: setup writes the definitions under
// base and returns the --dir to mount; change (given the mount) makes the
// edit whose result must show as V=v2 in prod.
type layoutCase struct {
	name   string
	setup  func(t *testing.T, base string) (dir string)
	change func(t *testing.T, base string, e *escfstest.Escfs)
}

// layoutCases returns the deployment layouts of README's table.
func layoutCases() []layoutCase {
	return []layoutCase{
		{name: "stow symlink", setup: func(t *testing.T, base string) string {
			filetree.WriteFile(t, filepath.Join(base, "dotfiles/prod.yaml"), valueDef("v1"))
			filetree.WriteFile(t, filepath.Join(base, "defs/good.yaml"), goodDef)
			filetree.Symlink(t, "../dotfiles/prod.yaml", filepath.Join(base, "defs/prod.yaml"))
			return filepath.Join(base, "defs")
		}, change: func(t *testing.T, base string, _ *escfstest.Escfs) {
			// In place, through the link's target.
			if err := os.WriteFile(filepath.Join(base, "dotfiles/prod.yaml"), []byte(valueDef("v2")), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "configmap volume", setup: func(t *testing.T, base string) string {
			cm := &filetree.ConfigMap{Dir: filepath.Join(base, "cm")}
			cm.Publish(t, map[string]string{"prod.yaml": valueDef("v1"), "good.yaml": goodDef})
			configMaps.Store(base, cm)
			return cm.Dir
		}, change: func(t *testing.T, base string, _ *escfstest.Escfs) {
			cm, _ := configMaps.Load(base)
			cm.(*filetree.ConfigMap).Publish(t, map[string]string{"prod.yaml": valueDef("v2"), "good.yaml": goodDef})
		}},
		{name: "--dir symlink re-pointed", setup: func(t *testing.T, base string) string {
			for _, v := range []string{"v1", "v2"} {
				filetree.WriteFile(t, filepath.Join(base, v, "prod.yaml"), valueDef(v))
				filetree.WriteFile(t, filepath.Join(base, v, "good.yaml"), goodDef)
			}
			filetree.Symlink(t, "v1", filepath.Join(base, "current"))
			return filepath.Join(base, "current")
		}, change: func(t *testing.T, base string, _ *escfstest.Escfs) {
			filetree.Symlink(t, "v2", filepath.Join(base, "current.new"))
			filetree.Rename(t, filepath.Join(base, "current.new"), filepath.Join(base, "current"))
		}},
		{name: "dir rm -rf, recreated", setup: plainDefs, change: func(t *testing.T, base string, e *escfstest.Escfs) {
			if err := os.RemoveAll(filepath.Join(base, "defs")); err != nil {
				t.Fatal(err)
			}
			escfstest.Eventually(t, layoutWait, func() string {
				if _, err := escfstest.Read(e.Path("prod/env"), 5*time.Second); !errors.Is(err, fs.ErrNotExist) {
					return fmt.Sprintf("prod/env of a deleted definitions directory: %v, want ENOENT", err)
				}
				return ""
			})
			filetree.WriteFile(t, filepath.Join(base, "defs/good.yaml"), goodDef)
			filetree.WriteFile(t, filepath.Join(base, "defs/prod.yaml"), valueDef("v2"))
		}},
		{name: "mv defs defs.old; mv defs.new defs", setup: func(t *testing.T, base string) string {
			filetree.WriteFile(t, filepath.Join(base, "defs.new/prod.yaml"), valueDef("v2"))
			filetree.WriteFile(t, filepath.Join(base, "defs.new/good.yaml"), goodDef)
			return plainDefs(t, base)
		}, change: func(t *testing.T, base string, _ *escfstest.Escfs) {
			filetree.Rename(t, filepath.Join(base, "defs"), filepath.Join(base, "defs.old"))
			filetree.Rename(t, filepath.Join(base, "defs.new"), filepath.Join(base, "defs"))
		}},
		{name: "hidden file noise", setup: plainDefs, change: func(t *testing.T, base string, _ *escfstest.Escfs) {
			stop := noise(t, filepath.Join(base, "defs", ".noise.swp"), 3*time.Millisecond)
			t.Cleanup(stop)
			time.Sleep(500 * time.Millisecond)
			if err := filetree.SaveByRename(filepath.Join(base, "defs/prod.yaml"), valueDef("v2")); err != nil {
				t.Fatal(err)
			}
		}},
	}
}

// configMaps holds each configmap case's volume, by base directory.
var configMaps sync.Map

// plainDefs writes base/defs with prod (V=v1) and good, and returns it.
func plainDefs(t *testing.T, base string) string {
	filetree.WriteFile(t, filepath.Join(base, "defs/prod.yaml"), valueDef("v1"))
	filetree.WriteFile(t, filepath.Join(base, "defs/good.yaml"), goodDef)
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
			e := escfstest.Mount(t, dir, nil)
			track(t, groupLayouts, e)
			escfstest.Eventually(t, layoutWait, shows(e, "v1"))
			start := time.Now()
			c.change(t, base, e)
			escfstest.Eventually(t, layoutWait, shows(e, "v2"))
			took := time.Since(start)
			mu.Lock()
			slowest = max(slowest, took)
			mu.Unlock()
			if c.name == "mv defs defs.old; mv defs.new defs" || c.name == "--dir symlink re-pointed" {
				// The new directory's later edits show too.
				if err := filetree.SaveByRename(filepath.Join(dir, "prod.yaml"), valueDef("v3")); err != nil {
					t.Fatal(err)
				}
				escfstest.Eventually(t, layoutWait, shows(e, "v3"))
			}
		})
	}
	note(groupLayouts, "slowest change shown after %v (bound %v)", slowest.Round(10*time.Millisecond), layoutWait)
}

// shows returns a condition for escfstest.Eventually: prod/env exports V=v and
// prod/status says ok.
func shows(e *escfstest.Escfs, v string) func() string {
	return func() string {
		b, err := escfstest.Read(e.Path("prod/env"), 5*time.Second)
		if err != nil {
			return fmt.Sprintf("prod/env: %v", err)
		}
		if want := "export V='" + v + "'\n"; string(b) != want {
			return fmt.Sprintf("prod/env = %q, want %q", b, want)
		}
		sb, err := escfstest.Read(e.Path("prod/status"), 5*time.Second)
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
