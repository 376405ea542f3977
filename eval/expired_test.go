package eval_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/eval/evaltest"
	"github.com/escfs/escfs/providers/token"
)

// TestStatusExpiredWhenIdle: an environment read once and then left alone
// (no keep-warm renewal) must not claim "ok" once its credentials expired:
// Status says "expired" without evaluating, and the next read renews it.
func TestStatusExpiredWhenIdle(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "idle.yaml", token.Definition("300ms", "0s", filepath.Join(dir, "nofail")))
	s, tok, clock := clockStore(t, dir, eval.RefreshPolicy{KeepWarm: -1})
	name := evaltest.Name(t, "idle")
	first, err := readAt(t, s, clock, "idle")
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name  string
		do    func() *eval.Snapshot
		state eval.State
		opens int64
	}{
		{name: "before expiry", do: func() *eval.Snapshot { return first }, state: eval.StateOK, opens: 1},
		{name: "after expiry, idle", do: func() *eval.Snapshot {
			clock.Advance(first.ExpiresAt.Sub(clock.Now()) + 50*time.Millisecond)
			return first
		}, state: eval.StateExpired, opens: 1},
		{name: "read after expiry", do: func() *eval.Snapshot {
			snap, err := readAt(t, s, clock, "idle")
			if err != nil {
				t.Fatal(err)
			}
			return snap
		}, state: eval.StateOK, opens: 2},
	}
	for _, step := range steps {
		snap := step.do()
		st, err := s.Status(name)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != step.state || st.Error != "" || st.LastError != "" {
			t.Errorf("%s: status %+v, want state %q with no error", step.name, st, step.state)
		}
		if st.ExpiresAt == nil || !st.ExpiresAt.Equal(snap.ExpiresAt) {
			t.Errorf("%s: status expiresAt %v, want the snapshot's %v", step.name, st.ExpiresAt, snap.ExpiresAt)
		}
		if got := tok.Opens(); got != step.opens {
			t.Errorf("%s: %d provider opens, want %d (Status must not evaluate)", step.name, got, step.opens)
		}
	}
}
