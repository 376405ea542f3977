package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/internal/escfstest"
	"github.com/escfs/escfs/internal/filetree"
)

// statusSecret is a secret value of the ok environment: escfs status must
// never print it.
const statusSecret = "s3cr3t-status-value"

// mountForStatus mounts a definitions directory holding an ok environment
// (evaluated), a broken one (bad YAML, read so that it is in error) and
// an unevaluated one in project demos, with the real binary.
func mountForStatus(t *testing.T) (dir, mnt string, p *escfstest.Escfs) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatalf("mount tests need /dev/fuse: %v", err)
	}
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			t.Fatalf("not root, so mounting needs fusermount3 (apt-get install fuse3): %v", err)
		}
	}
	dir = filetree.Write(t, "", map[string]string{
		"ok.yaml":         "values:\n  pw:\n    fn::secret: " + statusSecret + "\n  environmentVariables:\n    PW: ${pw}\n",
		"broken.yaml":     "values: [unclosed\n",
		"demos/idle.yaml": "values:\n  x: 1\n",
	})
	mnt = t.TempDir()
	p = escfstest.MountAt(t, escfstest.Options{}, mnt, "--dir", dir, "mount")
	p.WaitReadable(t, filepath.Join(mnt, "ok", "env"))
	if _, err := escfstest.Read(filepath.Join(mnt, "broken", "env"), 5*time.Second); err == nil {
		t.Fatal("reading the broken environment succeeded")
	}
	return dir, mnt, p
}

// statusRows parses the table of escfs status: environment -> its cells.
func statusRows(t *testing.T, out string) map[string][]string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) == 0 || strings.Join(strings.Fields(lines[0]), " ") != "ENVIRONMENT STATE EVALUATED EXPIRES IN REFRESH IN LAST ERROR" {
		t.Fatalf("no table header:\n%s", out)
	}
	rows := map[string][]string{}
	for _, l := range lines[1:] {
		// columns are separated by at least two spaces
		var cells []string
		for _, c := range strings.Split(l, "  ") {
			if c = strings.TrimSpace(c); c != "" {
				cells = append(cells, c)
			}
		}
		if len(cells) < 6 {
			t.Fatalf("row %q has %d cells, want 6", l, len(cells))
		}
		rows[cells[0]] = cells
	}
	return rows
}

