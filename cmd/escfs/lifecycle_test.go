package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/escfs/escfs/internal/testutil"
)

// escfsBounded runs the escfs binary with args and fails the test if it
// does not return within d: the commands tested here must never hang.
func escfsBounded(t *testing.T, d time.Duration, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, escfsBinary(t), args...)
	cmd.WaitDelay = time.Second
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("escfs %s did not return within %v (killed); stderr:\n%s", strings.Join(args, " "), d, stderr.String())
	}
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return cliResult{code, stdout.String(), stderr.String()}
}

// mountsAt returns the filesystem types mounted at path, bottom first.
func mountsAt(t *testing.T, path string) []string { return testutil.MountsAt(t, path) }

// needMount fails the test unless it can mount: root and /dev/fuse.
func needMount(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root, to mount (run make test as root)")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatalf("mount tests need /dev/fuse: %v", err)
	}
}

// lifecycleMount returns a definitions directory with environment prod and
// a fresh mount point that is left with no mount on it when the test ends.
func lifecycleMount(t *testing.T) (dir, mnt string) {
	t.Helper()
	dir = writeDefinitions(t, map[string]string{"prod.yaml": "values:\n  environmentVariables:\n    A: alpha\n"})
	mnt = t.TempDir()
	t.Cleanup(func() {
		for i := 0; i < 8 && len(mountsAt(t, mnt)) > 0; i++ {
			_ = unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	return dir, mnt
}

// stopped SIGSTOPs the mount process p and makes sure it is continued and
// killed when the test ends, so that no wedged server outlives the test.
func stopped(t *testing.T, p *mountProc) {
	t.Helper()
	pid := p.cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(pid, syscall.SIGCONT)
		_ = syscall.Kill(pid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("the stopped escfs (pid %d) did not end within 10s of SIGKILL", pid)
		}
	})
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Wait until the kernel shows it stopped ("T" in /proc/PID/stat).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if i := strings.LastIndexByte(string(b), ')'); i >= 0 && strings.HasPrefix(string(b[i:]), ") T") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("escfs (pid %d) not stopped 10s after SIGSTOP", pid)
		}
	}
}

// TestUnmountActsOnlyOnEscfs points escfs unmount at a real tmpfs, idle and
// busy, and at a directory that is no mount point: each is reported, left
// alone, and exits 1.
func TestUnmountActsOnlyOnEscfs(t *testing.T) {
	needMount(t)
	tmpfs := t.TempDir()
	if err := unix.Mount("tmpfs", tmpfs, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(tmpfs, unix.MNT_DETACH) })
	plain := t.TempDir()
	tests := []struct {
		name, path, wantErr string
		busy                bool
	}{
		{"idle tmpfs", tmpfs, tmpfs + " is a tmpfs mount, not escfs; not unmounting", false},
		{"busy tmpfs", tmpfs, tmpfs + " is a tmpfs mount, not escfs; not unmounting", true},
		{"not a mount point", plain, plain + " is not a mount point", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.busy {
				f, err := os.Create(filepath.Join(tt.path, "open-file"))
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
			}
			before := mountsAt(t, tt.path)
			r := escfsBounded(t, 20*time.Second, "unmount", tt.path)
			if r.code != 1 || !strings.Contains(r.stderr, tt.wantErr) {
				t.Fatalf("escfs unmount %s: exit %d, stderr %q; want exit 1 and %q", tt.path, r.code, r.stderr, tt.wantErr)
			}
			if after := mountsAt(t, tt.path); strings.Join(after, ",") != strings.Join(before, ",") {
				t.Fatalf("mounts at %s: %v before, %v after escfs unmount; want them untouched", tt.path, before, after)
			}
		})
	}
}

