package fs

import (
	"path"
	"strings"

	fusefs "github.com/hanwen/go-fuse/v2/fs"

	"github.com/escfs/escfs/eval"
)

// invalidate tells the kernel to forget what it cached for the environments
// a change dropped, and for directory entries that appeared or vanished. It
// runs on the store's watcher goroutine, never inside a FUSE request.
// ENOENT from a notify call means the kernel never looked the node up, and is
// ignored like every other notify error: the caches time out after a second
// anyway.
func invalidate(root *fusefs.Inode, fsys *filesystem, c eval.Change) {
	for _, name := range c.Envs {
		dir := lookupPath(root, name.Short())
		if dir == nil {
			continue
		}
		for entry, ch := range dir.Children() {
			switch entry {
			case entryFiles:
				for file, f := range ch.Children() {
					f.NotifyContent(0, 0)
					ch.NotifyEntry(file)
				}
				ch.NotifyContent(0, 0)
			case entryEnv, entryDotenv, entryValues, entryStatus:
				ch.NotifyContent(0, 0)
			}
		}
	}
	if !c.Tree {
		return
	}
	idx := fsys.indexOf()
	var walk func(dir *fusefs.Inode, rel string)
	walk = func(dir *fusefs.Inode, rel string) {
		_, isEnv := idx.envs[rel]
		for name, ch := range dir.Children() {
			p := path.Join(rel, name)
			if isEnv && isEnvEntry(name) {
				continue
			}
			if !idx.dirs[rel][name] {
				dir.NotifyEntry(name)
				continue
			}
			walk(ch, p)
		}
		if !isEnv {
			return
		}
		// an environment that vanished and came back: forget its entries' sizes
		for name, ch := range dir.Children() {
			if isEnvEntry(name) {
				ch.NotifyContent(0, 0)
			}
		}
	}
	walk(root, "")
	// names that appeared: no negative entries are cached (NegativeTimeout 0)
}

func isEnvEntry(name string) bool {
	for _, e := range envEntries {
		if e == name {
			return true
		}
	}
	return false
}

// lookupPath finds the inode the kernel knows at rel, or nil.
func lookupPath(root *fusefs.Inode, rel string) *fusefs.Inode {
	n := root
	for _, part := range strings.Split(rel, "/") {
		if n = n.GetChild(part); n == nil {
			return nil
		}
	}
	return n
}
