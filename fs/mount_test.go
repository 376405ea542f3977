package fs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/eval/evaltest"
	"github.com/escfs/escfs/internal/bounded"
	"github.com/escfs/escfs/internal/escfstest"
	"github.com/escfs/escfs/internal/filetree"
)

// TestMain detaches the escfs mounts a killed earlier run left behind (their
// server is gone, so they answer ENOTCONN), so a stale mount never makes this
// run hang or fail confusingly. Live mounts, such as the user's own or those
// of tests running beside this one, are left alone.
func TestMain(m *testing.M) {
	if mounts, err := Mounts(); err == nil {
		for _, p := range mounts {
			// escfsAt waits at most probeTimeout for a server.
			switch state, isEscfs, err := escfsAt(p); {
			case err != nil:
				fmt.Fprintf(os.Stderr, "leftover escfs mount %s: %v\n", p, err)
			case !isEscfs || state == serverLive:
			case state == serverWedged:
				fmt.Fprintf(os.Stderr, "escfs mount %s does not answer; left alone\n", p)
			case detach(p) == nil:
				fmt.Fprintf(os.Stderr, "detached leftover escfs mount %s\n", p)
			}
		}
	}
	os.Exit(m.Run())
}

// needTool returns the path of the program name, failing the test if it is
// missing: these tests need real readers, and .ci/run installs them.
func needTool(tb testing.TB, name, pkg string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		tb.Fatalf("%s is not installed (apt-get install %s; .ci/run does): %v", name, pkg, err)
	}
	return p
}

// needRoot fails the test unless it runs as root, as make test must.
func needRoot(tb testing.TB, why string) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Fatalf("needs root (%s); run make test as root", why)
	}
}

// testMount is one mounted store for a test.
type testMount struct {
	tb    testing.TB
	dir   string // definitions directory
	mnt   string // mount point
	store *eval.Store
	m     *Mount
	cfg   Config
}

// mountSettings are what a mountOpt may change before mountT mounts.
type mountSettings struct {
	cfg   Config
	dir   string                   // the definitions directory; "" means the one mountT fills
	store []func(*evaltest.Config) // options of the store
}

type mountOpt func(*mountSettings)

func withAllowOther(on bool) mountOpt { return func(s *mountSettings) { s.cfg.AllowOther = on } }

func withOwner(uid, gid uint32) mountOpt {
	return func(s *mountSettings) { s.cfg.UID, s.cfg.GID = uid, gid }
}

// withMountpoint lets a test choose the mount point (it must exist).
func withMountpoint(p string) mountOpt { return func(s *mountSettings) { s.cfg.Mountpoint = p } }

// withRefresh sets the store's refresh policy.
func withRefresh(p eval.RefreshPolicy) mountOpt {
	if p.MinInterval == 0 {
		p.MinInterval = time.Millisecond // these tests use sub-second lifetimes
	}
	return func(s *mountSettings) {
		s.store = append(s.store, func(c *evaltest.Config) { c.Store.Refresh = p })
	}
}

