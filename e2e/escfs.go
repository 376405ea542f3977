package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/escfs/escfs/internal/testutil"
)

var (
	buildOnce sync.Once
	binPath   string
	binErr    error
)

// Binary returns the escfs binary under test: $ESCFS_BIN, else one built from
// ./cmd/escfs once per test run into a temporary directory.
func Binary(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("ESCFS_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		root, err := testutil.FindUp("go.mod")
		if err != nil {
			binErr = err
			return
		}
		dir, err := os.MkdirTemp("", "escfs-e2e-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "escfs")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", binPath, "./cmd/escfs")
		cmd.Dir = filepath.Dir(root)
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/escfs: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		tb.Fatal(binErr)
	}
	return binPath
}

// Escfs is a running `escfs mount` process, stopped (and its mount point
// cleared) when its test ends.
type Escfs struct {
	Mnt  string   // mount point
	Env  []string // the process environment, as given to Mount
	log  *testutil.Buffer
	done chan struct{}
	err  error // set before done is closed
}

// Mount runs `escfs --dir dir mount [args...] MNT` on a fresh temporary
// mount point with the environment env (os.Environ() if nil) and returns once
// the root of the mount answers. Cleanup sends SIGTERM, kills after 10 s, and
// detaches whatever mount is left, so a failing test never leaves one behind.
func Mount(tb testing.TB, dir string, env []string, args ...string) *Escfs {
	tb.Helper()
	if env == nil {
		env = os.Environ()
	}
	return mount(tb, env, append([]string{"--dir", dir, "mount"}, args...)...)
}

// MountCloud runs `escfs [args...] mount MNT` (args select Pulumi Cloud:
// --cloud ORG ...) on a fresh mount point with the environment env, as
// Mount does for a directory.
func MountCloud(tb testing.TB, env []string, args ...string) *Escfs {
	tb.Helper()
	return mount(tb, env, append(append([]string{}, args...), "mount")...)
}

// mount runs `escfs [args...] MNT` on a fresh temporary mount point with the
// environment env and returns once the root of the mount answers, with the
// cleanup Mount describes.
func mount(tb testing.TB, env []string, args ...string) *Escfs {
	tb.Helper()
	mnt := tb.TempDir()
	e := &Escfs{Mnt: mnt, Env: env, log: &testutil.Buffer{}, done: make(chan struct{})}
	cmd := exec.Command(Binary(tb), append(args, mnt)...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = e.log, e.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start escfs: %v", err)
	}
	go func() { e.err = cmd.Wait(); close(e.done) }()
	tb.Cleanup(func() {
		stop(cmd, e.done)
		for i := 0; i < 3 && isMountPoint(mnt); i++ {
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
		if tb.Failed() {
			tb.Logf("escfs log:\n%s", e.log)
		}
	})
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case <-e.done:
			tb.Fatalf("escfs exited before serving: %v\n%s", e.err, e.log)
		default:
		}
		if isMountPoint(mnt) {
			if _, err := readTimeout(filepath.Join(mnt, "."), 5*time.Second, os.Stat); err == nil {
				return e
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("escfs did not mount %s within 15s:\n%s", mnt, e.log)
		}
	}
}

// Log returns what escfs has logged so far.
func (e *Escfs) Log() string { return e.log.String() }

// Path returns the path of rel (slash-separated) inside the mount.
func (e *Escfs) Path(rel string) string { return filepath.Join(e.Mnt, filepath.FromSlash(rel)) }

// Read reads rel inside the mount, failing the test after 30 s rather than
// hanging on a stuck mount.
func (e *Escfs) Read(tb testing.TB, rel string) ([]byte, error) {
	tb.Helper()
	return readTimeout(e.Path(rel), 30*time.Second, os.ReadFile)
}

func readTimeout[T any](path string, d time.Duration, f func(string) (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() { v, err := f(path); ch <- result{v, err} }()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-time.After(d):
		var zero T
		return zero, fmt.Errorf("%s: no answer within %v", path, d)
	}
}

// MustRead reads rel inside the mount and fails the test if it cannot.
func (e *Escfs) MustRead(tb testing.TB, rel string) []byte {
	tb.Helper()
	b, err := e.Read(tb, rel)
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

// Shell runs script with bash in the mount's environment (e.Env) and returns
// its combined output, failing the test after 60 s.
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

// Check runs `escfs --dir dir check [envs...]` with env and returns its
// standard output (diagnostics), standard error (one line an environment)
// and exit code.
func Check(tb testing.TB, dir string, env []string, envs ...string) (stdout, stderr string, code int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, Binary(tb), append([]string{"--dir", dir, "check"}, envs...)...)
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		tb.Fatalf("escfs check: %v", err)
	}
	return out.String(), errOut.String(), code
}

// WriteFiles writes files (slash-separated path relative to dir -> content)
// into dir, creating directories as needed. Writes go through a rename, as
// editors save, so a watcher never sees half a file.
func WriteFiles(tb testing.TB, dir string, files map[string]string) {
	tb.Helper()
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		tmp := p + ".tmp~"
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
		if err := os.Rename(tmp, p); err != nil {
			tb.Fatal(err)
		}
	}
}

// Eventually polls cond every 100 ms until it returns "" or timeout passes,
// then fails the test with cond's last complaint.
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

// isMountPoint reports whether path is a mount point in /proc/self/mountinfo.
func isMountPoint(path string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}
