package eval_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pulumi/esc"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/eval/evaltest"
	"github.com/escfs/escfs/internal/testutil"
	"github.com/escfs/escfs/providers"
	"github.com/escfs/escfs/providers/token"
)

// refreshStore builds a store over dir whose token provider the test owns.
func refreshStore(t *testing.T, dir string, policy eval.RefreshPolicy) (*eval.Store, *token.Provider) {
	t.Helper()
	if policy.MinInterval == 0 {
		policy.MinInterval = time.Millisecond // these tests use sub-second lifetimes
	}
	tok := &token.Provider{}
	s := evaltest.NewStore(t, dir, func(c *evaltest.Config) {
		c.Source.Evaluator = &eval.Evaluator{Providers: providers.NewRegistry(map[string]esc.Provider{token.Name: tok})}
		c.Store.EvalTimeout = 5 * time.Second
		c.Store.Refresh = policy
	})
	return s, tok
}

// clockStore is refreshStore on a test clock: the store's renewal timers,
// the evaluator and the token provider all read clock, so that a test
// moves time instead of sleeping. The clock starts at 2026-01-01.
func clockStore(t *testing.T, dir string, policy eval.RefreshPolicy) (*eval.Store, *token.Provider, *testutil.Clock) {
	t.Helper()
	if policy.MinInterval == 0 {
		policy.MinInterval = time.Millisecond // these tests use sub-second lifetimes
	}
	clock := testutil.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	tok := &token.Provider{Now: clock.Now}
	s := evaltest.NewStore(t, dir, func(c *evaltest.Config) {
		c.Source.Evaluator = &eval.Evaluator{Providers: providers.NewRegistry(map[string]esc.Provider{token.Name: tok}), Now: clock.Now}
		c.Store.EvalTimeout = 5 * time.Second
		c.Store.Refresh = policy
		c.Store.Clock = clock
	})
	return s, tok, clock
}

// readAt reads the snapshot of name and checks it has not expired at the
// clock's time.
func readAt(t *testing.T, s *eval.Store, clock *testutil.Clock, name string) (*eval.Snapshot, error) {
	t.Helper()
	snap, err := s.Snapshot(context.Background(), evaltest.Name(t, name))
	if err != nil {
		return nil, err
	}
	if now := clock.Now(); !now.Before(snap.ExpiresAt) {
		t.Fatalf("served an expired snapshot: expires %v, now %v", snap.ExpiresAt, now)
	}
	return snap, nil
}

// readToken reads the snapshot and checks it has not expired.
func readToken(t *testing.T, s *eval.Store, name string) (*eval.Snapshot, error) {
	t.Helper()
	snap, err := s.Snapshot(context.Background(), evaltest.Name(t, name))
	if err != nil {
		return nil, err
	}
	if now := time.Now(); !now.Before(snap.ExpiresAt) {
		t.Fatalf("read a snapshot that expired at %v (now %v)", snap.ExpiresAt, now)
	}
	return snap, nil
}

func TestRefreshKeepWarmRenewsBeforeExpiry(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "live.yaml", token.Definition("1500ms", "200ms", filepath.Join(dir, "nofail")))
	s, tok := refreshStore(t, dir, eval.RefreshPolicy{KeepWarm: time.Minute})
	first, err := readToken(t, s, "live")
	if err != nil {
		t.Fatal(err)
	}
	tokens := map[string]bool{}
	var worst time.Duration
	deadline := time.Now().Add(3 * 1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		start := time.Now()
		snap, err := readToken(t, s, "live")
		if err != nil {
			t.Fatal(err)
		}
		worst = max(worst, time.Since(start))
		tokens[snap.Vars[1].Value] = true
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("worst read latency over 3 lifetimes with keep-warm: %v (renewals take 200ms)", worst)
	if len(tokens) < 3 {
		t.Errorf("saw %d tokens over 3 lifetimes, want at least 3", len(tokens))
	}
	if worst >= 200*time.Millisecond {
		t.Errorf("a reader waited %v: keep-warm renewals must not block readers", worst)
	}
	if got := tok.Opens(); got < 3 || got > 5 {
		t.Errorf("provider opened %d times in 3 lifetimes, want 3-5", got)
	}
	if st, _ := s.Status(evaltest.Name(t, "live")); st.State != eval.StateOK || st.ExpiresAt == nil || st.RefreshAt == nil || !st.RefreshAt.Before(*st.ExpiresAt) {
		t.Errorf("status = %+v", st)
	}
	if !first.ExpiresAt.Before(time.Now()) {
		t.Errorf("first snapshot should have expired by now")
	}
}

