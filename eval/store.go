package eval

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/escfs/escfs/internal/redact"
)

// ErrNotFound is returned for an environment the definitions directory does
// not (or no longer) hold.
var ErrNotFound = errors.New("environment not found")

// StoreOptions configures a Store.
type StoreOptions struct {
	// Source is where the environments come from (a DirSource, the Cloud
	// source); required.
	Source Source
	// FilesDir returns the directory where an environment's files are served;
	// the variables of its files entries point into it.
	FilesDir func(Name) string
	// EvalTimeout bounds one evaluation; 0 means 30 seconds.
	EvalTimeout time.Duration
	// Refresh says when snapshots holding expiring credentials are renewed.
	Refresh RefreshPolicy
	// Logger receives one line per failed evaluation and per tree change;
	// nil means slog.Default(). Values are never logged.
	Logger *slog.Logger
	// Clock is the store's time: what it calls now, and the timers of its
	// background renewals; nil means the real clock. (An evaluation's own
	// deadline, EvalTimeout, is on the real clock: it is a context deadline
	// that providers pass to their services.)
	Clock Clock
	// EvalBudget bounds the bytes of definitions being evaluated at once
	// across all environments, and with it the memory evaluations take (the
	// evaluator needs about 200 times a definition's size). Each evaluation
	// counts its definition's size, at least 64 KiB, so small environments
	// hardly ever wait; 0 means DefaultEvalBudget.
	EvalBudget int64
}

// Change tells subscribers what changed in the store.
type Change struct {
	// Tree is the new listing when environments were added or removed;
	// nil otherwise.
	Tree *Tree
	// Envs are the environments whose content changed: those whose
	// definition changed, appeared or vanished, every environment that
	// imports one of them (their cached snapshots were dropped), and those
	// renewed because their credentials expire.
	Envs []Name
}

// State is the evaluation state of an environment in a Store.
type State string

// The states of an environment.
const (
	StateUnevaluated State = "unevaluated" // never evaluated since it (or an import) last changed
	StateEvaluating  State = "evaluating"  // an evaluation is running and nothing is cached
	StateOK          State = "ok"          // the cached snapshot has no errors
	StateStale       State = "stale"       // a renewal failed; the previous snapshot is served until it expires
	StateError       State = "error"       // the last evaluation failed and nothing valid is left
	StateExpired     State = "expired"     // the snapshot's credentials expired and nobody renewed it yet; the next read re-evaluates
)

// Status describes an environment without evaluating it.
type Status struct {
	Name        string      `json:"name"`
	Definition  string      `json:"definition"`
	State       State       `json:"state"`
	EvaluatedAt *time.Time  `json:"evaluatedAt,omitempty"`
	ExpiresAt   *time.Time  `json:"expiresAt,omitempty"` // when the served credentials expire
	RefreshAt   *time.Time  `json:"refreshAt,omitempty"` // when they stop being fresh and are renewed
	Error       string      `json:"error,omitempty"`     // why the environment cannot be read
	LastError   string      `json:"lastError,omitempty"` // why the last renewal failed
	Diagnostics Diagnostics `json:"diagnostics"`
}

// Store holds the environments of a source and caches one evaluation per
// environment until the definition, or anything it imports, changes. At most
// one evaluation of an environment runs at a time; concurrent callers wait
// for it and share its snapshot. A Store is safe for concurrent use.
type Store struct {
	opts        StoreOptions
	source      Source
	log         *slog.Logger
	evaluations atomic.Int64

	mu      sync.Mutex
	tree    *Tree                // GUARDED_BY(mu)
	entries map[Name]*entry      // GUARDED_BY(mu)
	subs    map[int]func(Change) // GUARDED_BY(mu)
	closed  bool                 // GUARDED_BY(mu): no more background renewals
	nextSub int                  // GUARDED_BY(mu)
	// fileSeq counts the updates that changed provider files, and
	// fileChanged holds the last such update of each file: an evaluation
	// that read a file changed since it started is not kept.
	fileSeq     uint64            // GUARDED_BY(mu)
	fileChanged map[string]uint64 // GUARDED_BY(mu)

	budget *semaphore.Weighted // bytes of definitions being evaluated, EvalBudget in all
}

