package cloud_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/escfs/escfs/cloud"
	"github.com/escfs/escfs/cloud/cloudtest"
	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/eval/evaltest"
)

// The Store with the Cloud source: what a mount does with Pulumi Cloud.

// newStore returns a Store over w's source, logging into w.log.
func newStore(t *testing.T, w *world, refresh eval.RefreshPolicy) *eval.Store {
	t.Helper()
	s, err := eval.NewStore(eval.StoreOptions{
		Source:      w.src,
		FilesDir:    func(n eval.Name) string { return "/mnt/" + n.Short() + "/files" },
		Refresh:     refresh,
		EvalTimeout: 10 * time.Second,
		Logger:      slog.New(slog.NewTextHandler(w.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestStoreIsLazy: the Store's first listing is one list request per page
// and nothing is opened; polls cost one listing and no revision request
// while nothing is open.
func TestStoreIsLazy(t *testing.T) {
	defs := map[string]string{}
	for _, n := range []string{"a", "b", "c", "p/d", "p/e"} {
		defs[n] = creds("1h")
	}
	w := newWorld(t, defs, cloud.Config{Poll: 50 * time.Millisecond})
	s := newStore(t, w, eval.RefreshPolicy{})
	if n := len(s.Tree().Definitions()); n != 5 {
		t.Fatalf("%d environments, want 5", n)
	}
	if got := w.sim.Counts(); got[cloudtest.List] != 1 || len(got) != 1 {
		t.Errorf("requests for the first listing: %v, want 1 list request and nothing else", got)
	}
	if st, _ := s.Status(evaltest.Name(t, "a")); st.State != eval.StateUnevaluated {
		t.Errorf("status %+v", st)
	}

	// Paged: each listing is one request per page.
	w.sim.PageSize(2)
	w.sim.ResetCounts()
	tree, err := w.src.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := w.sim.Requests(cloudtest.List); n != 3 {
		t.Errorf("%d list requests for one listing of 5 environments in pages of 2, want 3", n)
	}
	if n := len(tree.Definitions()); n != 5 {
		t.Errorf("%d environments after a paged listing, want 5", n)
	}

	// Polls list and ask for nothing else while nothing is open.
	w.sim.PageSize(100)
	w.sim.ResetCounts()
	if err := s.Watch(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); w.sim.Requests(cloudtest.List) < 4; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than 3 polls in 10s of 50ms polls: %v", w.sim.Counts())
		}
	}
	got := w.sim.Counts()
	if len(got) != 1 {
		t.Errorf("requests while watching with nothing open: %v, want list requests only", got)
	}
}

// TestStoreRenewsSessionsBeforeExpiry: under continuous reads, sessions (or
// the credentials in them, whichever ends first) are renewed in the
// background before they expire, and no read fails or gets an expired
// snapshot.
func TestStoreRenewsSessionsBeforeExpiry(t *testing.T) {
	for _, c := range []struct {
		name, ttl string
		open      time.Duration
	}{
		{"session ends first", "1h", 3 * time.Second},
		{"credentials expire first", "3s", time.Hour},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, map[string]string{"infra/aws": creds(c.ttl)}, cloud.Config{OpenDuration: c.open})
			// Renewed 1.5s before expiry: the time a renewal (an open and a
			// session read) has, even on a loaded machine.
			s := newStore(t, w, eval.RefreshPolicy{Margin: 1500 * time.Millisecond})
			n := evaltest.Name(t, "infra/aws")
			var reads, failed, expired int
			keys := map[string]bool{}
			var worst time.Duration
			for end := time.Now().Add(7 * time.Second); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
				t0 := time.Now()
				snap, err := s.Snapshot(bounded(t), n)
				if reads > 0 {
					worst = max(worst, time.Since(t0))
				}
				reads++
				switch {
				case err != nil:
					failed++
					t.Logf("read: %v", err)
				case !t0.Before(snap.ExpiresAt):
					// Expired when asked for. (Compared with the read's
					// start: a loaded machine may stall the read itself.)
					expired++
				default:
					keys[vars(snap)["AWS_ACCESS_KEY_ID"]] = true
				}
			}
			opens := w.sim.Requests(cloudtest.Open)
			t.Logf("%d reads, %d opens, %d distinct credentials, slowest read after the first %s", reads, opens, len(keys), worst)
			if failed > 0 || expired > 0 {
				t.Errorf("%d failed and %d expired reads of %d", failed, expired, reads)
			}
			if opens < 3 || len(keys) < 3 {
				t.Errorf("%d opens and %d distinct credentials in 7 s of 3 s sessions: not renewed", opens, len(keys))
			}
			if opens > 8 {
				t.Errorf("%d opens in 7 s, renewing every 1.5 s: renewing too often", opens)
			}
		})
	}
}

