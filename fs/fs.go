// Package fs serves the environments of an eval.Store as a read-only FUSE
// filesystem: one directory per environment holding env, dotenv,
// values.json, status and files/. It maps paths to rendered snapshots and
// knows nothing of YAML or providers.
//
// Layout, for DIR/prod.yaml and DIR/demos/aws-access.yaml:
//
//	MNT/prod/{env,dotenv,values.json,status,files/}
//	MNT/demos/aws-access/{env,dotenv,values.json,status,files/}
//
// Listing MNT or a project evaluates nothing; the first look inside an
// environment evaluates it.
//
// # Versions, and the kernel doing the work
//
// Each version of each file is its own inode: its number derives from the
// path and the snapshot's serial, and its bytes and size never change. A
// new version (an edit, a renewal, an expiry) is a new inode, and the daemon
// invalidates the old names (entry notify) so the next lookup finds it,
// while fds already open keep reading theirs: from the page cache, or from
// the daemon, which keeps a version's bytes for as long as the kernel
// references its inode (until FORGET). fstat on an open fd reports its own
// version, and mmap works without direct I/O. status is a version per
// content that is never cached by name, so every lookup reads it fresh.
//
// Because versions are immutable, the kernel may cache everything:
// entries and attributes for an hour (every change is notified), never past
// a snapshot's refresh point (nor, once in the margin, its expiry), and
// pages across opens. Opens are zero-message (the first OPEN answers
// ENOSYS, so the kernel sends no OPEN, FLUSH or RELEASE again): measured
// here (2 vCPU, Linux 6.18) a warm open+read+close of env took 52 µs with
// OPEN+KEEP_CACHE+NOFLUSH against 15 µs with zero-message opens and 7.5 µs
// on tmpfs, and 251 µs with the direct I/O this package used before. Nothing
// is lost by not asking: without allow_other the kernel lets only the
// mounting user in, for cached requests too, and no cached entry outlives
// what it names. Directory opens are zero-message too (handlelessDirs): a
// listing the kernel holds costs nothing, and ls -R of 1,000 environments
// went from 8.7x tmpfs (an OPENDIR and a RELEASEDIR per directory) to about
// 1x. An environment with errors has no versions: its lookups fail with
// EIO.
//
// With allow_other, the kernel lets every user's request through and
// default_permissions is no wall against a caller holding CAP_DAC_OVERRIDE.
// Then nothing is cached, opens are not zero-message, and every operation
// that reveals or evaluates anything (lookup, getattr, readdir, open, read)
// checks the caller: the owner and root only. That costs speed, for the
// mounts that share a machine's users.
package fs

import (
	"context"
	"hash/fnv"
	"log/slog"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/escfs/escfs/eval"
)

// The entries of an environment directory.
const (
	entryEnv    = "env"
	entryDotenv = "dotenv"
	entryValues = "values.json"
	entryStatus = "status"
	entryFiles  = "files"
)

// envEntries are the entries every environment directory holds.
var envEntries = []string{entryDotenv, entryEnv, entryFiles, entryStatus, entryValues}

// Permission bits: the owner reads, nobody else does anything.
const (
	fileMode = 0o400
	dirMode  = 0o500
)

// filesystem is the state every node shares.
type filesystem struct {
	store    *eval.Store
	uid, gid uint32
	log      *slog.Logger
	started  time.Time // mount time, the times of every directory
	// allowOther: other users' requests reach the daemon, and only its uid
	// check keeps them out, so the kernel may cache nothing (a cached
	// entry or attribute would be served to them without asking).
	allowOther bool

	mu      sync.Mutex
	idxTree *eval.Tree // GUARDED_BY(mu): the tree idx was built from
	idx     *index     // GUARDED_BY(mu)

	reported sync.Map // clash messages already logged
}

// index maps directory paths of the mount to their entries for one Tree.
type index struct {
	envs map[string]eval.Name       // directory path -> environment shown there
	dirs map[string]map[string]bool // directory path -> names of subdirectories
}

// indexOf returns the index of the store's current tree, building it once
// per tree.
func (f *filesystem) indexOf() *index { return f.indexFor(f.store.Tree()) }

