package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/escfs/escfs/internal/testutil"
)

// mountProc is a running escfs mount process.
type mountProc struct {
	cmd    *exec.Cmd
	stderr *testutil.Buffer
	done   chan struct{}
	err    error // set when done is closed
}

func mountStart(t *testing.T, bin, dir, mnt string) *mountProc {
	t.Helper()
	cmd := exec.Command(bin, "--dir", dir, "mount", mnt)
	p := &mountProc{cmd: cmd, stderr: &testutil.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// mountWaitServing waits until path is readable through the mount.
func mountWaitServing(t *testing.T, p *mountProc, path string) []byte {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-p.done:
			t.Fatalf("escfs exited before serving: %v\n%s", p.err, p.stderr)
		default:
		}
		if b, err := mountRead(path, 5*time.Second); err == nil {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not readable within 15s\n%s", path, p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mountRead reads a file, giving up (leaving the reader behind) after d.
func mountRead(path string, d time.Duration) ([]byte, error) {
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
		return nil, errors.New("read timed out")
	}
}

// mountStat stats path, giving up after d.
func mountStat(path string, d time.Duration) error {
	ch := make(chan error, 1)
	go func() { _, err := os.Stat(path); ch <- err }()
	select {
	case err := <-ch:
		return err
	case <-time.After(d):
		return errors.New("stat timed out")
	}
}

func (p *mountProc) stop(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(10 * time.Second):
		t.Fatalf("escfs did not exit within 10s of %v\n%s", sig, p.stderr)
		return nil
	}
}

// sigtermWithFileOpen mounts dir at mnt, opens path inside, sends SIGTERM
// and waits (bounded) until the mount has left mountinfo: detached lazily,
// since the file is open. The file is closed when the test ends.
func sigtermWithFileOpen(t *testing.T, bin, dir, mnt, ready, path string) (*mountProc, *os.File) {
	t.Helper()
	p := mountStart(t, bin, dir, mnt)
	mountWaitServing(t, p, ready)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); isMounted(t, mnt); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still mounted 10s after SIGTERM\n%s", p.stderr)
		}
	}
	return p, f
}

// isMounted reports whether mnt is a mount point in /proc/self/mountinfo.
func isMounted(t *testing.T, mnt string) bool { return len(testutil.MountsAt(t, mnt)) > 0 }