// TestRefreshKeepWarmRenewsIdleReader reads once, then not at all: only the
// keep-warm timer can renew the environment before its credentials expire
// (the read path renews only when a read comes within the margin, which
// TestRefreshKeepWarmRenewsBeforeExpiry's frequent reads always do). Each
// renewal must be done, seen in Status without a read, before the snapshot
// it replaces expires, and the next read must get it without evaluating.
func TestRefreshKeepWarmRenewsIdleReader(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "idle.yaml", token.Definition("2s", "100ms", filepath.Join(dir, "nofail")))
	s, tok, clock := clockStore(t, dir, eval.RefreshPolicy{KeepWarm: time.Minute})
	name := evaltest.Name(t, "idle")
	snap, err := readAt(t, s, clock, "idle")
	if err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= 2; round++ {
		prev := snap
		// Past the refresh time (a third of the lifetime before expiry),
		// before the expiry: only the keep-warm timer can renew.
		clock.Advance(prev.ExpiresAt.Sub(clock.Now()) - 500*time.Millisecond)
		if got := s.Evaluations(); got != int64(round+1) {
			t.Fatalf("round %d: %d evaluations when the refresh time passed with nobody reading, want %d", round, got, round+1)
		}
		var renewedAt time.Time
		testutil.Within(t, 10*time.Second, "the idle renewal shows in Status", func() bool {
			st, _ := s.Status(name)
			if st.ExpiresAt != nil && st.ExpiresAt.After(prev.ExpiresAt) {
				renewedAt = *st.ExpiresAt
				return true
			}
			return false
		})
		opens := tok.Opens()
		snap, err = readAt(t, s, clock, "idle")
		if err != nil {
			t.Fatal(err)
		}
		if snap == prev || !snap.ExpiresAt.Equal(renewedAt) {
			t.Fatalf("round %d: the read after the idle renewal got the snapshot expiring at %v, want the renewed one (%v)", round, snap.ExpiresAt, renewedAt)
		}
		if got := tok.Opens(); got != opens {
			t.Fatalf("round %d: the read after the idle renewal opened the provider again (%d opens, want %d)", round, got, opens)
		}
	}
}

func TestRefreshIdleEnvironmentWaitsForRead(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "idle.yaml", token.Definition("300ms", "0s", filepath.Join(dir, "nofail")))
	s, tok, clock := clockStore(t, dir, eval.RefreshPolicy{KeepWarm: 10 * time.Millisecond})
	first, err := readAt(t, s, clock, "idle")
	if err != nil {
		t.Fatal(err)
	}
	for range 10 { // a second: more than three lifetimes, nobody reading
		clock.Advance(100 * time.Millisecond)
	}
	if got := s.Evaluations(); got != 1 {
		t.Fatalf("idle environment was re-evaluated: %d evaluations", got)
	}
	snap, err := readAt(t, s, clock, "idle")
	if err != nil {
		t.Fatal(err)
	}
	if snap == first || tok.Opens() != 2 {
		t.Fatalf("the read after expiry did not renew (opens %d)", tok.Opens())
	}
}

