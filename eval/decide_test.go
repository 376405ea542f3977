package eval

import (
	"errors"
	"testing"
	"time"
)

// TestDecide: the renewal decision of a reader, for every state of a cache
// entry, at instants of the test clock around a snapshot's refresh time
// and expiry.
func TestDecide(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	// A snapshot evaluated at t0 whose credentials live 1h and are renewed
	// from 50m on.
	creds := &Snapshot{EvaluatedAt: t0, ExpiresAt: at(time.Hour), Opened: true}
	static := &Snapshot{EvaluatedAt: t0}
	fresh := entryView{valid: true, snap: creds, mayStart: true, refreshAt: at(50 * time.Minute)}
	with := func(v entryView, f func(*entryView)) entryView { f(&v); return v }
	failed := errors.New("provider down")
	diags := &Snapshot{EvaluatedAt: t0} // a definition error: not opened, not retried
	for _, c := range []struct {
		name   string
		e      entryView
		now    time.Time
		waited bool
		want   verdict
	}{
		{"nothing cached", entryView{}, t0, false, start},
		{"nothing cached, running", entryView{running: true}, t0, false, wait},
		{"static snapshot", entryView{valid: true, snap: static, mayStart: true}, at(1000 * time.Hour), false, serve},
		{"fresh", fresh, at(10 * time.Minute), false, serve},
		{"fresh, to the nanosecond before its refresh time", fresh, at(50*time.Minute - 1), false, serve},
		{"within the margin", fresh, at(50 * time.Minute), false, serveAndRenew},
		{"within the margin, renewal running", with(fresh, func(v *entryView) { v.running = true }), at(55 * time.Minute), false, serve},
		{"within the margin, in backoff", with(fresh, func(v *entryView) { v.retryAt = at(56 * time.Minute) }), at(55 * time.Minute), false, serve},
		{"within the margin, renewed too recently", with(fresh, func(v *entryView) { v.mayStart = false }), at(55 * time.Minute), false, serve},
		{"expired", fresh, at(time.Hour), false, start},
		{"expired, renewal running", with(fresh, func(v *entryView) { v.running = true }), at(time.Hour), false, wait},
		{"expired, waited already", fresh, at(time.Hour), true, fail},
		{"expired, in backoff", with(fresh, func(v *entryView) { v.retryAt = at(2 * time.Hour) }), at(time.Hour), false, fail},
		{"expired, renewed too recently", with(fresh, func(v *entryView) { v.mayStart = false }), at(time.Hour), false, fail},
		{"provider failure, backoff over", entryView{valid: true, snap: creds, err: failed, mayStart: true, retryAt: at(time.Minute)}, at(time.Minute), false, start},
		{"provider failure, in backoff", entryView{valid: true, snap: creds, err: failed, mayStart: true, retryAt: at(time.Minute)}, at(time.Minute - 1), false, serve},
		{"provider failure, waited already", entryView{valid: true, snap: creds, err: failed, mayStart: true}, at(time.Minute), true, serve},
		{"timeout (no snapshot), backoff over", entryView{valid: true, err: failed, mayStart: true}, t0, false, start},
		{"definition error, never retried", entryView{valid: true, snap: diags, err: failed, mayStart: true}, at(time.Hour), false, serve},
	} {
		if got := decide(c.e, c.now, c.waited); got != c.want {
			t.Errorf("%s: decide = %v, want %v", c.name, got, c.want)
		}
	}
}
