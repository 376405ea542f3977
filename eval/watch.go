package eval

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Defaults of the watcher's timing.
const (
	defaultMaxWait = time.Second      // longest a burst of events delays a rescan
	defaultRecheck = 10 * time.Second // period of the safety-net rescan
	maxRefreshRuns = 4                // rescans per refresh while new directories keep appearing
	maxSymlinks    = 40               // symlinks followed on one path, as the kernel's ELOOP
)

// watchConfig configures a watcher.
type watchConfig struct {
	root     string        // the definitions directory, as given
	debounce time.Duration // quiet period that ends a burst of events
	maxWait  time.Duration // longest a burst may delay its rescan; 0: defaultMaxWait
	recheck  time.Duration // period of a full rescan; 0: defaultRecheck, negative: never
	log      *slog.Logger  // receives watch failures
	deliver  func(Update)  // receives each new listing and what changed
}

// watcher keeps a definitions directory live. It watches, with fsnotify,
// every directory whose change can change a definition: the definitions
// directory and its project directories (every event there counts), and
// the directories holding each symlink and directory on the way to the
// definitions directory, to each definition and to each file a provider
// read (only events on those paths count). After a burst of events it
// rescans, re-resolves every path and moves its watches to where the paths
// now lead, so a re-pointed symlink, a directory deleted and recreated or
// renamed over, or a Kubernetes ConfigMap volume swapping "..data" are all
// followed. A burst ends after a quiet period (debounce) or, under
// continuous events, after maxWait; a periodic full rescan (recheck) repairs
// whatever events missed.
type watcher struct {
	cfg  watchConfig
	fsw  *fsnotify.Watcher
	done chan struct{}
	wg   sync.WaitGroup

	// applying serializes planning and applying watches, so that the
	// loop's pruning never undoes watchFiles.
	applying sync.Mutex

	mu      sync.Mutex
	tree    *Tree               // GUARDED_BY(mu): the listing last delivered
	files   map[string]bool     // GUARDED_BY(mu): provider files watched, as providers named them
	full    map[string]bool     // GUARDED_BY(mu): directories where every event counts
	deps    map[string]*target  // GUARDED_BY(mu): paths whose events count, by canonical path
	watched map[string]fileID   // GUARDED_BY(mu): directories watched, by canonical path
	failed  map[string]struct{} // GUARDED_BY(mu): directories whose watch failed (logged once)
}

// target is what an event on one path invalidates.
type target struct {
	names []Name   // definitions reached through the path
	files []string // provider files reached through the path
}

// fileID identifies a directory, to notice one replaced by another at the
// same path.
type fileID struct{ dev, ino uint64 }

// plan is the set of watches a watcher wants.
type plan struct {
	full map[string]bool    // directories where every event counts
	deps map[string]*target // paths whose events count; their directories are watched
}

func newPlan() plan { return plan{full: map[string]bool{}, deps: map[string]*target{}} }

// dep records that path leads to the definition name and the provider
// file file (either may be empty).
func (p plan) dep(path string, name *Name, file string) {
	t := p.deps[path]
	if t == nil {
		t = &target{}
		p.deps[path] = t
	}
	if name != nil {
		t.names = append(t.names, *name)
	}
	if file != "" {
		t.files = append(t.files, file)
	}
}

// dirs returns every directory the plan watches.
func (p plan) dirs() map[string]bool {
	out := make(map[string]bool, len(p.full)+len(p.deps))
	for d := range p.full {
		out[d] = true
	}
	for path := range p.deps {
		out[filepath.Dir(path)] = true
	}
	return out
}

func newWatcher(cfg watchConfig) (*watcher, error) {
	if cfg.maxWait <= 0 {
		cfg.maxWait = defaultMaxWait
	}
	if cfg.recheck == 0 {
		cfg.recheck = defaultRecheck
	}
	cfg.root = filepath.Clean(cfg.root)
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	w := &watcher{cfg: cfg, fsw: fsw, done: make(chan struct{}), files: map[string]bool{},
		full: map[string]bool{}, deps: map[string]*target{}, watched: map[string]fileID{}, failed: map[string]struct{}{}}
	tree, err := scanLive(cfg.root)
	if err != nil {
		fsw.Close()
		return nil, err
	}
	w.tree = tree
	if _, err := w.sync(); err != nil {
		fsw.Close()
		return nil, err
	}
	return w, nil
}

// start delivers the listing the watcher starts from (what changed since
// the Store's first listing) and starts the loop.
func (w *watcher) start() {
	w.cfg.deliver(Update{Tree: w.current()})
	w.wg.Add(1)
	go w.loop()
}

// current returns the listing last delivered.
func (w *watcher) current() *Tree {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.tree
}

