//go:build torture

package torture

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/escfs/escfs/e2e"
	"github.com/escfs/escfs/internal/testutil"
)

// The control environment every mount of the suite serves beside the cases:
// a case survives only if it still reads exactly goodEnv afterwards.
const (
	goodDef = "values:\n  environmentVariables:\n    GOOD: control\n"
	goodEnv = "export GOOD='control'\n"
)

// track counts t as one case of group. When t ends it checks that ctl's
// escfs is still alive, logged no panic and still serves the control
// environment; the case survived if t did not fail. Call it after the
// mount it checks was made, so that this check runs before that mount's
// cleanup.
func track(t *testing.T, group string, ctl *e2e.Escfs) {
	t.Helper()
	t.Cleanup(func() {
		crashed := crashedLog(ctl.Log()) || !ctl.Alive()
		if crashed {
			t.Errorf("the escfs serving %s crashed or exited", ctl.Mnt)
		} else if msg := controlReads(ctl); msg != "" {
			t.Errorf("control environment: %s", msg)
		}
		record(group, func(g *tally) {
			g.cases++
			if crashed {
				g.crashes++
			}
			if !t.Failed() {
				g.survived++
			}
		})
	})
}

// crashedLog reports whether an escfs log shows a Go panic or fatal error.
func crashedLog(log string) bool {
	return strings.Contains(log, "panic:") || strings.Contains(log, "fatal error:")
}

// controlReads returns "" if e serves the control environment exactly, else
// what it got.
func controlReads(e *e2e.Escfs) string {
	b, err := readWithin(e.Path("good/env"), 15*time.Second)
	if err != nil {
		return fmt.Sprintf("read good/env: %v", err)
	}
	if string(b) != goodEnv {
		return fmt.Sprintf("good/env = %q, want %q", b, goodEnv)
	}
	return ""
}

// readWithin reads path, giving up after d so that a hung mount fails the
// case instead of hanging the suite.
func readWithin(path string, d time.Duration) ([]byte, error) {
	type result struct {
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() { b, err := os.ReadFile(path); ch <- result{b, err} }()
	select {
	case r := <-ch:
		return r.b, r.err
	case <-time.After(d):
		return nil, fmt.Errorf("%s: no answer within %v", path, d)
	}
}

// writeFile writes content at rel (slash-separated) inside dir, creating
// directories as needed.
func writeFile(t testing.TB, dir, rel, content string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// renameSave replaces the file at p with content as editors save: a new
// file renamed over the old one.
func renameSave(t testing.TB, p, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".swp~")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

// valueDef is a definition exporting V=v.
func valueDef(v string) string {
	return "values:\n  environmentVariables:\n    V: " + v + "\n"
}

// errorAt returns "" if st holds an error diagnostic located at
// FILE:LINE:COL with FILE inside dir and a message containing want, else a
// complaint.
func errorAt(st e2e.Status, dir, want string) string {
	for _, d := range st.Diagnostics {
		if d.Severity == "error" && d.Line > 0 && d.Column > 0 &&
			strings.HasPrefix(d.File, dir+string(filepath.Separator)) && strings.Contains(d.Message, want) {
			return ""
		}
	}
	return fmt.Sprintf("status %s has no error diagnostic at FILE:LINE:COL in %s mentioning %q: %+v", st.State, dir, want, st.Diagnostics)
}

// statusWithin reads and decodes env's status within 15 s.
func statusWithin(t testing.TB, e *e2e.Escfs, env string) e2e.Status {
	t.Helper()
	b, err := readWithin(e.Path(env+"/status"), 15*time.Second)
	if err != nil {
		t.Fatalf("read %s/status: %v", env, err)
	}
	var st e2e.Status
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("%s/status is not JSON: %v\n%s", env, err, b)
	}
	return st
}

// decodeStatus decodes a status file; a status that is not JSON has state
// "not JSON".
func decodeStatus(b []byte) e2e.Status {
	var st e2e.Status
	if err := json.Unmarshal(b, &st); err != nil {
		st.State = "not JSON"
	}
	return st
}

// peakRSS returns the peak resident set size (VmHWM) of pid, in bytes.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("peak RSS of %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("peak RSS of %d: %q: %w", pid, line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("peak RSS of %d: no VmHWM in /proc/%d/status", pid, pid)
}

// cliResult is what a bounded escfs command did.
type cliResult struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

// escfsWithin runs the escfs binary with args and fails the test if it does
// not return within d.
func escfsWithin(t testing.TB, d time.Duration, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, e2e.Binary(t), args...)
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := cliResult{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	if ctx.Err() != nil {
		t.Fatalf("escfs %s did not return within %v (killed); stderr:\n%s", strings.Join(args, " "), d, r.stderr)
	}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("escfs %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// mountsAt returns the filesystem types mounted at path, bottom first.
func mountsAt(t testing.TB, path string) []string { return testutil.MountsAt(t, path) }

// detachAll lazily unmounts whatever is mounted at path when t ends.
func detachAll(t testing.TB, path string) {
	t.Cleanup(func() {
		for i := 0; i < 8 && len(mountsAt(t, path)) > 0; i++ {
			_ = unix.Unmount(path, unix.MNT_DETACH)
		}
	})
}

// daemon is an `escfs mount` started at a chosen mount point (e2e.Mount
// always picks a fresh one).
type daemon struct {
	cmd  *exec.Cmd
	mnt  string
	log  *testutil.Buffer
	done chan struct{}
	err  error // set before done is closed
}

// startDaemon runs `escfs --dir dir mount mnt` and waits until mnt/good/env
// reads. When t ends the process is continued (in case a test stopped it),
// terminated, killed if it lingers, and mnt is left with no mount on it.
func startDaemon(t testing.TB, dir, mnt string) *daemon {
	t.Helper()
	d := &daemon{mnt: mnt, log: &testutil.Buffer{}, done: make(chan struct{})}
	d.cmd = exec.Command(e2e.Binary(t), "--dir", dir, "mount", mnt)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start escfs: %v", err)
	}
	go func() { d.err = d.cmd.Wait(); close(d.done) }()
	detachAll(t, mnt)
	t.Cleanup(func() {
		pid := d.cmd.Process.Pid
		_ = syscall.Kill(pid, syscall.SIGCONT)
		_ = syscall.Kill(pid, syscall.SIGTERM)
		if !d.waitExit(5 * time.Second) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			if !d.waitExit(10 * time.Second) {
				t.Errorf("escfs pid %d did not end 10s after SIGKILL", pid)
			}
		}
		if t.Failed() {
			t.Logf("escfs log (%s):\n%s", mnt, d.log)
		}
	})
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if !d.alive() {
			t.Fatalf("escfs exited before serving %s: %v\n%s", mnt, d.err, d.log)
		}
		if b, err := readWithin(filepath.Join(mnt, "good", "env"), 5*time.Second); err == nil && string(b) == goodEnv {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("escfs did not serve %s within 15s:\n%s", mnt, d.log)
		}
	}
}

// alive reports whether the daemon's process is running.
func (d *daemon) alive() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// waitExit waits up to timeout for the process to exit.
func (d *daemon) waitExit(timeout time.Duration) bool {
	select {
	case <-d.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// stop sends SIGSTOP to the daemon and waits until the kernel shows it
// stopped; startDaemon's cleanup continues and ends it.
func (d *daemon) stop(t testing.TB) {
	t.Helper()
	pid := d.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && bytes.HasPrefix(b[i:], []byte(") T")) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("escfs (pid %d) not stopped 10s after SIGSTOP", pid)
		}
	}
}
