package fs

import (
	"fmt"
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
func withDir(dir string) mountOpt { return func(s *mountSettings) { s.dir = dir } }

// TestLayoutConfigMapThroughMount serves a Kubernetes ConfigMap volume as
// the definitions directory. Each update swaps "..data" exactly as the
// kubelet does and shows on the next reads of the environment and of its
// importer through the mount; the hidden entries are never environments.
func TestLayoutConfigMapThroughMount(t *testing.T) {
	needRoot(t, "mounts")
	cm := &filetree.ConfigMap{Dir: t.TempDir()}
	importer := "imports: [prod]\nvalues:\n  environmentVariables:\n    W: imported-${v}\n"
	cm.Publish(t, map[string]string{"prod.yaml": valueDef("one"), "app.yaml": importer})
	tm := mountT(t, nil, withDir(cm.Dir))

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
		cm.Publish(t, map[string]string{"prod.yaml": valueDef(v), "app.yaml": importer})
		took := eventually(t, layoutLimit, "update "+v, envHas("prod", "V='"+v+"'"))
		eventually(t, layoutLimit, "update "+v+": importer", envHas("app", "W='imported-"+v+"'"))
		t.Logf("update %s: visible after %v", v, took.Round(time.Millisecond))
	}
	if got := join(names(t, tm.mnt)); got != "app,prod" {
		t.Fatalf("after updates the mount lists %q, want app,prod", got)
	}
	if st := tm.statusOf("prod"); st.State != "ok" || !strings.HasPrefix(st.Definition, cm.Dir) {
		t.Fatalf("status = %+v", st)
	}
}
