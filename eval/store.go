package eval

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNotFound is returned for an environment the definitions directory does
// not (or no longer) hold.
var ErrNotFound = errors.New("environment not found")

// StoreOptions configures a Store.
type StoreOptions struct {
	// Dir is the definitions directory.
	Dir string
	// Evaluator evaluates definitions.
	Evaluator *Evaluator
	// FilesDir returns the directory where an environment's files are served;
	// the variables of its files entries point into it.
	FilesDir func(Name) string
	// EvalTimeout bounds one evaluation; 0 means 30 seconds.
	EvalTimeout time.Duration
	// Debounce is how long the watcher waits for a burst of changes to end
	// before it rescans; 0 means 100 milliseconds.
	Debounce time.Duration
	// Logger receives one line per failed evaluation and per tree change;
	// nil means slog.Default(). Values are never logged.
	Logger *slog.Logger
}

// Change tells subscribers what a rescan of the definitions changed.
type Change struct {
	// Tree is true when environments were added or removed.
	Tree bool
	// Envs are the environments whose cached snapshots were dropped: those
	// whose definition changed, appeared or vanished, and every environment
	// that imports one of them.
	Envs []Name
}

// State is the evaluation state of an environment in a Store.
type State string

// The states of an environment.
const (
	StateUnevaluated State = "unevaluated" // never evaluated since it (or an import) last changed
	StateEvaluating  State = "evaluating"  // an evaluation is running and nothing is cached
	StateOK          State = "ok"          // the cached snapshot has no errors
	StateError       State = "error"       // the last evaluation failed
)

// Status describes an environment without evaluating it.
type Status struct {
	Name        string      `json:"name"`
	Definition  string      `json:"definition"`
	State       State       `json:"state"`
	EvaluatedAt *time.Time  `json:"evaluatedAt,omitempty"`
	Error       string      `json:"error,omitempty"`
	Diagnostics Diagnostics `json:"diagnostics"`
}

// Store holds the definitions of a directory and caches one evaluation per
// environment until the definition, or anything it imports, changes. At most
// one evaluation of an environment runs at a time; concurrent callers wait
// for it and share its snapshot. A Store is safe for concurrent use.
type Store struct {
	opts        StoreOptions
	log         *slog.Logger
	evaluations atomic.Int64

	mu      sync.Mutex
	tree    *Tree                // GUARDED_BY(mu)
	entries map[Name]*entry      // GUARDED_BY(mu)
	subs    map[int]func(Change) // GUARDED_BY(mu)
	nextSub int                  // GUARDED_BY(mu)

	watch *watcher // nil until Watch
}

// entry is the cache of one environment. All fields are GUARDED_BY(Store.mu).
type entry struct {
	gen     uint64        // bumped whenever the cached result becomes invalid
	snap    *Snapshot     // result of the evaluation of generation snapGen
	err     error         // error of that evaluation (a *DiagnosticsError when snap has errors)
	snapGen uint64        // generation snap and err belong to
	valid   bool          // snap/err are the current generation's result
	deps    []Name        // what the last evaluation read, for invalidation
	running chan struct{} // closed when the running evaluation ends; nil if none
}

// NewStore scans opts.Dir and returns a store over it. It does not evaluate
// anything and does not watch the directory until Watch is called.
func NewStore(opts StoreOptions) (*Store, error) {
	if opts.Evaluator == nil {
		return nil, errors.New("new store: no evaluator")
	}
	if opts.FilesDir == nil {
		return nil, errors.New("new store: no FilesDir")
	}
	if opts.EvalTimeout == 0 {
		opts.EvalTimeout = 30 * time.Second
	}
	if opts.Debounce == 0 {
		opts.Debounce = 100 * time.Millisecond
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	tree, err := ScanDir(opts.Dir)
	if err != nil {
		return nil, err
	}
	for _, p := range tree.Problems {
		log.Warn("definitions", "problem", p.String())
	}
	return &Store{opts: opts, log: log, tree: tree, entries: map[Name]*entry{}, subs: map[int]func(Change){}}, nil
}

// Tree returns the current set of definitions.
func (s *Store) Tree() *Tree {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tree
}

// Evaluations returns how many evaluations the store has started.
func (s *Store) Evaluations() int64 { return s.evaluations.Load() }

// Subscribe calls fn after every rescan that changed something, from the
// watcher's goroutine (never from inside a caller of Snapshot). The returned
// function unsubscribes.
func (s *Store) Subscribe(fn func(Change)) (cancel func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.nextSub
	s.nextSub++
	s.subs[id] = fn
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.subs, id)
	}
}

// Snapshot returns the current snapshot of the environment, evaluating it if
// nothing valid is cached. An environment with errors returns its snapshot
// (holding the diagnostics) and a *DiagnosticsError. ctx bounds only this
// caller's wait: the evaluation itself is bounded by EvalTimeout and shared
// with every other caller.
func (s *Store) Snapshot(ctx context.Context, name Name) (*Snapshot, error) {
	s.mu.Lock()
	for {
		if _, err := s.tree.Lookup(name.String()); err != nil {
			s.mu.Unlock()
			return nil, fmt.Errorf("%s: %w", name.Short(), ErrNotFound)
		}
		e := s.entryLocked(name)
		if e.valid {
			snap, err := e.snap, e.err
			s.mu.Unlock()
			return snap, err
		}
		if e.running != nil {
			done := e.running
			s.mu.Unlock()
			select {
			case <-done:
			case <-ctx.Done():
				return nil, fmt.Errorf("wait for %s: %w", name.Short(), ctx.Err())
			}
			s.mu.Lock()
			continue
		}
		s.startLocked(name, e)
	}
}