// TestUnmountWedged stops a real escfs mount's server with SIGSTOP while a
// reader waits on it: escfs unmount must return, remove the mount, and
// (aborting the FUSE connection) release the reader with an error.
func TestUnmountWedged(t *testing.T) {
	needMount(t)
	dir, mnt := lifecycleMount(t)
	p := mountStart(t, escfsBinary(t), dir, mnt)
	mountWaitServing(t, p, filepath.Join(mnt, "prod", "status"))
	stopped(t, p)

	readErr := make(chan error, 1)
	go func() { _, err := os.ReadFile(filepath.Join(mnt, "prod", "env")); readErr <- err }()
	select {
	case err := <-readErr:
		t.Fatalf("a read of the stopped server's mount returned (%v): the test needs it to wait", err)
	case <-time.After(1500 * time.Millisecond): // past the 1s entry and attribute cache
	}

	r := escfsBounded(t, 30*time.Second, "unmount", mnt)
	if r.code != 0 {
		t.Fatalf("escfs unmount of a wedged mount: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if got := mountsAt(t, mnt); len(got) != 0 {
		t.Fatalf("mounts at %s after escfs unmount: %v, want none", mnt, got)
	}
	select {
	case err := <-readErr:
		// The kernel fails the requests in flight when the connection is
		// aborted with ECONNABORTED, later ones with ENOTCONN.
		if !errors.Is(err, syscall.ECONNABORTED) && !errors.Is(err, syscall.ENOTCONN) {
			t.Fatalf("the waiting reader got %v, want ECONNABORTED or ENOTCONN", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the reader waiting on the wedged mount still waits 10s after escfs unmount: its connection was not aborted")
	}
}

// TestUnmountDead unmounts the mount of a SIGKILLed escfs.
func TestUnmountDead(t *testing.T) {
	needMount(t)
	dir, mnt := lifecycleMount(t)
	p := mountStart(t, escfsBinary(t), dir, mnt)
	mountWaitServing(t, p, filepath.Join(mnt, "prod", "status"))
	if err := p.stop(t, syscall.SIGKILL); err == nil {
		t.Fatal("killed escfs exited 0")
	}
	r := escfsBounded(t, 20*time.Second, "unmount", mnt)
	if r.code != 0 || len(mountsAt(t, mnt)) != 0 {
		t.Fatalf("escfs unmount of a dead mount: exit %d, mounts %v, stderr:\n%s", r.code, mountsAt(t, mnt), r.stderr)
	}
}

// TestMountRefuses starts escfs mount where it must not mount: on a
// regular file, on a live escfs mount, on one whose server is stopped.
// Each returns in time with a clear error and leaves the mounts there as
// they were.
func TestMountRefuses(t *testing.T) {
	needMount(t)
	bin := escfsBinary(t)

	t.Run("regular file", func(t *testing.T) {
		dir, _ := lifecycleMount(t)
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			for i := 0; i < 8 && len(mountsAt(t, file)) > 0; i++ {
				_ = unix.Unmount(file, unix.MNT_DETACH)
			}
		})
		r := escfsBounded(t, 20*time.Second, "--dir", dir, "mount", file)
		if r.code != 1 || !strings.Contains(r.stderr, "not a directory (a regular file)") {
			t.Fatalf("escfs mount FILE: exit %d, stderr %q; want exit 1 and not a directory", r.code, r.stderr)
		}
		if got := mountsAt(t, file); len(got) != 0 {
			t.Fatalf("mounts left on %s: %v", file, got)
		}
	})

	t.Run("live escfs mount", func(t *testing.T) {
		dir, mnt := lifecycleMount(t)
		first := mountStart(t, bin, dir, mnt)
		mountWaitServing(t, first, filepath.Join(mnt, "prod", "status"))
		r := escfsBounded(t, 20*time.Second, "--dir", dir, "mount", mnt)
		if r.code != 1 || !strings.Contains(r.stderr, "already a live escfs mount") {
			t.Fatalf("second escfs mount: exit %d, stderr %q; want exit 1 and already a live escfs mount", r.code, r.stderr)
		}
		if got := mountsAt(t, mnt); len(got) != 1 {
			t.Fatalf("mounts at %s: %v, want the first one only", mnt, got)
		}
		if b, err := mountRead(filepath.Join(mnt, "prod", "env"), 5*time.Second); err != nil || string(b) != "export A='alpha'\n" {
			t.Fatalf("the first mount after the second escfs: %q, %v", b, err)
		}
		if err := first.stop(t, syscall.SIGTERM); err != nil {
			t.Fatalf("the first escfs after SIGTERM: %v\n%s", err, first.stderr)
		}
	})

	t.Run("stopped escfs mount", func(t *testing.T) {
		dir, mnt := lifecycleMount(t)
		first := mountStart(t, bin, dir, mnt)
		mountWaitServing(t, first, filepath.Join(mnt, "prod", "status"))
		stopped(t, first)
		r := escfsBounded(t, 30*time.Second, "--dir", dir, "mount", mnt)
		if r.code != 1 || !strings.Contains(r.stderr, "does not answer") || !strings.Contains(r.stderr, "escfs unmount "+mnt) {
			t.Fatalf("escfs mount on a stopped escfs mount: exit %d, stderr %q; want exit 1, does not answer, escfs unmount", r.code, r.stderr)
		}
		if got := mountsAt(t, mnt); len(got) != 1 {
			t.Fatalf("mounts at %s: %v, want the stopped one only", mnt, got)
		}
	})
}
