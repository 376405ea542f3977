// Package runner runs a command in an evaluated environment, as esc run
// does: the environment's variables are added to the command's environment,
// its files entries are written into a private directory on a memory
// filesystem that is removed when the command ends (or, if escfs is killed,
// by the next escfs: RemoveDeadRuns), secret values are redacted from the
// command's output, and the command is killed if escfs dies.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/escfs/escfs/eval"
)

// SnapshotFunc evaluates the environment to run in, with the variables of its
// files entries pointing into filesDir. It is how Run gets its snapshot, so
// that the directory exists before the evaluation and is removed after it
// whatever happens.
type SnapshotFunc func(ctx context.Context, filesDir string) (*eval.Snapshot, error)

// Options configures Run.
type Options struct {
	// Stdin, Stdout and Stderr are the command's standard streams; nil
	// means the null device.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Interactive connects Stdout and Stderr to the command without
	// redaction, so that a *os.File (a terminal) is the command's own.
	Interactive bool
	// Environ is the environment the snapshot's variables are added to,
	// as NAME=value strings; nil means os.Environ().
	Environ []string
	// Signals are forwarded to the command while it runs. A signal that
	// arrives during the evaluation cancels it, and Run returns 128 plus
	// the signal number without starting the command.
	Signals <-chan os.Signal
	// TempDir is the directory in which the files directory is created;
	// it must be on a memory filesystem (tmpfs). "" means MemoryDir().
	TempDir string
	// WaitDelay bounds how long Run waits, once the command has exited, for
	// processes it left behind to close its output; 0 means 2 seconds.
	WaitDelay time.Duration
}

// ErrNoCommand is returned by Run for an empty command line.
var ErrNoCommand = errors.New("no command given")

// Run evaluates an environment with snapshot and runs argv[0] (looked up in
// $PATH) with arguments argv[1:] in it, waiting for it to end. It returns the
// command's exit status, or 128 plus the signal number if a signal ended it.
//
// The error is non-nil, and the status -1, if the command could not be run:
// the evaluation failed (a *eval.DiagnosticsError for errors in the
// definitions), the files could not be written or the command not started.
// If only the removal of the files directory failed, the error says so
// and the status is the command's.
//
// If ctx is cancelled, the command is killed.
func Run(ctx context.Context, snapshot SnapshotFunc, argv []string, opts Options) (status int, err error) {
	if len(argv) == 0 {
		return -1, ErrNoCommand
	}
	dir, err := newRunDir(opts.TempDir)
	if err != nil {
		return -1, err
	}
	defer func() {
		if rerr := os.RemoveAll(dir); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove files directory: %w", rerr))
		}
	}()

	snap, sig, err := evaluate(ctx, snapshot, dir, opts.Signals)
	if err != nil {
		return -1, err
	}
	if sig != nil {
		return signalStatus(sig), nil
	}
	if err := WriteFiles(dir, snap.Files); err != nil {
		return -1, err
	}

	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = environ(opts, snap.Vars)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = opts.Stdin, opts.Stdout, opts.Stderr
	cmd.WaitDelay = opts.WaitDelay
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = 2 * time.Second
	}
	var redactors []*Redactor
	if !opts.Interactive {
		redactors = redact(cmd, snap.Secrets)
	}
	waitErr, err := startAndWait(cmd, opts.Signals)
	if err != nil {
		return -1, fmt.Errorf("start %s: %w", argv[0], err)
	}
	for _, r := range redactors {
		_ = r.Close() // the command has ended; a failing output has nobody to tell
	}
	if cmd.ProcessState == nil {
		return -1, fmt.Errorf("wait for %s: %w", argv[0], waitErr)
	}
	return exitStatus(cmd.ProcessState), nil
}