func TestRefreshConcurrentReadersAfterExpiryOpenOnce(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "burst.yaml", token.Definition("300ms", "50ms", filepath.Join(dir, "nofail")))
	s, tok, clock := clockStore(t, dir, eval.RefreshPolicy{KeepWarm: -1})
	if _, err := readAt(t, s, clock, "burst"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(400 * time.Millisecond)
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := readAt(t, s, clock, "burst"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := tok.Opens(); got != 2 {
		t.Fatalf("64 readers after expiry caused %d provider calls in all, want 1 more than the first", got)
	}
}

func TestRefreshFailureServesStaleThenFailsThenRecovers(t *testing.T) {
	dir := t.TempDir()
	fail := filepath.Join(dir, "fail")
	writeFile(t, dir, "flaky.yaml", token.Definition("1s", "0s", fail))
	s, _, clock := clockStore(t, dir, eval.RefreshPolicy{KeepWarm: time.Minute, Margin: 600 * time.Millisecond, RetryMin: 50 * time.Millisecond, RetryMax: 100 * time.Millisecond})
	name := evaltest.Name(t, "flaky")
	good, err := readAt(t, s, clock, "flaky")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fail, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// Past the refresh point, before expiry: the keep-warm renewal fails,
	// and readers get the previous snapshot, marked stale.
	clock.Advance(700 * time.Millisecond)
	testutil.Within(t, 10*time.Second, "the failed renewal shows in Status", func() bool {
		st, _ := s.Status(name)
		return st.LastError != ""
	})
	snap, err := readAt(t, s, clock, "flaky")
	if err != nil || snap != good {
		t.Fatalf("before expiry: got %p, %v; want the previous snapshot", snap, err)
	}
	st, _ := s.Status(name)
	if st.State != eval.StateStale || st.LastError == "" || st.ExpiresAt == nil || !st.ExpiresAt.Equal(good.ExpiresAt) {
		t.Fatalf("status before expiry = %+v, want stale with the error and the expiry", st)
	}
	// After expiry: an error naming the cause, never the expired snapshot.
	clock.Advance(350 * time.Millisecond)
	if _, err := readAt(t, s, clock, "flaky"); !errors.Is(err, eval.ErrExpired) && !isDiagnostics(err) {
		t.Fatalf("after expiry: err = %v, want expired or diagnostics", err)
	}
	st, _ = s.Status(name)
	if st.State != eval.StateError || st.Error == "" {
		t.Fatalf("status after expiry = %+v, want error with the reason", st)
	}
	// The provider recovers: a read after the backoff is fresh.
	if err := os.Remove(fail); err != nil {
		t.Fatal(err)
	}
	var fresh *eval.Snapshot
	for i := 0; i < 20 && fresh == nil; i++ {
		clock.Advance(100 * time.Millisecond) // the longest backoff
		fresh, _ = readAt(t, s, clock, "flaky")
	}
	if fresh == nil || fresh == good {
		t.Fatal("no fresh snapshot after the provider recovered")
	}
	if st, _ := s.Status(name); st.State != eval.StateOK || st.LastError != "" {
		t.Fatalf("status after recovery = %+v", st)
	}
}

func isDiagnostics(err error) bool {
	var d *eval.DiagnosticsError
	return errors.As(err, &d)
}

func TestRefreshExportsExpiry(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "exp.yaml", token.Definition("1h", "0s", filepath.Join(dir, "nofail")))
	writeFile(t, dir, "plain.yaml", "values:\n  environmentVariables:\n    A: a\n")
	s, _ := refreshStore(t, dir, eval.RefreshPolicy{})
	snap, err := readToken(t, s, "exp")
	if err != nil {
		t.Fatal(err)
	}
	want := "export ESCFS_EXPIRES_AT='" + snap.ExpiresAt.UTC().Format(time.RFC3339) + "'\n"
	if got := string(snap.Env); len(got) < len(want) || got[len(got)-len(want):] != want {
		t.Errorf("env does not end with %q:\n%s", want, got)
	}
	plain, err := s.Snapshot(context.Background(), evaltest.Name(t, "plain"))
	if err != nil {
		t.Fatal(err)
	}
	if !plain.ExpiresAt.IsZero() || string(plain.Env) != "export A='a'\n" {
		t.Errorf("an environment without expiring credentials: ExpiresAt %v, env %q", plain.ExpiresAt, plain.Env)
	}
}
