package eval_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pulumi/esc"
	"github.com/pulumi/esc/schema"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/eval/evaltest"
	"github.com/escfs/escfs/providers"
)

// stuckProvider ignores its context while stuck, as a CPU-bound evaluation
// does: only release lets it return.
type stuckProvider struct {
	stuck   atomic.Bool
	release chan struct{}
}

func (*stuckProvider) Schema() (inputs, outputs *schema.Schema) {
	return schema.Record(schema.BuilderMap{}).Schema(), schema.String().Schema()
}

func (p *stuckProvider) Open(context.Context, map[string]esc.Value, esc.EnvExecContext) (esc.Value, error) {
	if p.stuck.Load() {
		<-p.release
	}
	return esc.NewValue("ok"), nil
}

// snapshotWithin calls Snapshot and fails the test if it has not returned
// within limit: a liveness bound, far above the eval timeout under test.
func snapshotWithin(t *testing.T, s *eval.Store, name string, limit time.Duration) (*eval.Snapshot, error) {
	t.Helper()
	type result struct {
		snap *eval.Snapshot
		err  error
	}
	done := make(chan result, 1)
	go func() {
		snap, err := s.Snapshot(context.Background(), evaltest.Name(t, name))
		done <- result{snap, err}
	}()
	select {
	case r := <-done:
		return r.snap, r.err
	case <-time.After(limit):
		t.Fatalf("Snapshot(%s) still waiting after %v: the eval timeout does not bound readers", name, limit)
		return nil, nil
	}
}

