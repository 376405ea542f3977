package main

import (
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

	"github.com/escfs/escfs/internal/escfstest"
	"github.com/escfs/escfs/internal/testutil"
)

// nobody is the unprivileged uid (and gid) the tests run escfs as where
// root's privileges would hide what they check.
const nobody = 65534

// startEscfs starts the escfs binary bin with args and env added to the
// test's environment, as uid (unless -1), its output line by line.
func startEscfs(t *testing.T, bin string, uid int, env []string, args ...string) *escfstest.Proc {
	t.Helper()
	opts := escfstest.Options{Bin: bin, Env: append(os.Environ(), env...), Lines: true}
	if uid >= 0 {
		opts.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: []uint32{}}
	}
	return escfstest.Start(t, opts, args...)
}

// readAs reads path as uid with cat (root would be let through anything).
func readAs(uid int, path string) (string, error) {
	cmd := exec.Command("cat", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: []uint32{}}}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// publicCopy returns a directory any user can enter holding a copy of the
// escfs binary and a definitions directory with the given files: escfs runs
// as nobody there. It is removed when the test ends.
func publicCopy(t *testing.T, bin string, defs map[string]string) (escfs, dir string) {
	t.Helper()
	base, err := os.MkdirTemp("", "escfs-public-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	escfs, dir = filepath.Join(base, "escfs"), filepath.Join(base, "defs")
	b, err := os.ReadFile(bin)
	if err == nil {
		err = os.WriteFile(escfs, b, 0o755)
	}
	if err == nil {
		err = os.Mkdir(dir, 0o755)
	}
	for name, content := range defs {
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644)
		}
	}
	if err == nil {
		err = os.Chmod(base, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	return escfs, dir
}

// TestRunAndOpenAreNotDumpable runs escfs run and escfs open as an
// unprivileged user and reads their /proc/PID/environ as that same user:
// the kernel refuses it only for a non-dumpable process. The control is the
// command escfs run starts, a process of the same user, which is readable.
func TestRunAndOpenAreNotDumpable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root, to run escfs as another user (run make test as root)")
	}
	bin, dir := publicCopy(t, escfstest.Binary(t), map[string]string{
		"app.yaml":  "values:\n  environmentVariables:\n    APP_NAME: demo\n  files:\n    CONFIG: x\n",
		"slow.yaml": "values:\n  creds:\n    fn::open::token:\n      delay: 60s\n",
	})
	xdg := testutil.MemTempDir(t)
	if err := os.Chown(xdg, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	env := []string{"XDG_RUNTIME_DIR=" + xdg}

	t.Run("run", func(t *testing.T) {
		p := startEscfs(t, bin, nobody, env, "--dir", dir, "run", "app", "--", "sh", "-c", `echo $$; exec sleep 60`)
		child := p.Line(t)
		// The child prints its pid and then execs: read while it is in
		// the middle of execve and the kernel shows an empty environ, so
		// read again (bounded) until the new image's environ is there.
		got, err := readAs(nobody, "/proc/"+child+"/environ")
		for deadline := time.Now().Add(5 * time.Second); err == nil && got == "" && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
			got, err = readAs(nobody, "/proc/"+child+"/environ")
		}
		if err != nil || !strings.Contains(got, "APP_NAME=demo") {
			t.Fatalf("control: the command's environ as its own user: %q, %v", got, err)
		}
		if got, err := readAs(nobody, fmt.Sprintf("/proc/%d/environ", p.PID())); err == nil {
			t.Fatalf("escfs run's environ read by its own user (%d bytes): it is dumpable", len(got))
		} else if !strings.Contains(err.Error(), "Permission denied") {
			t.Fatalf("escfs run's environ: %v, want Permission denied", err)
		}
	})

	t.Run("open", func(t *testing.T) {
		waitNotDumpable(t, startEscfs(t, bin, nobody, env, "--dir", dir, "open", "slow"))
	})

	// edit holds the plaintext of every secret of the file while the
	// editor runs (as set, check and secrets do while they work): every
	// escfs command is non-dumpable from its start.
	t.Run("edit", func(t *testing.T) {
		waitNotDumpable(t, startEscfs(t, bin, nobody, append(env, `EDITOR=sh -c "exec sleep 60"`), "--dir", dir, "edit", "app"))
	})
}

