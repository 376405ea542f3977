package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/internal/redact"
	"github.com/escfs/escfs/runner"
)

func init() { commands = append(commands, newEditCommand) }

func newEditCommand(g *globalFlags) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "edit ENV",
		Short: "Edit an environment's definition with its secrets decrypted, then encrypt them again",
		Long: `Open ENV's definition in $VISUAL, else $EDITOR, else vi, with every encrypted
fn::secret shown as its plaintext (fn::secret: value) on its key's line.

On save, the edit is checked (YAML, and evaluation without opening providers). A valid
edit is written back with every secret encrypted again: a secret whose value did not
change keeps its ciphertext byte for byte (small diffs), a changed or new one is
encrypted to the recipients of the first rule of .escfs.yaml that covers ENV, and
comments, order and layout stay as you left them. New ciphertexts are bound to ENV and
their property path, under a new data key; recipients that none of the file's
ciphertexts has are named and need confirmation (or --yes). The file is replaced atomically, and
not at all if it changed while you edited.

An invalid edit is shown with its problems (FILE:LINE:COL, lines of your edit); press
Enter to edit again, or Ctrl-C or end of input to abandon without writing.

The plaintext buffer lives on a memory filesystem ($XDG_RUNTIME_DIR, else /dev/shm),
0600 in a 0700 directory, and is removed when escfs edit ends, also on SIGINT, SIGTERM
and SIGHUP; after a kill -9, the next escfs to start removes it. While the editor runs,
Ctrl-C belongs to the editor. vim, nvim, emacs and nano are started so that they copy
the buffer nowhere else: no viminfo or shada, swap, undo or backup files (vim, nvim), no
backups, auto-saves or lock files (emacs), no rc files, history or position log (nano).`,
		Example: `  escfs edit prod/db
  EDITOR=nano escfs edit app`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeEnvs(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runEdit(cmd, g, args[0], yes)
		},
	}
	yesFlag(cmd, &yes)
	return cmd
}

// errAbandoned ends an edit that wrote nothing on the user's word.
var errAbandoned = errors.New("abandoned")

func runEdit(cmd *cobra.Command, g *globalFlags, name string, yes bool) error {
	stderr := cmd.ErrOrStderr()
	// Signals first: from here on, the plaintext buffer is removed however
	// escfs edit ends (but kill -9; see runner.NewRunDir).
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	ed, err := g.newEditor()
	if err != nil {
		return err
	}
	sess, err := ed.Begin(cmd.Context(), name)
	if err != nil {
		return err
	}
	dir, err := runner.NewRunDir("")
	if err != nil {
		return fmt.Errorf("edit %s: a place for the plaintext buffer: %w", name, err)
	}
	defer os.RemoveAll(dir)
	buf := filepath.Join(dir, strings.ReplaceAll(sess.Definition().Name.Short(), "/", "-")+".yaml")
	if err := os.WriteFile(buf, sess.View(), 0o600); err != nil {
		return fmt.Errorf("edit %s: %w", name, err)
	}
	stdin := bufio.NewReader(cmd.InOrStdin())
	for {
		if err := runEditor(buf, sigs, stderr); err != nil {
			fmt.Fprintf(stderr, "edit %s: %v; nothing written\n", name, err)
			return &exitError{editExitCode(err)}
		}
		edited, err := os.ReadFile(buf)
		if err != nil {
			return fmt.Errorf("edit %s: %w", name, err)
		}
		c, err := sess.Finish(cmd.Context(), edited)
		if err == nil {
			if !c.Changed() {
				fmt.Fprintf(stderr, "no changes to %s\n", c.Path)
				return nil
			}
			var in *bufio.Reader
			if isTerminal(os.Stdin) {
				in = stdin
			}
			if err := confirmRecipients(stderr, in, yes, name, c); err != nil {
				fmt.Fprintf(stderr, "edit %s: %v\n", name, err)
				return &exitError{1}
			}
			if err := c.Write(); err != nil {
				fmt.Fprintf(stderr, "edit %s: %v\n", name, err)
				return &exitError{1}
			}
			fmt.Fprintf(stderr, "saved %s (%s encrypted)%s\n", c.Path, plural(c.Count, "new secret"), fallbackNote(c))
			return nil
		}
		var de *eval.DiagnosticsError
		if errors.As(err, &de) {
			fmt.Fprintf(stderr, "your edit of %s has problems (lines of your edit):\n", name)
			writeDiagnostics(stderr, de.Diagnostics)
		} else {
			fmt.Fprintf(stderr, "your edit of %s cannot be saved: %v\n", name, err)
		}
		fmt.Fprint(stderr, "Press Enter to edit again, or Ctrl-C or end of input to abandon: ")
		if err := awaitLine(stdin, sigs); err != nil {
			fmt.Fprintf(stderr, "\nedit %s abandoned: nothing written\n", name)
			return &exitError{editExitCode(err)}
		}
	}
}

