package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pulumi/esc"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/internal/proppath"
	"github.com/escfs/escfs/runner"
)

func init() { commands = append(commands, newOpenCommand) }

// openFormats are the output formats of escfs open.
var openFormats = []string{"json", "yaml", "string", "shell", "dotenv"}

func newOpenCommand(g *globalFlags) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "open ENV [PATH]",
		Short: "Evaluate an environment and print its values, or its variables for a shell",
		Long: `Evaluate the environment ENV and print the result, like esc open. Secrets are printed
in the clear.

Without PATH the whole environment is printed; PATH selects one value by its property path:
names separated by dots, [N] for array elements and ["key"] for keys with dots or brackets,
e.g. aws.creds, app.tags[0] or labels["app.kubernetes.io/name"].
Shell completion (see escfs completion) offers the environment names and, after ENV, the
paths written under values: in its definition and its imports, without evaluating
anything: a fn::open::... value (or any fn:: call) is offered itself, not what it returns.

Formats (-f):
  json    the values as JSON (two-space indent, sorted keys), as esc open prints them
  yaml    the same values as YAML
  string  the value as a string: scalars as they are, arrays and objects flattened
          as esc does ("a","b" and "k"="v"); a trailing newline is added if absent
  shell   export NAME='value' lines for the environmentVariables and files entries,
          quoted so that sourcing them gives every value byte for byte
  dotenv  NAME=value lines for dotenv loaders and docker --env-file

shell and dotenv print the whole environment and cannot be used with PATH. For them the
files entries are written (mode 0600) into a new private directory (mode 0700) in $TMPDIR,
and the printed variables point into it; that directory is NOT removed, since the
variables must stay valid after escfs exits. Its path is reported on stderr: remove it
when done, or use escfs run, which cleans up after the command.

Evaluation errors are printed to stderr as FILE:LINE:COL: message, one per line, and
escfs exits with status 1; warnings are printed to stderr too.

With --cloud, Pulumi Cloud opens the environment (for --open-duration) and escfs prints
what it returns, as esc open does.`,
		Example: `  escfs open app
  escfs open demos/aws-access aws.creds
  escfs open app app.tags[0] -f string
  escfs open app -f yaml
  eval "$(escfs open app -f shell)"
  escfs open app -f dotenv > .env
  escfs --cloud acme open infra/aws aws.login -f yaml`,
		Args:              cobra.RangeArgs(1, 2),
		ValidArgsFunction: completeEnvFirst(g, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runOpen(cmd, g, args, format)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "json", "output format: "+strings.Join(openFormats, ", "))
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions(openFormats, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runOpen(cmd *cobra.Command, g *globalFlags, args []string, format string) error {
	nonDumpable(cmd.ErrOrStderr())
	name := args[0]
	var path proppath.Path
	if len(args) == 2 {
		p, err := proppath.Parse(args[1])
		if err != nil {
			return err
		}
		path = p
	}
	switch format {
	case "json", "yaml", "string":
	case "shell", "dotenv":
		if path != nil {
			return fmt.Errorf("output format %q may not be used with a property path", format)
		}
	default:
		return fmt.Errorf("unknown output format %q (use one of %s)", format, strings.Join(openFormats, ", "))
	}
	src, tree, err := g.source(cmd.Context())
	if err != nil {
		return err
	}
	if format == "shell" || format == "dotenv" {
		return openShell(cmd, src, tree, name, format)
	}

	// Nothing is written, so the files variables may point anywhere.
	snap, err := produce(cmd.Context(), src, tree, name, "/nonexistent/escfs-files", cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if path == nil && format == "json" {
		_, err := out.Write(snap.ValuesJSON)
		return err
	}
	v := snap.Values
	if path != nil {
		var ok bool
		if v, ok = eval.Lookup(path, snap.Values); !ok {
			return fmt.Errorf("%s has no value at %s", name, args[1])
		}
	}
	return writeValue(out, v, format)
}

// writeValue prints v as esc open -f json|yaml|string does, secrets revealed.
func writeValue(w io.Writer, v esc.Value, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v.ToJSON(false))
	case "yaml":
		enc := yaml.NewEncoder(w)
		enc.SetIndent(3)
		if err := enc.Encode(v.ToJSON(false)); err != nil {
			return fmt.Errorf("encode yaml: %w", err)
		}
		return enc.Close()
	default: // string
		s := v.ToString(false)
		if !strings.HasSuffix(s, "\n") {
			s += "\n"
		}
		_, err := io.WriteString(w, s)
		return err
	}
}

// openShell prints the environment's variables as shell exports or dotenv
// lines, with its files written into a new private directory that is kept.
func openShell(cmd *cobra.Command, src eval.Source, tree *eval.Tree, name, format string) (err error) {
	dir, err := runner.NewFilesDir("")
	if err != nil {
		return err
	}
	keep := false
	defer func() {
		if !keep {
			err = errors.Join(err, os.RemoveAll(dir))
		}
	}()
	snap, err := produce(cmd.Context(), src, tree, name, dir, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	if len(snap.Files) > 0 {
		if err := runner.WriteFiles(dir, snap.Files); err != nil {
			return err
		}
		keep = true
		fmt.Fprintf(cmd.ErrOrStderr(), "escfs: wrote %d file(s) for %s to %s; it is not removed, delete it when done\n",
			len(snap.Files), name, dir)
	}
	out := snap.Env
	if format == "dotenv" {
		out = snap.Dotenv
	}
	_, err = cmd.OutOrStdout().Write(out)
	return err
}
