// Package escfstest runs the real escfs binary for tests: cmd's process
// tests, e2e and torture share it. It builds the binary once, runs a
// command with a bound on how long it may take, starts processes that
// never outlive their test, mounts and waits until the mount serves, and
// reads through mounts with bounded waits, so that a hung mount fails a
// test instead of hanging it.
package escfstest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/escfs/escfs/internal/bounded"
	"github.com/escfs/escfs/internal/testutil"
)

var (
	buildOnce sync.Once
	binDir    string // where Binary built the binary; "" with $ESCFS_BIN
	binPath   string
	binErr    error
)

// Binary returns the escfs binary under test: $ESCFS_BIN, else one built
// from this module's ./cmd/escfs once per test binary, into a temporary
// directory that RemoveBinary removes.
func Binary(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("ESCFS_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		root, err := testutil.FindUp("go.mod")
		if err != nil {
			binErr = err
			return
		}
		if binDir, binErr = os.MkdirTemp("", "escfs-test-bin-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "escfs")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", binPath, "./cmd/escfs")
		cmd.Dir = filepath.Dir(root)
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/escfs: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		tb.Fatal(binErr)
	}
	return binPath
}

// RemoveBinary removes the binary Binary built, if any: call it from
// TestMain after the tests ran.
func RemoveBinary() {
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}

// Options says how to run escfs.
type Options struct {
	// Bin is the binary to run; "" means Binary's.
	Bin string
	// Env is the process environment; nil means os.Environ().
	Env []string
	// Credential, if set, runs the process as another user.
	Credential *syscall.Credential
	// Stdin is the standard input; nil means none.
	Stdin io.Reader
	// Lines hands standard output line by line to Proc.Line instead of
	// the log.
	Lines bool
}

// command returns the escfs command for args under opts.
func command(tb testing.TB, ctx context.Context, opts Options, args []string) *exec.Cmd {
	bin := opts.Bin
	if bin == "" {
		bin = Binary(tb)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = opts.Env
	cmd.Stdin = opts.Stdin
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: opts.Credential}
	cmd.WaitDelay = 2 * time.Second // a child outliving escfs (an editor) would hold its output open
	return cmd
}

// Result is the outcome of one run of escfs.
type Result struct {
	Code           int
	Stdout, Stderr string
	Took           time.Duration
	MaxRSS         int64 // the peak resident memory, in bytes
}

// Parts returns the result's standard output, standard error and exit
// code.
func (r Result) Parts() (stdout, stderr string, code int) { return r.Stdout, r.Stderr, r.Code }

// Run runs escfs with args and fails the test if it does not return
// within d: the commands tested must never hang.
func Run(tb testing.TB, d time.Duration, opts Options, args ...string) Result {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := command(tb, ctx, opts, args)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String(), Took: time.Since(start)}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.MaxRSS = ru.Maxrss << 10
		}
	}
	if ctx.Err() != nil {
		tb.Fatalf("escfs %s did not return within %v (killed); stderr:\n%s", strings.Join(args, " "), d, r.Stderr)
	}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.Code = exit.ExitCode()
	case err != nil:
		tb.Fatalf("escfs %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// Proc is a running escfs process that does not outlive its test: when
// the test ends it is continued (in case the test stopped it), sent
// SIGTERM, and killed if it lingers 10 seconds; it dies with the test
// binary too (Pdeathsig).
type Proc struct {
	Cmd   *exec.Cmd
	log   *testutil.Buffer
	lines chan string // standard output by line, with Options.Lines; closed at EOF
	done  chan struct{}
	err   error // set before done is closed
}

// Start starts escfs with args under opts.
func Start(tb testing.TB, opts Options, args ...string) *Proc {
	tb.Helper()
	cmd := command(tb, context.Background(), opts, args)
	p := &Proc{Cmd: cmd, log: &testutil.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = p.log
	var stdout io.ReadCloser
	if !opts.Lines {
		cmd.Stdout = p.log
	} else {
		var err error
		if stdout, err = cmd.StdoutPipe(); err != nil {
			tb.Fatal(err)
		}
		p.lines = make(chan string, 64)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start escfs: %v", err)
	}
	go func() {
		if stdout != nil { // every read of the pipe ends before Wait
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				p.lines <- sc.Text()
			}
			close(p.lines)
		}
		p.err = cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		pid := cmd.Process.Pid
		if p.Alive() {
			_ = syscall.Kill(pid, syscall.SIGCONT)
			_ = syscall.Kill(pid, syscall.SIGTERM)
			if exited, _ := p.Wait(10 * time.Second); !exited {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				if exited, _ := p.Wait(10 * time.Second); !exited {
					tb.Errorf("escfs pid %d did not end 10s after SIGKILL", pid)
				}
			}
		}
		if tb.Failed() {
			tb.Logf("escfs %s log:\n%s", strings.Join(args, " "), p.log)
		}
	})
	return p
}