// interruptedError is an edit ended by a signal.
type interruptedError struct{ sig os.Signal }

func (e *interruptedError) Error() string { return "interrupted by " + e.sig.String() }

// editExitCode is the exit status of an edit that ended with err: 128+N
// for signal N, as a shell reports it, else 1.
func editExitCode(err error) int {
	var ie *interruptedError
	if errors.As(err, &ie) {
		if s, ok := ie.sig.(syscall.Signal); ok {
			return 128 + int(s)
		}
	}
	return 1
}

// runEditor runs the user's editor on path and waits for it. SIGINT is the
// editor's (it shares the terminal); SIGTERM or SIGHUP stops the editor and
// ends the edit.
func runEditor(path string, sigs <-chan os.Signal, stderr io.Writer) error {
	editor := os.Getenv("VISUAL")
	if editor == "" {
		editor = os.Getenv("EDITOR")
	}
	if editor == "" {
		editor = "vi"
	}
	// As git does: the variable may carry arguments ("code --wait").
	args := append([]string{"-c", "exec " + editor + ` "$@"`, editor}, privateEditing(editor)...)
	c := exec.Command("sh", append(args, path)...)                                   // exec: a signal reaches the editor itself
	if _, err := unix.IoctlGetTermios(int(os.Stdin.Fd()), unix.TCGETS); err == nil { // a terminal
		c.Stdin = os.Stdin
	}
	c.Stdout, c.Stderr = os.Stdout, redact.Unwrap(stderr)
	// SIGKILL if escfs dies, by kill -9 too: an editor left behind would
	// hold the plaintext buffer open after the next escfs removes it.
	done, err := runner.StartDying(c, syscall.SIGKILL)
	if err != nil {
		return fmt.Errorf("start the editor (%s): %w", editor, err)
	}
	for {
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("the editor (%s) failed: %w", editor, err)
			}
			return nil
		case sig := <-sigs:
			if sig == syscall.SIGINT {
				continue
			}
			c.Process.Signal(syscall.SIGTERM)
			<-done
			return &interruptedError{sig}
		}
	}
}

// privateEditing returns the arguments that keep an editor this escfs
// knows from copying the buffer (plaintext) anywhere but the buffer itself,
// as pass does: no viminfo/shada (registers and search history), swap,
// undo or backup files for vim and nvim; no backups, auto-saves or lock
// files for emacs; no rc files (and so no history or position log) for
// nano. Other editors get nothing: their own settings apply.
func privateEditing(editor string) []string {
	fields := strings.Fields(editor)
	if len(fields) == 0 {
		return nil
	}
	name := filepath.Base(fields[0])
	if p, err := exec.LookPath(fields[0]); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && (name == "vi" || name == "editor") {
			name = filepath.Base(real) // vi -> vim.basic, editor -> nano
		}
	}
	switch {
	case name == "vim" || strings.HasPrefix(name, "vim.") || name == "gvim" || name == "nvim":
		return []string{"-i", "NONE", "-n", "--cmd", "set noundofile nobackup nowritebackup"}
	case name == "emacs" || strings.HasPrefix(name, "emacs-"):
		return []string{"--eval", "(setq make-backup-files nil auto-save-default nil create-lockfiles nil)"}
	case name == "nano":
		return []string{"--ignorercfiles"}
	}
	return nil
}

// awaitLine waits for a line on in; end of input or a signal abandons.
func awaitLine(in *bufio.Reader, sigs <-chan os.Signal) error {
	line := make(chan error, 1)
	go func() {
		_, err := in.ReadString('\n')
		line <- err
	}()
	select {
	case err := <-line:
		if err != nil {
			return errAbandoned
		}
		return nil
	case sig := <-sigs:
		return &interruptedError{sig}
	}
}
