package fs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func valueDef(v string) string {
	return "values:\n  v: " + v + "\n  environmentVariables:\n    V: ${v}\n"
}

// TestLive edits, adds, renames and deletes definitions and expects each
// change on the next read through the mount, listings included, without
// waiting out the kernel's one-second caches.
func TestLive(t *testing.T) {
	tm := mountT(t, map[string]string{
		"a.yaml":      valueDef("one"),
		"imp.yaml":    "imports:\n  - a\nvalues:\n  environmentVariables:\n    W: ${v}-imported\n",
		"proj/b.yaml": valueDef("bee"),
	})
	envOf := func(rel string) (string, error) {
		b, err := readFile(t, tm.path(rel, "env"))
		return string(b), err
	}
	// Warm every cache the kernel has: entries, attributes, listings.
	for _, rel := range []string{"a", "imp", "proj/b"} {
		if _, err := envOf(rel); err != nil {
			t.Fatal(err)
		}
		names(t, tm.path(rel))
	}
	names(t, tm.mnt)
	names(t, tm.path("proj"))

	// limit is one second of our own (debounce, rescan, evaluation) plus a
	// margin for a loaded machine; the kernel caches must not add theirs.
	step := func(what string, cond func() (bool, string)) {
		t.Helper()
		took := eventually(t, watchLimit, what, cond)
		t.Logf("%s: visible after %v", what, took.Round(time.Millisecond))
	}
	hasEnv := func(rel, want string) func() (bool, string) {
		return func() (bool, string) {
			got, err := envOf(rel)
			return err == nil && strings.Contains(got, want), fmt.Sprintf("%q %v", got, err)
		}
	}
	listed := func(dir string, want ...string) func() (bool, string) {
		return func() (bool, string) {
			entries, err := os.ReadDir(tm.path(dir))
			if err != nil {
				return false, err.Error()
			}
			var got []string
			for _, e := range entries {
				got = append(got, e.Name())
			}
			return slices.Equal(got, want), strings.Join(got, ",")
		}
	}
	gone := func(rel string) func() (bool, string) {
		return func() (bool, string) {
			_, err := os.Stat(tm.path(rel))
			return errors.Is(err, fs.ErrNotExist), fmt.Sprint(err)
		}
	}

	// an edit (in place, as editors without atomic saves do), and its importer
	tm.define("a.yaml", valueDef("two-and-longer"))
	step("edit", hasEnv("a", "V='two-and-longer'"))
	step("importer of the edit", hasEnv("imp", "W='two-and-longer-imported'"))

	// a new environment in the default project
	tm.define("c.yaml", valueDef("sea"))
	step("new environment in the listing", listed("", "a", "c", "imp", "proj"))
	step("new environment", hasEnv("c", "V='sea'"))

	// a new environment in a new project directory
	tm.define("newproj/d.yaml", valueDef("dee"))
	step("new project in the listing", listed("", "a", "c", "imp", "newproj", "proj"))
	step("new project's listing", listed("newproj", "d"))
	step("new project's environment", hasEnv("newproj/d", "V='dee'"))
	// and a second environment appearing in that now-watched project
	tm.define("newproj/e.yaml", valueDef("ee"))
	step("second environment of the new project", hasEnv("newproj/e", "V='ee'"))

	// a rename
	if err := os.Rename(filepath.Join(tm.dir, "proj", "b.yaml"), filepath.Join(tm.dir, "proj", "b2.yaml")); err != nil {
		t.Fatal(err)
	}
	step("rename: old name gone", gone("proj/b"))
	step("rename: listing", listed("proj", "b2"))
	step("rename: new name", hasEnv("proj/b2", "V='bee'"))

	// a delete
	if err := os.Remove(filepath.Join(tm.dir, "c.yaml")); err != nil {
		t.Fatal(err)
	}
	step("delete: gone", gone("c"))
	step("delete: listing", listed("", "a", "imp", "newproj", "proj"))
	if _, err := os.ReadFile(tm.path("c", "env")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read of a deleted environment: %v, want ENOENT", err)
	}

	// deleting an imported environment breaks its importer
	if err := os.Remove(filepath.Join(tm.dir, "a.yaml")); err != nil {
		t.Fatal(err)
	}
	step("delete of an import: importer fails", func() (bool, string) {
		got, err := envOf("imp")
		return errors.Is(err, syscall.EIO), fmt.Sprintf("%q %v", got, err)
	})
	// and it comes back
	tm.define("a.yaml", valueDef("three"))
	step("re-created import", hasEnv("imp", "W='three-imported'"))
	step("re-created environment", hasEnv("a", "V='three'"))
}

