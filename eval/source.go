package eval

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/pulumi/esc"
)

// Source is where a Store's environments come from and how one of them
// becomes a Snapshot: a directory of definitions that escfs evaluates itself
// (DirSource), or a service that evaluates them and hands out the results
// (the Pulumi Cloud source, package cloud). A source owns its listing: it
// lists once for NewStore, and then its watcher delivers every new listing
// with what changed. The Store does everything else the same way for every
// source: caching, single-flight, expiry and renewal, backoff, invalidation
// of importers, and telling the filesystem.
//
// Optional capabilities are discovered by type assertion (see Coster), so
// a source implements only what it has.
type Source interface {
	// Scan lists the environments the source holds now. A source that is
	// gone or unreachable should return its last listing (or an empty one)
	// with Problems that explain, rather than an error, so that a mount
	// keeps serving what it has.
	Scan(ctx context.Context) (*Tree, error)
	// Produce evaluates (or opens) the environment name of tree, with its
	// files entries pointing into filesDir, bounded by ctx. Its contract is
	// Evaluator.Evaluate's: a snapshot with errors comes with a
	// *DiagnosticsError; other failures return a nil snapshot. A source
	// that watches local files starts watching those the snapshot's
	// providers read (Snapshot.Watched) before it returns.
	Produce(ctx context.Context, tree *Tree, name Name, filesDir string) (*Snapshot, error)
	// Watch starts noticing changes and hands each to deliver, one at a
	// time from one goroutine, until Close. deliver never blocks for long.
	Watch(deliver func(Update)) error
	// Close stops watching.
	Close() error
}

// Update is what a source's watcher noticed.
type Update struct {
	// Tree is the source's listing now.
	Tree *Tree
	// Names are the environments (canonical names) whose definition
	// changed in a way the listings' comparison may not show.
	Names []Name
	// Files are the local files read by providers that changed.
	Files []string
}

// Coster is a Source whose environments cost the Store's evaluation budget
// something other than the least (DirSource: the evaluator's memory grows
// with a definition's size).
type Coster interface {
	// Cost is what producing name counts against the budget, in bytes.
	Cost(tree *Tree, name Name) int64
}

// NewTree returns a listing of environments for a source other than a
// directory: root names the source in messages ("Pulumi Cloud org acme");
// each definition's Path is what status and diagnostics show for it.
func NewTree(root string, defs []Definition, problems Diagnostics) *Tree {
	t := &Tree{Root: root, defs: make(map[string]Definition, len(defs)), stamps: map[string]stamp{}, Problems: problems}
	for _, d := range defs {
		t.defs[d.Name.String()] = d
	}
	return t
}

// DirSource is a directory of definitions that escfs evaluates itself.
type DirSource struct {
	// Dir is the definitions directory.
	Dir string
	// Evaluator evaluates definitions.
	Evaluator *Evaluator
	// Debounce is how long the watcher waits for a burst of changes to end
	// before it rescans; 0 means 100 milliseconds.
	Debounce time.Duration
	// MaxWait bounds how long continuous changes (a file rewritten every few
	// milliseconds) can delay a rescan; 0 means 1 second.
	MaxWait time.Duration
	// Recheck is the period of a full rescan that catches what watching
	// missed; 0 means 10 seconds, negative never.
	Recheck time.Duration
	// Logger receives watch failures; nil means slog.Default().
	Logger *slog.Logger

	mu    sync.Mutex
	watch *watcher // GUARDED_BY(mu): nil until Watch
}

// Scan lists the definitions in the directory. A directory that does not
// exist (deleted, renamed away, a dangling symlink) holds no environments,
// with a problem saying so, so that a mount empties when it goes and fills
// again when it comes back.
func (d *DirSource) Scan(context.Context) (*Tree, error) { return scanLive(d.Dir) }

// Produce evaluates the environment with d.Evaluator, and watches the
// files its providers read (stack checkpoints, say) once Watch started.
func (d *DirSource) Produce(ctx context.Context, tree *Tree, name Name, filesDir string) (*Snapshot, error) {
	snap, err := d.Evaluator.Evaluate(ctx, tree, Request{Name: name.String(), FilesDir: filesDir})
	if snap != nil && len(snap.Watched) > 0 {
		d.mu.Lock()
		w := d.watch
		d.mu.Unlock()
		if w != nil {
			w.watchFiles(snap.Watched)
		}
	}
	return snap, err
}

// Cost is the size of the environment's definition file.
func (d *DirSource) Cost(tree *Tree, name Name) int64 {
	def, err := tree.Lookup(name.String())
	if err != nil {
		return 0
	}
	fi, err := os.Stat(def.Path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Watch starts watching the definitions directory (and every project
// directory in it, including new ones, and every symlink and directory on
// the way to it and to each definition) and delivers a new listing after
// each burst of changes, at most MaxWait after its first one, and every
// Recheck. It delivers the listing it starts from at once.
func (d *DirSource) Watch(deliver func(Update)) error {
	log := d.Logger
	if log == nil {
		log = slog.Default()
	}
	debounce := d.Debounce
	if debounce == 0 {
		debounce = 100 * time.Millisecond
	}
	w, err := newWatcher(watchConfig{root: d.Dir, debounce: debounce, maxWait: d.MaxWait,
		recheck: d.Recheck, log: log, deliver: deliver})
	if err != nil {
		return fmt.Errorf("watch %s: %w", d.Dir, err)
	}
	d.mu.Lock()
	d.watch = w
	d.mu.Unlock()
	w.start()
	return nil
}

// Close stops the watcher, if any.
func (d *DirSource) Close() error {
	d.mu.Lock()
	w := d.watch
	d.watch = nil
	d.mu.Unlock()
	if w == nil {
		return nil
	}
	return w.close()
}

// Evaluated is an environment a source evaluated elsewhere (a service's
// esc.Environment), to be rendered into a Snapshot as escfs renders its own.
type Evaluated struct {
	Name        Name             // the environment
	Path        string           // what status and diagnostics show as its definition
	Env         *esc.Environment // the evaluated environment; nil with errors
	Diagnostics Diagnostics      // the source's own errors and warnings
	EvaluatedAt time.Time        // when it was evaluated (or opened)
	ExpiresAt   time.Time        // when what it holds stops being valid; zero never
	Deps        []Name           // every environment it read, itself included
}

// NewSnapshot renders r, with the variables of files entries pointing into
// filesDir. As with Evaluate, a snapshot with errors comes with a
// *DiagnosticsError and holds no renderings.
func NewSnapshot(r Evaluated, filesDir string) (*Snapshot, error) {
	snap := &Snapshot{Serial: nextSerial(), Name: r.Name, Path: r.Path, EvaluatedAt: r.EvaluatedAt,
		ExpiresAt: r.ExpiresAt, Opened: true, Deps: slices.Clone(r.Deps), Diagnostics: slices.Clone(r.Diagnostics)}
	if !slices.Contains(snap.Deps, r.Name) {
		snap.Deps = append(snap.Deps, r.Name)
	}
	if snap.Diagnostics.HasErrors() {
		return snap, snap.Diagnostics.Err()
	}
	render(snap, r.Env, filesDir, func(file string) string { return file })
	exportExpiry(snap)
	return snap, snap.Diagnostics.Err()
}
