package testutil

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestClockTimers: a timer fires when the clock passes it, not before and
// not after it was stopped.
func TestClockTimers(t *testing.T) {
	c := NewClock(time.Unix(0, 0))
	var fired, stopped atomic.Int32
	c.AfterFunc(time.Second, func() { fired.Add(1) })
	stop := c.AfterFunc(2*time.Second, func() { stopped.Add(1) })
	c.Advance(999 * time.Millisecond)
	if c.Timers() != 2 {
		t.Fatalf("%d timers pending before the first is due, want 2", c.Timers())
	}
	c.Advance(time.Millisecond)
	if fired.Load() != 1 {
		t.Fatal("the due timer did not fire when the clock passed it")
	}
	if !stop() || stop() {
		t.Fatal("stop of a pending timer: want true once, then false")
	}
	c.Advance(time.Hour)
	if c.Timers() != 0 || stopped.Load() != 0 || fired.Load() != 1 {
		t.Fatalf("after an hour: %d pending, stopped timer fired %d times, first %d", c.Timers(), stopped.Load(), fired.Load())
	}
}