// entry is the cache of one environment. All fields are GUARDED_BY(Store.mu).
type entry struct {
	gen       uint64        // bumped whenever the cached result becomes invalid
	snap      *Snapshot     // the result served for generation gen
	err       error         // its error (a *DiagnosticsError when snap has errors)
	valid     bool          // snap/err belong to the current generation
	deps      []Name        // what the last evaluation read, for invalidation
	files     []string      // the local files its providers read, for invalidation
	running   chan struct{} // closed when the running evaluation ends; nil if none
	deadline  time.Time     // when the running evaluation is given up on (wall clock)
	inflight  *inflight     // what the running evaluation is waiting for
	startedAt time.Time     // when the last evaluation started (on opts.Clock)
	startSeq  uint64        // Store.fileSeq when the last evaluation started
	lastRead  time.Time     // when a reader last asked, for keep-warm
	lastErr   error         // why the last re-evaluation failed; nil after a success
	failures  int           // failed evaluations in a row, for backoff
	retryAt   time.Time     // no new evaluation after a failure before this
	timer     func() bool   // stops the pending background renewal, if any
	logged    string        // the last error logged, so each is logged once
}

// NewStore lists the source's environments and returns a store over them.
// It evaluates nothing, and does not watch the source until Watch is
// called.
func NewStore(opts StoreOptions) (*Store, error) {
	if opts.FilesDir == nil {
		return nil, errors.New("new store: no FilesDir")
	}
	if opts.EvalTimeout == 0 {
		opts.EvalTimeout = 30 * time.Second
	}
	if opts.Clock == nil {
		opts.Clock = RealClock{}
	}
	if opts.EvalBudget <= 0 {
		opts.EvalBudget = DefaultEvalBudget
	}
	opts.Refresh = opts.Refresh.withDefaults()
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	source := opts.Source
	if source == nil {
		return nil, errors.New("new store: no Source")
	}
	tree, err := source.Scan(context.Background())
	if err != nil {
		return nil, err
	}
	for _, p := range tree.Problems {
		log.Warn("definitions", "problem", p.String())
	}
	return &Store{opts: opts, source: source, log: log, tree: tree, entries: map[Name]*entry{}, subs: map[int]func(Change){},
		fileChanged: map[string]uint64{}, budget: semaphore.NewWeighted(opts.EvalBudget)}, nil
}

// Tree returns the current set of definitions.
func (s *Store) Tree() *Tree {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tree
}

// Evaluations returns how many evaluations the store has started.
func (s *Store) Evaluations() int64 { return s.evaluations.Load() }

// Subscribe calls fn after every change: a new listing from the source
// that added, removed or changed environments, or a renewal that replaced
// a snapshot readers may have cached. It is called from the source's
// watcher or the evaluation's goroutine, never from inside a caller of
// Snapshot. The returned function unsubscribes.
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
// (holding the diagnostics) and a *DiagnosticsError. A snapshot whose
// credentials have expired is never returned: the caller waits for the new
// evaluation, and gets an error if it fails. ctx bounds only this caller's
// wait: the evaluation itself is bounded by EvalTimeout and shared with every
// other caller. A call counts as a read for keep-warm.
func (s *Store) Snapshot(ctx context.Context, name Name) (*Snapshot, error) {
	return s.snapshot(ctx, name, true)
}

// Peek is Snapshot for callers that only look (a stat, a lookup, a
// listing): it evaluates as Snapshot does, but it does not count as a
// read, so it never keeps an environment warm; only opens do.
func (s *Store) Peek(ctx context.Context, name Name) (*Snapshot, error) {
	return s.snapshot(ctx, name, false)
}

