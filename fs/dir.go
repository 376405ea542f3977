package fs

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"path"
	"sort"
	"strconv"
	"syscall"
	"time"

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
	if !d.fsys.allowed(ctx) {
		return syscall.EACCES
	}
	d.fsys.dirAttr(&out.Attr)
	out.SetTimeout(d.fsys.dirValidity())
	if d.rel == "" {
		// The mount point itself: a second, so that a stat of it finds
		// a killed daemon ("transport endpoint is not connected") soon.
		out.SetTimeout(min(time.Second, d.fsys.dirValidity()))
	}
	return 0
}

func (d *dirNode) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	if !d.fsys.allowed(ctx) {
		return nil, syscall.EACCES
	}
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
	if !d.fsys.allowed(ctx) {
		return nil, syscall.EACCES
	}
	idx := d.fsys.indexOf()
	p := path.Join(d.rel, name)
	env, isEnv := idx.envs[d.rel]
	if isEnv {
		switch name {
		case entryFiles:
			return d.fsys.dirChild(ctx, &d.Inode, &filesDir{fsys: d.fsys, env: env, rel: p}, p, out), 0
		case entryStatus:
			return d.fsys.statusChild(ctx, &d.Inode, env, p, out)
		case entryEnv, entryDotenv, entryValues:
			return d.fsys.versionChild(ctx, &d.Inode, env, p, out, func(s *eval.Snapshot) ([]byte, bool) {
				switch name {
				case entryEnv:
					return s.Env, true
				case entryDotenv:
					return s.Dotenv, true
				default:
					return s.ValuesJSON, true
				}
			})
		}
	}
	if idx.dirs[d.rel][name] {
		return d.fsys.dirChild(ctx, &d.Inode, &dirNode{fsys: d.fsys, rel: p}, p, out), 0
	}
	return nil, syscall.ENOENT
}

// dirChild returns the (stable) inode of the directory node at path p.
func (f *filesystem) dirChild(ctx context.Context, parent *fusefs.Inode, node fusefs.InodeEmbedder, p string, out *fuse.EntryOut) *fusefs.Inode {
	f.dirAttr(&out.Attr)
	out.SetEntryTimeout(f.dirValidity())
	out.SetAttrTimeout(f.dirValidity())
	ch := parent.NewInode(ctx, node, fusefs.StableAttr{Mode: syscall.S_IFDIR, Ino: inodeNumber(p)})
	out.Ino = ch.StableAttr().Ino
	return ch
}

// statusChild returns the current version of the status file of env at
// path p: JSON that describes the environment without evaluating it. A
// version per content, never cached by name or attributes, so every path
// lookup gets the current one and every open reads exactly one.
func (f *filesystem) statusChild(ctx context.Context, parent *fusefs.Inode, env eval.Name, p string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	st, err := f.store.Status(env)
	if err != nil {
		return nil, errno(err)
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, syscall.EIO
	}
	b = append(b, '\n')
	node := &versionNode{fsys: f, env: env, data: b, volatile: true}
	if st.EvaluatedAt != nil {
		node.mtime = *st.EvaluatedAt
	}
	h := fnv.New64a()
	h.Write(b)
	ch := parent.NewInode(ctx, node, fusefs.StableAttr{Mode: syscall.S_IFREG, Ino: inodeNumber(p + "\x00status\x00" + strconv.FormatUint(h.Sum64(), 16))})
	v := ch.Operations().(*versionNode)
	v.fill(&out.Attr)
	out.SetEntryTimeout(0)
	out.SetAttrTimeout(0)
	out.Ino = ch.StableAttr().Ino
	return ch, 0
}

