package runner

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/internal/testutil"
	"github.com/escfs/escfs/providers/builtin"
)

// testEnv is an environment with a plain variable, a secret variable, a
// multi-line secret and a files entry.
const testEnv = `values:
  token:
    fn::secret: s3cr3t-value
  multi:
    fn::secret: "first-line\nsecond-line"
  environmentVariables:
    GREETING: "it's a 'quoted' $HOME value"
    TOKEN: ${token}
    MULTI: ${multi}
  files:
    CONFIG: "config for ${token}\n"
`

// snapshotOf writes definition as environment "env" in a new definitions
// directory and returns a SnapshotFunc that evaluates it, and a pointer to
// the files directory the last call was given.
func snapshotOf(t *testing.T, definition string) (SnapshotFunc, *string) {
	t.Helper()
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "env.yaml"), []byte(definition), 0o644); err != nil {
		t.Fatal(err)
	}
	tree, err := eval.ScanDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var dir string
	ev := &eval.Evaluator{Providers: builtin.Registry()}
	return func(ctx context.Context, filesDir string) (*eval.Snapshot, error) {
		dir = filesDir
		return ev.Evaluate(ctx, tree, eval.Request{Name: "env", FilesDir: filesDir})
	}, &dir
}

// runSh runs script with sh -c in the test environment and returns the exit
// status and the output.
func runSh(t *testing.T, script string, opts Options) (int, string, string, string) {
	t.Helper()
	snap, dir := snapshotOf(t, testEnv)
	var stdout, stderr bytes.Buffer
	opts.Stdout, opts.Stderr = &stdout, &stderr
	opts.TempDir = testutil.MemTempDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	status, err := Run(ctx, snap, []string{"sh", "-c", script}, opts)
	if err != nil {
		t.Fatalf("Run: %v (stderr %q)", err, stderr.String())
	}
	if *dir == "" {
		t.Fatal("the snapshot was never asked for")
	}
	if _, err := os.Stat(*dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("files directory %s after Run: %v, want it removed", *dir, err)
	}
	return status, stdout.String(), stderr.String(), *dir
}

func TestRunChildSeesVariablesAndFiles(t *testing.T) {
	status, out, _, dir := runSh(t, `printf '%s|' "$GREETING" "$TOKEN"; cat "$CONFIG"; stat -c '%a %n' "$CONFIG" "$(dirname "$CONFIG")"`,
		Options{Interactive: true})
	if status != 0 {
		t.Fatalf("status %d, output %q", status, out)
	}
	want := "it's a 'quoted' $HOME value|s3cr3t-value|config for s3cr3t-value\n" +
		"600 " + filepath.Join(dir, "CONFIG") + "\n" +
		"700 " + dir + "\n"
	if out != want {
		t.Fatalf("output\n%q\nwant\n%q", out, want)
	}
}

func TestRunKeepsBaseEnvironment(t *testing.T) {
	status, out, _, _ := runSh(t, `printf '%s|%s' "$BASE" "$TOKEN"`,
		Options{Interactive: true, Environ: []string{"BASE=kept", "TOKEN=overridden", "PATH=" + os.Getenv("PATH")}})
	if status != 0 || out != "kept|s3cr3t-value" {
		t.Fatalf("status %d, output %q; want 0, %q", status, out, "kept|s3cr3t-value")
	}
}

func TestRunExitStatus(t *testing.T) {
	tests := []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 7", 7},
		{"exit 255", 255},
		{"kill -TERM $$", 128 + int(syscall.SIGTERM)},
		{"kill -KILL $$", 128 + int(syscall.SIGKILL)},
	}
	for _, tt := range tests {
		t.Run(tt.script, func(t *testing.T) {
			if status, _, _, _ := runSh(t, tt.script, Options{}); status != tt.want {
				t.Fatalf("status %d, want %d", status, tt.want)
			}
		})
	}
}

