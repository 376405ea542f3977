//go:build torture

package torture

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/escfs/escfs/internal/bounded"
	"github.com/escfs/escfs/internal/escfstest"
	"github.com/escfs/escfs/internal/filetree"
	"github.com/escfs/escfs/internal/testutil"
	"github.com/escfs/escfs/providers/token"
)

// lifecycleDefs returns a definitions directory with good and slow (a
// token that takes 2 s to issue).
func lifecycleDefs(t *testing.T) string {
	dir := t.TempDir()
	filetree.WriteFile(t, filepath.Join(dir, "good.yaml"), goodDef)
	filetree.WriteFile(t, filepath.Join(dir, "slow.yaml"), token.Definition("1h", "2s", ""))
	return dir
}

// TestLifecycle runs the signal, mount and unmount cases, each on its own
// escfs, beside a control mount that must serve throughout.
func TestLifecycle(t *testing.T) {
	ctlDir := t.TempDir()
	filetree.WriteFile(t, filepath.Join(ctlDir, "good.yaml"), goodDef)
	ctl := escfstest.Mount(t, ctlDir, nil)
	for _, c := range []struct {
		name string
		run  func(t *testing.T)
	}{
		{"SIGTERM with an open fd", sigtermOpenFD},
		{"SIGTERM during a slow read", sigtermSlowRead},
		{"kill -9, mount again", killThenMount},
		{"unmount a tmpfs", unmountTmpfs},
		{"unmount a stopped escfs", unmountStopped},
		{"mount on a regular file", mountOnFile},
		{"mount on a live mount", mountOnLive},
	} {
		t.Run(c.name, func(t *testing.T) {
			track(t, groupLifecycle, ctl)
			c.run(t)
		})
	}
}