func TestStatusCommand(t *testing.T) {
	dir, mnt, _ := mountForStatus(t)

	t.Run("table", func(t *testing.T) {
		r := escfsCLI(t, "status", mnt)
		if r.code != 1 || !strings.Contains(r.stderr, "broken (error)") {
			t.Fatalf("exit %d, stderr %q; want 1 naming broken", r.code, r.stderr)
		}
		rows := statusRows(t, r.stdout)
		if len(rows) != 3 {
			t.Fatalf("%d rows, want 3:\n%s", len(rows), r.stdout)
		}
		tests := []struct {
			env, state, evaluated, lastError string
		}{
			{"ok", "ok", " ago", "-"},
			{"broken", "error", " ago", "broken.yaml:1:"},
			{"demos/idle", "unevaluated", "-", "-"},
		}
		for _, tc := range tests {
			row := rows[tc.env]
			if row == nil {
				t.Errorf("no row for %s:\n%s", tc.env, r.stdout)
				continue
			}
			if row[1] != tc.state || !strings.HasSuffix(row[2], tc.evaluated) || !strings.Contains(row[5], tc.lastError) {
				t.Errorf("%s: row %q, want state %q, evaluated %q, last error %q", tc.env, row, tc.state, tc.evaluated, tc.lastError)
			}
		}
	})

	t.Run("json", func(t *testing.T) {
		r := escfsCLI(t, "status", "--json", mnt)
		if r.code != 1 {
			t.Fatalf("exit %d, want 1: %s", r.code, r.stderr)
		}
		var got []struct{ Name, State, Error string }
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("not a JSON array: %v\n%s", err, r.stdout)
		}
		want := []string{"broken error", "demos/idle unevaluated", "ok ok"}
		if len(got) != len(want) {
			t.Fatalf("%d statuses, want %d:\n%s", len(got), len(want), r.stdout)
		}
		for i, s := range got {
			if s.Name+" "+s.State != want[i] {
				t.Errorf("status %d: %s %s, want %s", i, s.Name, s.State, want[i])
			}
		}
	})

	t.Run("evaluates nothing and prints no secret", func(t *testing.T) {
		for _, args := range [][]string{{"status", mnt}, {"status", "--json", mnt}} {
			r := escfsCLI(t, args...)
			if strings.Contains(r.stdout+r.stderr, statusSecret) {
				t.Errorf("escfs %s printed the secret", strings.Join(args, " "))
			}
		}
		b, err := escfstest.Read(filepath.Join(mnt, "demos", "idle", "status"), 5*time.Second)
		if err != nil || !strings.Contains(string(b), `"state": "unevaluated"`) {
			t.Errorf("demos/idle after escfs status: %s %v, want unevaluated", b, err)
		}
	})

	t.Run("not a mount", func(t *testing.T) {
		other := t.TempDir()
		r := escfsCLI(t, "status", other)
		if r.code != 1 || !strings.Contains(r.stderr, "not an escfs mount point") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})

	t.Run("another filesystem's mount", func(t *testing.T) {
		tmpfs := t.TempDir()
		if err := unix.Mount("tmpfs", tmpfs, "tmpfs", 0, "size=1m"); err != nil {
			t.Fatalf("mount a tmpfs: %v", err)
		}
		t.Cleanup(func() { _ = unix.Unmount(tmpfs, unix.MNT_DETACH) })
		r := escfsCLI(t, "status", tmpfs)
		if want := tmpfs + " is a tmpfs mount, not an escfs mount point"; r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("exit %d, stderr %q; want exit 1 and %q", r.code, r.stderr, want)
		}
	})

	t.Run("healthy exits 0", func(t *testing.T) {
		if err := os.Remove(filepath.Join(dir, "broken.yaml")); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for statErr(escfstest.Stat(filepath.Join(mnt, "broken"), 5*time.Second)) == nil {
			if time.Now().After(deadline) {
				t.Fatal("broken still in the mount 10s after its definition was removed")
			}
			time.Sleep(20 * time.Millisecond)
		}
		r := escfsCLI(t, "status", mnt)
		if r.code != 0 || len(statusRows(t, r.stdout)) != 2 {
			t.Errorf("exit %d, stderr %q, output\n%s; want 0 with ok and demos/idle", r.code, r.stderr, r.stdout)
		}
	})
}

// TestStatusStoppedMountTimesOut: a stopped escfs never answers; status
// must fail after --timeout, not hang.
func TestStatusStoppedMountTimesOut(t *testing.T) {
	_, mnt, p := mountForStatus(t)
	if err := p.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// before the mount's cleanup kills it, so that the blocked reads end
	t.Cleanup(func() { _ = p.Cmd.Process.Signal(syscall.SIGCONT) })
	done := make(chan cliResult, 1)
	go func() { done <- escfsCLI(t, "status", "--timeout", "500ms", mnt) }()
	var r cliResult
	select {
	case r = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("escfs status --timeout 500ms still running after 5s on a stopped mount")
	}
	if r.code != 1 || !strings.Contains(r.stderr+r.stdout, "no answer from the mount") {
		t.Errorf("exit %d, stdout %q, stderr %q; want 1 and a timeout", r.code, r.stdout, r.stderr)
	}
}

// TestStatusExitByState: escfs status exits 1 for each state its help
// names (error, stale, expired, and a mount that did not answer) and 0
// for the others, and names the environments that need attention.
func TestStatusExitByState(t *testing.T) {
	for _, tt := range []struct {
		state eval.State
		bad   bool
	}{
		{eval.StateOK, false},
		{eval.StateUnevaluated, false},
		{eval.StateEvaluating, false},
		{eval.StateStale, true},
		{eval.StateError, true},
		{eval.StateExpired, true},
		{stateTimeout, true},
	} {
		t.Run(string(tt.state), func(t *testing.T) {
			var w strings.Builder
			statuses := []envStatus{{st: eval.Status{Name: "fine", State: eval.StateOK}}, {st: eval.Status{Name: "db", State: tt.state}}}
			err := statusExit(&w, statuses)
			var exit *exitError
			switch {
			case tt.bad && (!errors.As(err, &exit) || exit.code != 1):
				t.Fatalf("%s: err = %v, want exit 1", tt.state, err)
			case tt.bad && !strings.Contains(w.String(), "1 of 2 environments need attention: db ("+string(tt.state)+")"):
				t.Fatalf("%s: stderr %q", tt.state, w.String())
			case !tt.bad && err != nil:
				t.Fatalf("%s: err = %v, want exit 0", tt.state, err)
			}
		})
	}
}
