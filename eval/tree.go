package eval

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// Definition is one environment definition file.
type Definition struct {
	Name Name   // the environment's name
	Path string // the file's path
}

// Tree is the set of environment definitions found in a directory at one
// moment. DIR/prod.yaml is "prod" (project "default"); DIR/demos/aws.yaml is
// "demos/aws". Anything else in the directory is ignored. A Tree is immutable.
type Tree struct {
	Root     string                // the definitions directory
	defs     map[string]Definition // by canonical name
	stamps   map[string]stamp      // by canonical name: what each definition resolved to when scanned
	Problems Diagnostics           // files that look like definitions but cannot be one
}

// definitionExts are the file extensions of definitions, in order of
// preference when both exist for one name.
var definitionExts = []string{".yaml", ".yml"}

// ScanDir lists the environment definitions in root. It fails only if root
// itself cannot be read; files that cannot be environments are reported in
// Tree.Problems.
func ScanDir(root string) (*Tree, error) {
	// Clean, so that a top-level file's directory compares equal to Root.
	root = filepath.Clean(root)
	t := &Tree{Root: root, defs: map[string]Definition{}, stamps: map[string]stamp{}}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("read definitions directory: %w", err)
	}
	var projects []string
	for _, e := range entries {
		if ignored(e.Name()) {
			continue
		}
		if isDir(root, e) {
			projects = append(projects, e.Name())
			continue
		}
		t.add(DefaultProject, filepath.Join(root, e.Name()), e.Name())
	}
	for _, project := range projects {
		dir := filepath.Join(root, project)
		sub, err := os.ReadDir(dir)
		if err != nil {
			t.Problems = append(t.Problems, Diagnostic{File: dir, Severity: SeverityWarning, Message: fmt.Sprintf("cannot read project directory: %v", err)})
			continue
		}
		for _, e := range sub {
			if ignored(e.Name()) || isDir(dir, e) {
				continue
			}
			t.add(project, filepath.Join(dir, e.Name()), e.Name())
		}
	}
	for key, d := range t.defs {
		t.stamps[key] = stampOf(d.Path)
	}
	return t, nil
}

// scanLive is ScanDir for a watched directory: a definitions directory that
// does not exist (deleted, renamed away, a dangling symlink) holds no
// environments, rather than being an error, so that a mount empties when it
// goes and fills again when it comes back.
func scanLive(root string) (*Tree, error) {
	t, err := ScanDir(root)
	if err == nil || (!errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR)) {
		return t, err
	}
	root = filepath.Clean(root)
	return &Tree{Root: root, defs: map[string]Definition{}, stamps: map[string]stamp{},
		Problems: Diagnostics{{File: root, Severity: SeverityWarning, Message: "definitions directory does not exist: serving no environments"}}}, nil
}

// stamp identifies what a definition's path resolves to without reading
// it: the file at the end of its symlinks, with its size and times. Every
// way of saving changes it: in place (size, mtime, ctime), by rename or by
// re-pointing a symlink or a directory on the way (device and inode).
type stamp struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64 // nanoseconds
}

// stampOf stats the file path resolves to; a path that does not resolve has
// the zero stamp.
func stampOf(path string) stamp {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return stamp{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	}
	return stamp{dev: uint64(st.Dev), ino: st.Ino, size: st.Size,
		mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano()}
}

// modifiedSince returns the environments that both old and t define at the
// same path but whose files differ: edited in place or by rename, or
// reached through a symlink or directory that now points elsewhere.
func (t *Tree) modifiedSince(old *Tree) []Name {
	var out []Name
	for key, d := range t.defs {
		od, ok := old.defs[key]
		if ok && od.Path == d.Path && old.stamps[key] != t.stamps[key] {
			out = append(out, d.Name)
		}
	}
	return out
}

// ignored reports whether a directory entry is never a definition: hidden
// files and editor droppings (".prod.yaml.swp", ".#prod.yaml", "#prod.yaml#").
func ignored(base string) bool {
	return strings.HasPrefix(base, ".") || strings.HasPrefix(base, "#")
}

// isDir reports whether the entry is a directory, following symlinks.
func isDir(dir string, e os.DirEntry) bool {
	if e.IsDir() {
		return true
	}
	if e.Type()&os.ModeSymlink == 0 {
		return false
	}
	fi, err := os.Stat(filepath.Join(dir, e.Name()))
	return err == nil && fi.IsDir()
}

// add records the file at path as a definition of project if its name has a
// definition extension.
func (t *Tree) add(project, path, base string) {
	ext := filepath.Ext(base)
	if ext != ".yaml" && ext != ".yml" {
		if lower := strings.ToLower(ext); lower == ".yaml" || lower == ".yml" {
			t.Problems = append(t.Problems, Diagnostic{File: path, Severity: SeverityWarning,
				Message: fmt.Sprintf("not an environment: the extension %s is not %s; only .yaml and .yml (lower case) are definitions", ext, lower)})
		}
		return
	}
	envName := strings.TrimSuffix(base, ext)
	raw := envName
	if project != DefaultProject || filepath.Dir(path) != t.Root {
		raw = project + "/" + envName
	}
	name, err := ParseName(raw)
	if err != nil {
		t.Problems = append(t.Problems, Diagnostic{File: path, Severity: SeverityWarning, Message: fmt.Sprintf("not an environment: %v", err)})
		return
	}
	if prev, ok := t.defs[name.String()]; ok {
		keep, drop := prev, Definition{Name: name, Path: path}
		if preferred(drop, keep, t.Root) {
			keep, drop = drop, keep
		}
		t.defs[name.String()] = keep
		t.Problems = append(t.Problems, Diagnostic{File: drop.Path, Severity: SeverityWarning,
			Message: fmt.Sprintf("ignored: %s also defines %s", keep.Path, name.Short())})
		return
	}
	t.defs[name.String()] = Definition{Name: name, Path: path}
}

// preferred reports whether a should win over b when both define one name:
// a top-level file over DIR/default/, then .yaml over .yml.
func preferred(a, b Definition, root string) bool {
	aTop, bTop := filepath.Dir(a.Path) == root, filepath.Dir(b.Path) == root
	if aTop != bTop {
		return aTop
	}
	return filepath.Ext(a.Path) == definitionExts[0]
}

// Lookup returns the definition of the environment called name ("env" or
// "project/env").
func (t *Tree) Lookup(name string) (Definition, error) {
	n, err := ParseName(name)
	if err != nil {
		return Definition{}, err
	}
	d, ok := t.defs[n.String()]
	if !ok {
		return Definition{}, fmt.Errorf("environment %q not found in %s", name, t.Root)
	}
	return d, nil
}

// Definitions returns every definition, sorted by short name.
func (t *Tree) Definitions() []Definition {
	out := make([]Definition, 0, len(t.defs))
	for _, d := range t.defs {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name.Short() < out[j].Name.Short() })
	return out
}

// Unchanged reports whether each of names resolves in t to the same file,
// unmodified, as in old (or is absent from both): whether an evaluation
// that read those definitions from old still holds for t.
func (t *Tree) Unchanged(old *Tree, names []Name) bool {
	if t == old {
		return true
	}
	for _, n := range names {
		key := n.String()
		d, ok := t.defs[key]
		od, ook := old.defs[key]
		if ok != ook || ok && (d.Path != od.Path || t.stamps[key] != old.stamps[key]) {
			return false
		}
	}
	return true
}
