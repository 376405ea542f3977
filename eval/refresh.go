package eval

import (
	"fmt"
	"time"
)

// DefaultMinRenewalInterval is the default of RefreshPolicy.MinInterval.
const DefaultMinRenewalInterval = time.Second

// RefreshPolicy says when cached snapshots that hold expiring credentials
// are renewed.
type RefreshPolicy struct {
	// Margin is how long before expiry a snapshot stops being fresh; 0 means
	// the smaller of 5 minutes and a third of its lifetime.
	Margin time.Duration
	// KeepWarm: an environment read within this long is re-evaluated in the
	// background before its margin, so readers never wait; others are
	// re-evaluated on their next read. 0 means 15 minutes; negative, never.
	KeepWarm time.Duration
	// RetryMin and RetryMax bound the jittered exponential backoff between
	// failed re-evaluations; 0 means 1 second and 1 minute.
	RetryMin, RetryMax time.Duration
	// MinInterval is the least time between the starts of two renewals of
	// one environment, whatever its credentials' lifetime; 0 means 1 second.
	// Credentials that live shorter expire between renewals, and reads then
	// fail (status warns about it).
	MinInterval time.Duration
}

// Validate reports a policy that makes no sense: a negative margin would
// serve expired credentials as fresh.
func (p RefreshPolicy) Validate() error {
	switch {
	case p.Margin < 0:
		return fmt.Errorf("refresh margin %s is negative: it would serve credentials after they expire", p.Margin)
	case p.RetryMin < 0 || p.RetryMax < 0 || (p.RetryMax > 0 && p.RetryMin > p.RetryMax):
		return fmt.Errorf("retry backoff %s..%s is not a range of positive durations", p.RetryMin, p.RetryMax)
	case p.MinInterval < 0:
		return fmt.Errorf("minimum renewal interval %s is negative", p.MinInterval)
	}
	return nil
}

func (p RefreshPolicy) withDefaults() RefreshPolicy {
	if p.KeepWarm == 0 {
		p.KeepWarm = 15 * time.Minute
	}
	if p.RetryMin == 0 {
		p.RetryMin = time.Second
	}
	if p.RetryMax == 0 {
		p.RetryMax = time.Minute
	}
	if p.MinInterval == 0 {
		p.MinInterval = DefaultMinRenewalInterval
	}
	return p
}

// refreshAt returns when a snapshot stops being fresh: its expiry less the
// margin. A snapshot that never expires returns the zero time.
func (p RefreshPolicy) refreshAt(s *Snapshot) time.Time {
	if s == nil || s.ExpiresAt.IsZero() {
		return time.Time{}
	}
	lifetime := s.ExpiresAt.Sub(s.EvaluatedAt)
	if lifetime <= 0 {
		return s.ExpiresAt
	}
	margin := p.Margin
	if margin == 0 {
		margin = min(5*time.Minute, lifetime/3)
	}
	// A margin as long as the lifetime would make every snapshot stale at
	// birth and renew it in a loop: keep at least half the lifetime fresh.
	margin = min(margin, lifetime/2)
	return s.ExpiresAt.Add(-margin)
}

// Clock is a Store's time (see StoreOptions.Clock).
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed, unless
	// the returned stop is called first; stop reports whether it stopped
	// the call.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// RealClock is the Clock of the system's time.
type RealClock struct{}

// Now is time.Now.
func (RealClock) Now() time.Time { return time.Now() }

// AfterFunc is time.AfterFunc.
func (RealClock) AfterFunc(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
