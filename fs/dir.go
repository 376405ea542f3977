package fs

import (
	"context"
	"errors"
	"path"
	"sort"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/escfs/escfs/eval"
)

// dirNode is the root, a project directory or an environment directory (or
// a project directory that is also an environment's). Its children are
// computed from the store's current tree on every lookup.
type dirNode struct {
	fusefs.Inode
	fsys *filesystem
	rel  string // path below the mount point, "" for the root
}

var (
	_ fusefs.NodeLookuper  = (*dirNode)(nil)
	_ fusefs.NodeReaddirer = (*dirNode)(nil)
	_ fusefs.NodeGetattrer = (*dirNode)(nil)
)

func (d *dirNode) Getattr(ctx context.Context, _ fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.fsys.dirAttr(&out.Attr)
	return 0
}

func (d *dirNode) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	idx := d.fsys.indexOf()
	var entries []fuse.DirEntry
	if _, ok := idx.envs[d.rel]; ok {
		for _, e := range envEntries {
			mode := uint32(syscall.S_IFREG)
			if e == entryFiles {
				mode = syscall.S_IFDIR
			}
			entries = append(entries, fuse.DirEntry{Name: e, Mode: mode, Ino: inodeNumber(path.Join(d.rel, e))})
		}
	}
	for name := range idx.dirs[d.rel] {
		entries = append(entries, fuse.DirEntry{Name: name, Mode: syscall.S_IFDIR, Ino: inodeNumber(path.Join(d.rel, name))})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	return fusefs.NewListDirStream(entries), 0
}

func (d *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	idx := d.fsys.indexOf()
	p := path.Join(d.rel, name)
	env, isEnv := idx.envs[d.rel]
	if isEnv {
		switch name {
		case entryFiles:
			return d.child(ctx, &filesDir{fsys: d.fsys, env: env, rel: p}, p, syscall.S_IFDIR, out)
		case entryEnv, entryDotenv, entryValues, entryStatus:
			return d.child(ctx, &fileNode{fsys: d.fsys, env: env, entry: name}, p, syscall.S_IFREG, out)
		}
	}
	if idx.dirs[d.rel][name] {
		return d.child(ctx, &dirNode{fsys: d.fsys, rel: p}, p, syscall.S_IFDIR, out)
	}
	return nil, syscall.ENOENT
}

// child returns the inode for path p, reusing the existing one, and fills
// the entry's attributes from the node.
func (d *dirNode) child(ctx context.Context, node fusefs.InodeEmbedder, p string, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return newChild(ctx, &d.Inode, node, p, mode, out)
}

// newChild creates (or finds) the inode of node at path p under parent and
// fills out from the node's Getattr.
func newChild(ctx context.Context, parent *fusefs.Inode, node fusefs.InodeEmbedder, p string, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	var attr fuse.AttrOut
	if g, ok := node.(fusefs.NodeGetattrer); ok {
		if errno := g.Getattr(ctx, nil, &attr); errno != 0 {
			return nil, errno
		}
	}
	out.Attr = attr.Attr
	ch := parent.NewInode(ctx, node, fusefs.StableAttr{Mode: mode, Ino: inodeNumber(p)})
	out.Ino = ch.StableAttr().Ino
	return ch, 0
}

// filesDir is MNT/<env>/files: one regular file per files entry.
type filesDir struct {
	fusefs.Inode
	fsys *filesystem
	env  eval.Name
	rel  string
}

var (
	_ fusefs.NodeLookuper  = (*filesDir)(nil)
	_ fusefs.NodeReaddirer = (*filesDir)(nil)
	_ fusefs.NodeGetattrer = (*filesDir)(nil)
)

func (d *filesDir) Getattr(ctx context.Context, _ fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.fsys.dirAttr(&out.Attr)
	return 0
}

func (d *filesDir) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	snap, err := d.fsys.snapshot(ctx, d.env, false)
	if err != nil {
		return nil, errno(err)
	}
	entries := make([]fuse.DirEntry, 0, len(snap.Files))
	for _, f := range snap.Files {
		entries = append(entries, fuse.DirEntry{Name: f.Name, Mode: syscall.S_IFREG, Ino: inodeNumber(path.Join(d.rel, f.Name))})
	}
	return fusefs.NewListDirStream(entries), 0
}

func (d *filesDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	snap, err := d.fsys.snapshot(ctx, d.env, false)
	if err != nil {
		return nil, errno(err)
	}
	if _, ok := snap.File(name); !ok {
		return nil, syscall.ENOENT
	}
	p := path.Join(d.rel, name)
	return newChild(ctx, &d.Inode, &fileNode{fsys: d.fsys, env: d.env, entry: entryFiles, file: name}, p, syscall.S_IFREG, out)
}

// isNotFound reports whether err says the environment is gone.
func isNotFound(err error) bool { return errors.Is(err, eval.ErrNotFound) }
