package fs

import (
	"bufio"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/escfs/escfs/internal/bounded"
)

// probeTimeout bounds every look at a mount point that may reach a FUSE
// server: a stopped or hung server never answers, and the caller (escfs
// mount, escfs unmount) must not hang with it.
var probeTimeout = 2 * time.Second

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	id, parent   int
	major, minor uint32 // the superblock's device: a FUSE connection's fusectl name
	point        string // mount point, unescaped
	fstype       string // "fuse.escfs", "tmpfs", ...
}

// readMountinfo parses /proc/self/mountinfo.
func readMountinfo() ([]mountEntry, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mountEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if e, ok := parseMountinfoLine(sc.Text()); ok {
			out = append(out, e)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read /proc/self/mountinfo: %w", err)
	}
	return out, nil
}

// parseMountinfoLine parses "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS
// [OPTIONAL...] - FSTYPE SOURCE SUPER".
func parseMountinfoLine(line string) (mountEntry, bool) {
	fields := strings.Fields(line)
	sep := -1
	for i, f := range fields {
		if f == "-" && i >= 6 {
			sep = i
			break
		}
	}
	if sep < 0 || sep+1 >= len(fields) {
		return mountEntry{}, false
	}
	id, err1 := strconv.Atoi(fields[0])
	parent, err2 := strconv.Atoi(fields[1])
	maj, min, found := strings.Cut(fields[2], ":")
	major, err3 := strconv.ParseUint(maj, 10, 32)
	minor, err4 := strconv.ParseUint(min, 10, 32)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || !found {
		return mountEntry{}, false
	}
	return mountEntry{
		id: id, parent: parent,
		major: uint32(major), minor: uint32(minor),
		point:  unescapeMountinfo(fields[4]),
		fstype: fields[sep+1],
	}, true
}

// topMount returns the mount a lookup of mnt reaches: of the mounts at mnt,
// the one no other mount at mnt is stacked on. ok is false if mnt is not a
// mount point.
func topMount(entries []mountEntry, mnt string) (top mountEntry, ok bool) {
	covered := map[int]bool{}
	for _, e := range entries {
		if e.point == mnt {
			covered[e.parent] = true
		}
	}
	for _, e := range entries {
		if e.point == mnt && !covered[e.id] {
			top, ok = e, true
		}
	}
	return top, ok
}

// mountAt returns the topmost mount at mnt (an absolute, clean path).
func mountAt(mnt string) (mountEntry, bool, error) {
	entries, err := readMountinfo()
	if err != nil {
		return mountEntry{}, false, err
	}
	e, ok := topMount(entries, mnt)
	return e, ok, nil
}

// Mounts lists the mount points of escfs filesystems in this mount
// namespace, from /proc/self/mountinfo.
func Mounts() ([]string, error) {
	entries, err := readMountinfo()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.fstype == FSType {
			out = append(out, e.point)
		}
	}
	return out, nil
}

// unescapeMountinfo undoes the octal escapes (\040 for space) of mountinfo.
func unescapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if c, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(c))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// serverState is what a probe of a FUSE mount's server found.
type serverState int

const (
	// serverLive answered the probe.
	serverLive serverState = iota
	// serverDead is gone (or its connection aborted): the kernel answers
	// ENOTCONN for it.
	serverDead
	// serverWedged did not answer within probeTimeout: stopped or hung.
	serverWedged
)

// escfsAt reports whether the topmost mount at mnt is an escfs mount and,
// if so, how its server answers (probe). It reads /proc/self/mountinfo
// first and asks the server only if an escfs mount is there.
func escfsAt(mnt string) (state serverState, isEscfs bool, err error) {
	e, ok, err := mountAt(mnt)
	if err != nil || !ok || e.fstype != FSType {
		return 0, false, err
	}
	return probe(mnt), true, nil
}

// probe asks the server of the FUSE mount at mnt for statfs, which always
// reaches it (stat is answered from the kernel's attribute cache for up to a
// second after the server is gone), and waits at most probeTimeout.
func probe(mnt string) serverState {
	err := bounded.Do(probeTimeout, func() error {
		var st unix.Statfs_t
		return unix.Statfs(mnt, &st)
	})
	switch {
	case errors.Is(err, unix.ENOTCONN), errors.Is(err, unix.ECONNABORTED):
		return serverDead
	case errors.Is(err, bounded.ErrTimeout):
		return serverWedged
	default:
		return serverLive // an answer, or a refusal by the kernel: something is there
	}
}

// statBounded is os.Stat that gives up after probeTimeout.
func statBounded(path string) (iofs.FileInfo, error) {
	var fi iofs.FileInfo
	err := bounded.Do(probeTimeout, func() error {
		var err error
		fi, err = os.Stat(path)
		return err
	})
	if errors.Is(err, bounded.ErrTimeout) {
		return nil, fmt.Errorf("stat %s: %w within %v (a filesystem there is not answering)", path, err, probeTimeout)
	}
	return fi, err
}

// fusectlDir is where the fusectl filesystem shows one directory per FUSE
// connection, named by its device number.
const fusectlDir = "/sys/fs/fuse/connections"

// abortConnection aborts the FUSE connection of e (root only), as
// `echo 1 > /sys/fs/fuse/connections/N/abort` does: every request waiting
// on its server fails at once with ECONNABORTED, every later one with
// ENOTCONN.
// fusectl is mounted first if it is not.
func abortConnection(e mountEntry) error {
	// The directory is named by the kernel's dev_t: major<<20 | minor.
	abort := filepath.Join(fusectlDir, strconv.FormatUint(uint64(e.major)<<20|uint64(e.minor), 10), "abort")
	if _, err := os.Stat(abort); errors.Is(err, iofs.ErrNotExist) {
		if err := mountFusectl(); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(abort, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("abort FUSE connection: %w", err)
	}
	_, werr := f.Write([]byte("1"))
	if err := errors.Join(werr, f.Close()); err != nil {
		return fmt.Errorf("abort FUSE connection: %w", err)
	}
	return nil
}

// mountFusectl mounts fusectl at fusectlDir unless it is mounted there. It
// stays mounted, as systemd mounts it at boot.
func mountFusectl() error {
	e, ok, err := mountAt(fusectlDir)
	if err != nil {
		return err
	}
	if ok && e.fstype == "fusectl" {
		return nil
	}
	if err := unix.Mount("none", fusectlDir, "fusectl", 0, ""); err != nil {
		return fmt.Errorf("mount fusectl on %s: %w", fusectlDir, err)
	}
	return nil
}
