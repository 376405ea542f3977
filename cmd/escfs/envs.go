package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/providers/builtin"
	"github.com/escfs/escfs/secrets"
)

// scanTree reads the definitions directory.
func (g *globalFlags) scanTree() (*eval.Tree, error) {
	dir, err := g.definitionsDir()
	if err != nil {
		return nil, err
	}
	return eval.ScanDir(dir)
}

// limits are the evaluation limits of this invocation, set by the global
// --max-* flags.
var limits eval.Limits

// addLimitFlags adds the --max-* flags, which every command that evaluates
// honours.
func addLimitFlags(root *cobra.Command) {
	f := root.PersistentFlags()
	f.Int64Var(&limits.MaxDefinitionSize, strings.TrimPrefix(eval.FlagMaxDefinitionSize, "--"), eval.DefaultMaxDefinitionSize, "largest definition file, in bytes")
	f.IntVar(&limits.MaxNesting, strings.TrimPrefix(eval.FlagMaxNesting, "--"), eval.DefaultMaxNesting, "deepest nesting of maps and lists in a definition")
	f.IntVar(&limits.MaxImportDepth, strings.TrimPrefix(eval.FlagMaxImportDepth, "--"), eval.DefaultMaxImportDepth, "longest chain of imports")
	f.IntVar(&limits.MaxImports, strings.TrimPrefix(eval.FlagMaxImports, "--"), eval.DefaultMaxImports, "most imported environments in one evaluation, counting every path (a diamond counts twice)")
}

// newEvaluator returns an evaluator with every provider of this build and
// the limits of the command line.
func newEvaluator() *eval.Evaluator {
	return &eval.Evaluator{Providers: builtin.Registry(), Limits: limits, Decrypter: keys(), AtRest: secrets.AtRest{}}
}

// produce evaluates (or, for Pulumi Cloud, opens) the environment name of
// tree. On evaluation errors it writes every diagnostic to stderr and
// returns an *exitError; on success it writes the warnings.
func produce(ctx context.Context, src eval.Source, tree *eval.Tree, name, filesDir string, stderr io.Writer) (*eval.Snapshot, error) {
	def, err := tree.Lookup(name)
	if err != nil {
		return nil, err
	}
	snap, err := src.Produce(ctx, tree, def.Name, filesDir)
	var de *eval.DiagnosticsError
	switch {
	case errors.As(err, &de):
		writeDiagnostics(stderr, de.Diagnostics)
		return nil, &exitError{1}
	case err != nil:
		return nil, err
	}
	writeDiagnostics(stderr, snap.Diagnostics) // warnings only
	return snap, nil
}

// writeDiagnostics writes each diagnostic on a line as FILE:LINE:COL: message.
func writeDiagnostics(w io.Writer, diags eval.Diagnostics) {
	for _, d := range diags {
		fmt.Fprintln(w, d.String())
	}
}