func (s *Store) snapshot(ctx context.Context, name Name, read bool) (*Snapshot, error) {
	s.mu.Lock()
	waited := false
	for {
		if _, err := s.tree.Lookup(name.String()); err != nil {
			s.mu.Unlock()
			return nil, fmt.Errorf("%s: %w", name.Short(), ErrNotFound)
		}
		e := s.entryLocked(name)
		now := s.opts.Clock.Now()
		if read {
			e.lastRead = now
		}
		switch decide(s.viewLocked(e, now), now, waited) {
		case serve:
			snap, err := e.snap, e.err
			s.mu.Unlock()
			return snap, err
		case serveAndRenew:
			s.startLocked(name, e)
			snap := e.snap
			s.mu.Unlock()
			return snap, nil
		case fail:
			cause := e.lastErr
			if cause == nil && !s.mayStartLocked(e, now) {
				cause = fmt.Errorf("%w: the last renewal started less than %s ago", ErrShortLived, s.opts.Refresh.MinInterval)
			}
			err := s.expiredError(name, e.snap, cause)
			s.mu.Unlock()
			return nil, err
		case wait:
			done, deadline, fl := e.running, e.deadline, e.inflight
			path := s.definitionPathLocked(name)
			s.mu.Unlock()
			if err := s.wait(ctx, done, deadline, fl); err != nil {
				return nil, fmt.Errorf("%s: evaluation of %s %w", name.Short(), path, err)
			}
			waited = true
			s.mu.Lock()
		case start:
			s.startLocked(name, e)
		}
	}
}

// verdict is what a reader does with an environment's cache entry.
type verdict int

const (
	serve         verdict = iota // return the cached snapshot or error as it is
	serveAndRenew                // return the snapshot and renew it in the background
	wait                         // wait for the running evaluation, then decide again
	start                        // start an evaluation, then wait for it
	fail                         // the snapshot expired and cannot be renewed now: ErrExpired
)

func (v verdict) String() string {
	return [...]string{"serve", "serve and renew", "wait", "start", "fail"}[v]
}

// entryView is what the renewal decision reads of an entry.
type entryView struct {
	valid     bool      // the cached result is current
	snap      *Snapshot // the cached snapshot (nil after some failures)
	err       error     // the cached error
	running   bool      // an evaluation is running
	retryAt   time.Time // no new evaluation after a failure before this
	mayStart  bool      // MinInterval has passed since the last start
	refreshAt time.Time // when snap stops being fresh (zero: never)
}

// viewLocked returns what decide needs of e.
func (s *Store) viewLocked(e *entry, now time.Time) entryView {
	v := entryView{valid: e.valid, snap: e.snap, err: e.err, running: e.running != nil, retryAt: e.retryAt,
		mayStart: s.mayStartLocked(e, now)}
	if e.snap != nil {
		v.refreshAt = s.opts.Refresh.refreshAt(e.snap)
	}
	return v
}

// decide is the renewal decision of a reader at now, who has waited for
// an evaluation already if waited. Failures that may be transient are
// retried after the backoff: those of an evaluation that opened a
// provider, and those that left no snapshot at all (a timeout, an
// unreadable file). A snapshot within its refresh margin is served while a
// renewal runs; an expired one is never served.
func decide(e entryView, now time.Time, waited bool) verdict {
	if e.valid {
		err, snap := e.err, e.snap
		retry := err != nil && (snap == nil || snap.Opened) && !now.Before(e.retryAt) && !waited && e.mayStart
		switch {
		case err != nil && !retry:
			return serve
		case err == nil && (snap.ExpiresAt.IsZero() || now.Before(e.refreshAt)):
			return serve // fresh
		case err == nil && now.Before(snap.ExpiresAt):
			// Within the margin: serve it and renew in the background.
			if !e.running && !now.Before(e.retryAt) && e.mayStart {
				return serveAndRenew
			}
			return serve
		case err == nil && (waited || now.Before(e.retryAt) || !e.mayStart) && !e.running:
			return fail
		}
	}
	if e.running {
		return wait
	}
	return start
}

// FreshUntil returns when snap stops being fresh and is renewed (its
// expiry less the refresh margin), or the zero time if it never expires.
// Caches of its content must not outlive it.
func (s *Store) FreshUntil(snap *Snapshot) time.Time {
	return s.opts.Refresh.refreshAt(snap)
}

// MarkRead records that a reader opened the environment's current
// snapshot without asking the store for it (a kernel-cached lookup): it
// keeps the environment warm like a Snapshot call, and evaluates nothing.
func (s *Store) MarkRead(name Name) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[name]; ok {
		e.lastRead = s.opts.Clock.Now()
	}
}

// ErrShortLived is the cause of the expiry of credentials that live
// shorter than the minimum interval between renewals.
var ErrShortLived = errors.New("credentials live shorter than the minimum interval between renewals (--min-renewal-interval)")

