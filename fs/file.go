package fs

import (
	"context"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/escfs/escfs/eval"
)

// versionNode is one version of one file of an environment (env, dotenv,
// values.json or files/NAME): the bytes of one snapshot, immutable for the
// life of the inode. A new snapshot is a new inode (its number derives from
// the path and the snapshot's serial), so the kernel may keep its pages and
// attributes for as long as it likes, and fstat on an open fd reports that
// fd's version. An environment with errors has no versions: looking up its
// files fails with EIO.
type versionNode struct {
	fusefs.Inode
	fsys    *filesystem
	env     eval.Name
	data    []byte
	mtime   time.Time
	fresh   time.Time // when the snapshot is renewed (its refresh point); zero if never
	expires time.Time // when the credentials in data expire; zero if never
	// volatile versions (status) are never cached by name or attributes:
	// every path lookup asks for the current one.
	volatile bool
}

var (
	_ fusefs.NodeGetattrer = (*versionNode)(nil)
	_ fusefs.NodeOpener    = (*versionNode)(nil)
	_ fusefs.NodeReader    = (*versionNode)(nil)
	_ fusefs.NodeFlusher   = (*versionNode)(nil)
)

// Getattr reports this version's exact size (bash's source reads exactly
// st_size bytes). It never evaluates: a version does not change.
func (n *versionNode) Getattr(ctx context.Context, _ fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if !n.fsys.allowed(ctx) {
		return syscall.EACCES
	}
	n.fill(&out.Attr)
	out.SetTimeout(n.validity())
	return 0
}

func (n *versionNode) fill(a *fuse.Attr) {
	a.Mode = syscall.S_IFREG | fileMode
	a.Nlink = 1
	a.Size = uint64(len(n.data))
	n.fsys.setOwner(a)
	a.SetTimes(nil, &n.mtime, &n.mtime)
}

// Open: without allow_other, the first open answers ENOSYS, which tells
// the kernel to open every file of the mount without asking again
// (zero-message open, and no RELEASE): the kernel already lets only the
// mounting user in, a version never changes, and its entry is never cached
// past its refresh point, so nothing is left for an open to check. That
// makes a warm open+read+close a third of the cost (see the package
// comment). With allow_other, opens reach escfs, which refuses other users,
// an environment with errors and a version whose credentials have expired,
// and hands out the version with FOPEN_KEEP_CACHE.
func (n *versionNode) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EROFS
	}
	if !n.fsys.allowOther {
		return nil, 0, syscall.ENOSYS
	}
	if !n.fsys.allowed(ctx) {
		return nil, 0, syscall.EACCES
	}
	if !n.expires.IsZero() && !time.Now().Before(n.expires) {
		return nil, 0, syscall.EIO
	}
	n.fsys.store.MarkRead(n.env)
	return nil, fuse.FOPEN_KEEP_CACHE | fuse.FOPEN_NOFLUSH, 0
}

// validity is how long the kernel may cache this version's entry and
// attributes: never past the snapshot's refresh point (nor its expiry, once
// in the margin), never for a volatile version.
func (n *versionNode) validity() time.Duration {
	if n.volatile {
		return 0
	}
	return n.fsys.validUntil(n.fresh, n.expires)
}

// Read serves this version's bytes; the kernel asks only when its page
// cache does not hold them, once per version. Without opens (see Open),
// that first read is what keeps an environment warm: a stat or a listing
// never reads.
func (n *versionNode) Read(ctx context.Context, _ fusefs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if !n.fsys.allowed(ctx) {
		return nil, syscall.EACCES
	}
	if off == 0 && !n.volatile {
		n.fsys.store.MarkRead(n.env)
	}
	if off >= int64(len(n.data)) {
		return fuse.ReadResultData(nil), 0
	}
	end := min(off+int64(len(dest)), int64(len(n.data)))
	return fuse.ReadResultData(n.data[off:end]), 0
}

// Flush answers ENOSYS, which tells the kernel never to send FLUSH again
// (nothing is ever written): a close costs no round trip for it.
func (n *versionNode) Flush(context.Context, fusefs.FileHandle) syscall.Errno {
	return syscall.ENOSYS
}