// sigtermOpenFD: SIGTERM while a file is open detaches the mount at once,
// keeps serving the open file, and exits 0 once it is closed.
func sigtermOpenFD(t *testing.T) {
	mnt := t.TempDir()
	d := startDaemon(t, lifecycleDefs(t), mnt)
	f, err := os.Open(filepath.Join(mnt, "good", "env"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	signal(t, d, syscall.SIGTERM)
	escfstest.Eventually(t, 5*time.Second, func() string {
		if got := testutil.MountsAt(t, mnt); len(got) != 0 {
			return "mount still in the namespace after SIGTERM: " + strings.Join(got, ",")
		}
		return ""
	})
	if !d.Alive() {
		t.Fatalf("escfs exited with a file still open (%v); it must keep serving it", d.Err())
	}
	buf := make([]byte, 4096)
	n, err := preadWithin(f, buf, 10*time.Second)
	if err != nil || string(buf[:n]) != goodEnv {
		t.Fatalf("the open file after SIGTERM: %q, %v; want %q", buf[:n], err, goodEnv)
	}
	f.Close()
	if exited, _ := d.Wait(10 * time.Second); !exited {
		t.Fatal("escfs still runs 10s after its last open file was closed")
	}
	if d.Err() != nil {
		t.Fatalf("escfs after SIGTERM: %v, want exit 0\n%s", d.Err(), d.Log())
	}
}

// sigtermSlowRead: SIGTERM while a reader waits for a 2 s evaluation; the
// reader gets its bytes or a clean error, never a hang, and escfs exits 0.
func sigtermSlowRead(t *testing.T) {
	mnt := t.TempDir()
	d := startDaemon(t, lifecycleDefs(t), mnt)
	type result struct {
		b   []byte
		err error
	}
	got := make(chan result, 1)
	go func() { b, err := os.ReadFile(filepath.Join(mnt, "slow", "env")); got <- result{b, err} }()
	time.Sleep(500 * time.Millisecond)
	signal(t, d, syscall.SIGTERM)
	select {
	case r := <-got:
		t.Logf("the reader got %d bytes, %v", len(r.b), r.err)
		if r.err == nil && !bytes.Contains(r.b, []byte("export TOKEN=")) {
			t.Fatalf("the reader got %d bytes without an error, and no TOKEN", len(r.b))
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the reader still waits 15s after SIGTERM")
	}
	if exited, _ := d.Wait(15 * time.Second); !exited {
		t.Fatal("escfs still runs 15s after SIGTERM with no reader left")
	}
	if d.Err() != nil {
		t.Fatalf("escfs after SIGTERM: %v, want exit 0\n%s", d.Err(), d.Log())
	}
}

// killThenMount: a SIGKILLed escfs leaves a dead mount; the next mount on
// the path clears it and serves (one mount there, not two).
func killThenMount(t *testing.T) {
	dir, mnt := lifecycleDefs(t), t.TempDir()
	first := startDaemon(t, dir, mnt)
	signal(t, first, syscall.SIGKILL)
	if exited, _ := first.Wait(10 * time.Second); !exited {
		t.Fatal("escfs still runs 10s after SIGKILL")
	}
	startDaemon(t, dir, mnt)
	if got := testutil.MountsAt(t, mnt); len(got) != 1 {
		t.Fatalf("mounts at %s after mounting over a dead one: %v, want exactly one", mnt, got)
	}
}

// unmountTmpfs: escfs unmount refuses a (busy) tmpfs and leaves it intact.
func unmountTmpfs(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount a tmpfs: %v", err)
	}
	escfstest.DetachAll(t, dir)
	filetree.WriteFile(t, filepath.Join(dir, "keep"), "tmpfs content\n")
	f, err := os.Open(filepath.Join(dir, "keep"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := escfstest.Run(t, 20*time.Second, escfstest.Options{}, "unmount", dir)
	if want := dir + " is a tmpfs mount, not escfs; not unmounting"; r.Code != 1 || !strings.Contains(r.Stderr, want) {
		t.Fatalf("escfs unmount TMPFS: exit %d, stderr %q; want exit 1 and %q", r.Code, r.Stderr, want)
	}
	if got := testutil.MountsAt(t, dir); strings.Join(got, ",") != "tmpfs" {
		t.Fatalf("mounts at %s after escfs unmount: %v, want the tmpfs", dir, got)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "keep")); err != nil || string(b) != "tmpfs content\n" {
		t.Fatalf("the tmpfs's file after escfs unmount: %q, %v", b, err)
	}
}

// unmountStopped: escfs unmount of a SIGSTOPped escfs returns within 10 s
// and removes the mount.
func unmountStopped(t *testing.T) {
	mnt := t.TempDir()
	d := startDaemon(t, lifecycleDefs(t), mnt)
	d.Pause(t)
	r := escfstest.Run(t, 10*time.Second, escfstest.Options{}, "unmount", mnt)
	t.Logf("escfs unmount of a stopped escfs: exit %d in %v", r.Code, r.Took.Round(time.Millisecond))
	note(groupLifecycle, "unmount of a stopped escfs took %v", r.Took.Round(100*time.Millisecond))
	if r.Code != 0 {
		t.Fatalf("escfs unmount of a stopped escfs: exit %d, stderr:\n%s", r.Code, r.Stderr)
	}
	if got := testutil.MountsAt(t, mnt); len(got) != 0 {
		t.Fatalf("mounts at %s after escfs unmount: %v, want none", mnt, got)
	}
}

// mountOnFile: escfs mount on a regular file is refused and mounts nothing.
func mountOnFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	filetree.WriteFile(t, file, "x")
	escfstest.DetachAll(t, file)
	r := escfstest.Run(t, 20*time.Second, escfstest.Options{}, "--dir", lifecycleDefs(t), "mount", file)
	if r.Code != 1 || !strings.Contains(r.Stderr, "not a directory") {
		t.Fatalf("escfs mount FILE: exit %d, stderr %q; want exit 1 and not a directory", r.Code, r.Stderr)
	}
	if got := testutil.MountsAt(t, file); len(got) != 0 {
		t.Fatalf("mounts left on %s: %v", file, got)
	}
}

// mountOnLive: a second escfs mount on a live one is refused; the first
// still serves.
func mountOnLive(t *testing.T) {
	dir, mnt := lifecycleDefs(t), t.TempDir()
	first := startDaemon(t, dir, mnt)
	r := escfstest.Run(t, 20*time.Second, escfstest.Options{}, "--dir", dir, "mount", mnt)
	if r.Code != 1 || !strings.Contains(r.Stderr, "already a live escfs mount") {
		t.Fatalf("second escfs mount: exit %d, stderr %q; want exit 1 and already a live escfs mount", r.Code, r.Stderr)
	}
	if got := testutil.MountsAt(t, mnt); len(got) != 1 {
		t.Fatalf("mounts at %s: %v, want the first only", mnt, got)
	}
	if b, err := escfstest.Read(filepath.Join(mnt, "good", "env"), 10*time.Second); err != nil || string(b) != goodEnv {
		t.Fatalf("the first mount after the second escfs: %q, %v", b, err)
	}
	if !first.Alive() || crashedLog(first.Log()) {
		t.Fatalf("the first escfs died: %v\n%s", first.Err(), first.Log())
	}
}

// signal sends sig to the daemon.
func signal(t *testing.T, d *escfstest.Escfs, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(d.PID(), sig); err != nil {
		t.Fatalf("signal escfs: %v", err)
	}
}

// preadWithin reads from offset 0 of f, giving up after d.
func preadWithin(f *os.File, buf []byte, d time.Duration) (int, error) {
	n, err := bounded.Call(d, func() (int, error) { return f.ReadAt(buf, 0) })
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}
