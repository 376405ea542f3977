package fs

import (
	"context"
	"encoding/json"
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
// fd's version. An environment with errors is a version too, of size 0,
// that fails every open with EIO.
type versionNode struct {
	fusefs.Inode
	fsys    *filesystem
	env     eval.Name
	data    []byte
	mtime   time.Time
	fresh   time.Time     // when the snapshot is renewed (its refresh point); zero if never
	expires time.Time     // when the credentials in data expire; zero if never
	errno   syscall.Errno // EIO for an environment with errors
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

// Open hands out this version, read from the kernel's page cache after the
// first read (FOPEN_KEEP_CACHE: the bytes never change). It refuses other
// users, an environment with errors, and a version whose credentials have
// expired (the kernel's entry is never valid past that; this is the lock
// behind the timeout). An open counts as a read for keep-warm.
func (n *versionNode) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EROFS
	}
	if !n.fsys.allowed(ctx) {
		return nil, 0, syscall.EACCES
	}
	if n.errno != 0 {
		n.fsys.log.Debug("read refused: environment has errors", "env", n.env.Short())
		return nil, 0, n.errno
	}
	if !n.expires.IsZero() && !time.Now().Before(n.expires) {
		return nil, 0, syscall.EIO
	}
	n.fsys.store.MarkRead(n.env)
	return nil, fuse.FOPEN_KEEP_CACHE | fuse.FOPEN_NOFLUSH, 0
}

// validity is how long the kernel may cache this version's entry and
// attributes: never past the snapshot's refresh point (nor its expiry, once
// in the margin), never for an error.
func (n *versionNode) validity() time.Duration {
	if n.errno != 0 {
		return 0
	}
	return n.fsys.validUntil(n.fresh, n.expires)
}

// Read serves this version's bytes.
func (n *versionNode) Read(_ context.Context, _ fusefs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
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

// statusNode is MNT/<env>/status: JSON that describes the environment
// without evaluating it. It changes with every state, so it is one inode
// whose attributes are never cached, read with direct I/O, each open
// taking one snapshot of the JSON.
type statusNode struct {
	fusefs.Inode
	fsys *filesystem
	env  eval.Name
}

var (
	_ fusefs.NodeGetattrer = (*statusNode)(nil)
	_ fusefs.NodeOpener    = (*statusNode)(nil)
	_ fusefs.NodeReader    = (*statusNode)(nil)
)

// content renders the status now.
func (n *statusNode) content() ([]byte, time.Time, syscall.Errno) {
	st, err := n.fsys.store.Status(n.env)
	if err != nil {
		return nil, time.Time{}, errno(err)
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, time.Time{}, syscall.EIO
	}
	mtime := time.Time{}
	if st.EvaluatedAt != nil {
		mtime = *st.EvaluatedAt
	}
	return append(b, '\n'), mtime, 0
}

func (n *statusNode) Getattr(ctx context.Context, _ fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if !n.fsys.allowed(ctx) {
		return syscall.EACCES
	}
	data, mtime, e := n.content()
	if e != 0 {
		return e
	}
	out.Mode = syscall.S_IFREG | fileMode
	out.Nlink = 1
	out.Size = uint64(len(data))
	n.fsys.setOwner(&out.Attr)
	out.SetTimes(nil, &mtime, &mtime)
	out.SetTimeout(0) // fresh on every stat
	return 0
}

func (n *statusNode) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EROFS
	}
	if !n.fsys.allowed(ctx) {
		return nil, 0, syscall.EACCES
	}
	data, _, e := n.content()
	if e != 0 {
		return nil, 0, e
	}
	return &handle{data: data}, fuse.FOPEN_DIRECT_IO, 0
}

func (n *statusNode) Read(_ context.Context, fh fusefs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h, ok := fh.(*handle)
	if !ok {
		return nil, syscall.EBADF
	}
	if off >= int64(len(h.data)) {
		return fuse.ReadResultData(nil), 0
	}
	end := min(off+int64(len(dest)), int64(len(h.data)))
	return fuse.ReadResultData(h.data[off:end]), 0
}

// handle is one open status file: the JSON of that moment.
type handle struct {
	data []byte
}