// mayStartLocked reports whether a renewal of an environment with a valid
// snapshot may start now: renewals of one environment are at least
// MinInterval apart, however short its credentials live.
func (s *Store) mayStartLocked(e *entry, now time.Time) bool {
	return e.startedAt.IsZero() || !now.Before(e.startedAt.Add(s.opts.Refresh.MinInterval))
}

// ErrEvalTimeout is the error for a reader that waited for an evaluation
// until the evaluation's timeout passed.
var ErrEvalTimeout = errors.New("exceeded the evaluation timeout")

// wait waits for done, for ctx, or until deadline, whichever comes first. A
// reader never waits past the deadline of the evaluation it waits for, even
// when that evaluation ignores its own context (a CPU-bound evaluator).
func (s *Store) wait(ctx context.Context, done <-chan struct{}, deadline time.Time, fl *inflight) error {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait: %w", ctx.Err())
	case <-timer.C:
		select {
		case <-done: // finished at the last moment
			return nil
		default:
		}
		running := fl.describe()
		if running == "" {
			running = "the evaluator"
		}
		return fmt.Errorf("%w (%s%s)", ErrEvalTimeout, s.opts.EvalTimeout, stillRunning(running))
	}
}

// stillRunning formats what an evaluation was busy with at its timeout.
func stillRunning(what string) string {
	if what == "" {
		return ""
	}
	return ", still running: " + what
}

// definitionPathLocked returns the file that defines name, for messages.
func (s *Store) definitionPathLocked(name Name) string {
	if def, err := s.tree.Lookup(name.String()); err == nil {
		return def.Path
	}
	return name.Short()
}

// ErrExpired is the error for an environment whose credentials expired and
// could not be renewed.
var ErrExpired = errors.New("credentials expired")

func (s *Store) expiredError(name Name, snap *Snapshot, cause error) error {
	if cause == nil {
		cause = errors.New("renewal did not finish")
	}
	return fmt.Errorf("%s: %w at %s: %w", name.Short(), ErrExpired, snap.ExpiresAt.UTC().Format(time.RFC3339), cause)
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
	deadline := time.Now().Add(s.opts.EvalTimeout)
	fl := &inflight{}
	e.deadline, e.startedAt, e.inflight, e.startSeq = deadline, s.opts.Clock.Now(), fl, s.fileSeq
	gen, tree := e.gen, s.tree
	path := s.definitionPathLocked(name)
	s.evaluations.Add(1)
	go func() {
		ctx, cancel := context.WithDeadline(withInflight(context.Background(), fl), deadline)
		defer cancel()
		var atDeadline atomic.Value // what was running when the deadline passed
		stopWatch := context.AfterFunc(ctx, func() { atDeadline.Store(fl.describe()) })
		defer stopWatch()
		snap, err := s.evaluate(ctx, tree, name, path)
		if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			running, _ := atDeadline.Load().(string)
			snap, err = nil, fmt.Errorf("%s: evaluation of %s %w (%s%s): %w", name.Short(), path, ErrEvalTimeout, s.opts.EvalTimeout, stillRunning(running), err)
		}
		s.mu.Lock()
		changed := s.finishLocked(name, e, gen, snap, err)
		e.running = nil
		close(done)
		s.mu.Unlock()
		if changed {
			s.notify(Change{Envs: []Name{name}})
		}
	}()
}

// DefaultEvalBudget is the default StoreOptions.EvalBudget: four
// definitions at the default size limit, sixty-four small ones.
const DefaultEvalBudget = 4 << 20

// minEvalWeight is what an evaluation counts against the budget at least.
const minEvalWeight = 64 << 10

