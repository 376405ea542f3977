package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/escfs/escfs/internal/testutil"
)

// init keeps the main goroutine on the main thread, so that no test runs
// there: the Go runtime never ends the main thread, so a command forked from
// it would never see the thread end that TestRunCommandOutlivesThreadExits
// provokes.
func init() { runtime.LockOSThread() }

// fsType returns the statfs magic of the filesystem holding path.
func fsType(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Type
}

// TestRunFilesLiveInMemory runs a command with the default TempDir and
// checks where its files entry is, as the command sees it: under
// $XDG_RUNTIME_DIR when that is a tmpfs, else under /dev/shm, and in every
// case on a tmpfs.
func TestRunFilesLiveInMemory(t *testing.T) {
	xdg := testutil.MemTempDir(t)
	onDisk := t.TempDir()
	if fsType(t, onDisk) == unix.TMPFS_MAGIC {
		t.Fatalf("%s is a tmpfs: the test needs $TMPDIR on a disk filesystem to tell them apart", onDisk)
	}
	tests := []struct {
		name, xdg, wantParent string
	}{
		{"XDG_RUNTIME_DIR on tmpfs", xdg, xdg},
		{"XDG_RUNTIME_DIR on disk", onDisk, "/dev/shm"},
		{"no XDG_RUNTIME_DIR", "", "/dev/shm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap, _ := snapshotOf(t, testEnv)
			tmp := t.TempDir()
			t.Setenv("XDG_RUNTIME_DIR", tt.xdg)
			t.Setenv("TMPDIR", tmp)
			var out bytes.Buffer
			status, err := Run(context.Background(), snap,
				[]string{"sh", "-c", `printf '%s\n' "$CONFIG"; stat -f -c '%t' "$CONFIG"`},
				Options{Stdout: &out, Interactive: true})
			if err != nil || status != 0 {
				t.Fatalf("Run = %d, %v", status, err)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) != 2 {
				t.Fatalf("output %q", out.String())
			}
			path, magic := lines[0], lines[1]
			if filepath.Dir(filepath.Dir(path)) != tt.wantParent {
				t.Errorf("files entry at %s, want it in %s", path, tt.wantParent)
			}
			if want := fmt.Sprintf("%x", unix.TMPFS_MAGIC); magic != want {
				t.Errorf("the files entry's filesystem is 0x%s, want tmpfs (0x%s)", magic, want)
			}
			if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
				t.Errorf("written to $TMPDIR: %v", entries)
			}
		})
	}
}

// TestRunRefusesDisk checks that Run writes nothing and runs nothing when
// the directory for the files is on disk, and that with no tmpfs at all
// there is a clear error.
func TestRunRefusesDisk(t *testing.T) {
	onDisk := t.TempDir()
	snap, _ := snapshotOf(t, testEnv)
	marker := filepath.Join(t.TempDir(), "ran")
	status, err := Run(context.Background(), snap, []string{"touch", marker}, Options{TempDir: onDisk})
	if status != -1 || err == nil || !strings.Contains(err.Error(), "not on a memory filesystem") {
		t.Fatalf("Run with TempDir on disk = %d, %v; want -1 and a memory filesystem error", status, err)
	}
	if entries, _ := os.ReadDir(onDisk); len(entries) != 0 {
		t.Errorf("written to disk: %v", entries)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran")
	}
	if _, err := firstMemoryDir([]string{onDisk, t.TempDir()}); !errors.Is(err, ErrNoMemoryFS) {
		t.Errorf("no tmpfs among the candidates: %v, want ErrNoMemoryFS", err)
	}
	if !strings.Contains(ErrNoMemoryFS.Error(), "XDG_RUNTIME_DIR") {
		t.Errorf("ErrNoMemoryFS does not say what to do: %v", ErrNoMemoryFS)
	}
}

