package fs

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/internal/bounded"
)

// FSType is the filesystem type escfs mounts show in /proc/self/mountinfo.
const FSType = "fuse.escfs"

// Config configures a mount.
type Config struct {
	// Store provides the environments.
	Store *eval.Store
	// Mountpoint is an existing directory; a stale escfs mount on it is
	// cleared first. New refuses anything else: a file, a live escfs mount,
	// one whose server does not answer.
	Mountpoint string
	// UID and GID own every file; readers other than this uid (and root) are
	// refused.
	UID, GID uint32
	// AllowOther lets the kernel pass other users' requests to escfs (and
	// turns on default_permissions, so the modes still keep them out).
	AllowOther bool
	// Logger receives the mount's log; nil means slog.Default().
	Logger *slog.Logger
	// Debug logs every FUSE request.
	Debug bool
}

// FilesDir returns where the mount at mountpoint serves an environment's
// files; pass it as eval.StoreOptions.FilesDir.
func FilesDir(mountpoint string) func(eval.Name) string {
	return func(n eval.Name) string { return filepath.Join(mountpoint, n.Short(), entryFiles) }
}

// Mount is a mounted escfs filesystem.
type Mount struct {
	server      *fuse.Server
	mountpoint  string
	unsubscribe func()
	log         *slog.Logger
	dirs        *handlelessDirs // nil with allow_other
}

// New mounts the store's environments at cfg.Mountpoint and starts serving.
// It returns once the mount works.
func New(cfg Config) (*Mount, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	mnt, err := filepath.Abs(cfg.Mountpoint)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", cfg.Mountpoint, err)
	}
	if err := prepareMountpoint(mnt, log); err != nil {
		return nil, err
	}
	fsys := &filesystem{store: cfg.Store, uid: cfg.UID, gid: cfg.GID, log: log, started: time.Now(), allowOther: cfg.AllowOther}
	root := &dirNode{fsys: fsys}
	opts := &fusefs.Options{
		RootStableAttr: &fusefs.StableAttr{Ino: fuse.FUSE_ROOT_ID}, // not 0: some tools skip inode 0
		// No default entry or attribute timeouts: every node sets its own
		// (see the package comment), and negative entries are not cached.
		UID: cfg.UID,
		GID: cfg.GID,
		MountOptions: fuse.MountOptions{
			Name:          "escfs",
			FsName:        "escfs",
			DisableXAttrs: true,
			// With READDIRPLUS a listing looks up every entry, and the lookup
			// of env, dotenv or values.json evaluates (its size must be exact),
			// so ls or ls -R of environment directories would evaluate them all.
			DisableReadDirPlus: true,
			AllowOther:         cfg.AllowOther,
			Options:            []string{"ro", "default_permissions"},
			DirectMountStrict:  os.Geteuid() == 0,
			DirectMountFlags:   unix.MS_NOSUID | unix.MS_NODEV | unix.MS_RDONLY,
			ExtraCapabilities:  fuse.CAP_DIRECT_IO_ALLOW_MMAP,
			MaxReadAhead:       128 << 10,
			// go-fuse logs (Debug: every request and reply) to the mount's
			// log, not to the log package, whose output goes nowhere visible.
			Debug:  cfg.Debug,
			Logger: slog.NewLogLogger(log.Handler(), slog.LevelInfo),
		},
	}
	var raw fuse.RawFileSystem = fusefs.NewNodeFS(root, opts)
	var dirs *handlelessDirs
	if !cfg.AllowOther {
		dirs = &handlelessDirs{RawFileSystem: raw}
		raw = dirs
	}
	server, err := fuse.NewServer(raw, mnt, &opts.MountOptions)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", mnt, err)
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		return nil, fmt.Errorf("mount %s: %w", mnt, err)
	}
	m := &Mount{server: server, mountpoint: mnt, log: log, dirs: dirs}
	m.unsubscribe = cfg.Store.Subscribe(func(c eval.Change) { invalidate(&root.Inode, fsys, c) })
	return m, nil
}