func TestMountProcess(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatalf("mount tests need /dev/fuse: %v", err)
	}
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			t.Fatalf("not root, so mounting needs fusermount3 (apt-get install fuse3): %v", err)
		}
	}
	bin := escfsBinary(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "prod.yaml"), []byte("values:\n  environmentVariables:\n    A: alpha\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	t.Cleanup(func() {
		// whatever happened, leave no mount behind
		for i := 0; i < 3 && isMounted(t, mnt); i++ {
			_ = unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	status := filepath.Join(mnt, "prod", "status")
	env := filepath.Join(mnt, "prod", "env")

	t.Run("SIGTERM unmounts and exits 0", func(t *testing.T) {
		p := mountStart(t, bin, dir, mnt)
		mountWaitServing(t, p, status)
		if b, err := mountRead(env, 5*time.Second); err != nil || string(b) != "export A='alpha'\n" {
			t.Fatalf("env through the escfs process: %q %v", b, err)
		}
		if !isMounted(t, mnt) {
			t.Fatalf("%s is not in /proc/self/mountinfo while serving", mnt)
		}
		if err := p.stop(t, syscall.SIGTERM); err != nil {
			t.Fatalf("escfs exited with %v after SIGTERM\n%s", err, p.stderr)
		}
		if isMounted(t, mnt) {
			t.Errorf("%s still mounted after escfs exited", mnt)
		}
	})

	t.Run("SIGTERM the moment the mount appears unmounts and exits 0", func(t *testing.T) {
		// The handler must be in place before the mount exists: a SIGTERM
		// that the default action handles kills escfs and leaves a dead mount.
		for i := range 10 {
			p := mountStart(t, bin, dir, mnt)
			deadline := time.Now().Add(15 * time.Second)
			for !isMounted(t, mnt) {
				select {
				case <-p.done:
					t.Fatalf("run %d: escfs exited before mounting: %v\n%s", i, p.err, p.stderr)
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("run %d: not mounted after 15s\n%s", i, p.stderr)
				}
				time.Sleep(100 * time.Microsecond)
			}
			if err := p.stop(t, syscall.SIGTERM); err != nil {
				t.Fatalf("run %d: escfs exited with %v after a SIGTERM right after mounting\n%s", i, err, p.stderr)
			}
			if isMounted(t, mnt) {
				t.Fatalf("run %d: %s still mounted after escfs exited", i, mnt)
			}
		}
	})

	t.Run("SIGTERM while a file is open detaches lazily, serves it, exits 0 when it closes", func(t *testing.T) {
		p, f := sigtermWithFileOpen(t, bin, dir, mnt, status, env)
		// past any grace period: escfs must serve its users until they leave
		select {
		case <-p.done:
			t.Fatalf("escfs exited (%v) while a file of the detached mount was open: its reader gets ENOTCONN\n%s", p.err, p.stderr)
		case <-time.After(6 * time.Second):
		}
		buf := make([]byte, 100)
		if n, err := f.ReadAt(buf, 0); string(buf[:n]) != "export A='alpha'\n" {
			t.Fatalf("the open file after the lazy detach: %q %v", buf[:n], err)
		}
		f.Close()
		select {
		case <-p.done:
			if p.err != nil {
				t.Fatalf("escfs exited with %v once its last file closed\n%s", p.err, p.stderr)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("escfs still running 10s after the last file of its detached mount closed\n%s", p.stderr)
		}
	})

	t.Run("a second SIGTERM stops a detached mount that is still in use", func(t *testing.T) {
		p, _ := sigtermWithFileOpen(t, bin, dir, mnt, status, env)
		if err := p.stop(t, syscall.SIGTERM); err != nil {
			t.Fatalf("second SIGTERM: escfs exited with %v\n%s", err, p.stderr)
		}
	})

	t.Run("a killed escfs leaves a stale mount the next escfs clears", func(t *testing.T) {
		p := mountStart(t, bin, dir, mnt)
		mountWaitServing(t, p, status)
		err := p.stop(t, syscall.SIGKILL)
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("killed escfs: %v", err)
		}
		// stat is answered from the attribute cache for up to 1s
		deadline := time.Now().Add(3 * time.Second)
		for {
			err := mountStat(mnt, 5*time.Second)
			if errors.Is(err, syscall.ENOTCONN) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("stat of the mount point after a kill: %v, want ENOTCONN", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		p = mountStart(t, bin, dir, mnt)
		mountWaitServing(t, p, status)
		if b, err := mountRead(env, 5*time.Second); err != nil || string(b) != "export A='alpha'\n" {
			t.Fatalf("env after clearing the stale mount: %q %v", b, err)
		}
		if !strings.Contains(p.stderr.String(), "stale") {
			t.Errorf("escfs did not say it cleared a stale mount:\n%s", p.stderr)
		}
		if err := p.stop(t, syscall.SIGTERM); err != nil {
			t.Fatalf("escfs exited with %v after SIGTERM\n%s", err, p.stderr)
		}
		if isMounted(t, mnt) {
			t.Errorf("%s still mounted after escfs exited", mnt)
		}
		if err := mountStat(mnt, 5*time.Second); err != nil {
			t.Errorf("mount point after the clean exit: %v", err)
		}
	})
	t.Run("restarted at once after a kill, escfs still clears the stale mount", func(t *testing.T) {
		p := mountStart(t, bin, dir, mnt)
		mountWaitServing(t, p, status)
		if err := p.stop(t, syscall.SIGKILL); err == nil {
			t.Fatal("killed escfs exited 0")
		}
		p = mountStart(t, bin, dir, mnt) // while stat still answers from the cache
		mountWaitServing(t, p, status)
		if err := p.stop(t, syscall.SIGTERM); err != nil {
			t.Fatalf("escfs exited with %v after SIGTERM\n%s", err, p.stderr)
		}
		if isMounted(t, mnt) {
			t.Errorf("a mount is left at %s after escfs exited: the stale one was mounted over, not cleared", mnt)
		}
	})
}
