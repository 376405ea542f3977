// Package bounded waits a bounded time for calls that may never return: a
// stat or read of a FUSE mount whose server is stopped or hung blocks in
// the kernel until the server answers, its connection is aborted or the
// process exits.
package bounded

import (
	"errors"
	"time"
)

// ErrTimeout is the error of a call that did not return in time.
var ErrTimeout = errors.New("no answer in time")

// Call runs fn in a goroutine of its own and waits at most d for it. On a
// timeout it returns ErrTimeout and leaves the goroutine behind; a result
// that arrives at the last moment is still taken.
func Call[T any](d time.Duration, fn func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() { v, err := fn(); ch <- result{v, err} }()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-timer.C:
		select {
		case r := <-ch: // done just in time
			return r.v, r.err
		default:
			var zero T
			return zero, ErrTimeout
		}
	}
}

// Do is Call for a function with no result but its error.
func Do(d time.Duration, fn func() error) error {
	_, err := Call(d, func() (struct{}, error) { return struct{}{}, fn() })
	return err
}