func TestRunRedacts(t *testing.T) {
	// The secrets reach the child's output in pieces, from separate writes
	// with pauses between them, on stdout and on stderr.
	script := `printf 'token=s3cr'; sleep 0.2; printf '3t-value done\n'
printf 'err=s3cr3t'; sleep 0.2; printf -- '-value\n' >&2
printf '%s\n' "$MULTI"
cat "$CONFIG"`
	tests := []struct {
		name        string
		interactive bool
		wantOut     string
		wantErr     string
	}{
		// stdout gets "err=s3cr3t" and stderr "-value": neither alone is a
		// secret. The files entry interpolates a secret, so all of its
		// content (newline included) is one secret.
		{"redacted", false,
			"token=[secret] done\nerr=s3cr3t[secret]\n[secret]", "-value\n"},
		{"interactive", true,
			"token=s3cr3t-value done\nerr=s3cr3tfirst-line\nsecond-line\nconfig for s3cr3t-value\n", "-value\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, out, errOut, _ := runSh(t, script, Options{Interactive: tt.interactive})
			if status != 0 {
				t.Fatalf("status %d", status)
			}
			if out != tt.wantOut || errOut != tt.wantErr {
				t.Fatalf("stdout %q, stderr %q\nwant   %q, stderr %q", out, errOut, tt.wantOut, tt.wantErr)
			}
		})
	}
}

// waitFor polls cond for up to 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRunForwardsSignals(t *testing.T) {
	snap, dir := snapshotOf(t, testEnv)
	signals := make(chan os.Signal, 1)
	var out testutil.Buffer
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		script := `trap 'kill $! 2>/dev/null; echo "got TERM"; exit 42' TERM; echo ready; sleep 30 & wait`
		status, err := Run(context.Background(), snap, []string{"sh", "-c", script},
			Options{Stdout: &out, Signals: signals, TempDir: testutil.MemTempDir(t)})
		done <- result{status, err}
	}()
	waitFor(t, "the child to start", func() bool { return strings.Contains(out.String(), "ready") })
	signals <- syscall.SIGTERM
	select {
	case r := <-done:
		if r.err != nil || r.status != 42 {
			t.Fatalf("Run = %d, %v; want 42, nil", r.status, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the signal")
	}
	if got := out.String(); got != "ready\ngot TERM\n" {
		t.Fatalf("output %q", got)
	}
	if _, err := os.Stat(*dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("files directory %s: %v, want it removed", *dir, err)
	}
}

func TestRunSignalDuringEvaluation(t *testing.T) {
	signals := make(chan os.Signal, 1)
	var dir string
	started := make(chan struct{})
	slow := func(ctx context.Context, filesDir string) (*eval.Snapshot, error) {
		dir = filesDir
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	go func() { <-started; signals <- syscall.SIGINT }()
	status, err := Run(context.Background(), slow, []string{"sh", "-c", "echo never"},
		Options{Signals: signals, TempDir: testutil.MemTempDir(t)})
	if err != nil || status != 128+int(syscall.SIGINT) {
		t.Fatalf("Run = %d, %v; want %d, nil", status, err, 128+int(syscall.SIGINT))
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("files directory %s: %v, want it removed", dir, err)
	}
}

func TestRunFailures(t *testing.T) {
	tests := []struct {
		name       string
		definition string
		argv       []string
		check      func(error) bool
	}{
		{"evaluation error", "values:\n  a: ${nope}\n", []string{"true"}, func(err error) bool {
			var de *eval.DiagnosticsError
			return errors.As(err, &de) && len(de.Diagnostics) > 0
		}},
		{"command not found", testEnv, []string{"escfs-no-such-command"}, func(err error) bool {
			return errors.Is(err, exec.ErrNotFound)
		}},
		{"no command", testEnv, nil, func(err error) bool { return errors.Is(err, ErrNoCommand) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap, dir := snapshotOf(t, tt.definition)
			parent := testutil.MemTempDir(t)
			status, err := Run(context.Background(), snap, tt.argv, Options{TempDir: parent})
			if status != -1 || !tt.check(err) {
				t.Fatalf("Run = %d, %v", status, err)
			}
			if entries, _ := os.ReadDir(parent); len(entries) != 0 {
				t.Fatalf("left behind in %s: %v (last files dir %q)", parent, entries, *dir)
			}
		})
	}
}
