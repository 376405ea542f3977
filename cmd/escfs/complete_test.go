package main

import (
	"strings"
	"testing"
)

// TestRunFlagsAroundEnv checks run's command line rule: escfs's flags go
// before or after ENV, the command starts after -- or at the first argument
// after ENV that is not a flag, and the command's own flags are never
// escfs's. (It lives here because run_test.go belongs to another change.)
func TestRunFlagsAroundEnv(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	t.Setenv("XDG_RUNTIME_DIR", memTempDir(t))
	dir := runDefs(t)
	printToken := []string{"sh", "-c", `printf '%s' "$TOKEN"`}
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantOut    string
		wantErrHas string
	}{
		{"-i before ENV", append([]string{"-i", "app", "--"}, printToken...), 0, "s3cr3t-token", ""},
		{"-i after ENV", append([]string{"app", "-i", "--"}, printToken...), 0, "s3cr3t-token", ""},
		{"--interactive after ENV, no --", append([]string{"app", "--interactive"}, printToken...), 0, "s3cr3t-token", ""},
		{"--dir after ENV", append([]string{"app", "--dir", dir, "--"}, printToken...), 0, "[secret]", ""},
		{"no -i: redacted", append([]string{"app", "--"}, printToken...), 0, "[secret]", ""},
		{"the command's -i is its own", []string{"app", "--", "sh", "-c", "echo -i"}, 0, "-i\n", ""},
		{"the command's -i is its own, no --", []string{"app", "sh", "-c", "echo -i"}, 0, "-i\n", ""},
		{"flags after the command are its own", []string{"app", "-i", "--", "echo", "-i", "--", "x"}, 0, "-i -- x\n", ""},
		{"unknown flag after ENV", []string{"app", "-x", "sh"}, 1, "", `goes after --`},
		{"a command starting with - after --", []string{"app", "--", "-no-such-command"}, 127, "", "executable file not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := escfsCLI(t, append([]string{"--dir", dir, "run"}, tt.args...)...)
			if r.code != tt.wantCode || r.stdout != tt.wantOut || !strings.Contains(r.stderr, tt.wantErrHas) {
				t.Fatalf("exit %d, stdout %q, stderr %q\nwant exit %d, stdout %q, stderr with %q",
					r.code, r.stdout, r.stderr, tt.wantCode, tt.wantOut, tt.wantErrHas)
			}
		})
	}
}