// Log returns what the process wrote so far (standard error, and standard
// output unless Options.Lines).
func (p *Proc) Log() string { return p.log.String() }

// PID returns the process id.
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit error (nil for exit status 0), once Done.
func (p *Proc) Err() error {
	<-p.done
	return p.err
}

// Alive reports whether the process is still running.
func (p *Proc) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Wait waits up to d for the process to exit and returns whether it
// exited and its exit error.
func (p *Proc) Wait(d time.Duration) (exited bool, err error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-p.done:
		return true, p.err
	case <-timer.C:
		return false, nil
	}
}

// Signal sends sig and waits up to 10 seconds for the process to exit,
// failing the test if it does not; it returns the exit error.
func (p *Proc) Signal(tb testing.TB, sig syscall.Signal) error {
	tb.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		tb.Fatal(err)
	}
	exited, err := p.Wait(10 * time.Second)
	if !exited {
		tb.Fatalf("escfs did not exit within 10s of %v\n%s", sig, p.log)
	}
	return err
}

// Pause stops the process with SIGSTOP and waits until the kernel shows it
// stopped; the cleanup of Start continues and ends it.
func (p *Proc) Pause(tb testing.TB) {
	tb.Helper()
	pid := p.PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		tb.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if state(pid) == 'T' {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("escfs pid %d not stopped 10s after SIGSTOP", pid)
		}
	}
}

// Line returns the next line of standard output (Options.Lines), failing
// the test after 15 seconds or if the process ends first.
func (p *Proc) Line(tb testing.TB) string {
	tb.Helper()
	timer := time.NewTimer(15 * time.Second)
	defer timer.Stop()
	select {
	case l, ok := <-p.lines:
		if !ok {
			tb.Fatalf("escfs ended before printing the expected line; log:\n%s", p.log)
		}
		return l
	case <-timer.C:
		tb.Fatalf("no output from escfs within 15s; log:\n%s", p.log)
		return ""
	}
}

// WaitFor waits until ok holds, polling every 20 ms, and fails the test
// if the process exits first or after 15 seconds; what names the wait in
// the failure.
func (p *Proc) WaitFor(tb testing.TB, what string, ok func() bool) {
	tb.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if !p.Alive() {
			tb.Fatalf("escfs exited before %s: %v\n%s", what, p.err, p.log)
		}
		if ok() {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("escfs: no %s within 15s:\n%s", what, p.log)
		}
	}
}

// WaitReadable waits until path reads (through the process's mount) and
// returns what it read, as WaitFor.
func (p *Proc) WaitReadable(tb testing.TB, path string) []byte {
	tb.Helper()
	var b []byte
	p.WaitFor(tb, "read of "+path, func() bool {
		var err error
		b, err = Read(path, 5*time.Second)
		return err == nil
	})
	return b
}

// Read reads path, giving up after d (leaving the reader behind, blocked
// on the mount) so that a hung mount fails the test instead of hanging it.
func Read(path string, d time.Duration) ([]byte, error) {
	b, err := bounded.Call(d, func() ([]byte, error) { return os.ReadFile(path) })
	if errors.Is(err, bounded.ErrTimeout) {
		return nil, fmt.Errorf("read %s: %w (waited %v)", path, err, d)
	}
	return b, err
}

// Stat stats path, giving up after d.
func Stat(path string, d time.Duration) (os.FileInfo, error) {
	fi, err := bounded.Call(d, func() (os.FileInfo, error) { return os.Stat(path) })
	if errors.Is(err, bounded.ErrTimeout) {
		return nil, fmt.Errorf("stat %s: %w (waited %v)", path, err, d)
	}
	return fi, err
}

// ParentPID returns the parent of process pid, 0 if unknown.
func ParentPID(pid int) int {
	f := statFields(pid)
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// state returns the state letter of process pid (R, S, T, Z...), 0 if
// unknown.
func state(pid int) byte {
	f := statFields(pid)
	if len(f) < 1 || f[0] == "" {
		return 0
	}
	return f[0][0]
}

// Running reports whether process pid exists and is not a zombie.
func Running(pid int) bool {
	s := state(pid)
	return s != 0 && s != 'Z'
}

// statFields returns the fields of /proc/PID/stat after the command name
// (which may hold spaces and parentheses): state, ppid, ...
func statFields(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// KillChildren sends SIGKILL to every child process of this one, which
// aborts the FUSE connections of their mounts and so releases blocked
// readers; for TestMain, after the tests ran.
func KillChildren() {
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err == nil && ParentPID(pid) == os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
