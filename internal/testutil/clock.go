package testutil

import (
	"sync"
	"testing"
	"time"
)

// Clock is a clock for tests that moves only when told to. It is safe for
// concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock that reads start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// SleepUntil sleeps until when, failing the test at once if when is more
// than limit away (an expiry a mutation pushed an hour out would
// otherwise hold the test that long).
func SleepUntil(tb testing.TB, when time.Time, limit time.Duration) {
	tb.Helper()
	if d := time.Until(when); d > limit {
		tb.Fatalf("asked to wait %v, until %v: more than %v", d, when, limit)
	}
	time.Sleep(time.Until(when))
}
