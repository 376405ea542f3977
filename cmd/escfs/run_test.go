package main

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escfs/escfs/internal/escfstest"
	"github.com/escfs/escfs/internal/filetree"
	"github.com/escfs/escfs/internal/testutil"
)

// runDefs returns a definitions directory with an environment "app" that
// has a variable, a secret and a files entry, and a broken one.
func runDefs(t *testing.T) string {
	return filetree.Write(t, "", map[string]string{
		"app.yaml": `values:
  token:
    fn::secret: s3cr3t-token
  environmentVariables:
    APP_NAME: demo
    TOKEN: ${token}
  files:
    CONFIG: "name=demo\n"
`,
		"broken.yaml": "values:\n  b: ${nope}\n",
	})
}

func TestRunCommand(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // escfs run must never put the files there (disk)
	xdg := testutil.MemTempDir(t)
	t.Setenv("XDG_RUNTIME_DIR", xdg) // but here (tmpfs)
	dir := runDefs(t)
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantOut    string
		wantErrHas string
	}{
		{"variables", []string{"app", "--", "sh", "-c", `printf '%s' "$APP_NAME"`}, 0, "demo", ""},
		{"no dash dash, command flags stay the command's", []string{"app", "sh", "-c", `printf '%s' "$APP_NAME"`}, 0, "demo", ""},
		{"files", []string{"app", "--", "sh", "-c", `cat "$CONFIG"`}, 0, "name=demo\n", ""},
		{"exit status", []string{"app", "--", "sh", "-c", "exit 7"}, 7, "", ""},
		{"signal status", []string{"app", "--", "sh", "-c", "kill -TERM $$"}, 143, "", ""},
		{"redacted", []string{"app", "--", "sh", "-c", `printf '%s\n' "$TOKEN"; printf 's3cr3t'; printf -- '-token\n' >&2; printf -- '-token' >&2`}, 0, "[secret]\ns3cr3t", "-token\n-token"},
		{"redacted across writes", []string{"app", "--", "sh", "-c", `printf 's3cr'; sleep 0.1; printf '3t-token!'`}, 0, "[secret]!", ""},
		{"interactive", []string{"-i", "app", "--", "sh", "-c", `printf '%s' "$TOKEN"`}, 0, "s3cr3t-token", ""},
		{"not found", []string{"app", "--", "escfs-no-such-command"}, 127, "", "executable file not found"},
		{"evaluation error", []string{"broken", "--", "true"}, 1, "", filepath.Join(dir, "broken.yaml") + ":2:8: unknown property \"nope\"\n"},
		{"unknown environment", []string{"nosuch", "--", "true"}, 1, "", `environment "nosuch" not found`},
		{"no command", []string{"app", "--"}, 1, "", "no command given"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := escfsCLI(t, append([]string{"--dir", dir, "run"}, tt.args...)...)
			if r.code != tt.wantCode || r.stdout != tt.wantOut || !strings.Contains(r.stderr, tt.wantErrHas) {
				t.Fatalf("exit %d, stdout %q, stderr %q\nwant exit %d, stdout %q, stderr with %q",
					r.code, r.stdout, r.stderr, tt.wantCode, tt.wantOut, tt.wantErrHas)
			}
			for _, d := range []string{tmp, xdg} {
				if entries, _ := os.ReadDir(d); len(entries) != 0 {
					t.Fatalf("left in %s: %v", d, entries)
				}
			}
		})
	}
}

// TestRunSIGTERM runs the real binary, sends it SIGTERM while the command
// runs, and checks that escfs forwards it, exits with the command's status
// and removes the files directory.
func TestRunSIGTERM(t *testing.T) {
	bin := escfstest.Binary(t)
	dir := runDefs(t)
	tests := []struct {
		name     string
		script   string
		wantCode int
		wantOut  string // after the first two lines
	}{
		// The shell dies of the signal; the sleep it leaves behind keeps
		// the output pipe open, which escfs must not wait for forever.
		{"killed", `echo "$CONFIG-path"; sleep 30 & echo $!; wait`, 143, ""},
		// The shell traps the signal and exits with a status of its own.
		{"trapped", `trap 'kill $!; echo got TERM; exit 42' TERM; echo "$CONFIG-path"; sleep 30 & echo $!; wait`, 42, "got TERM\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, "--dir", dir, "run", "app", "--", "sh", "-c", tt.script)
			cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir(), "XDG_RUNTIME_DIR="+testutil.MemTempDir(t))
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			lines := bufio.NewReader(stdout)
			readLine := func() string {
				t.Helper()
				got := make(chan string, 1)
				go func() { s, _ := lines.ReadString('\n'); got <- s }()
				select {
				case s := <-got:
					return strings.TrimSuffix(s, "\n")
				case <-time.After(10 * time.Second):
					_ = cmd.Process.Kill()
					t.Fatal("timed out reading the command's output")
					return ""
				}
			}

			config, ok := strings.CutSuffix(readLine(), "-path")
			if !ok || filepath.Base(config) != "CONFIG" {
				_ = cmd.Process.Kill()
				t.Fatalf("first line %q, want $CONFIG-path", config)
			}
			sleepPID, err := strconv.Atoi(readLine())
			if err != nil {
				_ = cmd.Process.Kill()
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = syscall.Kill(sleepPID, syscall.SIGKILL) }) // the orphan of "killed"
			if content, err := os.ReadFile(config); err != nil || string(content) != "name=demo\n" {
				t.Fatalf("while running: %s holds %q, %v", config, content, err)
			}

			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			var rest string
			go func() {
				b, _ := io.ReadAll(lines) // until escfs exits and its stdout closes
				rest = string(b)
				exited <- cmd.Wait()
			}()
			var waitErr error
			select {
			case waitErr = <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatal("escfs did not exit within 10s of SIGTERM")
			}
			if rest != tt.wantOut {
				t.Errorf("output after the signal %q, want %q", rest, tt.wantOut)
			}
			var exitErr *exec.ExitError
			if !errors.As(waitErr, &exitErr) || exitErr.ExitCode() != tt.wantCode {
				t.Fatalf("escfs: %v, want exit status %d; stderr %q", waitErr, tt.wantCode, stderr.String())
			}
			if _, err := os.Stat(filepath.Dir(config)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("files directory %s after exit: %v, want it removed", filepath.Dir(config), err)
			}
		})
	}
}