// entryLocked returns the cache entry of name, creating it.
func (s *Store) entryLocked(name Name) *entry {
	e, ok := s.entries[name]
	if !ok {
		e = &entry{}
		s.entries[name] = e
	}
	return e
}

// startLocked runs one evaluation of name in the background and records its
// result for the generation it started in.
func (s *Store) startLocked(name Name, e *entry) {
	done := make(chan struct{})
	e.running = done
	gen, tree := e.gen, s.tree
	s.evaluations.Add(1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.EvalTimeout)
		defer cancel()
		snap, err := s.opts.Evaluator.Evaluate(ctx, tree, Request{Name: name.String(), FilesDir: s.opts.FilesDir(name)})
		s.mu.Lock()
		defer s.mu.Unlock()
		defer close(done)
		e.running = nil
		if snap != nil {
			e.deps = snap.Deps
		}
		if e.gen != gen {
			return // invalidated while running: the next caller evaluates again
		}
		e.snap, e.err, e.snapGen, e.valid = snap, err, gen, true
		if err != nil {
			s.log.Warn("evaluation failed", "env", name.Short(), "error", err.Error())
		}
	}()
}

// Status describes the environment without evaluating it.
func (s *Store) Status(name Name) (Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	def, err := s.tree.Lookup(name.String())
	if err != nil {
		return Status{}, fmt.Errorf("%s: %w", name.Short(), ErrNotFound)
	}
	st := Status{Name: name.Short(), Definition: def.Path, State: StateUnevaluated, Diagnostics: Diagnostics{}}
	e, ok := s.entries[name]
	switch {
	case !ok:
	case e.valid:
		st.State = StateOK
		if e.err != nil {
			st.State, st.Error = StateError, e.err.Error()
		}
		if e.snap != nil {
			at := e.snap.EvaluatedAt
			st.EvaluatedAt = &at
			st.Diagnostics = e.snap.Diagnostics
		}
	case e.running != nil:
		st.State = StateEvaluating
	}
	return st, nil
}

// Rescan re-reads the definitions directory, drops the cached snapshots of
// the environments in changed (canonical names) and of every environment
// whose definition appeared, vanished or moved, and of all their importers,
// and tells subscribers.
func (s *Store) Rescan(changed []Name) error {
	tree, err := ScanDir(s.opts.Dir)
	if err != nil {
		return err
	}
	s.mu.Lock()
	old := s.tree
	s.tree = tree
	dirty := map[Name]bool{}
	for _, n := range changed {
		dirty[n] = true
	}
	treeChanged := false
	for _, d := range old.Definitions() {
		if nd, err := tree.Lookup(d.Name.String()); err != nil || nd.Path != d.Path {
			dirty[d.Name], treeChanged = true, true
		}
	}
	for _, d := range tree.Definitions() {
		if _, err := old.Lookup(d.Name.String()); err != nil {
			dirty[d.Name], treeChanged = true, true
		}
	}
	var dropped []Name
	for name, e := range s.entries {
		if !dirty[name] && !dependsOn(e.deps, dirty) {
			continue
		}
		e.gen++
		e.valid, e.snap, e.err = false, nil, nil
		dropped = append(dropped, name)
		if _, err := tree.Lookup(name.String()); err != nil && e.running == nil {
			delete(s.entries, name)
		}
	}
	subs := make([]func(Change), 0, len(s.subs))
	for _, fn := range s.subs {
		subs = append(subs, fn)
	}
	s.mu.Unlock()

	if treeChanged || len(dropped) > 0 {
		for _, p := range tree.Problems {
			s.log.Warn("definitions", "problem", p.String())
		}
		s.log.Info("definitions changed", "dropped", len(dropped), "treeChanged", treeChanged)
		ch := Change{Tree: treeChanged, Envs: dropped}
		for _, fn := range subs {
			fn(ch)
		}
	}
	return nil
}

// dependsOn reports whether any of deps is in set.
func dependsOn(deps []Name, set map[Name]bool) bool {
	for _, d := range deps {
		if set[d] {
			return true
		}
	}
	return false
}

// Watch starts watching the definitions directory (and every project
// directory in it, including new ones) and rescans after each burst of
// changes. Close stops it.
func (s *Store) Watch() error {
	w, err := newWatcher(s.opts.Dir, s.opts.Debounce, s.log, s.Rescan)
	if err != nil {
		return fmt.Errorf("watch %s: %w", s.opts.Dir, err)
	}
	s.watch = w
	return nil
}

// Close stops the watcher, if any.
func (s *Store) Close() error {
	if s.watch == nil {
		return nil
	}
	return s.watch.close()
}