// evaluate runs one evaluation, within the store's EvalBudget,
// the store, and turns a panic in the evaluator or a provider into an error
// of this environment: one definition never takes the daemon down.
func (s *Store) evaluate(ctx context.Context, tree *Tree, name Name, path string) (snap *Snapshot, err error) {
	weight := int64(minEvalWeight)
	if c, ok := s.source.(Coster); ok {
		weight = max(weight, c.Cost(tree, name))
	}
	weight = min(weight, s.opts.EvalBudget)
	if err := s.budget.Acquire(ctx, weight); err != nil {
		return nil, fmt.Errorf("evaluate %s: waiting for the evaluation budget (%s of definitions at once): %w", name.Short(), byteSize(s.opts.EvalBudget), err)
	}
	defer s.budget.Release(weight)
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("evaluation panicked", "env", name.Short(), "definition", path, "panic", fmt.Sprintf("%T", p), "stack", string(debug.Stack()))
			snap, err = nil, fmt.Errorf("%s: evaluation of %s panicked (a bug in escfs or a provider; the log has the stack): %v", name.Short(), path, p)
		}
	}()
	snap, err = s.source.Produce(ctx, tree, name, s.opts.FilesDir(name))
	if snap != nil {
		// A service may echo a credential in an error body, and a
		// provider may quote it: none reaches a status or the log.
		for i := range snap.Diagnostics {
			snap.Diagnostics[i].Message = redact.String(snap.Diagnostics[i].Message)
		}
	}
	return snap, redact.Error(err)
}

// finishLocked records the result of an evaluation of generation gen and
// schedules the next renewal. It reports whether a snapshot that readers
// may have cached was replaced.
func (s *Store) finishLocked(name Name, e *entry, gen uint64, snap *Snapshot, err error) (replaced bool) {
	if snap != nil {
		e.deps, e.files = snap.Deps, snap.Watched
	}
	if e.gen != gen {
		return false // invalidated while running: the next reader evaluates again
	}
	if snap != nil && slices.ContainsFunc(snap.Watched, func(f string) bool { return s.fileChanged[f] > e.startSeq }) {
		// A file it read changed while it ran (before the source watched
		// it, or before e.files named it): neither this result nor the
		// one served before is current.
		had := e.valid && e.err == nil && e.snap != nil
		dropLocked(e)
		return had
	}
	now := s.opts.Clock.Now()
	had := e.valid && e.err == nil && e.snap != nil
	if err == nil {
		e.snap, e.err, e.valid = snap, nil, true
		e.lastErr, e.failures, e.retryAt, e.logged = nil, 0, time.Time{}, ""
		s.scheduleLocked(name, e, s.opts.Refresh.refreshAt(snap))
		return had
	}
	e.failures++
	e.retryAt = now.Add(s.backoff(e.failures))
	e.lastErr = err
	if e.logged != err.Error() {
		e.logged = err.Error()
		s.log.Warn("evaluation failed", "env", name.Short(), "error", err.Error())
	}
	if had && now.Before(e.snap.ExpiresAt) {
		// Keep serving the previous snapshot until it really expires.
		s.scheduleLocked(name, e, e.retryAt)
		return false
	}
	e.snap, e.err, e.valid = snap, err, true
	return had
}

// backoff returns the jittered exponential delay after n failures in a row.
func (s *Store) backoff(n int) time.Duration {
	p := s.opts.Refresh
	d := p.RetryMin << min(n-1, 20)
	if d <= 0 || d > p.RetryMax {
		d = p.RetryMax
	}
	return d/2 + rand.N(d/2+1) // "equal jitter"
}

// scheduleLocked arranges a background renewal of name at t, if it was read
// within the keep-warm window by then. A zero t cancels it.
func (s *Store) scheduleLocked(name Name, e *entry, t time.Time) {
	if e.timer != nil {
		e.timer()
		e.timer = nil
	}
	if t.IsZero() || s.opts.Refresh.KeepWarm < 0 || s.closed {
		return
	}
	if earliest := e.startedAt.Add(s.opts.Refresh.MinInterval); t.Before(earliest) {
		t = earliest
	}
	gen := e.gen
	e.timer = s.opts.Clock.AfterFunc(max(t.Sub(s.opts.Clock.Now()), 0), func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if e.gen != gen || e.running != nil || s.closed {
			return
		}
		if s.opts.Clock.Now().Sub(e.lastRead) > s.opts.Refresh.KeepWarm {
			return // idle: the next read renews it
		}
		s.startLocked(name, e)
	})
}

// notify tells subscribers about a change, from a goroutine of its own so
// that no FUSE request waiting for an evaluation can block the kernel
// notifications subscribers send.
func (s *Store) notify(c Change) {
	s.mu.Lock()
	subs := make([]func(Change), 0, len(s.subs))
	for _, fn := range s.subs {
		subs = append(subs, fn)
	}
	s.mu.Unlock()
	for _, fn := range subs {
		fn(c)
	}
}