// Mountpoint returns the absolute path of the mount.
func (m *Mount) Mountpoint() string { return m.mountpoint }

// Wait blocks until the filesystem is unmounted.
func (m *Mount) Wait() { m.server.Wait() }

// Detach unmounts and stops following the store. If the mount is busy (an
// open file, a working directory inside), it is detached lazily instead: it
// leaves the namespace now, keeps serving its remaining users, and ends when
// the last of them leaves; busy reports that case. Detach never hangs.
func (m *Mount) Detach() (busy bool, err error) {
	m.unsubscribe()
	if err := m.server.Unmount(); err != nil {
		m.log.Info("mount busy, detaching lazily", "mountpoint", m.mountpoint, "reason", err.Error())
		if derr := detach(m.mountpoint); derr != nil {
			return true, fmt.Errorf("unmount %s: %w (lazy detach: %v)", m.mountpoint, err, derr)
		}
		return true, nil
	}
	return false, nil
}

// Close unmounts (lazily if the mount is busy, see Detach) and waits up to
// five seconds for the server to stop.
func (m *Mount) Close() error {
	if _, err := m.Detach(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { m.server.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		return fmt.Errorf("unmount %s: server did not stop", m.mountpoint)
	}
	return nil
}

// maxStacked bounds how many dead escfs mounts stacked on one mount point
// New clears.
const maxStacked = 16

// prepareMountpoint makes sure New can mount at mnt and leave nothing
// behind if it fails: dead escfs mounts there (their server was killed) are
// cleared; a live escfs mount, one whose server does not answer and a
// mount point that is not a directory are errors. Nothing here waits on a
// FUSE server longer than probeTimeout.
func prepareMountpoint(mnt string, log *slog.Logger) error {
	for range maxStacked {
		state, isEscfs, err := escfsAt(mnt)
		if err != nil {
			return fmt.Errorf("mount %s: %w", mnt, err)
		}
		if !isEscfs {
			break // mounting over another filesystem is what mount(8) does
		}
		switch state {
		case serverLive:
			return fmt.Errorf("mount %s: already a live escfs mount; unmount it first (escfs unmount %s)", mnt, mnt)
		case serverWedged:
			return fmt.Errorf("mount %s: an escfs mount is there whose server does not answer within %v (stopped or hung); clear it with escfs unmount %s", mnt, probeTimeout, mnt)
		}
		if err := detach(mnt); err != nil {
			return fmt.Errorf("clear stale mount: %w", err)
		}
		log.Info("cleared a stale mount", "mountpoint", mnt)
	}
	fi, err := statBounded(mnt)
	if err != nil {
		return fmt.Errorf("mount %s: %w", mnt, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("mount %s: not a directory (%s); the mount point must be a directory", mnt, fileKind(fi.Mode()))
	}
	return nil
}

// fileKind names the type of a file for an error message.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m&os.ModeSymlink != 0:
		return "a symbolic link"
	case m&os.ModeDevice != 0:
		return "a device"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	default:
		return m.Type().String()
	}
}

// Unmount unmounts the escfs filesystem at mountpoint: at once if nothing
// uses it, else lazily (umount -l). It acts on escfs mounts only, as
// /proc/self/mountinfo names them, and never hangs: a mount whose server is
// gone is detached; one whose server does not answer (stopped, hung) is
// detached and, as root, its FUSE connection is aborted, so that the
// callers blocked on it fail (ECONNABORTED; later calls ENOTCONN) instead of
// waiting forever. log (nil
// means slog.Default()) says what was done for those two.
func Unmount(mountpoint string, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	mnt, e, err := findMount(mountpoint)
	switch {
	case errors.Is(err, errNotMounted):
		return fmt.Errorf("%w; nothing to unmount", err)
	case err != nil:
		return fmt.Errorf("unmount %w", err)
	case e.fstype != FSType:
		return fmt.Errorf("%s is a %s mount, not escfs; not unmounting", mnt, e.fstype)
	}
	switch probe(mnt) {
	case serverDead:
		log.Info("the escfs server of this mount is gone; detaching it", "mountpoint", mnt)
		return detach(mnt)
	case serverWedged:
		return clearWedged(mnt, e, log)
	default:
		return unmountLive(mnt)
	}
}

