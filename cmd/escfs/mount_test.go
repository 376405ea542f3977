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

	"github.com/escfs/escfs/internal/escfstest"
)

// sigtermWithFileOpen mounts dir at mnt, opens path inside, sends SIGTERM
// and waits (bounded) until the mount has left mountinfo: detached lazily,
// since the file is open. The file is closed when the test ends.
func sigtermWithFileOpen(t *testing.T, bin, dir, mnt, ready, path string) (*escfstest.Escfs, *os.File) {
	t.Helper()
	p := escfstest.MountAt(t, escfstest.Options{}, mnt, "--dir", dir, "mount")
	p.WaitReadable(t, ready)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); escfstest.IsMounted(mnt); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still mounted 10s after SIGTERM\n%s", p.Log())
		}
	}
	return p, f
}

// statErr is the error of a bounded stat.
func statErr(_ os.FileInfo, err error) error { return err }

func TestMountProcess(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatalf("mount tests need /dev/fuse: %v", err)
	}
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			t.Fatalf("not root, so mounting needs fusermount3 (apt-get install fuse3): %v", err)
		}
	}
	bin := escfstest.Binary(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "prod.yaml"), []byte("values:\n  environmentVariables:\n    A: alpha\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	escfstest.DetachAll(t, mnt)
	status := filepath.Join(mnt, "prod", "status")
	env := filepath.Join(mnt, "prod", "env")

	t.Run("SIGTERM unmounts and exits 0", func(t *testing.T) {
		p := escfstest.MountAt(t, escfstest.Options{}, mnt, "--dir", dir, "mount")
		p.WaitReadable(t, status)
		if b, err := escfstest.Read(env, 5*time.Second); err != nil || string(b) != "export A='alpha'\n" {
			t.Fatalf("env through the escfs process: %q %v", b, err)
		}
		if !escfstest.IsMounted(mnt) {
			t.Fatalf("%s is not in /proc/self/mountinfo while serving", mnt)
		}
		if err := p.Signal(t, syscall.SIGTERM); err != nil {
			t.Fatalf("escfs exited with %v after SIGTERM\n%s", err, p.Log())
		}
		if escfstest.IsMounted(mnt) {
			t.Errorf("%s still mounted after escfs exited", mnt)
		}
	})

	t.Run("SIGTERM the moment the mount appears unmounts and exits 0", func(t *testing.T) {
		// The handler must be in place before the mount exists: a SIGTERM
		// that the default action handles kills escfs and leaves a dead mount.
		for i := range 10 {
			p := escfstest.MountAt(t, escfstest.Options{}, mnt, "--dir", dir, "mount")
			deadline := time.Now().Add(15 * time.Second)
			for !escfstest.IsMounted(mnt) {
				select {
				case <-p.Done():
					t.Fatalf("run %d: escfs exited before mounting: %v\n%s", i, p.Err(), p.Log())
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("run %d: not mounted after 15s\n%s", i, p.Log())
				}
				time.Sleep(100 * time.Microsecond)
			}
			if err := p.Signal(t, syscall.SIGTERM); err != nil {
				t.Fatalf("run %d: escfs exited with %v after a SIGTERM right after mounting\n%s", i, err, p.Log())
			}
			if escfstest.IsMounted(mnt) {
				t.Fatalf("run %d: %s still mounted after escfs exited", i, mnt)
			}
		}
	})

	t.Run("SIGTERM while a file is open detaches lazily, serves it, exits 0 when it closes", func(t *testing.T) {
		p, f := sigtermWithFileOpen(t, bin, dir, mnt, status, env)
		// past any grace period: escfs must serve its users until they leave
		select {
		case <-p.Done():
			t.Fatalf("escfs exited (%v) while a file of the detached mount was open: its reader gets ENOTCONN\n%s", p.Err(), p.Log())
		case <-time.After(6 * time.Second):
		}
		buf := make([]byte, 100)
		if n, err := f.ReadAt(buf, 0); string(buf[:n]) != "export A='alpha'\n" {
			t.Fatalf("the open file after the lazy detach: %q %v", buf[:n], err)
		}
		f.Close()
		select {
		case <-p.Done():
			if p.Err() != nil {
				t.Fatalf("escfs exited with %v once its last file closed\n%s", p.Err(), p.Log())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("escfs still running 10s after the last file of its detached mount closed\n%s", p.Log())
		}
	})

	t.Run("a second SIGTERM stops a detached mount that is still in use", func(t *testing.T) {
		p, _ := sigtermWithFileOpen(t, bin, dir, mnt, status, env)
		if err := p.Signal(t, syscall.SIGTERM); err != nil {
			t.Fatalf("second SIGTERM: escfs exited with %v\n%s", err, p.Log())
		}
	})

	t.Run("a killed escfs leaves a stale mount the next escfs clears", func(t *testing.T) {
		p := escfstest.MountAt(t, escfstest.Options{}, mnt, "--dir", dir, "mount")
		p.WaitReadable(t, status)
		err := p.Signal(t, syscall.SIGKILL)
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("killed escfs: %v", err)
		}
		// stat is answered from the attribute cache for up to 1s
		deadline := time.Now().Add(3 * time.Second)
		for {
			err := statErr(escfstest.Stat(mnt, 5*time.Second))
			if errors.Is(err, syscall.ENOTCONN) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("stat of the mount point after a kill: %v, want ENOTCONN", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		p = escfstest.MountAt(t, escfstest.Options{}, mnt, "--dir", dir, "mount")
		p.WaitReadable(t, status)
		if b, err := escfstest.Read(env, 5*time.Second); err != nil || string(b) != "export A='alpha'\n" {
			t.Fatalf("env after clearing the stale mount: %q %v", b, err)
		}
		if !strings.Contains(p.Log(), "stale") {
			t.Errorf("escfs did not say it cleared a stale mount:\n%s", p.Log())
		}
		if err := p.Signal(t, syscall.SIGTERM); err != nil {
			t.Fatalf("escfs exited with %v after SIGTERM\n%s", err, p.Log())
		}
		if escfstest.IsMounted(mnt) {
			t.Errorf("%s still mounted after escfs exited", mnt)
		}
		if err := statErr(escfstest.Stat(mnt, 5*time.Second)); err != nil {
			t.Errorf("mount point after the clean exit: %v", err)
		}
	})
	t.Run("restarted at once after a kill, escfs still clears the stale mount", func(t *testing.T) {
		p := escfstest.MountAt(t, escfstest.Options{}, mnt, "--dir", dir, "mount")
		p.WaitReadable(t, status)
		if err := p.Signal(t, syscall.SIGKILL); err == nil {
			t.Fatal("killed escfs exited 0")
		}
		p = escfstest.MountAt(t, escfstest.Options{}, mnt, "--dir", dir, "mount") // while stat still answers from the cache
		p.WaitReadable(t, status)
		if err := p.Signal(t, syscall.SIGTERM); err != nil {
			t.Fatalf("escfs exited with %v after SIGTERM\n%s", err, p.Log())
		}
		if escfstest.IsMounted(mnt) {
			t.Errorf("a mount is left at %s after escfs exited: the stale one was mounted over, not cleared", mnt)
		}
	})
}
