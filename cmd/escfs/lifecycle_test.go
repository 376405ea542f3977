package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/escfs/escfs/internal/escfstest"
	"github.com/escfs/escfs/internal/filetree"
	"github.com/escfs/escfs/internal/testutil"
)

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
	dir = filetree.Write(t, "", map[string]string{"prod.yaml": "values:\n  environmentVariables:\n    A: alpha\n"})
	mnt = t.TempDir()
	escfstest.DetachAll(t, mnt)
	return dir, mnt
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
			before := testutil.MountsAt(t, tt.path)
			r := escfsBounded(t, 20*time.Second, "unmount", tt.path)
			if r.code != 1 || !strings.Contains(r.stderr, tt.wantErr) {
				t.Fatalf("escfs unmount %s: exit %d, stderr %q; want exit 1 and %q", tt.path, r.code, r.stderr, tt.wantErr)
			}
			if after := testutil.MountsAt(t, tt.path); strings.Join(after, ",") != strings.Join(before, ",") {
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
	p := escfstest.MountAt(t, escfstest.Options{}, mnt, "--dir", dir, "mount")
	p.WaitReadable(t, filepath.Join(mnt, "prod", "status"))
	p.Pause(t)

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
	if got := testutil.MountsAt(t, mnt); len(got) != 0 {
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
	p := escfstest.MountAt(t, escfstest.Options{}, mnt, "--dir", dir, "mount")
	p.WaitReadable(t, filepath.Join(mnt, "prod", "status"))
	if err := p.Signal(t, syscall.SIGKILL); err == nil {
		t.Fatal("killed escfs exited 0")
	}
	r := escfsBounded(t, 20*time.Second, "unmount", mnt)
	if r.code != 0 || len(testutil.MountsAt(t, mnt)) != 0 {
		t.Fatalf("escfs unmount of a dead mount: exit %d, mounts %v, stderr:\n%s", r.code, testutil.MountsAt(t, mnt), r.stderr)
	}
}

// TestMountRefuses starts escfs mount where it must not mount: on a
// regular file, on a live escfs mount, on one whose server is stopped.
// Each returns in time with a clear error and leaves the mounts there as
// they were.
func TestMountRefuses(t *testing.T) {
	needMount(t)

	t.Run("regular file", func(t *testing.T) {
		dir, _ := lifecycleMount(t)
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			for i := 0; i < 8 && len(testutil.MountsAt(t, file)) > 0; i++ {
				_ = unix.Unmount(file, unix.MNT_DETACH)
			}
		})
		r := escfsBounded(t, 20*time.Second, "--dir", dir, "mount", file)
		if r.code != 1 || !strings.Contains(r.stderr, "not a directory (a regular file)") {
			t.Fatalf("escfs mount FILE: exit %d, stderr %q; want exit 1 and not a directory", r.code, r.stderr)
		}
		if got := testutil.MountsAt(t, file); len(got) != 0 {
			t.Fatalf("mounts left on %s: %v", file, got)
		}
	})

	t.Run("live escfs mount", func(t *testing.T) {
		dir, mnt := lifecycleMount(t)
		first := escfstest.MountAt(t, escfstest.Options{}, mnt, "--dir", dir, "mount")
		first.WaitReadable(t, filepath.Join(mnt, "prod", "status"))
		r := escfsBounded(t, 20*time.Second, "--dir", dir, "mount", mnt)
		if r.code != 1 || !strings.Contains(r.stderr, "already a live escfs mount") {
			t.Fatalf("second escfs mount: exit %d, stderr %q; want exit 1 and already a live escfs mount", r.code, r.stderr)
		}
		if got := testutil.MountsAt(t, mnt); len(got) != 1 {
			t.Fatalf("mounts at %s: %v, want the first one only", mnt, got)
		}
		if b, err := escfstest.Read(filepath.Join(mnt, "prod", "env"), 5*time.Second); err != nil || string(b) != "export A='alpha'\n" {
			t.Fatalf("the first mount after the second escfs: %q, %v", b, err)
		}
		if err := first.Signal(t, syscall.SIGTERM); err != nil {
			t.Fatalf("the first escfs after SIGTERM: %v\n%s", err, first.Log())
		}
	})

	t.Run("stopped escfs mount", func(t *testing.T) {
		dir, mnt := lifecycleMount(t)
		first := escfstest.MountAt(t, escfstest.Options{}, mnt, "--dir", dir, "mount")
		first.WaitReadable(t, filepath.Join(mnt, "prod", "status"))
		first.Pause(t)
		r := escfsBounded(t, 30*time.Second, "--dir", dir, "mount", mnt)
		if r.code != 1 || !strings.Contains(r.stderr, "does not answer") || !strings.Contains(r.stderr, "escfs unmount "+mnt) {
			t.Fatalf("escfs mount on a stopped escfs mount: exit %d, stderr %q; want exit 1, does not answer, escfs unmount", r.code, r.stderr)
		}
		if got := testutil.MountsAt(t, mnt); len(got) != 1 {
			t.Fatalf("mounts at %s: %v, want the stopped one only", mnt, got)
		}
	})
}