// loop collects events until a quiet period of debounce (or maxWait after
// the first one), then refreshes; and refreshes every recheck.
func (w *watcher) loop() {
	defer w.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var recheck <-chan time.Time
	if w.cfg.recheck > 0 {
		t := time.NewTicker(w.cfg.recheck)
		defer t.Stop()
		recheck = t.C
	}
	var first time.Time // first event of the pending burst; zero if none
	arm := func() {
		now := time.Now()
		if first.IsZero() {
			first = now
		}
		timer.Reset(max(min(w.cfg.debounce, w.cfg.maxWait-now.Sub(first)), 0))
	}
	changed := map[Name]bool{}
	changedFiles := map[string]bool{}
	for {
		select {
		case <-w.done:
			return
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			t, counts := w.classify(ev.Name)
			if !counts {
				continue
			}
			for _, n := range t.names {
				changed[n] = true
			}
			for _, f := range t.files {
				changedFiles[f] = true
			}
			arm()
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			w.cfg.log.Warn("watch", "error", err.Error())
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				for _, f := range w.providerFiles() { // events were lost: assume every file changed
					changedFiles[f] = true
				}
				arm()
			}
		case <-timer.C:
			first = time.Time{}
			w.refresh(keys(changed), keys(changedFiles))
			clear(changed)
			clear(changedFiles)
		case <-recheck:
			w.refresh(nil, nil)
		}
	}
}

// keys returns the keys of m.
func keys[K comparable](m map[K]bool) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// refresh moves the watches to where the paths now lead, lists the
// definitions again and delivers the listing with what changed, and
// repeats while that finds directories not watched before: a change made
// in one of them before its watch existed has no event of its own.
func (w *watcher) refresh(names []Name, files []string) {
	_, _ = w.sync() // failures are logged once per directory
	for run := 0; run < maxRefreshRuns && !w.closing(); run++ {
		tree, err := scanLive(w.cfg.root)
		if err != nil {
			w.cfg.log.Warn("rescan", "error", err.Error())
		} else {
			w.mu.Lock()
			w.tree = tree
			w.mu.Unlock()
			w.cfg.deliver(Update{Tree: tree, Names: names, Files: files})
		}
		names, files = nil, nil
		if added, _ := w.sync(); !added {
			return
		}
	}
}

// classify says what an event on path invalidates and whether it counts
// at all.
func (w *watcher) classify(path string) (target, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var t target
	dep, isDep := w.deps[path]
	if isDep {
		t = *dep
	}
	return t, isDep || w.full[filepath.Dir(path)] || w.full[path]
}

// providerFiles returns the provider files watched.
func (w *watcher) providerFiles() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return keys(w.files)
}

// sync computes the watches the current tree needs and applies them,
// dropping those no longer needed. It reports whether it watched a
// directory not watched before, and fails if the definitions directory
// exists but cannot be watched. Only newWatcher and loop call it.
func (w *watcher) sync() (added bool, err error) {
	tree := w.current()
	w.applying.Lock()
	defer w.applying.Unlock()
	p := newPlan()
	root, ok := w.planRoot(p)
	if ok {
		planDefinitions(p, tree, root)
	}
	for _, f := range w.providerFiles() {
		planFile(p, f)
	}
	added = w.apply(p, true)
	w.mu.Lock()
	_, watched := w.watched[root]
	w.mu.Unlock()
	if ok && !watched {
		return added, fmt.Errorf("watch definitions directory %s: not watched (see the log)", root)
	}
	return added, nil
}

// planRoot plans the watches of the definitions directory: the directories
// on the way to it (its parent, and where its symlinks lie), itself and
// its project directories. It returns the directory's canonical path, if
// it exists.
func (w *watcher) planRoot(p plan) (string, bool) {
	abs, err := filepath.Abs(w.cfg.root)
	if err != nil {
		return "", false
	}
	c := resolve("/", abs)
	for _, d := range c.deps {
		p.dep(d, nil, "")
	}
	if c.err != nil || !c.dir {
		return "", false
	}
	p.full[c.final] = true
	entries, err := os.ReadDir(c.final)
	if err != nil {
		return c.final, true
	}
	for _, e := range entries {
		if ignored(e.Name()) || !isDir(c.final, e) {
			continue
		}
		pc := resolve(c.final, e.Name())
		for _, d := range pc.deps {
			p.dep(d, nil, "")
		}
		if pc.err == nil && pc.dir {
			p.full[pc.final] = true
		}
	}
	return c.final, true
}

// planDefinitions plans the watches of every definition of tree, resolved
// from the canonical definitions directory root.
func planDefinitions(p plan, tree *Tree, root string) {
	for _, def := range tree.Definitions() {
		rel, err := filepath.Rel(tree.Root, def.Path)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		c := resolve(root, rel)
		for _, d := range c.deps {
			p.dep(d, &def.Name, "")
		}
	}
}

