package fs

import (
	"bufio"
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
)

// FSType is the filesystem type escfs mounts show in /proc/self/mountinfo.
const FSType = "fuse.escfs"

// Config configures a mount.
type Config struct {
	// Store provides the environments.
	Store *eval.Store
	// Mountpoint is an existing directory; a stale escfs mount on it is
	// cleared first.
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
	if cleared, err := ClearStale(mnt); err != nil {
		return nil, err
	} else if cleared {
		log.Info("cleared a stale mount", "mountpoint", mnt)
	}
	fsys := &filesystem{store: cfg.Store, uid: cfg.UID, gid: cfg.GID, log: log, started: time.Now()}
	root := &dirNode{fsys: fsys}
	timeout := time.Second
	opts := &fusefs.Options{
		RootStableAttr: &fusefs.StableAttr{Ino: fuse.FUSE_ROOT_ID}, // not 0: some tools skip inode 0
		EntryTimeout:   &timeout,
		AttrTimeout:    &timeout,
		UID:            cfg.UID,
		GID:            cfg.GID,
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
			Debug:              cfg.Debug,
		},
	}
	server, err := fusefs.Mount(mnt, root, opts)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", mnt, err)
	}
	m := &Mount{server: server, mountpoint: mnt, log: log}
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

// Unmount unmounts the escfs filesystem at mountpoint, lazily if it is busy.
func Unmount(mountpoint string) error {
	mnt, err := filepath.Abs(mountpoint)
	if err != nil {
		return err
	}
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

// ClearStale detaches a dead FUSE mount at mnt (one whose server was killed:
// "transport endpoint is not connected") and reports whether there was one.
// It asks with statfs, which always reaches the server: stat is answered
// from the kernel's attribute cache for up to a second after the kill.
func ClearStale(mnt string) (bool, error) {
	var st unix.Statfs_t
	err := unix.Statfs(mnt, &st)
	if !errors.Is(err, unix.ENOTCONN) {
		return false, nil
	}
	if err := detach(mnt); err != nil {
		return false, fmt.Errorf("clear stale mount: %w", err)
	}
	return true, nil
}

// Mounts lists the mount points of escfs filesystems in this mount
// namespace, from /proc/self/mountinfo.
func Mounts() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER
		fields := strings.Fields(sc.Text())
		for i, fld := range fields {
			if fld == "-" && i+1 < len(fields) && fields[i+1] == FSType && len(fields) > 4 {
				out = append(out, unescapeMountinfo(fields[4]))
			}
		}
	}
	return out, sc.Err()
}

// unescapeMountinfo undoes the octal escapes (\040 for space) of mountinfo.
func unescapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%3o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
