package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMain removes the binary escfsBinary built, if any.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	binDir    string // where escfsBinary built the binary
	binPath   string
	binErr    error
)

// escfsBinary builds this command once per test run (bounded) for tests
// that need a real process: signals, mounts.
func escfsBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "escfs-test-bin-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "escfs")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// cliResult is the outcome of one in-process run of the CLI.
type cliResult struct {
	code           int
	stdout, stderr string
}

// escfsCLI runs the CLI in-process with args and empty stdin.
func escfsCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := executeIO(args, strings.NewReader(""), &stdout, &stderr)
	return cliResult{code, stdout.String(), stderr.String()}
}

// writeDefinitions creates a definitions directory holding files (path
// relative to it, slash-separated -> content) and returns its path.
func writeDefinitions(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestHelpDocumentsEveryCommand checks that escfs --help lists each command
// and that each has long help and examples.
func TestHelpDocumentsEveryCommand(t *testing.T) {
	r := escfsCLI(t, "--help")
	if r.code != 0 {
		t.Fatalf("escfs --help: exit %d, stderr %q", r.code, r.stderr)
	}
	for _, name := range []string{"open", "run", "check", "ls"} {
		if !strings.Contains(r.stdout, "\n  "+name+" ") {
			t.Errorf("escfs --help does not list %s:\n%s", name, r.stdout)
		}
		h := escfsCLI(t, name, "--help")
		if h.code != 0 || !strings.Contains(h.stdout, "Examples:\n  escfs "+name) || len(h.stdout) < 400 {
			t.Errorf("escfs %s --help: exit %d, output\n%s", name, h.code, h.stdout)
		}
	}
}
