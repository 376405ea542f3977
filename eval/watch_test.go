package eval

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escfs/escfs/providers/builtin"
)

// TestResolve follows paths as the kernel does and records every path whose
// change can change the result: symlinks followed, entries passed after the
// first symlink, and the final (or first missing) path.
func TestResolve(t *testing.T) {
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mk := func(rel string) {
		if err := os.MkdirAll(filepath.Join(base, rel), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ln := func(target, rel string) {
		if err := os.Symlink(target, filepath.Join(base, rel)); err != nil {
			t.Fatal(err)
		}
	}
	mk("defs/..2026_12_02_10_00_00.1")
	mk("dotfiles/esc")
	mk("v1")
	for _, f := range []string{"defs/plain.yaml", "defs/..2026_12_02_10_00_00.1/cm.yaml", "dotfiles/esc/prod.yaml", "v1/x.yaml"} {
		if err := os.WriteFile(filepath.Join(base, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ln("..2026_12_02_10_00_00.1", "defs/..data")
	ln("..data/cm.yaml", "defs/cm.yaml")
	ln("../dotfiles/esc/prod.yaml", "defs/stow.yaml")
	ln(filepath.Join(base, "dotfiles/esc/prod.yaml"), "defs/abs.yaml")
	ln("nowhere.yaml", "defs/dangling.yaml")
	ln("loop.yaml", "defs/loop.yaml")
	ln("v1", "current")

	for _, tc := range []struct {
		name, from, rel string
		final           string   // relative to base; "" if it does not resolve
		deps            []string // relative to base
		err             error
	}{
		{"plain file", "defs", "plain.yaml", "defs/plain.yaml", []string{"defs/plain.yaml"}, nil},
		{"configmap key", "defs", "cm.yaml", "defs/..2026_12_02_10_00_00.1/cm.yaml",
			[]string{"defs/cm.yaml", "defs/..data", "defs/..2026_12_02_10_00_00.1", "defs/..2026_12_02_10_00_00.1/cm.yaml"}, nil},
		{"stow link", "defs", "stow.yaml", "dotfiles/esc/prod.yaml",
			[]string{"defs/stow.yaml", "dotfiles", "dotfiles/esc", "dotfiles/esc/prod.yaml"}, nil},
		{"dangling link", "defs", "dangling.yaml", "", []string{"defs/dangling.yaml", "defs/nowhere.yaml"}, os.ErrNotExist},
		{"link loop", "defs", "loop.yaml", "", []string{"defs/loop.yaml"}, syscall.ELOOP},
		{"missing", "defs", "gone.yaml", "", []string{"defs/gone.yaml"}, os.ErrNotExist},
		{"symlinked directory", "", "current/x.yaml", "v1/x.yaml", []string{"current", "v1", "v1/x.yaml"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := resolve(filepath.Join(base, tc.from), tc.rel)
			if tc.err != nil {
				if !errors.Is(c.err, tc.err) {
					t.Fatalf("err = %v, want %v", c.err, tc.err)
				}
			} else if c.err != nil || c.final != filepath.Join(base, tc.final) {
				t.Fatalf("final = %q, %v; want %q", c.final, c.err, tc.final)
			}
			var deps []string
			for _, d := range c.deps {
				deps = append(deps, strings.TrimPrefix(d, base+"/"))
			}
			if tc.name == "link loop" {
				deps = slices.Compact(deps)
			}
			if !slices.Equal(deps, tc.deps) {
				t.Fatalf("deps = %q, want %q", deps, tc.deps)
			}
		})
	}
	abs := resolve(filepath.Join(base, "defs"), "abs.yaml")
	if abs.err != nil || abs.final != filepath.Join(base, "dotfiles/esc/prod.yaml") || !slices.Contains(abs.deps, base) {
		t.Fatalf("absolute link: %+v: want every directory after the link, %s included", abs, base)
	}
}

// TestScanLiveMissingDir: a definitions directory that is gone is an empty
// tree for a watching store, but still an error for ScanDir's one-shot
// callers.
func TestScanLiveMissingDir(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "defs")
	if _, err := ScanDir(missing); err == nil {
		t.Fatal("ScanDir of a missing directory succeeded")
	}
	tree, err := scanLive(missing)
	if err != nil {
		t.Fatal(err)
	}
	if len(tree.Definitions()) != 0 || len(tree.Problems) != 1 || tree.Root != missing {
		t.Fatalf("tree = %+v, want empty with one problem", tree)
	}
	file := writeTree(t, map[string]string{"defs": "not a directory"})
	if tree, err := scanLive(filepath.Join(file, "defs")); err != nil || len(tree.Definitions()) != 0 {
		t.Fatalf("a file as the directory: %v, %v", tree, err)
	}
}

// TestTreeModifiedSince: every way of changing what a definition path
// holds, and only those, marks the definition modified.
func TestTreeModifiedSince(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, dir string)
		want   []string
	}{
		{"nothing", func(*testing.T, string) {}, nil},
		{"in place, same size", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "prod.yaml"), "values: {b: 1}\n") }, []string{"prod"}},
		{"by rename", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, ".tmp"), "values: {a: 1}\n")
			must(t, os.Rename(filepath.Join(dir, ".tmp"), filepath.Join(dir, "prod.yaml")))
		}, []string{"prod"}},
		{"symlink re-pointed", func(t *testing.T, dir string) {
			must(t, os.Symlink("prod.yaml", filepath.Join(dir, ".tmp")))
			must(t, os.Rename(filepath.Join(dir, ".tmp"), filepath.Join(dir, "link.yaml")))
		}, []string{"link"}},
		{"symlink target edited", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "other.txt"), "values: {c: 3}\n") }, []string{"link"}},
		{"removed (a tree change, not a modification)", func(t *testing.T, dir string) { must(t, os.Remove(filepath.Join(dir, "prod.yaml"))) }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeTree(t, map[string]string{"prod.yaml": "values: {a: 1}\n", "other.txt": "values: {c: 1}\n"})
			must(t, os.Symlink("other.txt", filepath.Join(dir, "link.yaml")))
			old, err := ScanDir(dir)
			must(t, err)
			tc.change(t, dir)
			now, err := ScanDir(dir)
			must(t, err)
			var got []string
			for _, n := range now.modifiedSince(old) {
				got = append(got, n.Short())
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("modified = %q, want %q", got, tc.want)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, p, content string) {
	t.Helper()
	must(t, os.WriteFile(p, []byte(content), 0o644))
}

// TestWatchRecheckRepairsLostWatch: when a watch is lost (inotify's queue
// overflowed, its watch limit was reached), the periodic re-check still
// finds the change, and watches the directory again.
func TestWatchRecheckRepairsLostWatch(t *testing.T) {
	base, err := filepath.EvalSymlinks(t.TempDir())
	must(t, err)
	defs, dotfiles := filepath.Join(base, "defs"), filepath.Join(base, "dotfiles")
	must(t, os.MkdirAll(defs, 0o755))
	must(t, os.MkdirAll(dotfiles, 0o755))
	write(t, filepath.Join(dotfiles, "prod.yaml"), "values:\n  environmentVariables:\n    V: one\n")
	must(t, os.Symlink("../dotfiles/prod.yaml", filepath.Join(defs, "prod.yaml")))
	src := &DirSource{Dir: defs, Evaluator: &Evaluator{Providers: builtin.Registry()}, Debounce: 20 * time.Millisecond,
		Recheck: 100 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s, err := NewStore(StoreOptions{Source: src, FilesDir: func(Name) string { return "/files" }, Logger: src.Logger})
	must(t, err)
	t.Cleanup(func() { s.Close() })
	must(t, s.Watch())
	v := func() string {
		snap, err := s.Snapshot(context.Background(), Name{Project: DefaultProject, Env: "prod"})
		if err != nil {
			return err.Error()
		}
		if len(snap.Vars) != 1 {
			return "no V"
		}
		return snap.Vars[0].Value
	}
	if got := v(); got != "one" {
		t.Fatalf("V = %q", got)
	}
	must(t, dirWatcher(s).fsw.Remove(dotfiles)) // the watch is lost
	write(t, filepath.Join(dotfiles, "prod.yaml"), "values:\n  environmentVariables:\n    V: two\n")
	deadline := time.Now().Add(10 * time.Second)
	for v() != "two" {
		if time.Now().After(deadline) {
			t.Fatalf("V = %q 10s after the edit, want two", v())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for !slices.Contains(dirWatcher(s).fsw.WatchList(), dotfiles) {
		if time.Now().After(deadline) {
			t.Fatalf("%s is not watched again: %q", dotfiles, dirWatcher(s).fsw.WatchList())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dirWatcher returns the watcher of a store over a directory.
func dirWatcher(s *Store) *watcher {
	d := s.source.(*DirSource)
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.watch
}
