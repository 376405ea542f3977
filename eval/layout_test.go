package eval_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pulumi/esc"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/eval/evaltest"
	"github.com/escfs/escfs/internal/filetree"
)

// The deployment layouts of DESIGN.md and issue 10: each changes a
// definition without an event on the definition's own path. Every test
// reads through a watching store, changes the layout as its tool does, and
// waits (bounded, polling) for the change to show. The periodic re-check
// is off, so only events can make them pass.

// layoutLimit bounds every wait for a change to show: the debounce or the
// 1 s maximum wait, a rescan, an evaluation, and a wide margin for a loaded
// machine. It is a bound, not a speed assertion.
const layoutLimit = 10 * time.Second

// valueDef defines V from the value v.
func valueDef(v string) string {
	return "values:\n  v: " + v + "\n  environmentVariables:\n    V: ${v}\n"
}

// importerDef imports env and exports W from its v.
func importerDef(env string) string {
	return "imports: [" + env + "]\nvalues:\n  environmentVariables:\n    W: imported-${v}\n"
}

// watchedStore returns a watching store over dir, with events as the only
// way to see changes (no periodic re-check).
func watchedStore(t *testing.T, dir string, opts ...func(*evaltest.Config)) *eval.Store {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return evaltest.NewStore(t, dir, append([]func(*evaltest.Config){evaltest.Watching, func(c *evaltest.Config) {
		c.Source.Recheck, c.Source.Logger, c.Store.Logger = -1, log, log
	}}, opts...)...)
}

// varOf returns the variable key of env, or why it cannot.
func varOf(s *eval.Store, env, key string) (string, error) {
	n, err := eval.ParseName(env)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), layoutLimit)
	defer cancel()
	snap, err := s.Snapshot(ctx, n)
	if err != nil {
		return "", err
	}
	for _, v := range snap.Vars {
		if v.Name == key {
			return v.Value, nil
		}
	}
	return "", fmt.Errorf("%s: no variable %s", env, key)
}

// eventually polls cond every 10 ms until it holds, failing the test if it
// does not within layoutLimit.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(layoutLimit)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen within %v; last: %s", what, layoutLimit, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// shows is a condition: env's variable key is want.
func shows(s *eval.Store, env, key, want string) func() (bool, string) {
	return func() (bool, string) {
		got, err := varOf(s, env, key)
		return err == nil && got == want, fmt.Sprintf("%s %s=%q %v", env, key, got, err)
	}
}

// gone is a condition: the store no longer has env.
func gone(s *eval.Store, env string) func() (bool, string) {
	return func() (bool, string) {
		_, err := varOf(s, env, "V")
		return errors.Is(err, eval.ErrNotFound), fmt.Sprintf("%s: %v", env, err)
	}
}

// defined lists the short names the store defines.
func defined(s *eval.Store) []string {
	var out []string
	for _, d := range s.Tree().Definitions() {
		out = append(out, d.Name.Short())
	}
	return out
}

// lists is a condition: the store defines exactly want.
func lists(s *eval.Store, want ...string) func() (bool, string) {
	return func() (bool, string) {
		got := defined(s)
		return slices.Equal(got, want), fmt.Sprintf("defined %q, want %q", got, want)
	}
}

func mustWrite(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func mustRename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

// renameSave replaces p as careful editors do: a new file beside it,
// renamed over it.
func renameSave(t *testing.T, p, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".tmp")
	mustWrite(t, tmp, content)
	mustRename(t, tmp, p)
}

// TestLayoutStowSymlink: DIR/prod.yaml -> ../dotfiles/prod.yaml, as GNU stow
// and dotfile managers link; editing the target in place or by rename
// shows in prod and in its importer.
func TestLayoutStowSymlink(t *testing.T) {
	base := t.TempDir()
	defs, target := filepath.Join(base, "defs"), filepath.Join(base, "dotfiles", "prod.yaml")
	mustWrite(t, target, valueDef("one"))
	mustWrite(t, filepath.Join(defs, "app.yaml"), importerDef("prod"))
	mustSymlink(t, "../dotfiles/prod.yaml", filepath.Join(defs, "prod.yaml"))
	s := watchedStore(t, defs)
	eventually(t, "initial", shows(s, "prod", "V", "one"))
	eventually(t, "initial importer", shows(s, "app", "W", "imported-one"))

	saves := []struct {
		name string
		save func(t *testing.T, p, content string)
	}{
		{"in place", mustWrite},
		{"by rename", renameSave},
	}
	for i, sv := range saves {
		v := fmt.Sprintf("v%d", i+2)
		sv.save(t, target, valueDef(v))
		eventually(t, sv.name+": prod", shows(s, "prod", "V", v))
		eventually(t, sv.name+": importer", shows(s, "app", "W", "imported-"+v))
	}
}