// TestRunCommandOutlivesThreadExits checks that the command is not killed
// by its parent-death signal while escfs lives: the Go runtime ends the
// thread of every goroutine that exits with its thread locked, and the
// kernel sends the signal when the thread that forked the command ends.
// Many such goroutines run while the command does; if the forking thread
// were free, one of them would soon run on it and end it.
func TestRunCommandOutlivesThreadExits(t *testing.T) {
	snap, _ := snapshotOf(t, testEnv)
	var out bytes.Buffer
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			var inner sync.WaitGroup
			for range 4 {
				inner.Add(1)
				go func() {
					defer inner.Done()
					runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
				}()
			}
			inner.Wait()
			time.Sleep(time.Millisecond)
		}
	}()
	status, err := Run(context.Background(), snap, []string{"sh", "-c", "sleep 2; echo alive"},
		Options{Stdout: &out, TempDir: testutil.MemTempDir(t)})
	close(stop)
	wg.Wait()
	if err != nil || status != 0 || out.String() != "alive\n" {
		t.Fatalf("Run = %d, %v, output %q; want 0 and alive (137 is a SIGKILL from an ended thread)", status, err, out.String())
	}
}

// TestRemoveDeadRuns creates run directories for live, dead and foreign
// runs and checks that exactly the dead runs' ones go.
func TestRemoveDeadRuns(t *testing.T) {
	self, err := selfRunID()
	if err != nil {
		t.Fatal(err)
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	deadPID := dead.Process.Pid
	tests := []struct {
		name      string
		id        runID
		file      bool // a regular file, not a directory
		uid       int  // chown to this uid if not -1
		wantGone  bool
		plainName string // a name that is not a run directory's
	}{
		{name: "live run", id: self, uid: -1},
		{name: "dead run", id: runID{self.pidNS, deadPID, self.start}, uid: -1, wantGone: true},
		{name: "reused PID", id: runID{self.pidNS, self.pid, self.start + 1}, uid: -1, wantGone: true},
		{name: "other PID namespace", id: runID{self.pidNS + 1, deadPID, self.start}, uid: -1},
		{name: "another user's", id: runID{self.pidNS, deadPID, self.start}, uid: 65534},
		{name: "a file", id: runID{self.pidNS, deadPID, self.start}, file: true, uid: -1},
		{name: "not a run directory", plainName: "escfs-123456", uid: -1},
	}
	parent := testutil.MemTempDir(t)
	paths := make([]string, len(tests))
	for i, tt := range tests {
		name := tt.plainName
		if name == "" {
			name = fmt.Sprintf("%s%s-%d", runDirPrefix, tt.id, 1000+i)
		}
		paths[i] = filepath.Join(parent, name)
		if tt.file {
			err = os.WriteFile(paths[i], nil, 0o600)
		} else {
			err = os.Mkdir(paths[i], 0o700)
			if err == nil {
				err = os.WriteFile(filepath.Join(paths[i], "CONFIG"), []byte("secret"), 0o600)
			}
		}
		if err == nil && tt.uid >= 0 {
			err = os.Lchown(paths[i], tt.uid, tt.uid)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	removed, err := removeDeadRunsIn(parent, self.pidNS)
	if err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		_, err := os.Lstat(paths[i])
		if gone := errors.Is(err, os.ErrNotExist); gone != tt.wantGone {
			t.Errorf("%s: removed %v, want %v (%v)", tt.name, gone, tt.wantGone, err)
		}
	}
	if len(removed) != 2 {
		t.Errorf("removed %v, want the 2 dead runs", removed)
	}
}

// TestParseRunDirName checks the names a run directory may have.
func TestParseRunDirName(t *testing.T) {
	tests := []struct {
		name string
		want runID
		ok   bool
	}{
		{"escfs-run-4026531836-42-12345-987654", runID{4026531836, 42, 12345}, true},
		{"escfs-run-4026531836-42-12345-", runID{}, false},
		{"escfs-run-4026531836-42-12345", runID{}, false},
		{"escfs-run-x-42-12345-1", runID{}, false},
		{"escfs-run-1-0-12345-1", runID{}, false},
		{"escfs-run-1-2-3-4-5", runID{}, false},
		{"escfs-42-1", runID{}, false},
	}
	for _, tt := range tests {
		got, ok := parseRunDirName(tt.name)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseRunDirName(%q) = %v, %v; want %v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}