// waitNotDumpable waits (15 s at most) until p's /proc/PID/environ cannot
// be read by its own user: escfs becomes non-dumpable right after it starts.
func waitNotDumpable(t *testing.T, p *escfstest.Proc) {
	t.Helper()
	environ := fmt.Sprintf("/proc/%d/environ", p.PID())
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, err := readAs(nobody, environ)
		if err != nil && strings.Contains(err.Error(), "Permission denied") {
			return
		}
		select {
		case <-p.Done():
			t.Fatalf("escfs ended (%v) before it was seen non-dumpable; stderr:\n%s", p.Err(), p.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("escfs's environ still readable by its own user after 15s (last: %v): it is dumpable", err)
		}
	}
}

// processGone waits up to 10 seconds for process pid to be gone (or a
// zombie nobody reaps) and reports whether it is.
func processGone(pid int) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if errors.Is(err, os.ErrNotExist) {
			return true
		}
		if i := strings.LastIndexByte(string(b), ')'); i >= 0 && strings.HasPrefix(string(b[i:]), ") Z") {
			return true
		}
	}
	return false
}

// TestRunKilled SIGKILLs escfs run while its command runs, beside a second
// run that stays alive, and checks that the killed run's command dies with
// it, that its files were on a tmpfs, and that the next escfs (any
// command) removes the killed run's directory but not the live one's.
func TestRunKilled(t *testing.T) {
	bin := escfstest.Binary(t)
	dir := runDefs(t)
	xdg := testutil.MemTempDir(t)
	env := []string{"XDG_RUNTIME_DIR=" + xdg, "TMPDIR=" + t.TempDir()}
	script := `echo $$; echo "$CONFIG"; exec sleep 60`
	start := func() (p *escfstest.Proc, child int, config string) {
		t.Helper()
		p = startEscfs(t, bin, -1, env, "--dir", dir, "run", "app", "--", "sh", "-c", script)
		child, err := strconv.Atoi(p.Line(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = syscall.Kill(child, syscall.SIGKILL) })
		return p, child, p.Line(t)
	}
	live, _, liveConfig := start()
	killed, killedChild, killedConfig := start()

	for _, config := range []string{liveConfig, killedConfig} {
		if filepath.Dir(filepath.Dir(config)) != xdg {
			t.Fatalf("files entry at %s, want it in $XDG_RUNTIME_DIR %s", config, xdg)
		}
		var st unix.Statfs_t
		if err := unix.Statfs(config, &st); err != nil || st.Type != unix.TMPFS_MAGIC {
			t.Fatalf("files entry %s: filesystem 0x%x, %v; want tmpfs", config, st.Type, err)
		}
	}

	if err := killed.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-killed.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the killed escfs did not end within 10s")
	}
	if !processGone(killedChild) {
		t.Errorf("the command of the SIGKILLed escfs run (pid %d) still runs 10s later, with its secrets", killedChild)
	}
	if _, err := os.Stat(killedConfig); err != nil {
		t.Fatalf("before the next escfs: %s: %v, want it left behind by the kill (else this test proves nothing)", killedConfig, err)
	}

	next := exec.Command(bin, "--dir", dir, "ls")
	next.Env = append(os.Environ(), env...)
	if r, err := next.CombinedOutput(); err != nil {
		t.Fatalf("escfs ls: %v\n%s", err, r)
	}
	if _, err := os.Stat(filepath.Dir(killedConfig)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the killed run's directory after the next escfs: %v, want it removed", err)
	}
	if b, err := os.ReadFile(liveConfig); err != nil || string(b) != "name=demo\n" {
		t.Errorf("the live run's file after the next escfs: %q, %v; want it intact", b, err)
	}
	select {
	case <-live.Done():
		t.Fatalf("the live run ended: %v", live.Err())
	default:
	}
	if err := live.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-live.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the live run did not end within 10s of SIGTERM")
	}
	if entries, err := os.ReadDir(xdg); err != nil || len(entries) != 0 {
		t.Errorf("left in $XDG_RUNTIME_DIR: %v, %v", entries, err)
	}
}
