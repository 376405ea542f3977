package escfstest

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/escfs/escfs/internal/testutil"
)

// Escfs is a running `escfs mount`, stopped (and its mount point left with
// no mount on it) when its test ends.
type Escfs struct {
	*Proc
	Mnt string   // mount point
	Env []string // the process environment
}

// Mount runs `escfs --dir dir mount [args...] MNT` on a fresh temporary
// mount point with the environment env (os.Environ() if nil) and returns
// once the root of the mount answers.
func Mount(tb testing.TB, dir string, env []string, args ...string) *Escfs {
	tb.Helper()
	e := MountAt(tb, Options{Env: env}, tb.TempDir(), append([]string{"--dir", dir, "mount"}, args...)...)
	e.WaitServing(tb)
	return e
}

// MountCloud runs `escfs [args...] mount MNT` (args select Pulumi Cloud:
// --cloud ORG ...) on a fresh mount point with the environment env, as
// Mount does for a directory.
func MountCloud(tb testing.TB, env []string, args ...string) *Escfs {
	tb.Helper()
	e := MountAt(tb, Options{Env: env}, tb.TempDir(), append(append([]string{}, args...), "mount")...)
	e.WaitServing(tb)
	return e
}

// MountAt starts `escfs [args...] MNT` at the mount point mnt and returns
// without waiting for it to serve.
func MountAt(tb testing.TB, opts Options, mnt string, args ...string) *Escfs {
	tb.Helper()
	if opts.Env == nil {
		opts.Env = os.Environ()
	}
	DetachAll(tb, mnt) // registered first, so it runs after the process is gone
	p := Start(tb, opts, append(args, mnt)...)
	return &Escfs{Proc: p, Mnt: mnt, Env: opts.Env}
}

// WaitServing waits until the root of the mount answers, as WaitFor.
func (e *Escfs) WaitServing(tb testing.TB) {
	tb.Helper()
	e.WaitFor(tb, "mount at "+e.Mnt, func() bool {
		_, err := Stat(filepath.Join(e.Mnt, "."), 5*time.Second)
		return IsMounted(e.Mnt) && err == nil
	})
}

// Path returns the path of rel (slash-separated) inside the mount.
func (e *Escfs) Path(rel string) string { return filepath.Join(e.Mnt, filepath.FromSlash(rel)) }

// Read reads rel inside the mount, giving up after 30 s rather than
// hanging on a stuck mount.
func (e *Escfs) Read(rel string) ([]byte, error) { return Read(e.Path(rel), 30*time.Second) }

// MustRead reads rel inside the mount and fails the test if it cannot.
func (e *Escfs) MustRead(tb testing.TB, rel string) []byte {
	tb.Helper()
	b, err := e.Read(rel)
	if err != nil {
		tb.Fatalf("read %s: %v", rel, err)
	}
	return b
}

// Status is the part of an environment's status file the tests look at.
type Status struct {
	State       string     `json:"state"`
	EvaluatedAt *time.Time `json:"evaluatedAt"`
	ExpiresAt   *time.Time `json:"expiresAt"`
	RefreshAt   *time.Time `json:"refreshAt"`
	Error       string     `json:"error"`
	LastError   string     `json:"lastError"`
	Diagnostics []struct {
		File     string `json:"file"`
		Line     int    `json:"line"`
		Column   int    `json:"column"`
		Severity string `json:"severity"`
		Message  string `json:"message"`
	} `json:"diagnostics"`
}

// Status reads and decodes env's status file.
func (e *Escfs) Status(tb testing.TB, env string) Status {
	tb.Helper()
	b := e.MustRead(tb, env+"/status")
	var s Status
	if err := json.Unmarshal(b, &s); err != nil {
		tb.Fatalf("%s/status is not JSON: %v\n%s", env, err, b)
	}
	return s
}

// Shell runs script with bash in the mount's environment (e.Env, and MNT)
// and returns its combined output, failing the test after 60 s.
func (e *Escfs) Shell(tb testing.TB, script string) (string, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Env = append(append([]string{}, e.Env...), "MNT="+e.Mnt)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		tb.Fatalf("bash -c %q: no end within 60s:\n%s", script, out)
	}
	return string(out), err
}

// IsMounted reports whether something is mounted at path.
func IsMounted(path string) bool {
	types, err := testutil.Mounts(path)
	return err == nil && len(types) > 0
}

// DetachAll lazily unmounts whatever is mounted at path when the test
// ends, so that a failing test never leaves a mount behind.
func DetachAll(tb testing.TB, path string) {
	tb.Cleanup(func() {
		for i := 0; i < 8 && IsMounted(path); i++ {
			_ = unix.Unmount(path, unix.MNT_DETACH)
		}
	})
}

// Eventually polls cond every 100 ms until it returns "" or timeout
// passes, then fails the test with cond's last complaint.
func Eventually(tb testing.TB, timeout time.Duration, cond func() string) {
	tb.Helper()
	var last string
	for deadline := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		if last = cond(); last == "" {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not within %v: %s", timeout, last)
		}
	}
}

// EnvWith returns os.Environ() changed by kv, as EnvEdit does.
func EnvWith(kv ...string) []string { return EnvEdit(os.Environ(), kv...) }

// EnvEdit returns a copy of env changed by kv: an entry NAME=value sets
// NAME, a bare NAME removes it.
func EnvEdit(env []string, kv ...string) []string {
	override := map[string]bool{}
	var set []string
	for _, s := range kv {
		name, _, ok := strings.Cut(s, "=")
		override[name] = true
		if ok {
			set = append(set, s)
		}
	}
	var out []string
	for _, s := range env {
		if name, _, _ := strings.Cut(s, "="); !override[name] {
			out = append(out, s)
		}
	}
	return append(out, set...)
}
