package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/internal/redact"
	"github.com/escfs/escfs/runner"
)

func init() { commands = append(commands, newRunCommand) }

func newRunCommand(g *globalFlags) *cobra.Command {
	var interactive bool
	cmd := &cobra.Command{
		Use:   "run ENV [-i] [--] CMD [ARGS...]",
		Short: "Run a command with an environment's variables and files",
		Long: `Evaluate the environment ENV and run CMD in it, like esc run. CMD is looked up in $PATH
and run directly, not by a shell: to expand variables, run a shell (see the examples).

The command gets escfs's own environment plus the environment's environmentVariables
and files entries (these override variables of the same name). The files entries are
written (mode 0600) into a new private directory (mode 0700) on a memory filesystem,
never on disk: in $XDG_RUNTIME_DIR if it is a tmpfs, else in /dev/shm (escfs fails if
neither is). Each files variable holds the path of its file there. The directory is
removed when the command ends, and also when escfs gets SIGINT, SIGTERM or SIGHUP:
escfs forwards the signal to the command, waits for it to end and then cleans up.

If escfs itself is killed (SIGKILL), the command is killed too (SIGKILL, by the
kernel), and the next escfs to start, whatever its command, removes the directory.
Processes the command started in the background are not killed. escfs is not
dumpable: other processes of the same user cannot read its memory or environment.

escfs exits with the command's exit status, or 128 plus the signal number if a signal
ended the command (130 for SIGINT), like a shell. If the command cannot be found escfs
exits with 127, if it cannot be run with 126; evaluation errors are printed to stderr
as FILE:LINE:COL: message and exit with 1.

Secret values are replaced by [secret] in the command's stdout and stderr, even when a
secret is split across several writes (secrets shorter than 3 bytes are not redacted).
For that the command's output goes through a pipe, not to the terminal. With
-i/--interactive the command gets escfs's stdin, stdout and stderr directly and nothing
is redacted: use it for interactive programs (shells, editors, prompts) that need a
terminal.

escfs's flags go before or after ENV: the command line starts after --, or, without --,
at the first argument after ENV that is not a flag. Everything from there on is the
command's, untouched (escfs run app -- sh -c 'echo -i' prints -i). A command that
starts with "-" needs --.`,
		Example: `  escfs run app -- sh -c 'echo "$APP_NAME listens on $APP_PORT"'
  escfs run demos/aws-access -- aws sts get-caller-identity
  escfs run app -- sh -c 'cat "$APP_SETTINGS"'
  escfs run -i app -- bash
  escfs run app -i -- bash
  escfs --cloud acme run infra/aws -- aws sts get-caller-identity`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeEnvFirst(g, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRun(cmd, g, args, &interactive)
		},
	}
	// Parsing stops at ENV; runRun parses escfs's flags between ENV and the
	// command (see commandLine), so the command's flags stay its own.
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false,
		"connect the command to escfs's stdin, stdout and stderr directly; do not redact secrets")
	return cmd
}

// commandLine splits run's arguments, ENV and what follows it, into ENV and
// the command line, parsing escfs's flags between ENV and the command into
// cmd's flags: the command starts after "--" or, without it, at the first
// argument that is not a flag. An empty name means help was printed.
func commandLine(cmd *cobra.Command, args []string) (name string, argv []string, err error) {
	flags := cmd.Flags()
	if err := flags.Parse(args[1:]); err != nil {
		if strings.HasPrefix(err.Error(), "unknown") {
			return "", nil, fmt.Errorf("%w (a command that starts with \"-\" goes after --: escfs run ENV [-i] -- CMD [ARGS...])", err)
		}
		return "", nil, err
	}
	if h, _ := flags.GetBool("help"); h {
		return "", nil, cmd.Help()
	}
	return args[0], flags.Args(), nil
}

// runRun runs the command; *interactive is read after the flags between ENV
// and the command are parsed.
func runRun(cmd *cobra.Command, g *globalFlags, args []string, interactive *bool) error {
	nonDumpable(cmd.ErrOrStderr())
	name, argv, err := commandLine(cmd, args)
	if err != nil || name == "" {
		return err
	}
	if len(argv) == 0 {
		return fmt.Errorf("no command given: escfs run %s -- CMD [ARGS...]", name)
	}
	src, tree, err := g.source(cmd.Context())
	if err != nil {
		return err
	}
	if _, err := tree.Lookup(name); err != nil {
		return err
	}

	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(signals)

	stderr := cmd.ErrOrStderr()
	snapshot := func(ctx context.Context, filesDir string) (*eval.Snapshot, error) {
		return produce(ctx, src, tree, name, filesDir, stderr)
	}
	status, err := runner.Run(cmd.Context(), snapshot, argv, runner.Options{
		Stdin:       cmd.InOrStdin(),
		Stdout:      cmd.OutOrStdout(),
		Stderr:      redact.Unwrap(stderr), // the command's own, the terminal itself
		Interactive: *interactive,
		Signals:     signals,
	})
	var exit *exitError
	switch {
	case err == nil && status == 0:
		return nil
	case err == nil:
		return &exitError{status}
	case errors.As(err, &exit):
		return err
	case errors.Is(err, exec.ErrNotFound):
		fmt.Fprintln(stderr, "escfs:", err)
		return &exitError{127}
	case errors.Is(err, fs.ErrPermission):
		fmt.Fprintln(stderr, "escfs:", err)
		return &exitError{126}
	case status >= 0: // the command ran, the cleanup failed
		fmt.Fprintln(stderr, "escfs:", err)
		return &exitError{max(status, 1)}
	default:
		return err
	}
}
