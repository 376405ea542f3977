// Package evaltest holds what tests of several packages need of eval: a
// source whose updates the test triggers.
package evaltest

import (
	"context"
	"errors"
	"sync"

	"github.com/escfs/escfs/eval"
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
