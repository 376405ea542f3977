package eval

import (
	"fmt"
	"time"
)

// ExpiresAtVar is the variable env and dotenv export when a snapshot holds
// credentials that expire: the RFC 3339 time of the earliest expiry.
const ExpiresAtVar = "ESCFS_EXPIRES_AT"

// exportExpiry appends ESCFS_EXPIRES_AT to the env and dotenv renderings of
// a snapshot that expires. The environment's own variable of that name, if
// any, is left as it is and this line comes after it, so the real expiry
// wins when sourced.
func exportExpiry(snap *Snapshot) {
	if snap.ExpiresAt.IsZero() {
		return
	}
	at := snap.ExpiresAt.UTC().Format(time.RFC3339)
	snap.Env = fmt.Appendf(snap.Env[:len(snap.Env):len(snap.Env)], "export %s=%s\n", ExpiresAtVar, ShellQuote(at))
	snap.Dotenv = fmt.Appendf(snap.Dotenv[:len(snap.Dotenv):len(snap.Dotenv)], "%s=%s\n", ExpiresAtVar, DotenvQuote(at))
}

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
	return p
}

// refreshAt returns when a snapshot stops being fresh: its expiry less the
// margin. A snapshot that never expires returns the zero time.
func (p RefreshPolicy) refreshAt(s *Snapshot) time.Time {
	if s == nil || s.ExpiresAt.IsZero() {
		return time.Time{}
	}
	margin := p.Margin
	if margin == 0 {
		margin = min(5*time.Minute, s.ExpiresAt.Sub(s.EvaluatedAt)/3)
	}
	return s.ExpiresAt.Add(-margin)
}
