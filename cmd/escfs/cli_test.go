package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/escfs/escfs/internal/escfstest"
)

// TestMain removes the binary escfstest built, if any.
func TestMain(m *testing.M) {
	code := m.Run()
	escfstest.RemoveBinary()
	os.Exit(code)
}

// cliResult is the outcome of one in-process run of the CLI.
type cliResult struct {
	code           int
	stdout, stderr string
}

// escfsBounded runs the escfs binary with args, failing the test if it
// does not return within d (see escfstest.Run).
func escfsBounded(t *testing.T, d time.Duration, args ...string) cliResult {
	t.Helper()
	return resultOf(escfstest.Run(t, d, escfstest.Options{}, args...))
}

// escfsExec runs the escfs binary with args, extra environment and stdin,
// bounded to 60 seconds.
func escfsExec(t *testing.T, env []string, stdin string, args ...string) cliResult {
	t.Helper()
	return resultOf(escfstest.Run(t, time.Minute, escfstest.Options{Env: append(os.Environ(), env...), Stdin: strings.NewReader(stdin)}, args...))
}

// resultOf is r as a cliResult.
func resultOf(r escfstest.Result) cliResult { return cliResult{r.Code, r.Stdout, r.Stderr} }

// escfsCLI runs the CLI in-process with args and empty stdin.
func escfsCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := executeIO(args, strings.NewReader(""), &stdout, &stderr)
	return cliResult{code, stdout.String(), stderr.String()}
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