// TestLiveSizeGrowsAndShrinks changes the length of an environment's env
// back and forth: each stat and each bash source sees the new length.
func TestLiveSizeGrowsAndShrinks(t *testing.T) {
	tm := mountT(t, map[string]string{"x.yaml": valueDef("short")})
	p := tm.path("x", "env")
	for i, v := range []string{strings.Repeat("long", 100), "s", strings.Repeat("x", 5000), "mid-sized-value"} {
		tm.define("x.yaml", valueDef(v))
		want := "export V='" + v + "'\n"
		eventually(t, watchLimit, fmt.Sprintf("version %d", i), func() (bool, string) {
			fi, err := os.Stat(p)
			if err != nil {
				return false, err.Error()
			}
			// bash reads st_size bytes: the size must be right on its own
			out, err := run(t, nil, "bash", "-c", `source "$1" && printf %s "$V"`, "bash", p)
			return fi.Size() == int64(len(want)) && err == nil && out == v, fmt.Sprintf("size %d (want %d), bash %q %v", fi.Size(), len(want), out, err)
		})
	}
}

// TestNotifyBeatsKernelCache shows that the invalidation, not the expiry of
// the kernel's one-second caches, makes a change visible: with the mount's
// subscription to the store cancelled (the control), a deleted environment
// and a changed size stay visible for a while; with it, they go at once.
func TestNotifyBeatsKernelCache(t *testing.T) {
	// The control holds only while the kernel's caches from the lookups are
	// young; on a machine too slow for that, the attempt says so and is made
	// again, and no valid attempt in five fails the test.
	const attempts = 5
	for _, notify := range []bool{true, false} {
		t.Run(fmt.Sprintf("notify=%v", notify), func(t *testing.T) {
			for i := range attempts {
				seen, oldLen, age, valid := notifyAttempt(t, notify)
				if !valid {
					t.Logf("attempt %d: %v since the lookups, the kernel caches may have expired; again", i+1, age)
					continue
				}
				if notify && !seen {
					t.Errorf("with invalidation the change is not visible through the mount within 200ms")
				}
				if !notify && seen {
					t.Errorf("control: without invalidation the change was visible at once (old env %d bytes); this test cannot tell", oldLen)
				}
				return
			}
			t.Fatalf("machine too slow: no attempt in %d finished within 800ms of its lookups", attempts)
		})
	}
}

// notifyAttempt mounts a and c, looks both up, deletes c and changes a's
// size, and reports whether the change became visible through the mount
// within 200 ms, and whether that is meaningful (valid: all within 800 ms of
// the lookups, before the kernel's one-second caches could expire).
func notifyAttempt(t *testing.T, notify bool) (seen bool, oldLen int, age time.Duration, valid bool) {
	t.Helper()
	tm := mountT(t, map[string]string{"a.yaml": valueDef("one"), "c.yaml": valueDef("sea")})
	// fresh lookups: the kernel caches these entries and sizes for 1s
	looked := time.Now()
	if _, err := os.Stat(tm.path("c")); err != nil {
		t.Fatal(err)
	}
	oldEnv := mustRead(t, tm.path("a", "env"))
	if !notify {
		tm.m.unsubscribe()
	}
	if err := os.Remove(filepath.Join(tm.dir, "c.yaml")); err != nil {
		t.Fatal(err)
	}
	tm.define("a.yaml", valueDef("two-and-longer"))
	newLen := int64(len("export V='two-and-longer'\n"))
	eventually(t, watchLimit, "the store sees the change", func() (bool, string) {
		_, err := tm.store.Tree().Lookup("c")
		st, _ := tm.store.Status(tm.snapshot("a").Name)
		return err != nil && st.State == "ok" && len(tm.snapshot("a").Env) == int(newLen), ""
	})
	visible := func() bool {
		_, err := os.Stat(tm.path("c"))
		fi, err2 := os.Stat(tm.path("a", "env"))
		return errors.Is(err, fs.ErrNotExist) && err2 == nil && fi.Size() == newLen
	}
	deadline := time.Now().Add(200 * time.Millisecond)
	seen = visible()
	for !seen && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		seen = visible()
	}
	age = time.Since(looked)
	return seen, len(oldEnv), age, age <= 800*time.Millisecond
}
