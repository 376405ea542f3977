package testutil

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// Clock is a clock for tests that moves only when told to, with timers
// that fire when it passes them. It is safe for concurrent use.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*clockTimer // GUARDED_BY(mu): pending, in no order
}

// clockTimer is one AfterFunc of a Clock.
type clockTimer struct {
	at time.Time
	f  func()
}

// NewClock returns a Clock that reads start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock on by d and runs the functions of the timers it
// passed, in order of their times, before it returns: a test that moves
// time knows what the timers did (they start their own goroutines for
// anything long).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*clockTimer
	c.timers = slices.DeleteFunc(c.timers, func(t *clockTimer) bool {
		if t.at.After(c.now) {
			return false
		}
		due = append(due, t)
		return true
	})
	c.mu.Unlock()
	slices.SortFunc(due, func(a, b *clockTimer) int { return a.at.Compare(b.at) })
	for _, t := range due {
		t.f()
	}
}

// AfterFunc calls f once the clock has moved d on (from Advance; at once,
// in a goroutine of its own, if d <= 0), unless stop is called first.
func (c *Clock) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d <= 0 {
		go f()
		return func() bool { return false }
	}
	t := &clockTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		n := len(c.timers)
		c.timers = slices.DeleteFunc(c.timers, func(x *clockTimer) bool { return x == t })
		return len(c.timers) < n
	}
}

// Timers returns how many timers are pending.
func (c *Clock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
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

// Within polls cond until it holds, failing the test after limit of real
// time: it waits for work running elsewhere (a goroutine a timer started)
// to finish, not for time to pass.
func Within(tb testing.TB, limit time.Duration, what string, cond func() bool) {
	tb.Helper()
	for deadline := time.Now().Add(limit); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %v", what, limit)
		}
	}
}