// TestLayoutConfigMap: a Kubernetes ConfigMap volume as the definitions
// directory or as a project directory; each update swaps "..data" exactly
// as the kubelet does, and shows in the environment and its importer. The
// hidden entries are never environments.
func TestLayoutConfigMap(t *testing.T) {
	for _, tc := range []struct{ name, volume, env string }{
		{"definitions dir", "", "cm"},
		{"project dir", "team", "team/cm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defs := t.TempDir()
			cm := &filetree.ConfigMap{Dir: filepath.Join(defs, tc.volume)}
			cm.Publish(t, map[string]string{"cm.yaml": valueDef("one")})
			mustWrite(t, filepath.Join(defs, "app.yaml"), importerDef(tc.env))
			s := watchedStore(t, defs)
			if got, want := defined(s), []string{"app", tc.env}; !slices.Equal(got, want) {
				t.Fatalf("defined %q, want %q", got, want)
			}
			eventually(t, "initial", shows(s, tc.env, "V", "one"))
			eventually(t, "initial importer", shows(s, "app", "W", "imported-one"))
			for _, v := range []string{"two", "three"} {
				cm.Publish(t, map[string]string{"cm.yaml": valueDef(v)})
				eventually(t, "update "+v, shows(s, tc.env, "V", v))
				eventually(t, "update "+v+": importer", shows(s, "app", "W", "imported-"+v))
			}
			if got, want := defined(s), []string{"app", tc.env}; !slices.Equal(got, want) {
				t.Fatalf("after updates: defined %q, want %q", got, want)
			}
		})
	}
}

// TestLayoutSymlinkedDefinitionsDir: --dir current, with current -> v1
// re-pointed atomically to v2 (a new symlink renamed over it): the store
// serves v2's definitions and sees later edits of v2.
func TestLayoutSymlinkedDefinitionsDir(t *testing.T) {
	base := t.TempDir()
	mustWrite(t, filepath.Join(base, "v1", "prod.yaml"), valueDef("one"))
	mustWrite(t, filepath.Join(base, "v1", "old.yaml"), valueDef("old"))
	mustWrite(t, filepath.Join(base, "v2", "prod.yaml"), valueDef("two"))
	mustWrite(t, filepath.Join(base, "v2", "new.yaml"), valueDef("new"))
	current := filepath.Join(base, "current")
	mustSymlink(t, "v1", current)
	s := watchedStore(t, current)
	eventually(t, "v1", shows(s, "prod", "V", "one"))
	eventually(t, "v1 old", shows(s, "old", "V", "old"))

	mustSymlink(t, "v2", current+".tmp")
	mustRename(t, current+".tmp", current)
	eventually(t, "v2 listed", lists(s, "new", "prod"))
	eventually(t, "v2 prod", shows(s, "prod", "V", "two"))
	eventually(t, "v2 new", shows(s, "new", "V", "new"))
	eventually(t, "v1 old gone", gone(s, "old"))

	mustWrite(t, filepath.Join(base, "v2", "prod.yaml"), valueDef("three"))
	eventually(t, "edit in v2", shows(s, "prod", "V", "three"))
}

