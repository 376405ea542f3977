package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/rewrite"
)

func init() { commands = append(commands, newSetCommand) }

func newSetCommand(g *globalFlags) *cobra.Command {
	var secret, str, yes bool
	cmd := &cobra.Command{
		Use:   "set ENV PATH VALUE",
		Short: "Set one value of an environment's definition",
		Long: `Set values.PATH of ENV's definition to VALUE, in place: the rest of the file, its
comments and layout, stays as it was, and the file is replaced atomically.

PATH is a property path as esc writes it: db.password, hosts[0], tags["a.b"]. Missing
keys are added. VALUE is YAML, as esc env set takes it (8080 is a number, true a
boolean, [a, b] a list); --string takes it as a string whatever it looks like. A VALUE
of - reads the value from stdin, exactly (a trailing newline is part of it).

--secret writes the value as fn::secret, encrypted to the recipients of the first rule
of .escfs.yaml that covers ENV (see escfs secrets --help), bound to ENV and PATH, under a
new data key; recipients that none of the file's ciphertexts has are named and need
confirmation (or --yes). The plaintext never reaches
the file, the disk or the terminal. Pass it on stdin (-) to keep it out of your shell's
history and the process list.

The change is checked first (evaluated without opening providers): a change that
leaves a working environment broken is refused.`,
		Example: `  escfs set app log.level debug
  escfs set app replicas 3
  printf %s "$DB_PASSWORD" | escfs set prod/db db.password - --secret`,
		Args:              cobra.ExactArgs(3),
		ValidArgsFunction: completeEnvs(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, path, value := args[0], args[1], args[2]
			if value == "-" {
				b, err := io.ReadAll(cmd.InOrStdin())
				if err != nil {
					return fmt.Errorf("read the value from stdin: %w", err)
				}
				value = string(b)
			}
			kind := rewrite.YAML
			switch {
			case secret && str:
				return errors.New("--secret and --string: a secret is always a string, give one of them")
			case secret:
				kind = rewrite.Secret
			case str:
				kind = rewrite.String
			}
			ed, err := g.newEditor()
			if err != nil {
				return err
			}
			c, err := ed.Set(cmd.Context(), name, path, value, kind)
			if err != nil {
				return err
			}
			if err := refuseBreaking(cmd, ed, name, c); err != nil {
				return err
			}
			if err := confirmRecipients(cmd.ErrOrStderr(), nil, yes, name, c); err != nil {
				return err
			}
			if err := c.Write(); err != nil {
				return err
			}
			what := "set"
			if secret {
				what = "set (encrypted)"
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s %s in %s%s\n", what, path, c.Path, fallbackNote(c))
			return nil
		},
	}
	cmd.Flags().BoolVar(&secret, "secret", false, "encrypt the value as an fn::secret, per the rules of .escfs.yaml")
	cmd.Flags().BoolVar(&str, "string", false, "take VALUE as a string, not YAML")
	yesFlag(cmd, &yes)
	return cmd
}

// refuseBreaking refuses a change that turns an environment without errors
// into one with errors, and prints why. A broken environment may be
// changed (a set may be how it gets fixed).
func refuseBreaking(cmd *cobra.Command, ed *rewrite.Editor, name string, c rewrite.Change) error {
	var de *eval.DiagnosticsError
	after := checkEdit(cmd.Context(), ed, name, c.New)
	if after == nil {
		return nil
	}
	if !errors.As(after, &de) {
		return after
	}
	if before := checkEdit(cmd.Context(), ed, name, c.Old); before != nil {
		return nil // already broken
	}
	writeDiagnostics(cmd.ErrOrStderr(), de.Diagnostics)
	fmt.Fprintf(cmd.ErrOrStderr(), "not written: the change breaks %s\n", name)
	return &exitError{1}
}