// TestStoreSeesNewRevisions: a new revision of an opened environment, or of
// one it imports, invalidates it (and only the environments that depend on
// it) at the next poll, and the next read is current.
func TestStoreSeesNewRevisions(t *testing.T) {
	w := newWorld(t, map[string]string{
		"infra/base": "values:\n  region: us-west-2\n",
		"infra/aws":  "imports: [infra/base]\nvalues:\n  environmentVariables:\n    AWS_REGION: ${region}\n",
		"app":        "values:\n  environmentVariables:\n    APP: one\n",
		"idle":       "values: {x: 1}\n",
		// An import that contributes nothing yet: no value traces to it,
		// only the definition says svc depends on it.
		"infra/flags": "values: {}\n",
		"svc":         "imports: [infra/flags]\nvalues:\n  environmentVariables:\n    SVC: up\n",
	}, cloud.Config{Poll: 100 * time.Millisecond})
	s := newStore(t, w, eval.RefreshPolicy{})
	changes := make(chan eval.Change, 100)
	s.Subscribe(func(c eval.Change) { changes <- c })
	if err := s.Watch(); err != nil {
		t.Fatal(err)
	}
	read := func(env, v string) string {
		t.Helper()
		snap, err := s.Snapshot(bounded(t), evaltest.Name(t, env))
		if err != nil {
			t.Fatal(err)
		}
		return vars(snap)[v]
	}
	// waitDropped waits for a change that drops env and returns every
	// environment dropped until then.
	waitDropped := func(env string) map[string]bool {
		t.Helper()
		dropped := map[string]bool{}
		for deadline := time.After(5 * time.Second); !dropped[env]; {
			select {
			case c := <-changes:
				for _, n := range c.Envs {
					dropped[n.Short()] = true
				}
			case <-deadline:
				t.Fatalf("%s not invalidated within 5s (dropped %v)", env, dropped)
			}
		}
		return dropped
	}
	if got := read("infra/aws", "AWS_REGION"); got != "us-west-2" {
		t.Fatalf("AWS_REGION=%q", got)
	}
	if got := read("app", "APP"); got != "one" {
		t.Fatalf("APP=%q", got)
	}

	// A new revision of the environment itself.
	w.sim.Put("acme", "app", "values:\n  environmentVariables:\n    APP: two\n")
	if d := waitDropped("app"); d["infra/aws"] {
		t.Errorf("a new revision of app dropped %v", d)
	}
	if got := read("app", "APP"); got != "two" {
		t.Errorf("the read after app's new revision: APP=%q, want two", got)
	}

	// A new revision of an import: its importer is dropped too.
	w.sim.Put("acme", "infra/base", "values:\n  region: eu-west-1\n")
	if d := waitDropped("infra/aws"); d["app"] {
		t.Errorf("a new revision of infra/base dropped %v", d)
	}
	if got := read("infra/aws", "AWS_REGION"); got != "eu-west-1" {
		t.Errorf("the read after infra/base's new revision: AWS_REGION=%q, want eu-west-1", got)
	}

	// A new revision of an import that contributed nothing before.
	if got := read("svc", "FLAG"); got != "" {
		t.Fatalf("FLAG=%q before infra/flags defines it", got)
	}
	w.sim.Put("acme", "infra/flags", "values:\n  environmentVariables:\n    FLAG: on\n")
	waitDropped("svc")
	if got := read("svc", "FLAG"); got != "on" {
		t.Errorf("the read after infra/flags's new revision: FLAG=%q, want on", got)
	}

	// An environment that appears or vanishes changes the tree.
	// (app was opened, so its revision is polled: its 404 is no failure.)
	w.sim.Put("acme", "fresh", "values: {x: 1}\n")
	w.sim.Delete("acme", "idle")
	w.sim.Delete("acme", "app")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, errFresh := s.Tree().Lookup("fresh")
		_, errIdle := s.Tree().Lookup("idle")
		_, errApp := s.Tree().Lookup("app")
		if errFresh == nil && errIdle != nil && errApp != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tree not updated within 5s: fresh %v, idle %v, app %v", errFresh, errIdle, errApp)
		}
	}
	for _, env := range []string{"idle", "app"} {
		if _, err := s.Snapshot(bounded(t), evaltest.Name(t, env)); !errors.Is(err, eval.ErrNotFound) {
			t.Errorf("read of vanished %s: %v", env, err)
		}
	}
	time.Sleep(300 * time.Millisecond) // more polls
	if strings.Contains(w.log.String(), "failed") {
		t.Errorf("the log reports failures:\n%s", w.log)
	}
}