// TestLayoutDefinitionsDirRemoved: rm -rf of the definitions directory
// empties the store (ErrNotFound, not a cached "ok"); recreating it fills
// it again, and it is watched again.
func TestLayoutDefinitionsDirRemoved(t *testing.T) {
	defs := filepath.Join(t.TempDir(), "defs")
	mustWrite(t, filepath.Join(defs, "prod.yaml"), valueDef("one"))
	mustWrite(t, filepath.Join(defs, "proj", "x.yaml"), valueDef("x"))
	s := watchedStore(t, defs)
	eventually(t, "initial", shows(s, "prod", "V", "one"))
	eventually(t, "initial project", shows(s, "proj/x", "V", "x"))

	if err := os.RemoveAll(defs); err != nil {
		t.Fatal(err)
	}
	eventually(t, "removed: prod", gone(s, "prod"))
	eventually(t, "removed: proj/x", gone(s, "proj/x"))
	eventually(t, "removed: listing", lists(s))
	if _, err := s.Status(evaltest.Name(t, "prod")); !errors.Is(err, eval.ErrNotFound) {
		t.Fatalf("status of prod after rm -rf: %v, want ErrNotFound", err)
	}

	mustWrite(t, filepath.Join(defs, "prod.yaml"), valueDef("two"))
	eventually(t, "recreated", shows(s, "prod", "V", "two"))
	mustWrite(t, filepath.Join(defs, "prod.yaml"), valueDef("three"))
	eventually(t, "edit after recreate", shows(s, "prod", "V", "three"))
	mustWrite(t, filepath.Join(defs, "proj", "y.yaml"), valueDef("y"))
	eventually(t, "new project after recreate", shows(s, "proj/y", "V", "y"))
}

// TestLayoutDefinitionsDirRenamedOver: mv defs defs.old; mv defs.new defs.
// Listing and contents are the new directory's, and its later edits show.
func TestLayoutDefinitionsDirRenamedOver(t *testing.T) {
	base := t.TempDir()
	defs := filepath.Join(base, "defs")
	mustWrite(t, filepath.Join(defs, "prod.yaml"), valueDef("one"))
	mustWrite(t, filepath.Join(defs, "old.yaml"), valueDef("old"))
	mustWrite(t, filepath.Join(defs+".new", "prod.yaml"), valueDef("two"))
	mustWrite(t, filepath.Join(defs+".new", "new.yaml"), valueDef("new"))
	s := watchedStore(t, defs)
	eventually(t, "initial", shows(s, "prod", "V", "one"))
	eventually(t, "initial old", shows(s, "old", "V", "old"))

	mustRename(t, defs, defs+".old")
	mustRename(t, defs+".new", defs)
	eventually(t, "new listing", lists(s, "new", "prod"))
	eventually(t, "new contents", shows(s, "prod", "V", "two"))
	eventually(t, "old gone", gone(s, "old"))

	mustWrite(t, filepath.Join(defs, "prod.yaml"), valueDef("three"))
	eventually(t, "edit of the new dir", shows(s, "prod", "V", "three"))
}

// TestLayoutContinuousNoise: a hidden file rewritten every 3 ms (an
// editor's swap file, a log) never lets the debounce's quiet period come;
// an edit still shows, within the maximum wait, while the noise goes on.
func TestLayoutContinuousNoise(t *testing.T) {
	defs := t.TempDir()
	mustWrite(t, filepath.Join(defs, "prod.yaml"), valueDef("one"))
	s := watchedStore(t, defs) // MaxWait left at its default
	eventually(t, "initial", shows(s, "prod", "V", "one"))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(3 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				if err := os.WriteFile(filepath.Join(defs, ".prod.yaml.swp"), fmt.Appendf(nil, "%d", i), 0o644); err != nil {
					t.Error(err)
					return
				}
				writes.Add(1)
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	eventually(t, "noise started", func() (bool, string) {
		return writes.Load() >= 10, fmt.Sprintf("%d writes", writes.Load())
	})
	mustWrite(t, filepath.Join(defs, "prod.yaml"), valueDef("two"))
	eventually(t, "edit under noise", shows(s, "prod", "V", "two"))
}

// TestLayoutProviderFileInConfigMap: a file a provider reads lives in a
// ConfigMap (or projected token) volume: the kubelet's "..data" swap
// re-evaluates the environment, though no event names the file itself.
func TestLayoutProviderFileInConfigMap(t *testing.T) {
	defs, volume := t.TempDir(), t.TempDir()
	cm := &filetree.ConfigMap{Dir: volume}
	cm.Publish(t, map[string]string{"state.txt": "one"})
	state := filepath.Join(volume, "state.txt")
	mustWrite(t, filepath.Join(defs, "app.yaml"), "values:\n  s:\n    fn::open::file: {path: "+state+"}\n  environmentVariables:\n    S: ${s}\n")
	s := watchedStore(t, defs, evaltest.Providers(map[string]esc.Provider{"file": fileProvider{}}))
	eventually(t, "initial", shows(s, "app", "S", "one"))
	for _, v := range []string{"two", "three"} {
		cm.Publish(t, map[string]string{"state.txt": v})
		eventually(t, "update "+v, shows(s, "app", "S", v))
	}
}