// Status describes the environment without evaluating it. Its state is
// "expired", not "ok", once the cached snapshot's credentials have expired
// and no renewal replaced them (an idle environment: the next read
// re-evaluates), and "error" if a renewal failed before they expired.
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
		now := s.opts.Clock.Now()
		st.State = StateOK
		switch {
		case e.err != nil:
			st.State, st.Error = StateError, e.err.Error()
		case !e.snap.ExpiresAt.IsZero() && !now.Before(e.snap.ExpiresAt) && e.lastErr != nil:
			st.State, st.Error = StateError, s.expiredError(name, e.snap, e.lastErr).Error()
		case !e.snap.ExpiresAt.IsZero() && !now.Before(e.snap.ExpiresAt):
			st.State = StateExpired
		case e.lastErr != nil:
			st.State = StateStale
		}
		if e.lastErr != nil {
			st.LastError = e.lastErr.Error()
		}
		if e.snap != nil {
			at := e.snap.EvaluatedAt
			st.EvaluatedAt = &at
			st.Diagnostics = e.snap.Diagnostics
			if life := e.snap.ExpiresAt.Sub(e.snap.EvaluatedAt); !e.snap.ExpiresAt.IsZero() && life < s.opts.Refresh.MinInterval {
				st.Diagnostics = append(slices.Clip(st.Diagnostics), Diagnostic{File: def.Path, Severity: SeverityWarning,
					Message: fmt.Sprintf("credentials live %s, less than the %s minimum between renewals (--min-renewal-interval): reads fail between their expiry and the next renewal", life, s.opts.Refresh.MinInterval)})
			}
			if !e.snap.ExpiresAt.IsZero() && e.err == nil {
				exp, ref := e.snap.ExpiresAt, s.opts.Refresh.refreshAt(e.snap)
				st.ExpiresAt, st.RefreshAt = &exp, &ref
			}
		}
	case e.running != nil:
		st.State = StateEvaluating
	}
	return st, nil
}

// apply takes a source's new listing: it drops the cached snapshots of
// the environments in u.Names, of every environment whose definition
// appeared, vanished or moved, of every environment whose providers read
// one of u.Files, and of all their importers, and tells subscribers.
func (s *Store) apply(u Update) {
	tree := u.Tree
	s.mu.Lock()
	old := s.tree
	s.tree = tree
	if len(u.Files) > 0 {
		s.fileSeq++
		for _, f := range u.Files {
			s.fileChanged[f] = s.fileSeq
		}
	}
	dirty := map[Name]bool{}
	for _, n := range slices.Concat(u.Names, tree.modifiedSince(old)) {
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
		if !dirty[name] && !dependsOn(e.deps, dirty) && !slices.ContainsFunc(e.files, func(p string) bool { return slices.Contains(u.Files, p) }) {
			continue
		}
		dropLocked(e)
		dropped = append(dropped, name)
		if _, err := tree.Lookup(name.String()); err != nil && e.running == nil {
			delete(s.entries, name)
		}
	}
	s.mu.Unlock()

	if treeChanged || len(dropped) > 0 {
		for _, p := range tree.Problems {
			s.log.Warn("definitions", "problem", p.String())
		}
		s.log.Info("definitions changed", "dropped", len(dropped), "treeChanged", treeChanged)
		ch := Change{Envs: dropped}
		if treeChanged {
			ch.Tree = tree
		}
		s.notify(ch)
	}
}

// dropLocked invalidates what e caches: the next reader evaluates again.
func dropLocked(e *entry) {
	e.gen++
	e.valid, e.snap, e.err = false, nil, nil
	e.lastErr, e.failures, e.retryAt = nil, 0, time.Time{}
	if e.timer != nil {
		e.timer()
		e.timer = nil
	}
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

// Watch starts noticing changes to the source (a directory: fsnotify on
// every directory and symlink on the way to each definition; a service:
// polling) and takes each new listing it delivers. Close stops it.
func (s *Store) Watch() error {
	return s.source.Watch(s.apply)
}

// Close stops the watcher, if any, and every background renewal.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	for _, e := range s.entries {
		if e.timer != nil {
			e.timer()
		}
	}
	s.mu.Unlock()
	return s.source.Close()
}