// versionChild returns the inode of the current version of the file at
// path p of env, whose bytes pick takes from a snapshot (false: no such
// file). It evaluates env if it must (a lookup must know the exact size),
// but does not count as a read for keep-warm.
func (f *filesystem) versionChild(ctx context.Context, parent *fusefs.Inode, env eval.Name, p string, out *fuse.EntryOut, pick func(*eval.Snapshot) ([]byte, bool)) (*fusefs.Inode, syscall.Errno) {
	snap, err := f.snapshot(ctx, env)
	node := &versionNode{fsys: f, env: env}
	var ino uint64
	switch {
	case errors.Is(err, eval.ErrNotFound):
		return nil, syscall.ENOENT
	case err != nil:
		// No inode at all: with zero-message opens an inode's open cannot
		// fail, and a size-0 file reads as empty without asking. The
		// lookup fails, so open and stat fail with EIO (status says why).
		return nil, syscall.EIO
	default:
		data, ok := pick(snap)
		if !ok {
			return nil, syscall.ENOENT
		}
		node.data, node.mtime = data, snap.EvaluatedAt
		node.fresh, node.expires = f.store.FreshUntil(snap), snap.ExpiresAt
		ino = inodeNumber(p + "\x00" + strconv.FormatUint(snap.Serial, 10))
	}
	ch := parent.NewInode(ctx, node, fusefs.StableAttr{Mode: syscall.S_IFREG, Ino: ino})
	// NewInode returns the existing inode of this version if the kernel
	// still knows it; its node is the same version.
	v := ch.Operations().(*versionNode)
	v.fill(&out.Attr)
	out.SetEntryTimeout(v.validity())
	out.SetAttrTimeout(v.validity())
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
	if !d.fsys.allowed(ctx) {
		return syscall.EACCES
	}
	d.fsys.dirAttr(&out.Attr)
	out.SetTimeout(d.fsys.dirValidity())
	return 0
}

func (d *filesDir) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	if !d.fsys.allowed(ctx) {
		return nil, syscall.EACCES
	}
	snap, err := d.fsys.snapshot(ctx, d.env)
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
	if !d.fsys.allowed(ctx) {
		return nil, syscall.EACCES
	}
	return d.fsys.versionChild(ctx, &d.Inode, d.env, path.Join(d.rel, name), out, func(s *eval.Snapshot) ([]byte, bool) {
		f, ok := s.File(name)
		return f.Content, ok
	})
}

// isNotFound reports whether err says the environment is gone.
func isNotFound(err error) bool { return errors.Is(err, eval.ErrNotFound) }

// dirHandle is one open directory: its listing, read by the kernel once and
// then, without allow_other, cached by it (FOPEN_CACHE_DIR) until escfs
// invalidates it, so ls -R costs no round trip per directory. Without
// allow_other the kernel opens directories without OPENDIR, and each
// handle lives for one READDIR (see handlelessDirs). The listing
// is made at the first READDIR, not at OPENDIR: a listing made before a
// tree change would be cached after the change's invalidation, and stay.
type dirHandle struct {
	list func(context.Context) (fusefs.DirStream, syscall.Errno)
	ds   fusefs.DirStream
}

var (
	_ fusefs.FileReaddirenter = (*dirHandle)(nil)
	_ fusefs.FileSeekdirer    = (*dirHandle)(nil)
	_ fusefs.FileReleasedirer = (*dirHandle)(nil)
)

func (h *dirHandle) stream(ctx context.Context) syscall.Errno {
	if h.ds != nil {
		return 0
	}
	ds, errno := h.list(ctx)
	if errno != 0 {
		return errno
	}
	h.ds = ds
	return 0
}

func (h *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if errno := h.stream(ctx); errno != 0 {
		return nil, errno
	}
	if !h.ds.HasNext() {
		return nil, 0
	}
	e, errno := h.ds.Next()
	return &e, errno
}

// Seekdir to 0 starts a fresh listing; other offsets go to the stream.
func (h *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if off == 0 {
		if h.ds != nil {
			h.ds.Close()
		}
		h.ds = nil
		return h.stream(ctx)
	}
	if errno := h.stream(ctx); errno != 0 {
		return errno
	}
	if sd, ok := h.ds.(fusefs.FileSeekdirer); ok {
		return sd.Seekdir(ctx, off)
	}
	return syscall.ENOTSUP
}

func (h *dirHandle) Releasedir(context.Context, uint32) {
	if h.ds != nil {
		h.ds.Close()
	}
}

// openDir opens a directory whose listing is list's, cached by the kernel
// unless other users may look (allow_other: every listing is checked).
func (f *filesystem) openDir(ctx context.Context, list func(context.Context) (fusefs.DirStream, syscall.Errno)) (fusefs.FileHandle, uint32, syscall.Errno) {
	if !f.allowed(ctx) {
		return nil, 0, syscall.EACCES
	}
	var flags uint32
	if !f.allowOther {
		flags = fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE
	}
	return &dirHandle{list: list}, flags, 0
}

// OpendirHandle opens the directory with a cacheable listing.
func (d *dirNode) OpendirHandle(ctx context.Context, _ uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	return d.fsys.openDir(ctx, d.Readdir)
}

// OpendirHandle opens files/ with a cacheable listing (of one version;
// every new version invalidates it).
func (d *filesDir) OpendirHandle(ctx context.Context, _ uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	return d.fsys.openDir(ctx, d.Readdir)
}
