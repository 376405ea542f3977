package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/escfs/escfs/internal/redact"
	"github.com/escfs/escfs/internal/safehttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// globalFlags are the flags every command shares.
type globalFlags struct {
	dir            string         // --dir
	cloudOrg       string         // --cloud's organization; cloudDefaultOrg for the default one
	openDuration   time.Duration  // --open-duration
	poll           time.Duration  // --poll
	requestTimeout time.Duration  // --request-timeout
	allowHosts     []string       // --allow-host
	flags          *pflag.FlagSet // the root's persistent flags, to tell which were given
}

// definitionsDir resolves the definitions directory: --dir, else $ESCFS_DIR,
// else ~/.config/escfs/environments. With --cloud there is none.
func (g *globalFlags) definitionsDir() (string, error) {
	if err := g.checkSourceFlags(); err != nil {
		return "", err
	}
	if g.cloudSelected() {
		return "", errors.New("--cloud serves Pulumi Cloud: this command works on a definitions directory (--dir)")
	}
	if g.dir != "" {
		return g.dir, nil
	}
	if d := os.Getenv("ESCFS_DIR"); d != "" {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no --dir, no $ESCFS_DIR and no home directory: %w", err)
	}
	return filepath.Join(home, ".config", "escfs", "environments"), nil
}

// applyAllowHosts adds --allow-host to $ESCFS_ALLOW_HOSTS, where the
// providers (and the children of run) read it.
func (g *globalFlags) applyAllowHosts() {
	if len(g.allowHosts) == 0 {
		return
	}
	hosts := g.allowHosts
	if env := safehttp.AllowHosts(); env != "" {
		hosts = append([]string{env}, hosts...)
	}
	os.Setenv(safehttp.AllowHostsEnv, strings.Join(hosts, ","))
}

// exitError carries a process exit status through cobra without printing.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func newRootCommand() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:   "escfs",
		Short: "Pulumi ESC environments as files: a live FUSE mount, and esc-style open/run/check",
		Long: `escfs renders Pulumi ESC environment definitions (YAML files with imports, values,
${...} interpolation, fn:: builtins and fn::open providers) into the forms tools consume:
a POSIX shell file of exports, a dotenv file, all values as JSON, and the files entries.

Definitions live in a directory: DIR/prod.yaml is environment "prod" (project "default"),
DIR/demos/aws-access.yaml is "demos/aws-access". The directory is --dir, else $ESCFS_DIR,
else ~/.config/escfs/environments.

With --cloud, the environments are those of a Pulumi Cloud organization instead, opened
by the service (--cloud ORG, or the account's default organization). The account is the
one the Pulumi CLI uses: PULUMI_ACCESS_TOKEN, else the login in ~/.pulumi/credentials.json
(esc login, pulumi login), at PULUMI_BACKEND_URL if it is http(s), else that login's URL,
else https://api.pulumi.com. ls, open, run, check and mount work the same on either.`,
		Example: `  escfs --dir examples ls
  escfs --dir examples open demos/cluster
  escfs --dir examples open app -f shell
  escfs --dir examples run demos/aws-access -- sh -c 'echo $AWS_REGION'
  escfs --dir examples check
  escfs --dir examples mount /tmp/esc
  escfs --cloud ls
  escfs --cloud acme run infra/aws -- aws sts get-caller-identity
  escfs --cloud acme mount ~/esc`,
		Version:       versionString(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.PersistentFlags().StringVarP(&g.dir, "dir", "d", "", "definitions directory (default $ESCFS_DIR, else ~/.config/escfs/environments)")
	root.PersistentFlags().StringSliceVar(&g.allowHosts, "allow-host", nil,
		"a `HOST` or HOST:PORT that definitions may name (a pulumi-stacks backend, an s3 endpoint) and that may receive your Pulumi token or AWS credentials; repeatable; adds to $"+safehttp.AllowHostsEnv)
	root.PersistentPreRun = func(*cobra.Command, []string) { g.applyAllowHosts() }
	addCloudFlags(root, g)
	g.flags = root.PersistentFlags()
	addLimitFlags(root)
	for _, add := range commands {
		root.AddCommand(add(g))
	}
	return root
}

// commands are the subcommand constructors; each file adds its own in init.
var commands []func(*globalFlags) *cobra.Command

// execute runs the CLI with the process's standard streams and returns the
// process exit status.
func execute(args []string) int {
	return executeIO(args, os.Stdin, os.Stdout, os.Stderr)
}

// executeIO runs the CLI with the given standard streams; commands reach
// them through cmd.InOrStdin, cmd.OutOrStdout and cmd.ErrOrStderr.
func executeIO(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// Whatever a service echoes, or an error quotes, no credential escfs
	// holds reaches the terminal or the log (stdout is the values asked
	// for, secrets included, and is left alone).
	redact.FromEnv()
	stderr = redact.Writer(stderr)
	root := newRootCommand()
	root.SetArgs(cloudArgs(root, args))
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	var exit *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.code
	default:
		fmt.Fprintln(stderr, "escfs:", err)
		return 1
	}
}

// absPath makes p absolute, leaving it as is if that fails.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