// redact puts a Redactor in front of the command's output writers; one
// writer used for both gets one Redactor, so that its writes stay in order.
func redact(cmd *exec.Cmd, secrets []string) []*Redactor {
	var out []*Redactor
	same := sameWriter(cmd.Stdout, cmd.Stderr)
	if cmd.Stdout != nil {
		r := NewRedactor(cmd.Stdout, secrets)
		out = append(out, r)
		cmd.Stdout = r
	}
	switch {
	case same:
		cmd.Stderr = cmd.Stdout
	case cmd.Stderr != nil:
		r := NewRedactor(cmd.Stderr, secrets)
		out = append(out, r)
		cmd.Stderr = r
	}
	return out
}

// sameWriter reports whether a and b are one writer, without panicking on
// writers that cannot be compared.
func sameWriter(a, b io.Writer) bool {
	if a == nil || b == nil {
		return false
	}
	ta, tb := reflect.TypeOf(a), reflect.TypeOf(b)
	return ta == tb && ta.Comparable() && a == b
}

// evaluate runs snapshot, unless a signal comes first: then it cancels the
// evaluation, waits for it to return, and returns the signal.
func evaluate(ctx context.Context, snapshot SnapshotFunc, dir string, signals <-chan os.Signal) (*eval.Snapshot, os.Signal, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		snap *eval.Snapshot
		err  error
	}
	done := make(chan result, 1)
	go func() {
		snap, err := snapshot(ctx, dir)
		done <- result{snap, err}
	}()
	select {
	case r := <-done:
		if r.err == nil && r.snap == nil {
			r.err = errors.New("evaluation returned no snapshot")
		}
		return r.snap, nil, r.err
	case sig := <-signals:
		cancel()
		<-done
		return nil, sig, nil
	}
}

// startAndWait starts cmd and waits for it to exit, forwarding signals to
// it meanwhile. startErr is set if cmd could not be started, waitErr is
// Wait's result otherwise.
//
// The command gets SIGKILL when escfs dies (PR_SET_PDEATHSIG), so that it
// does not live on with the environment's secrets if escfs is SIGKILLed:
// SIGKILL, not SIGTERM, because a command that ignores SIGTERM would live
// on. Only the command itself gets it; processes it starts do not.
func startAndWait(cmd *exec.Cmd, signals <-chan os.Signal) (waitErr, startErr error) {
	done, err := StartDying(cmd, syscall.SIGKILL)
	if err != nil {
		return nil, err
	}
	for {
		select {
		case err := <-done:
			return err, nil
		case sig := <-signals:
			// The process may have exited already; Wait will tell.
			_ = cmd.Process.Signal(sig)
		}
	}
}

// StartDying starts cmd so that it gets sig when this process dies, even
// by SIGKILL (PR_SET_PDEATHSIG), and returns a channel that yields
// cmd.Wait's result.
//
// The kernel sends that signal when the *thread* that forked the command
// exits, not the process. The Go runtime ends a thread when a goroutine that
// locked it exits without unlocking, and any goroutine may run on the
// thread that called Start once Start returns. So the fork happens in a
// goroutine that keeps its thread locked, and so to itself, until the
// command has exited: no other goroutine can end that thread early and
// kill the command.
func StartDying(cmd *exec.Cmd, sig syscall.Signal) (<-chan error, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = sig
	started := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		done <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return done, nil
}

// environ returns the command's environment: the base environment with the
// snapshot's variables added, the latter winning.
func environ(opts Options, vars []eval.Var) []string {
	env := opts.Environ
	if env == nil {
		env = os.Environ()
	}
	env = append([]string(nil), env...)
	for _, v := range vars {
		if v.Name == "" || strings.ContainsRune(v.Name, '=') {
			if opts.Stderr != nil {
				fmt.Fprintf(opts.Stderr, "escfs: warning: variable %q left out: not a valid environment variable name\n", v.Name)
			}
			continue
		}
		env = append(env, v.Name+"="+v.Value)
	}
	return env // exec.Cmd keeps the last of duplicate names
}

// exitStatus returns a process's exit status as a shell reports it.
func exitStatus(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// signalStatus is the exit status of a process ended by sig.
func signalStatus(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 1
}
