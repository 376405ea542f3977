package fs

import (
	"path"
	"strings"

	fusefs "github.com/hanwen/go-fuse/v2/fs"

	"github.com/escfs/escfs/eval"
)

// versionedEntries are the entries of an environment directory whose
// inode is one version of the environment.
var versionedEntries = []string{entryEnv, entryDotenv, entryValues}

// invalidate tells the kernel to forget the names of the versions a change
// replaced, and the directory entries that vanished, so that the next
// lookup finds what is current. Open files keep their version: only names
// are invalidated, never an inode's content (a version never changes). It
// runs on the store's goroutines, never inside a FUSE request. ENOENT from a
// notify call means the kernel never looked the name up, and is ignored.
func invalidate(root *fusefs.Inode, fsys *filesystem, c eval.Change) {
	for _, name := range c.Envs {
		dir := lookupPath(root, name.Short())
		if dir == nil {
			continue
		}
		for _, entry := range versionedEntries {
			dir.NotifyEntry(entry)
		}
		if files := dir.GetChild(entryFiles); files != nil {
			for file := range files.Children() {
				files.NotifyEntry(file)
			}
			files.NotifyContent(0, 0) // its cached listing
		}
	}
	if c.Tree == nil {
		return
	}
	idx := fsys.indexFor(c.Tree)
	var walk func(dir *fusefs.Inode, rel string)
	walk = func(dir *fusefs.Inode, rel string) {
		dir.NotifyContent(0, 0) // its cached listing
		_, isEnv := idx.envs[rel]
		for name, ch := range dir.Children() {
			if isEnv && isEnvEntry(name) {
				continue
			}
			if !idx.dirs[rel][name] {
				dir.NotifyEntry(name)
				continue
			}
			walk(ch, path.Join(rel, name))
		}
		if isEnv {
			return
		}
		// a directory that is no longer an environment's: forget its entries
		for name := range dir.Children() {
			if isEnvEntry(name) {
				dir.NotifyEntry(name)
			}
		}
	}
	walk(root, "")
	// names that appeared: no negative entries are cached
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