// mountT writes defs (path relative to the definitions directory, e.g.
// "prod.yaml" or "demos/aws.yaml", to content) into a temporary directory,
// builds a watching store over it and mounts it in another temporary
// directory. Cleanup unmounts (detaching if needed) and closes the store.
func mountT(tb testing.TB, defs map[string]string, opts ...mountOpt) *testMount {
	tb.Helper()
	dir := tb.TempDir()
	for p, content := range defs {
		filetree.WriteFile(tb, filepath.Join(dir, p), content)
	}
	set := mountSettings{
		cfg: Config{
			Mountpoint: tb.TempDir(),
			UID:        uint32(os.Getuid()),
			GID:        uint32(os.Getgid()),
			Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		},
	}
	if testing.Verbose() {
		set.cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	for _, o := range opts {
		o(&set)
	}
	cfg := set.cfg
	if set.dir == "" {
		set.dir = dir
	}
	store := evaltest.NewStore(tb, set.dir, append(set.store, evaltest.Watching, func(c *evaltest.Config) {
		c.Store.EvalTimeout = 10 * time.Second
		c.Store.FilesDir = FilesDir(cfg.Mountpoint)
		c.Store.Logger = cfg.Logger
	})...)
	cfg.Store = store
	m, err := New(cfg)
	if err != nil {
		tb.Fatalf("mount: %v", err)
	}
	tb.Cleanup(func() {
		if err := m.Close(); err != nil {
			tb.Errorf("close mount: %v", err)
			if err := unix.Unmount(cfg.Mountpoint, unix.MNT_DETACH); err != nil {
				tb.Errorf("detach %s: %v", cfg.Mountpoint, err)
			}
		}
	})
	return &testMount{tb: tb, dir: dir, mnt: m.Mountpoint(), store: store, m: m, cfg: cfg}
}

// path returns the path of rel inside the mount.
func (tm *testMount) path(rel ...string) string {
	return filepath.Join(append([]string{tm.mnt}, rel...)...)
}

// snapshot returns the store's snapshot of the environment called name.
func (tm *testMount) snapshot(name string) *eval.Snapshot {
	tm.tb.Helper()
	n, err := eval.ParseName(name)
	if err != nil {
		tm.tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	snap, err := tm.store.Snapshot(ctx, n)
	if err != nil {
		tm.tb.Fatalf("snapshot %s: %v", name, err)
	}
	return snap
}

// define writes a definition file into the definitions directory.
func (tm *testMount) define(rel, content string) {
	tm.tb.Helper()
	filetree.WriteFile(tm.tb, filepath.Join(tm.dir, rel), content)
}

// readFile reads a file with a bounded wait: a hung mount fails the test
// instead of hanging it.
func readFile(tb testing.TB, p string) ([]byte, error) {
	tb.Helper()
	b, err := escfstest.Read(p, 15*time.Second)
	if errors.Is(err, bounded.ErrTimeout) {
		tb.Fatal(err)
	}
	return b, err
}

func mustRead(tb testing.TB, p string) []byte {
	tb.Helper()
	b, err := readFile(tb, p)
	if err != nil {
		tb.Fatalf("read: %v", err)
	}
	return b
}

// eventually polls cond every 10ms for up to limit and reports how long it
// took to become true; the test fails if it never does.
func eventually(tb testing.TB, limit time.Duration, what string, cond func() (bool, string)) time.Duration {
	tb.Helper()
	start := time.Now()
	last := ""
	for {
		ok, state := cond()
		if ok {
			return time.Since(start)
		}
		last = state
		if time.Since(start) > limit {
			tb.Fatalf("%s: not seen within %v; last: %s", what, limit, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// watchLimit bounds how long a definition change may take to show through
// the mount: the debounce, one rescan, one evaluation, and a 1 s margin for
// a loaded CI machine.
const watchLimit = 2 * time.Second

// names lists a directory's entries by name.
func names(tb testing.TB, p string) []string {
	tb.Helper()
	entries, err := os.ReadDir(p)
	if err != nil {
		tb.Fatalf("readdir: %v", err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func join(s []string) string { return strings.Join(s, ",") }

// statusOf reads and parses MNT/<env>/status.
func (tm *testMount) statusOf(env string) eval.Status {
	tm.tb.Helper()
	b := mustRead(tm.tb, tm.path(env, "status"))
	var st eval.Status
	if err := json.Unmarshal(b, &st); err != nil {
		tm.tb.Fatalf("status of %s: %v\n%s", env, err, b)
	}
	return st
}

const simpleDef = `values:
  environmentVariables:
    A: alpha
`

func TestListingEvaluatesNothing(t *testing.T) {
	tm := mountT(t, map[string]string{
		"x.yaml":      simpleDef,
		"y.yaml":      simpleDef,
		"proj/a.yaml": simpleDef,
		"proj/b.yaml": simpleDef,
		"other/c.yml": simpleDef,
	})
	if got, want := join(names(t, tm.mnt)), "other,proj,x,y"; got != want {
		t.Errorf("ls MNT = %s, want %s", got, want)
	}
	if got, want := join(names(t, tm.path("proj"))), "a,b"; got != want {
		t.Errorf("ls MNT/proj = %s, want %s", got, want)
	}
	if got, want := join(names(t, tm.path("other"))), "c"; got != want {
		t.Errorf("ls MNT/other = %s, want %s", got, want)
	}
	for _, p := range []string{"x", "y", "proj", "proj/a", "proj/b", "other/c"} {
		fi, err := os.Stat(tm.path(p))
		if err != nil {
			t.Fatalf("stat: %v", err)
		}
		if !fi.IsDir() {
			t.Errorf("%s is not a directory: %v", p, fi.Mode())
		}
	}
	if n := tm.store.Evaluations(); n != 0 {
		t.Fatalf("listing evaluated %d environments, want 0", n)
	}
	for _, env := range []string{"x", "proj/a"} {
		st := tm.statusOf(env)
		if st.State != eval.StateUnevaluated {
			t.Errorf("status of %s: state %q, want %q", env, st.State, eval.StateUnevaluated)
		}
	}
	if n := tm.store.Evaluations(); n != 0 {
		t.Fatalf("reading status evaluated %d environments, want 0", n)
	}
	// The first real look does evaluate (so the counter above can fail).
	mustRead(t, tm.path("x", "env"))
	if n := tm.store.Evaluations(); n != 1 {
		t.Fatalf("reading x/env: %d evaluations, want 1", n)
	}
	if st := tm.statusOf("x"); st.State != eval.StateOK || st.EvaluatedAt == nil {
		t.Errorf("status of x after a read: %+v, want state ok with a time", st)
	}
}

func TestListEnvironmentDirEvaluatesNothing(t *testing.T) {
	tm := mountT(t, map[string]string{"x.yaml": simpleDef})
	if got, want := join(names(t, tm.path("x"))), "dotenv,env,files,status,values.json"; got != want {
		t.Errorf("ls MNT/x = %s, want %s", got, want)
	}
	if n := tm.store.Evaluations(); n != 0 {
		t.Errorf("listing an environment directory evaluated %d times, want 0", n)
	}
}

const filesDef = `values:
  who: world
  environmentVariables:
    A: hello ${who}
    NUM: 42
  files:
    KUBECONFIG: |
      apiVersion: v1
      kind: Config
      current-context: ${who}
    SECOND: second file
`

func TestExactSizes(t *testing.T) {
	tm := mountT(t, map[string]string{"x.yaml": filesDef, "p/y.yaml": filesDef})
	for _, env := range []string{"x", "p/y"} {
		// stat before anything was read: Getattr must already know the size
		sizes := map[string]int64{}
		rels := []string{"env", "dotenv", "values.json", "files/KUBECONFIG", "files/SECOND"}
		for _, rel := range rels {
			fi, err := os.Stat(tm.path(env, rel))
			if err != nil {
				t.Fatalf("stat: %v", err)
			}
			sizes[rel] = fi.Size()
		}
		snap := tm.snapshot(env)
		kc, _ := snap.File("KUBECONFIG")
		second, _ := snap.File("SECOND")
		want := map[string][]byte{
			"env":              snap.Env,
			"dotenv":           snap.Dotenv,
			"values.json":      snap.ValuesJSON,
			"files/KUBECONFIG": kc.Content,
			"files/SECOND":     second.Content,
		}
		for _, rel := range rels {
			b := mustRead(t, tm.path(env, rel))
			if int64(len(b)) != sizes[rel] {
				t.Errorf("%s/%s: stat size %d, read %d bytes", env, rel, sizes[rel], len(b))
			}
			if string(b) != string(want[rel]) {
				t.Errorf("%s/%s: read\n%q\nwant the snapshot's\n%q", env, rel, b, want[rel])
			}
			if len(b) == 0 {
				t.Errorf("%s/%s is empty", env, rel)
			}
		}
		if got := join(names(t, tm.path(env, "files"))); got != "KUBECONFIG,SECOND" {
			t.Errorf("ls %s/files = %s", env, got)
		}
		// status: its size changes with the state, so stat it now
		fi, err := os.Stat(tm.path(env, "status"))
		if err != nil {
			t.Fatal(err)
		}
		b := mustRead(t, tm.path(env, "status"))
		if fi.Size() != int64(len(b)) {
			t.Errorf("%s/status: stat size %d, read %d bytes", env, fi.Size(), len(b))
		}
		if !strings.Contains(string(b), `"state": "ok"`) {
			t.Errorf("%s/status: %s", env, b)
		}
	}
	if n := tm.store.Evaluations(); n != 2 {
		t.Errorf("%d evaluations, want 2", n)
	}
}

func TestSnapshotIsolation(t *testing.T) {
	long := "values:\n  environmentVariables:\n    A: " + strings.Repeat("old-", 200) + "\n"
	short := "values:\n  environmentVariables:\n    A: new\n"
	for _, halfFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("halfReadFirst=%v", halfFirst), func(t *testing.T) {
			tm := mountT(t, map[string]string{"x.yaml": long})
			p := tm.path("x", "env")
			old := mustRead(t, p)
			if !strings.Contains(string(old), "old-old-") {
				t.Fatalf("old env: %q", old)
			}
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var first []byte
			if halfFirst {
				first = make([]byte, len(old)/2)
				if _, err := io.ReadFull(f, first); err != nil {
					t.Fatalf("read half: %v", err)
				}
			}
			tm.define("x.yaml", short)
			var fresh []byte
			took := eventually(t, watchLimit, "new env through the mount", func() (bool, string) {
				b, err := readFile(t, p)
				fresh = b
				return err == nil && strings.Contains(string(b), "'new'"), fmt.Sprintf("%q %v", b, err)
			})
			t.Logf("change visible after %v", took)
			if len(fresh) >= len(old) {
				t.Fatalf("new env (%d bytes) is not shorter than the old (%d)", len(fresh), len(old))
			}
			// fstat on the held fd reports its version's size, not the new
			// one's (bash's source reads exactly st_size bytes)
			if fi, err := f.Stat(); err != nil || fi.Size() != int64(len(old)) {
				t.Errorf("fstat of the held fd: size %d, %v; want the old version's %d", fi.Size(), err, len(old))
			}
			rest, err := io.ReadAll(f)
			if err != nil {
				t.Fatalf("read held fd: %v", err)
			}
			if got := append(first, rest...); string(got) != string(old) {
				t.Errorf("held fd read\n%q\nwant the old bytes\n%q", got, old)
			}
			again := mustRead(t, p)
			if string(again) != string(fresh) {
				t.Errorf("a new open read %q, want %q", again, fresh)
			}
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() != int64(len(fresh)) {
				t.Errorf("size after change %d, want %d", fi.Size(), len(fresh))
			}
		})
	}
}

// TestInodesStable: directories and status keep their inode; each version
// of a file is an inode of its own, the same while the version lasts, a new
// one when the environment changes.
func TestInodesStable(t *testing.T) {
	tm := mountT(t, map[string]string{"x.yaml": simpleDef, "p/y.yaml": filesDef})
	rels := []string{"x", "x/env", "x/status", "x/files", "p", "p/y", "p/y/env", "p/y/files/KUBECONFIG"}
	versioned := map[string]bool{"x/env": true, "p/y/env": true, "p/y/files/KUBECONFIG": true, "x/status": true}
	ino := func(rel string) uint64 {
		t.Helper()
		fi, err := os.Stat(tm.path(rel))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	first := map[string]uint64{}
	seen := map[uint64]string{}
	for _, rel := range rels {
		first[rel] = ino(rel)
		if other, dup := seen[first[rel]]; dup {
			t.Errorf("%s and %s share inode %d", rel, other, first[rel])
		}
		seen[first[rel]] = rel
		if again := ino(rel); again != first[rel] {
			t.Errorf("%s: inode %d then %d", rel, first[rel], again)
		}
	}
	tm.define("x.yaml", "values:\n  environmentVariables:\n    A: changed-and-longer\n")
	tm.define("p/y.yaml", strings.Replace(filesDef, "world", "planet", 1))
	eventually(t, watchLimit, "changed content", func() (bool, string) {
		a, _ := readFile(t, tm.path("x", "env"))
		b, _ := readFile(t, tm.path("p", "y", "files", "KUBECONFIG"))
		return strings.Contains(string(a), "changed") && strings.Contains(string(b), "planet"), string(a) + string(b)
	})
	for _, rel := range rels {
		got := ino(rel)
		switch {
		case versioned[rel] && got == first[rel]:
			t.Errorf("%s: a new version kept the inode %d of the old one", rel, got)
		case !versioned[rel] && got != first[rel]:
			t.Errorf("%s: inode %d before the change, %d after", rel, first[rel], got)
		}
	}
}

func TestReadOnly(t *testing.T) {
	tm := mountT(t, map[string]string{"x.yaml": filesDef, "p/y.yaml": simpleDef})
	for _, rel := range []string{"x/env", "x/dotenv", "x/values.json", "x/status", "x/files/KUBECONFIG", "p/y/env"} {
		fi, err := os.Stat(tm.path(rel))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != 0o400 {
			t.Errorf("%s: mode %v, want -r--------", rel, fi.Mode())
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != tm.cfg.UID || st.Gid != tm.cfg.GID {
			t.Errorf("%s: owner %d:%d, want %d:%d", rel, st.Uid, st.Gid, tm.cfg.UID, tm.cfg.GID)
		}
	}
	for _, rel := range []string{"", "x", "x/files", "p", "p/y"} {
		fi, err := os.Stat(tm.path(rel))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != fs.ModeDir|0o500 {
			t.Errorf("%q: mode %v, want dr-x------", rel, fi.Mode())
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != tm.cfg.UID || st.Gid != tm.cfg.GID {
			t.Errorf("%q: owner %d:%d, want %d:%d", rel, st.Uid, st.Gid, tm.cfg.UID, tm.cfg.GID)
		}
	}
	env := tm.path("x", "env")
	attempts := map[string]func() error{
		"open for writing": func() error {
			f, err := os.OpenFile(env, os.O_WRONLY, 0)
			if err == nil {
				f.Close()
			}
			return err
		},
		"open read-write": func() error {
			f, err := os.OpenFile(env, os.O_RDWR, 0)
			if err == nil {
				f.Close()
			}
			return err
		},
		"truncate":         func() error { return os.Truncate(env, 0) },
		"create":           func() error { return os.WriteFile(tm.path("x", "new"), []byte("x"), 0o600) },
		"create in root":   func() error { return os.WriteFile(tm.path("new"), []byte("x"), 0o600) },
		"mkdir":            func() error { return os.Mkdir(tm.path("newdir"), 0o700) },
		"chmod":            func() error { return os.Chmod(env, 0o644) },
		"chmod dir":        func() error { return os.Chmod(tm.path("x"), 0o755) },
		"chown":            func() error { return os.Chown(env, 1, 1) },
		"rename":           func() error { return os.Rename(env, tm.path("x", "env2")) },
		"rename dir":       func() error { return os.Rename(tm.path("x"), tm.path("z")) },
		"remove":           func() error { return os.Remove(env) },
		"remove dir":       func() error { return os.Remove(tm.path("p", "y")) },
		"symlink":          func() error { return os.Symlink("/etc/passwd", tm.path("x", "link")) },
		"utimes":           func() error { return os.Chtimes(env, time.Now(), time.Now()) },
		"setxattr on file": func() error { return unix.Setxattr(env, "user.test", []byte("x"), 0) },
	}
	for what, do := range attempts {
		if err := do(); !errors.Is(err, unix.EROFS) {
			t.Errorf("%s: %v, want EROFS", what, err)
		}
	}
	// nothing changed
	if got := join(names(t, tm.path("x"))); got != "dotenv,env,files,status,values.json" {
		t.Errorf("ls x = %s", got)
	}
	if b := mustRead(t, env); !strings.Contains(string(b), "hello world") {
		t.Errorf("env after the attempts: %q", b)
	}
}

// TestLargeFiles: files far over the kernel's 128 KiB read size read whole
// and in order, sequentially and at offsets: the content numbers its lines,
// so a Read that served the wrong offset would repeat or skip some.
func TestLargeFiles(t *testing.T) {
	var big strings.Builder
	for i := 0; big.Len() < 600<<10; i++ {
		fmt.Fprintf(&big, "line %07d of a file larger than one FUSE read\n", i)
	}
	def := fmt.Sprintf("values:\n  big: %q\n  files:\n    BIG: ${big}\n", big.String())
	tm := mountT(t, map[string]string{"large.yaml": def})
	snap := tm.snapshot("large")
	want := map[string][]byte{"files/BIG": []byte(big.String()), "values.json": snap.ValuesJSON}
	for rel, w := range want {
		if len(w) < 4*(128<<10) {
			t.Fatalf("%s: only %d bytes: the test needs several reads", rel, len(w))
		}
		got := mustRead(t, tm.path("large", rel))
		if !bytes.Equal(got, w) {
			t.Errorf("%s: read %d bytes, want %d; first difference at %d", rel, len(got), len(w), firstByteDiff(got, w))
		}
		f, err := os.Open(tm.path("large", rel))
		if err != nil {
			t.Fatal(err)
		}
		for _, off := range []int64{int64(len(w)) - 100, 300 << 10, 129 << 10, 7} {
			buf := make([]byte, 64)
			n, err := f.ReadAt(buf, off)
			if err != nil && !(err == io.EOF && off+int64(n) == int64(len(w))) {
				t.Errorf("%s: ReadAt %d: %v", rel, off, err)
			}
			if !bytes.Equal(buf[:n], w[off:off+int64(n)]) {
				t.Errorf("%s: at %d read %q, want %q", rel, off, buf[:n], w[off:off+int64(n)])
			}
		}
		f.Close()
	}
}

// firstByteDiff is the first index where a and b differ.
func firstByteDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