// planFile plans the watches of a file a provider read.
func planFile(p plan, file string) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return
	}
	for _, d := range resolve("/", abs).deps {
		p.dep(d, nil, file)
	}
}

// apply watches the directories of p that are not watched yet, or whose
// path now holds another directory, and, if prune, stops watching the rest
// and makes p the watcher's whole plan (else p is added to it). It reports
// whether it watched a directory anew. A directory that cannot be watched
// is logged once; the periodic rescan stands in for its events.
func (w *watcher) apply(p plan, prune bool) (added bool) {
	want := p.dirs()
	ids := make(map[string]fileID, len(want))
	for d := range want {
		if id, ok := dirID(d); ok {
			ids[d] = id
		}
	}
	live := map[string]bool{}
	for _, d := range w.fsw.WatchList() {
		live[d] = true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if prune {
		w.full, w.deps = p.full, p.deps
	} else {
		for path, t := range p.deps {
			old := w.deps[path]
			if old == nil {
				old = &target{}
				w.deps[path] = old
			}
			old.names = append(old.names, t.names...)
			old.files = append(old.files, t.files...)
		}
	}
	for d, id := range ids {
		if old, ok := w.watched[d]; ok && old == id && live[d] {
			continue
		}
		if _, ok := w.watched[d]; ok {
			_ = w.fsw.Remove(d) // gone already if fsnotify saw it deleted or moved
		}
		if err := w.fsw.Add(d); err != nil {
			delete(w.watched, d)
			if _, logged := w.failed[d]; !logged && !errors.Is(err, fsnotify.ErrClosed) {
				w.failed[d] = struct{}{}
				w.cfg.log.Warn("watch", "dir", d, "error", err.Error())
			}
			continue
		}
		delete(w.failed, d)
		w.watched[d] = id
		added = true
	}
	if prune {
		for d := range w.watched {
			if !want[d] {
				_ = w.fsw.Remove(d)
				delete(w.watched, d)
			}
		}
	}
	return added
}

// dirID returns the identity of the directory at path.
func dirID(path string) (fileID, bool) {
	fi, err := os.Stat(path)
	if err != nil || !fi.IsDir() {
		return fileID{}, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, true
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino}, true
}

// chain is how a path resolves.
type chain struct {
	final string   // the canonical path it leads to
	dir   bool     // final is a directory
	err   error    // why it does not resolve, if it does not
	deps  []string // canonical paths whose change changes final or its content
}

// resolve follows rel from the canonical directory dir as the kernel would,
// and records in deps every path whose change can change where it leads or
// what it holds: every symlink followed, every entry passed after the
// first symlink, and the final path (or the first one missing). Each is a
// canonical directory and a name, as fsnotify names the events of a
// watched directory.
func resolve(dir, rel string) chain {
	c := chain{}
	pending := splitPath(rel)
	cur := dir
	links := 0
	for len(pending) > 0 {
		comp := pending[0]
		pending = pending[1:]
		switch comp {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, comp)
		fi, err := os.Lstat(next)
		if err != nil {
			c.deps = append(c.deps, next)
			c.err = err
			return c
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			if links > 0 || len(pending) == 0 {
				c.deps = append(c.deps, next)
			}
			cur = next
			c.dir = fi.IsDir()
			continue
		}
		c.deps = append(c.deps, next)
		if links++; links > maxSymlinks {
			c.err = &os.PathError{Op: "resolve", Path: next, Err: syscall.ELOOP}
			return c
		}
		link, err := os.Readlink(next)
		if err != nil {
			c.err = err
			return c
		}
		if filepath.IsAbs(link) {
			cur = "/"
		}
		pending = append(splitPath(link), pending...)
	}
	c.final = cur
	return c
}

// splitPath splits a slash-separated path into its components.
func splitPath(p string) []string {
	return strings.Split(p, string(filepath.Separator))
}

// watchFiles adds provider files to watch, through their symlinks: a file
// replaced by rename, or re-pointed like a Kubernetes projected token, is
// still seen.
func (w *watcher) watchFiles(paths []string) {
	var fresh []string
	w.mu.Lock()
	for _, f := range paths {
		if !w.files[f] {
			w.files[f] = true
			fresh = append(fresh, f)
		}
	}
	w.mu.Unlock()
	if len(fresh) == 0 {
		return
	}
	w.applying.Lock()
	defer w.applying.Unlock()
	p := newPlan()
	for _, f := range fresh {
		planFile(p, f)
	}
	w.apply(p, false)
}

// closing reports whether close was called.
func (w *watcher) closing() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

func (w *watcher) close() error {
	close(w.done)
	err := w.fsw.Close()
	w.wg.Wait()
	return err
}
