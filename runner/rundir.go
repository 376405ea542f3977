package runner

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// runDirPrefix starts the name of every run directory. The rest of the name,
// "<pid namespace>-<pid>-<start time>-<random>", identifies the escfs process
// that owns it, so that a later escfs can tell a dead run's directory (left
// behind when escfs was SIGKILLed) from a live one.
const runDirPrefix = "escfs-run-"

// ErrNoMemoryFS is returned when no memory filesystem is at hand for the
// files of escfs run: they are secrets and are never written to disk.
var ErrNoMemoryFS = errors.New("no memory filesystem (tmpfs) for the files entries: " +
	"$XDG_RUNTIME_DIR is unset or not a tmpfs, and neither is /dev/shm; " +
	"set XDG_RUNTIME_DIR to a directory on a tmpfs (mount -t tmpfs) or use escfs mount")

// memoryDirCandidates are the directories run's files may live in, in order
// of preference: the user's own runtime directory, then the shared one.
func memoryDirCandidates() []string {
	var dirs []string
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	return append(dirs, "/dev/shm")
}

// MemoryDir returns the first of $XDG_RUNTIME_DIR and /dev/shm that is on a
// memory filesystem, or ErrNoMemoryFS.
func MemoryDir() (string, error) {
	return firstMemoryDir(memoryDirCandidates())
}

// firstMemoryDir returns the first of dirs that is on a memory filesystem.
func firstMemoryDir(dirs []string) (string, error) {
	for _, d := range dirs {
		if err := checkMemoryFS(d); err == nil {
			return d, nil
		}
	}
	return "", ErrNoMemoryFS
}

// checkMemoryFS returns an error unless dir is on tmpfs or ramfs, whose
// contents live in memory only (tmpfs pages can be swapped out, as can any
// process's memory; they never reach a filesystem on disk).
func checkMemoryFS(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", dir, err)
	}
	switch uint32(st.Type) {
	case unix.TMPFS_MAGIC, unix.RAMFS_MAGIC:
		return nil
	}
	return fmt.Errorf("%s is not on a memory filesystem (type 0x%x, want tmpfs)", dir, st.Type)
}

// newRunDir creates the private directory (0700) of one run in parent, or
// in MemoryDir() if parent is "". parent must be on a memory filesystem.
// The name identifies this process, see runDirPrefix.
func newRunDir(parent string) (string, error) {
	if parent == "" {
		d, err := MemoryDir()
		if err != nil {
			return "", err
		}
		parent = d
	} else if err := checkMemoryFS(parent); err != nil {
		return "", fmt.Errorf("files directory: %w", err)
	}
	self, err := selfRunID()
	if err != nil {
		return "", fmt.Errorf("files directory: %w", err)
	}
	return newPrivateDir(parent, runDirPrefix+self.String()+"-")
}

// runID identifies a process across PID reuse: its PID namespace, PID and
// start time (clock ticks after boot, field 22 of /proc/PID/stat).
type runID struct {
	pidNS uint64
	pid   int
	start uint64
}

// String is the form of id in a run directory's name.
func (id runID) String() string {
	return fmt.Sprintf("%d-%d-%d", id.pidNS, id.pid, id.start)
}

// parseRunDirName returns the runID in the name of a run directory; ok is
// false for any other name.
func parseRunDirName(name string) (id runID, ok bool) {
	rest, found := strings.CutPrefix(name, runDirPrefix)
	if !found {
		return runID{}, false
	}
	parts := strings.Split(rest, "-")
	if len(parts) != 4 || parts[3] == "" {
		return runID{}, false
	}
	ns, err1 := strconv.ParseUint(parts[0], 10, 64)
	pid, err2 := strconv.Atoi(parts[1])
	start, err3 := strconv.ParseUint(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || pid <= 0 {
		return runID{}, false
	}
	return runID{pidNS: ns, pid: pid, start: start}, true
}

// selfRunID returns this process's runID.
func selfRunID() (runID, error) {
	ns, err := pidNamespace()
	if err != nil {
		return runID{}, err
	}
	pid := os.Getpid()
	start, err := startTime(pid)
	if err != nil {
		return runID{}, err
	}
	return runID{pidNS: ns, pid: pid, start: start}, nil
}

// pidNamespace returns the inode of the PID namespace /proc shows, so that
// PIDs of another namespace (a container sharing /dev/shm) are never
// mistaken for ours.
func pidNamespace() (uint64, error) {
	fi, err := os.Stat("/proc/self/ns/pid")
	if err != nil {
		return 0, fmt.Errorf("pid namespace: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, errors.New("pid namespace: no inode number")
	}
	return st.Ino, nil
}

// startTime returns the start time of process pid, field 22 of
// /proc/PID/stat. An error wrapping fs.ErrNotExist means there is no such
// process.
func startTime(pid int) (uint64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	// "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses, so
	// count fields after the last ')'. STATE is field 3, starttime field 22.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	const startField = 22 - 3
	if len(fields) <= startField {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields)+2)
	}
	return strconv.ParseUint(fields[startField], 10, 64)
}

// alive reports whether the process id names still runs. A PID that now
// belongs to a process started at another time is a reused one: the run is
// dead. Any doubt (an unreadable /proc) counts as alive.
func (id runID) alive() bool {
	start, err := startTime(id.pid)
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	return err != nil || start == id.start
}

// RemoveDeadRuns removes the directories that runs of escfs which are gone
// (SIGKILLed, crashed, the machine's power cut with a persistent
// $XDG_RUNTIME_DIR) left in $XDG_RUNTIME_DIR and /dev/shm. It removes only
// directories this user owns, named by a process of this PID namespace that
// no longer runs; a live run's directory is never touched. It returns the
// directories removed.
func RemoveDeadRuns() ([]string, error) {
	ns, err := pidNamespace()
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, parent := range memoryDirCandidates() {
		r, err := removeDeadRunsIn(parent, ns)
		removed = append(removed, r...)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return removed, errors.Join(errs...)
}

// removeDeadRunsIn removes the dead runs' directories in parent.
func removeDeadRunsIn(parent string, ns uint64) ([]string, error) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return nil, fmt.Errorf("look for dead runs: %w", err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		id, ok := parseRunDirName(e.Name())
		if !ok || id.pidNS != ns || !e.IsDir() || id.alive() {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		if !ownedBySelf(dir) {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove dead run's files: %w", err))
			continue
		}
		removed = append(removed, dir)
	}
	return removed, errors.Join(errs...)
}

// ownedBySelf reports whether path (not followed if a symlink) belongs to
// this process's effective uid.
func ownedBySelf(path string) bool {
	fi, err := os.Lstat(path)
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}

// NewRunDir creates this process's private directory (0700) in parent, or
// on a memory filesystem (MemoryDir) if parent is "", for plaintext that
// must never reach a disk (escfs edit's buffer, say). If the process dies
// without removing it, the next escfs to start removes it (RemoveDeadRuns).
func NewRunDir(parent string) (string, error) { return newRunDir(parent) }