func TestEvalTimeoutBoundsReadersAndIsRetried(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "slow.yaml", "values:\n  v:\n    fn::open::stuck: {}\n  environmentVariables:\n    V: ${v}\n")
	p := &stuckProvider{release: make(chan struct{})}
	p.stuck.Store(true)
	s := evaltest.NewStore(t, dir, func(c *evaltest.Config) {
		c.Source.Evaluator = &eval.Evaluator{Providers: providers.NewRegistry(map[string]esc.Provider{"stuck": p})}
		c.Store.FilesDir = func(eval.Name) string { return "/files" }
		c.Store.EvalTimeout = 200 * time.Millisecond
		c.Store.Refresh = eval.RefreshPolicy{RetryMin: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond}
	})
	defer close(p.release)

	_, err := snapshotWithin(t, s, "slow", 10*time.Second)
	if !errors.Is(err, eval.ErrEvalTimeout) || !strings.Contains(err.Error(), "slow.yaml") {
		t.Fatalf("reader of a stuck evaluation: err = %v, want ErrEvalTimeout naming slow.yaml", err)
	}
	if want := "still running: fn::open::stuck at " + filepath.Join(dir, "slow.yaml") + ":3:5"; !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want it to say %q", err, want)
	}
	// A second reader while the runaway evaluation still runs: no new
	// evaluation piles up, and it does not wait either.
	time.Sleep(50 * time.Millisecond)
	if _, err := snapshotWithin(t, s, "slow", 10*time.Second); !errors.Is(err, eval.ErrEvalTimeout) {
		t.Fatalf("second reader: err = %v, want ErrEvalTimeout", err)
	}
	if got := s.Evaluations(); got != 1 {
		t.Fatalf("%d evaluations while one is stuck, want 1", got)
	}
	if st, _ := s.Status(evaltest.Name(t, "slow")); st.State != eval.StateEvaluating {
		t.Fatalf("status while stuck = %+v, want evaluating", st)
	}

	// The stuck evaluation ends; its late result is a timeout, which must not
	// stay cached: once the provider answers, the next read after the
	// backoff evaluates again and succeeds.
	p.stuck.Store(false)
	p.release <- struct{}{}
	deadline := time.Now().Add(10 * time.Second)
	for {
		snap, err := snapshotWithin(t, s, "slow", 10*time.Second)
		if err == nil {
			if string(snap.Env) != "export V='ok'\n" {
				t.Fatalf("env = %q", snap.Env)
			}
			break
		}
		if !errors.Is(err, eval.ErrEvalTimeout) {
			t.Fatalf("after the provider recovered: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("a timed-out evaluation stays cached: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st, _ := s.Status(evaltest.Name(t, "slow")); st.State != eval.StateOK {
		t.Fatalf("status after recovery = %+v", st)
	}
}

// panicProvider panics in Open, as a buggy provider might.
type panicProvider struct{}

func (panicProvider) Schema() (inputs, outputs *schema.Schema) {
	return schema.Record(schema.BuilderMap{}).Schema(), schema.String().Schema()
}

func (panicProvider) Open(context.Context, map[string]esc.Value, esc.EnvExecContext) (esc.Value, error) {
	var m map[string]int
	m["boom"]++ // assignment to entry in nil map
	return esc.NewValue("unreachable"), nil
}

// TestPanicIsAnEnvironmentError: a panic while evaluating one environment
// (here in a provider; the same holds for the evaluator) fails that
// environment with a diagnostic and leaves the process and the other
// environments alone. Without the recovery this test binary dies.
func TestPanicIsAnEnvironmentError(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "bad.yaml", "values:\n  v:\n    fn::open::boom: {}\n")
	writeFile(t, dir, "good.yaml", "values:\n  environmentVariables:\n    G: good\n")
	s := evaltest.NewStore(t, dir, func(c *evaltest.Config) {
		c.Source.Evaluator = &eval.Evaluator{Providers: providers.NewRegistry(map[string]esc.Provider{"boom": panicProvider{}})}
		c.Store.FilesDir = func(eval.Name) string { return "/files" }
	})
	_, err := s.Snapshot(context.Background(), evaltest.Name(t, "bad"))
	if err == nil || !strings.Contains(err.Error(), "panicked") || !strings.Contains(err.Error(), "bad.yaml") {
		t.Fatalf("err = %v, want a panic error naming bad.yaml", err)
	}
	if st, _ := s.Status(evaltest.Name(t, "bad")); st.State != eval.StateError {
		t.Fatalf("status = %+v, want error", st)
	}
	if got := envVar(t, s, "good", "G"); got != "good" {
		t.Fatalf("G = %q", got)
	}
}

// gateProvider counts the calls running at once and holds each until gate
// is closed.
type gateProvider struct {
	gate          chan struct{}
	running, peak atomic.Int64
}

func (*gateProvider) Schema() (inputs, outputs *schema.Schema) {
	return schema.Record(schema.BuilderMap{}).Schema(), schema.String().Schema()
}

func (p *gateProvider) Open(context.Context, map[string]esc.Value, esc.EnvExecContext) (esc.Value, error) {
	n := p.running.Add(1)
	defer p.running.Add(-1)
	for {
		peak := p.peak.Load()
		if n <= peak || p.peak.CompareAndSwap(peak, n) {
			break
		}
	}
	<-p.gate
	return esc.NewValue("ok"), nil
}

// TestEvalBudgetBoundsConcurrentEvaluations: evaluations run within the
// store's budget of definition bytes (each counts its definition's size,
// at least 64 KiB), so many environments read at once cannot take
// unbounded memory: two small ones at once in a budget of 128 KiB, but one
// at a time of 100 KiB definitions.
func TestEvalBudgetBoundsConcurrentEvaluations(t *testing.T) {
	for _, c := range []struct {
		name    string
		padding int // bytes of comment in each definition
		want    int64
	}{{"small", 0, 2}, {"100 KiB each", 100 << 10, 1}} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			def := "values:\n  v:\n    fn::open::gate: {}\n# " + strings.Repeat("x", c.padding) + "\n"
			for i := range 6 {
				writeFile(t, dir, fmt.Sprintf("e%d.yaml", i), def)
			}
			p := &gateProvider{gate: make(chan struct{})}
			s := evaltest.NewStore(t, dir, evaltest.Providers(map[string]esc.Provider{"gate": p}), func(c *evaltest.Config) {
				c.Store.EvalBudget = 2 * 64 << 10
			})
			var wg sync.WaitGroup
			for i := range 6 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s.Snapshot(context.Background(), evaltest.Name(t, fmt.Sprintf("e%d", i))) //nolint:errcheck
				}()
			}
			deadline := time.Now().Add(10 * time.Second)
			for p.running.Load() < c.want && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(200 * time.Millisecond) // room for one more to start, if the budget let it
			peak := p.peak.Load()
			close(p.gate)
			wg.Wait()
			if peak != c.want {
				t.Fatalf("%d evaluations ran at once within a budget of 128 KiB, want %d", peak, c.want)
			}
		})
	}
}