// whileFresh reads n until shortly before good expires, requiring the good
// snapshot each time, and calls check with the number of opens so far and
// the status taken after counting them until check returns true (it was
// able to judge). Reads and statuses that end after the expiry (a loaded
// machine) judge nothing; check must have judged before expiry.
func whileFresh(t *testing.T, s *eval.Store, n eval.Name, good *eval.Snapshot, check func(opens int, st eval.Status) bool, sim *cloudtest.Server) {
	t.Helper()
	judged := false
	if limit := time.Now().Add(readLimit); good.ExpiresAt.IsZero() || good.ExpiresAt.After(limit) {
		t.Fatalf("the snapshot expires at %v, not within %v: the test would wait for it", good.ExpiresAt, readLimit)
	}
	for time.Now().Before(good.ExpiresAt.Add(-100 * time.Millisecond)) {
		snap, err := s.Snapshot(bounded(t), n)
		opens := sim.Requests(cloudtest.Open)
		st, _ := s.Status(n)
		if !time.Now().Before(good.ExpiresAt) {
			break
		}
		if err != nil || snap.Serial != good.Serial {
			t.Fatalf("read before expiry: %v (serial %v, want the last good one)", err, snap)
		}
		if !judged {
			judged = check(opens, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !judged {
		t.Errorf("%d opens before expiry: the renewal was not retried with backoff", sim.Requests(cloudtest.Open))
	}
}

// readLimit bounds every read of these tests: a store that waits for
// ever (a renewal retried past the snapshot's expiry) fails the test
// within it rather than hanging for the service's retries.
const readLimit = 20 * time.Second

// bounded returns a context that ends after readLimit, or with the test.
func bounded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), readLimit)
	t.Cleanup(cancel)
	return ctx
}

// outagePolicy renews 3s sessions 1.5s before they expire and retries
// quickly, so that a failing renewal is retried several times before expiry.
var outagePolicy = eval.RefreshPolicy{Margin: 1500 * time.Millisecond, RetryMin: 50 * time.Millisecond,
	RetryMax: 200 * time.Millisecond, MinInterval: 50 * time.Millisecond}