// MountPoint resolves path (relative, or through symlinks) to the escfs
// mount point /proc/self/mountinfo names, or fails if no escfs filesystem
// is mounted there. It never waits on a stopped or hung escfs for long
// (see findMount). Status and unmount resolve their argument with it.
func MountPoint(path string) (string, error) {
	mnt, e, err := findMount(path)
	if errors.Is(err, errNotMounted) {
		return "", fmt.Errorf("%s is not an escfs mount point", path)
	}
	if err != nil {
		return "", err
	}
	if e.fstype != FSType {
		return "", fmt.Errorf("%s is a %s mount, not an escfs mount point", mnt, e.fstype)
	}
	return mnt, nil
}

// errNotMounted is findMount's error for a path where nothing is mounted.
var errNotMounted = errors.New("is not a mount point")

// findMount resolves mountpoint to the mount point mountinfo names and
// returns its topmost mount. The path is first taken as it is (made
// absolute), because resolving symlinks would stat the mount point itself,
// which waits on its server; only if that is not a mount point are symlinks
// resolved, within probeTimeout.
func findMount(mountpoint string) (string, mountEntry, error) {
	mnt, err := filepath.Abs(mountpoint)
	if err != nil {
		return "", mountEntry{}, fmt.Errorf("%s: %w", mountpoint, err)
	}
	if e, ok, err := mountAt(mnt); err != nil || ok {
		return mnt, e, err
	}
	var real string
	err = bounded.Do(probeTimeout, func() error {
		var err error
		real, err = filepath.EvalSymlinks(mnt)
		return err
	})
	if err == nil && real != mnt {
		if e, ok, err := mountAt(real); err != nil || ok {
			return real, e, err
		}
	}
	return "", mountEntry{}, fmt.Errorf("%s %w", mnt, errNotMounted)
}

// unmountLive unmounts the escfs mount at mnt whose server answers, lazily
// if it is busy.
func unmountLive(mnt string) error {
	if os.Geteuid() == 0 {
		if err := unix.Unmount(mnt, 0); err == nil {
			return nil
		} else if !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("unmount %s: %w", mnt, err)
		}
		return detach(mnt)
	}
	if out, err := exec.Command("fusermount3", "-u", mnt).CombinedOutput(); err != nil {
		if derr := detach(mnt); derr != nil {
			return fmt.Errorf("unmount %s: %s", mnt, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// clearWedged detaches the escfs mount e at mnt whose server does not
// answer. As root it first aborts the mount's FUSE connection, so that its
// blocked callers fail (ECONNABORTED) instead of waiting; otherwise (or if
// that fails) they stay blocked until the server runs again or dies.
func clearWedged(mnt string, e mountEntry, log *slog.Logger) error {
	aborted := false
	if os.Geteuid() == 0 {
		if err := abortConnection(e); err != nil {
			log.Warn("could not abort the FUSE connection; callers blocked on it wait until its server runs again or dies",
				"mountpoint", mnt, "error", err.Error())
		} else {
			aborted = true
		}
	}
	if err := detach(mnt); err != nil {
		return err
	}
	log.Info("the escfs server of this mount did not answer (stopped or hung): detached it lazily",
		"mountpoint", mnt, "connectionAborted", aborted)
	return nil
}

// detach lazily unmounts mnt: as root with umount2(MNT_DETACH), otherwise
// with fusermount3 -u -z.
func detach(mnt string) error {
	if os.Geteuid() == 0 {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("detach %s: %w", mnt, err)
		}
		return nil
	}
	if out, err := exec.Command("fusermount3", "-u", "-z", mnt).CombinedOutput(); err != nil {
		return fmt.Errorf("detach %s: %v: %s", mnt, err, strings.TrimSpace(string(out)))
	}
	return nil
}
