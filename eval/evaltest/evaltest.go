// Package evaltest holds what tests of several packages need of eval: a
// source whose updates the test triggers.
package evaltest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pulumi/esc"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/providers"
	"github.com/escfs/escfs/providers/builtin"
)

// Manual is a Source whose updates the test triggers: it wraps a source,
// and Rescan lists it again and delivers the listing to the Store, as the
// source's watcher would. The wrapped source's own watcher runs too only if
// Watching is set.
type Manual struct {
	eval.Source
	Watching bool

	mu      sync.Mutex
	deliver func(eval.Update) // GUARDED_BY(mu): set by Watch
}

// Watch records where updates go, and starts the wrapped source's watcher
// if m.Watching.
func (m *Manual) Watch(deliver func(eval.Update)) error {
	m.mu.Lock()
	m.deliver = deliver
	m.mu.Unlock()
	if m.Watching {
		return m.Source.Watch(deliver)
	}
	return nil
}

// Close stops the wrapped source's watcher, if it runs.
func (m *Manual) Close() error {
	if m.Watching {
		return m.Source.Close()
	}
	return nil
}

// Cost is the wrapped source's, if it has one.
func (m *Manual) Cost(tree *eval.Tree, name eval.Name) int64 {
	if c, ok := m.Source.(eval.Coster); ok {
		return c.Cost(tree, name)
	}
	return 0
}

// Rescan lists the wrapped source and delivers the listing, with names as
// the environments whose definitions changed. The Store must be watching.
func (m *Manual) Rescan(names ...eval.Name) error {
	m.mu.Lock()
	deliver := m.deliver
	m.mu.Unlock()
	if deliver == nil {
		return errors.New("rescan: the store is not watching")
	}
	tree, err := m.Source.Scan(context.Background())
	if err != nil {
		return err
	}
	deliver(eval.Update{Tree: tree, Names: names})
	return nil
}

// Config is what a test Store is made of.
type Config struct {
	Store  eval.StoreOptions // Source is set from the fields below
	Source eval.DirSource    // Dir is set from NewStore's argument
	Watch  bool              // call Store.Watch
}

// NewStore returns a Store over the definitions directory dir: a
// DirSource evaluated with the shipped providers, watching (once Watch
// is called) with a 20 ms debounce, its environments' files served under
// /mnt/ENV/files, closed when the test ends. Each opt changes the
// configuration first. It is the one constructor of the stores of tests.
func NewStore(tb testing.TB, dir string, opts ...func(*Config)) *eval.Store {
	tb.Helper()
	c := Config{
		Store:  eval.StoreOptions{FilesDir: func(n eval.Name) string { return "/mnt/" + n.Short() + "/files" }},
		Source: eval.DirSource{Evaluator: &eval.Evaluator{Providers: builtin.Registry()}, Debounce: 20 * time.Millisecond},
	}
	for _, o := range opts {
		o(&c)
	}
	c.Source.Dir = dir
	if c.Store.Source == nil {
		c.Store.Source = &c.Source
	}
	s, err := eval.NewStore(c.Store)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	if c.Watch {
		if err := s.Watch(); err != nil {
			tb.Fatal(err)
		}
	}
	return s
}

// Providers is an option of NewStore: evaluate with these providers only.
func Providers(ps map[string]esc.Provider) func(*Config) {
	return func(c *Config) { c.Source.Evaluator = &eval.Evaluator{Providers: providers.NewRegistry(ps)} }
}

// Watching is an option of NewStore: watch the directory.
func Watching(c *Config) { c.Watch = true }

// Name parses an environment name, failing the test if it is not one.
func Name(tb testing.TB, s string) eval.Name {
	tb.Helper()
	n, err := eval.ParseName(s)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}
