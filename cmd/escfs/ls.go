package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func init() { commands = append(commands, newLsCommand) }

func newLsCommand(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List the environments of the definitions directory (or of Pulumi Cloud)",
		Long: `List the environments defined in the definitions directory, one name per line, sorted:
"prod" for DIR/prod.yaml, "demos/aws-access" for DIR/demos/aws-access.yaml. These are the
names open, run and check take.

Nothing is evaluated. Files that look like definitions but cannot be environments are
reported on stderr as warnings.

With --cloud, the environments of the Pulumi Cloud organization: "PROJECT/ENV", or "ENV"
for project "default". Nothing is opened.`,
		Example: `  escfs ls
  escfs --dir ./environments ls
  for e in $(escfs ls); do escfs open "$e" > "$e.json"; done
  escfs --cloud acme ls`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, tree, err := g.source(cmd.Context())
			if err != nil {
				return err
			}
			writeDiagnostics(cmd.ErrOrStderr(), tree.Problems)
			out := cmd.OutOrStdout()
			for _, d := range tree.Definitions() {
				if _, err := fmt.Fprintln(out, d.Name.Short()); err != nil {
					return err
				}
			}
			return nil
		},
	}
}