// indexFor returns the index of tree, cached while tree is the latest.
func (f *filesystem) indexFor(tree *eval.Tree) *index {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.idxTree == tree {
		return f.idx
	}
	idx := &index{envs: map[string]eval.Name{}, dirs: map[string]map[string]bool{"": {}}}
	addDir := func(parent, name string) {
		if idx.dirs[parent] == nil {
			idx.dirs[parent] = map[string]bool{}
		}
		idx.dirs[parent][name] = true
	}
	for _, d := range tree.Definitions() {
		short := d.Name.Short()
		idx.envs[short] = d.Name
		parent, base := path.Split(short)
		parent = strings.TrimSuffix(parent, "/")
		if parent != "" {
			addDir("", parent)
		}
		addDir(parent, base)
	}
	// A project may share its directory with an environment of the same
	// name; an environment of the project named like an entry is shadowed.
	for dir, subs := range idx.dirs {
		if _, isEnv := idx.envs[dir]; !isEnv {
			continue
		}
		for _, e := range envEntries {
			if subs[e] {
				delete(subs, e)
				f.reportOnce("environment " + dir + "/" + e + " is hidden by the entry " + e + " of environment " + dir + "; rename one of them")
			}
		}
	}
	f.idxTree, f.idx = tree, idx
	return idx
}

func (f *filesystem) reportOnce(msg string) {
	if _, loaded := f.reported.LoadOrStore(msg, true); !loaded {
		f.log.Warn("name clash", "problem", msg)
	}
}

// inodeNumber gives every path a stable inode number.
func inodeNumber(p string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(p))
	ino := h.Sum64() &^ (1 << 63) // below go-fuse's automatic numbers
	if ino <= fuse.FUSE_ROOT_ID {
		ino += 2
	}
	return ino
}

// snapshot returns the environment's current snapshot for a FUSE request.
// The wait ignores the request's interruption: the kernel interrupts a
// request whenever the waiting process gets any signal (SIGCHLD in a shell,
// the Go runtime's preemption signal), and answering that with an error
// would hand the reader a failure it did not cause. The wait is bounded
// anyway: the store gives up on an evaluation at its eval timeout.
//
// It never counts as a read for keep-warm: lookups and listings only look
// (find, ls -l); the first read of a version keeps an environment warm
// (versionNode.Read).
func (f *filesystem) snapshot(ctx context.Context, name eval.Name) (*eval.Snapshot, error) {
	return f.store.Peek(context.WithoutCancel(ctx), name)
}

// allowed reports whether the caller may read: the owner and root only.
// With allow_other, default_permissions already enforces the modes; this is
// the second lock on the door.
func (f *filesystem) allowed(ctx context.Context) bool {
	caller, ok := fuse.FromContext(ctx)
	return !ok || caller.Uid == f.uid || caller.Uid == 0
}

func (f *filesystem) setOwner(a *fuse.Attr) {
	a.Uid, a.Gid = f.uid, f.gid
}

// dirAttr fills the attributes of every directory: 0500, the owner's, with
// the mount's start as its times.
func (f *filesystem) dirAttr(a *fuse.Attr) {
	a.Mode = syscall.S_IFDIR | dirMode
	a.Nlink = 2
	f.setOwner(a)
	a.SetTimes(nil, &f.started, &f.started)
}

// cacheFor is how long the kernel may keep entries and attributes that the
// daemon invalidates itself when they change (every change is notified).
const cacheFor = time.Hour

// dirValidity is how long the kernel may cache a directory's entry and
// attributes: they never change (a vanished name is invalidated).
func (f *filesystem) dirValidity() time.Duration {
	if f.allowOther {
		return 0
	}
	return cacheFor
}

// validUntil is how long the kernel may cache an entry holding a snapshot
// that is fresh until fresh and expires at expires (zero: never): never past
// its refresh point, and once in the margin never past its expiry.
func (f *filesystem) validUntil(fresh, expires time.Time) time.Duration {
	if f.allowOther {
		return 0
	}
	if expires.IsZero() {
		return cacheFor
	}
	now := time.Now()
	switch {
	case now.Before(fresh):
		return min(cacheFor, fresh.Sub(now))
	case now.Before(expires):
		return min(cacheFor, expires.Sub(now))
	}
	return 0
}

// errno maps a snapshot error to what a reader sees.
func errno(err error) syscall.Errno {
	switch {
	case err == nil:
		return 0
	case isNotFound(err):
		return syscall.ENOENT
	default:
		return syscall.EIO
	}
}
