package providers

import (
	"context"
	"sync"
	"time"
)

// expiryKey is the context key of an evaluation's expiry collector.
type expiryKey struct{}

// Expiry collects the expiry times that providers report during one
// evaluation; the evaluation's results expire at the earliest of them.
// It is safe for concurrent use.
type Expiry struct {
	mu       sync.Mutex
	earliest time.Time // GUARDED_BY(mu); zero: nothing expires
}

// WithExpiry returns a context whose provider calls report their expiry
// into the returned collector.
func WithExpiry(ctx context.Context) (context.Context, *Expiry) {
	e := &Expiry{}
	return context.WithValue(ctx, expiryKey{}, e), e
}

// ReportExpiry tells the evaluation running in ctx that what a provider
// returned stops being valid at t. Providers whose results never expire
// report nothing. Outside an evaluation it does nothing.
func ReportExpiry(ctx context.Context, t time.Time) {
	e, ok := ctx.Value(expiryKey{}).(*Expiry)
	if !ok || t.IsZero() {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.earliest.IsZero() || t.Before(e.earliest) {
		e.earliest = t
	}
}

// Earliest returns the earliest expiry reported, or the zero time if
// nothing reported one.
func (e *Expiry) Earliest() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.earliest
}