// TestStoreOutage: while the service fails (5xx, 429, or no answer), the
// last good snapshot is served until it expires, status says stale with
// the error, then reads fail; when the service is back, reads work again.
func TestStoreOutage(t *testing.T) {
	for _, c := range []struct {
		name   string
		status int
		says   string
	}{
		{"503", http.StatusServiceUnavailable, "503"},
		{"429", http.StatusTooManyRequests, "rate-limit"},
		{"unreachable", cloudtest.HangUp, "EOF"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, map[string]string{"infra/aws": creds("1h")}, cloud.Config{OpenDuration: 3 * time.Second})
			s := newStore(t, w, outagePolicy)
			n := evaltest.Name(t, "infra/aws")
			good, err := s.Snapshot(bounded(t), n)
			if err != nil {
				t.Fatal(err)
			}
			w.sim.Fail(c.status)
			// Past the refresh point (3s - 1.5s), before expiry: the
			// renewal fails and is retried, the good snapshot is served,
			// status is stale.
			whileFresh(t, s, n, good, func(opens int, st eval.Status) bool {
				if opens < 3 { // a second renewal started: the first one failed
					return false
				}
				if st.State != eval.StateStale || !strings.Contains(st.LastError, c.says) || st.ExpiresAt == nil {
					t.Errorf("status before expiry: %+v; want stale, the error, expiresAt", st)
				}
				return true
			}, w.sim)
			time.Sleep(time.Until(good.ExpiresAt) + 50*time.Millisecond)
			// The read waits for a renewal if one may start, and gets its
			// error, else the expiry's.
			if snap, err := s.Snapshot(bounded(t), n); err == nil || !(errors.Is(err, eval.ErrExpired) || strings.Contains(err.Error(), c.says)) {
				t.Errorf("read after expiry during the outage: %v, %v; want an error", snap, err)
			}
			if st, _ := s.Status(n); st.State != eval.StateError {
				t.Errorf("status after expiry: %+v, want error", st)
			}
			w.sim.Heal()
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				if snap, err := s.Snapshot(bounded(t), n); err == nil && snap.Serial != good.Serial {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no good read within 5s of the service's return")
				}
			}
			if st, _ := s.Status(n); st.State != eval.StateOK {
				t.Errorf("status after the outage: %+v", st)
			}
		})
	}
}

// TestStoreBadToken: a token the service refuses is a status and a read
// error that say what to do, and the token appears in no error, status or
// log line.
func TestStoreBadToken(t *testing.T) {
	// From the start: the store refuses to come up.
	w := newWorld(t, map[string]string{"app": creds("1h")}, cloud.Config{Token: "pul-wrong-0123456789"})
	_, err := eval.NewStore(eval.StoreOptions{Source: w.src, FilesDir: func(eval.Name) string { return "/f" }})
	if err == nil || !strings.Contains(err.Error(), loginHint) || strings.Contains(err.Error(), "pul-wrong-0123456789") {
		t.Errorf("store with a wrong token: %v", err)
	}

	// Revoked while serving: stale with the hint, then an error with it.
	w = newWorld(t, map[string]string{"app": creds("1h")}, cloud.Config{OpenDuration: 3 * time.Second})
	token := w.sim.Token()
	s := newStore(t, w, outagePolicy)
	n := evaltest.Name(t, "app")
	good, err := s.Snapshot(bounded(t), n)
	if err != nil {
		t.Fatal(err)
	}
	w.sim.SetToken("pul-rotated")
	whileFresh(t, s, n, good, func(opens int, st eval.Status) bool {
		if opens < 3 { // a second renewal started: the first one failed
			return false
		}
		if st.State != eval.StateStale || !strings.Contains(st.LastError, loginHint) {
			t.Errorf("status after the token was revoked: %+v; want stale with the hint", st)
		}
		return true
	}, w.sim)
	time.Sleep(time.Until(good.ExpiresAt) + 50*time.Millisecond)
	_, err = s.Snapshot(bounded(t), n)
	if err == nil || !strings.Contains(err.Error(), loginHint) {
		t.Errorf("read after expiry with a revoked token: %v; want the hint", err)
	}
	st, _ := s.Status(n)
	if st.State != eval.StateError || !strings.Contains(st.Error, loginHint) {
		t.Errorf("status after expiry: %+v", st)
	}
	for what, text := range map[string]string{"log": w.log.String(), "error": err.Error(), "status": st.Error + st.LastError} {
		if strings.Contains(text, token) {
			t.Errorf("the %s holds the token", what)
		}
	}
	if !strings.Contains(w.log.String(), loginHint) {
		t.Errorf("the log does not say what to do:\n%s", w.log)
	}
}

// TestStoreSingleFlight: many readers of an unopened environment cause one
// open.
func TestStoreSingleFlight(t *testing.T) {
	w := newWorld(t, map[string]string{"app": creds("1h")}, cloud.Config{})
	w.sim.Delay(200*time.Millisecond, cloudtest.Open)
	s := newStore(t, w, eval.RefreshPolicy{})
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			if _, err := s.Snapshot(bounded(t), evaltest.Name(t, "app")); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := w.sim.Requests(cloudtest.Open); n != 1 {
		t.Errorf("%d opens for 32 concurrent readers, want 1", n)
	}
}
