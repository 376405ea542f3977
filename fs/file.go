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

// fileNode is one readable file of an environment: env, dotenv, values.json,
// status, or files/<file>.
type fileNode struct {
	fusefs.Inode
	fsys  *filesystem
	env   eval.Name
	entry string // entryEnv, entryDotenv, entryValues, entryStatus or entryFiles
	file  string // the files entry, when entry is entryFiles
}

var (
	_ fusefs.NodeGetattrer = (*fileNode)(nil)
	_ fusefs.NodeOpener    = (*fileNode)(nil)
	_ fusefs.NodeReader    = (*fileNode)(nil)
)

// content returns the bytes the next open returns and their modification
// time; open says whether this is an open (which keeps the environment
// warm) or only a look. Only status never evaluates.
func (n *fileNode) content(ctx context.Context, open bool) ([]byte, time.Time, syscall.Errno) {
	if n.entry == entryStatus {
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
	snap, err := n.fsys.snapshot(ctx, n.env, open)
	if err != nil {
		return nil, time.Time{}, errno(err)
	}
	switch n.entry {
	case entryEnv:
		return snap.Env, snap.EvaluatedAt, 0
	case entryDotenv:
		return snap.Dotenv, snap.EvaluatedAt, 0
	case entryValues:
		return snap.ValuesJSON, snap.EvaluatedAt, 0
	default:
		f, ok := snap.File(n.file)
		if !ok {
			return nil, time.Time{}, syscall.ENOENT
		}
		return f.Content, snap.EvaluatedAt, 0
	}
}

// Getattr reports the exact size of what the next open returns: bash's
// source reads exactly st_size bytes. An environment with errors shows size
// 0 here and fails on open with EIO. It reports the current version even
// when fh is set: the kernel never passes the handle of a stat or fstat,
// and go-fuse then hands in whichever handle of the file happens to be open
// (possibly another process's, of an old version).
func (n *fileNode) Getattr(ctx context.Context, _ fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | fileMode
	out.Nlink = 1
	n.fsys.setOwner(&out.Attr)
	data, mtime, e := n.content(ctx, false)
	switch e {
	case 0:
	case syscall.EIO:
		return 0
	default:
		return e
	}
	out.Size = uint64(len(data))
	out.SetTimes(nil, &mtime, &mtime)
	return 0
}

// Open takes one snapshot of the bytes into the handle: every read of this
// open sees that version, whatever changes meanwhile. Files are opened with
// direct I/O, so a read never goes through page cache that another version
// filled and is never clipped to another version's size.
func (n *fileNode) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EROFS
	}
	if !n.fsys.allowed(ctx) {
		return nil, 0, syscall.EACCES
	}
	data, _, e := n.content(ctx, true)
	if e != 0 {
		if e == syscall.EIO {
			n.fsys.log.Debug("read refused: environment has errors", "env", n.env.Short(), "entry", n.entry)
		}
		return nil, 0, e
	}
	return &handle{data: data}, fuse.FOPEN_DIRECT_IO, 0
}

// Read serves the bytes of the open's snapshot.
func (n *fileNode) Read(ctx context.Context, fh fusefs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
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

// handle is one open file: the immutable bytes of one snapshot.
type handle struct {
	data []byte
}
