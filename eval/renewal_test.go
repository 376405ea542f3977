package eval_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/eval/evaltest"
	"github.com/escfs/escfs/providers/token"
)

// readFor reads name with Snapshot in a loop for d, ignoring errors (a
// short-lived environment fails between renewals), and returns how many
// reads succeeded.
func readFor(s *eval.Store, name eval.Name, d time.Duration) (ok int) {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if _, err := s.Snapshot(context.Background(), name); err == nil {
			ok++
		}
	}
	return ok
}

// TestRenewalsAreBounded: no lifetime, margin or reading pattern makes an
// environment renew more than a handful of times a second.
func TestRenewalsAreBounded(t *testing.T) {
	cases := []struct {
		name   string
		ttl    string
		policy eval.RefreshPolicy
		read   bool // read continuously, else read once and stay idle
		max    int64
	}{
		// A margin longer than the lifetime: refreshAt would be in the past at
		// every renewal and re-arm at 0 s (thousands of opens a second).
		{name: "margin over lifetime, idle", ttl: "600ms", policy: eval.RefreshPolicy{Margin: 10 * time.Second, KeepWarm: time.Minute, MinInterval: time.Millisecond}, max: 6},
		{name: "margin over lifetime, read", ttl: "600ms", policy: eval.RefreshPolicy{Margin: 10 * time.Second, KeepWarm: time.Minute, MinInterval: time.Millisecond}, read: true, max: 8},
		// A lifetime shorter than an evaluation: only the minimum interval
		// between renewals keeps this from renewing in a loop.
		{name: "1ms lifetime, idle", ttl: "1ms", policy: eval.RefreshPolicy{KeepWarm: time.Minute}, max: 3},
		{name: "1ms lifetime, read", ttl: "1ms", policy: eval.RefreshPolicy{KeepWarm: time.Minute}, read: true, max: 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "tok.yaml", token.Definition(c.ttl, "0s", filepath.Join(dir, "nofail")))
			p := c.policy
			s, tok := refreshStoreExact(t, dir, p)
			name := evaltest.Name(t, "tok")
			s.Snapshot(context.Background(), name) //nolint:errcheck // a 1ms token may be expired already
			if c.read {
				readFor(s, name, 1500*time.Millisecond)
			} else {
				time.Sleep(1500 * time.Millisecond)
			}
			if got := tok.Opens(); got > c.max || got < 1 {
				t.Fatalf("%d provider opens in 1.5 s, want 1..%d", got, c.max)
			}
			t.Logf("%d opens in 1.5 s", tok.Opens())
		})
	}
}

// refreshStoreExact is refreshStore without its test default for
// MinInterval: the policy is taken as it is (0 means the store's default).
func refreshStoreExact(t *testing.T, dir string, policy eval.RefreshPolicy) (*eval.Store, interface{ Opens() int64 }) {
	t.Helper()
	if policy.MinInterval == 0 {
		policy.MinInterval = eval.DefaultMinRenewalInterval
	}
	return refreshStore(t, dir, policy)
}

func TestShortLivedCredentialsWarnInStatus(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "tok.yaml", token.Definition("1ms", "0s", filepath.Join(dir, "nofail")))
	s, _ := refreshStoreExact(t, dir, eval.RefreshPolicy{})
	name := evaltest.Name(t, "tok")
	s.Snapshot(context.Background(), name) //nolint:errcheck // expired at birth
	time.Sleep(10 * time.Millisecond)
	_, err := s.Snapshot(context.Background(), name)
	if err == nil || !strings.Contains(err.Error(), "--min-renewal-interval") {
		t.Fatalf("a read right after a 1ms token's renewal: %v, want the expiry naming --min-renewal-interval", err)
	}
	st, _ := s.Status(name)
	for _, d := range st.Diagnostics {
		if d.Severity == eval.SeverityWarning && strings.Contains(d.Message, "minimum between renewals") {
			return
		}
	}
	t.Fatalf("status of a 1ms environment has no warning: %+v", st)
}

// TestStatDoesNotKeepWarm: looking at an environment (stat, lookup, ls -l,
// find) evaluates it if it must, but only reads keep it warm.
func TestStatDoesNotKeepWarm(t *testing.T) {
	for _, read := range []bool{false, true} {
		dir := t.TempDir()
		writeFile(t, dir, "tok.yaml", token.Definition("600ms", "0s", filepath.Join(dir, "nofail")))
		s, _, clock := clockStore(t, dir, eval.RefreshPolicy{KeepWarm: time.Minute})
		name := evaltest.Name(t, "tok")
		get := s.Peek
		if read {
			get = s.Snapshot
		}
		if _, err := get(context.Background(), name); err != nil {
			t.Fatal(err)
		}
		for range 13 { // two lifetimes, idle
			clock.Advance(100 * time.Millisecond)
		}
		switch got := s.Evaluations(); {
		case !read && got != 1:
			t.Fatalf("one stat kept the environment warm: %d evaluations in two lifetimes, want 1", got)
		case read && got < 2:
			t.Fatalf("control: one read did not keep the environment warm: %d evaluations", got)
		}
	}
}

func TestRefreshPolicyValidate(t *testing.T) {
	for _, c := range []struct {
		p    eval.RefreshPolicy
		want string
	}{
		{eval.RefreshPolicy{}, ""},
		{eval.RefreshPolicy{Margin: time.Hour, KeepWarm: -1}, ""},
		{eval.RefreshPolicy{Margin: -time.Second}, "negative"},
		{eval.RefreshPolicy{MinInterval: -time.Second}, "negative"},
		{eval.RefreshPolicy{RetryMin: time.Minute, RetryMax: time.Second}, "range"},
	} {
		err := c.p.Validate()
		if (err == nil) != (c.want == "") || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", c.p, err, c.want)
		}
	}
}
