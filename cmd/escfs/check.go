package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/escfs/escfs/eval"
)

func init() { commands = append(commands, newCheckCommand) }

func newCheckCommand(g *globalFlags) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "check [ENV...]",
		Short: "Evaluate every environment (or the named ones) and report problems",
		Long: `Evaluate every environment in the definitions directory, or only the named ones, and
report what is wrong, for editors and CI.

Every diagnostic, errors and warnings, is printed to stdout as FILE:LINE:COL: message
(warnings say "warning:" before the message). Without ENV arguments this includes files
that look like definitions but cannot be environments (a name with a space, a .yml file
shadowed by a .yaml one); those are warnings.

One summary line per environment goes to stderr: "ok  NAME", with a count of warnings
if there are any, or "FAIL NAME (N errors)". Each environment is evaluated on its own,
so one broken environment never stops the others from being checked; fn::open
providers are called as in escfs open, but no files are written.

escfs check exits with status 1 if any environment has errors, else 0.

With --cloud, each environment is opened by Pulumi Cloud, which reports its errors;
diagnostics name the environment's page in the Pulumi Cloud console.`,
		Example: `  escfs check
  escfs check app demos/aws-access
  escfs check 2>/dev/null   # diagnostics only
  escfs --cloud acme check infra/aws`,
		ValidArgsFunction: completeEnvs(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCheck(cmd, g, args, timeout)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "time limit for evaluating one environment")
	return cmd
}

// checkResult is the outcome of checking one environment.
type checkResult struct {
	name  string
	diags eval.Diagnostics
}

func runCheck(cmd *cobra.Command, g *globalFlags, names []string, timeout time.Duration) error {
	src, tree, err := g.source(cmd.Context())
	if err != nil {
		return err
	}
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	if len(names) == 0 {
		writeDiagnostics(out, tree.Problems)
		for _, d := range tree.Definitions() {
			names = append(names, d.Name.Short())
		}
	}
	failed := false
	for _, r := range checkAll(cmd.Context(), src, tree, names, timeout) {
		writeDiagnostics(out, r.diags)
		errs, warns := count(r.diags)
		switch {
		case errs > 0:
			failed = true
			fmt.Fprintf(errOut, "FAIL %s (%s)\n", r.name, plural(errs, "error"))
		case warns > 0:
			fmt.Fprintf(errOut, "ok  %s (%s)\n", r.name, plural(warns, "warning"))
		default:
			fmt.Fprintf(errOut, "ok  %s\n", r.name)
		}
	}
	if failed {
		return &exitError{1}
	}
	return nil
}

// checkAll evaluates the named environments, several at a time, and returns
// their diagnostics in the order of names.
func checkAll(ctx context.Context, src eval.Source, tree *eval.Tree, names []string, timeout time.Duration) []checkResult {
	results := make([]checkResult, len(names))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = checkOne(ctx, src, tree, name, timeout)
		})
	}
	wg.Wait()
	return results
}

// checkOne evaluates one environment and returns its diagnostics; an error
// that is not about the definitions, and even a panic of the evaluator,
// becomes an error diagnostic of this environment alone.
func checkOne(ctx context.Context, src eval.Source, tree *eval.Tree, name string, timeout time.Duration) (r checkResult) {
	r.name = name
	def, err := tree.Lookup(name)
	if err != nil {
		r.diags = eval.Diagnostics{{File: tree.Root, Severity: eval.SeverityError, Message: err.Error()}}
		return r
	}
	file := def.Path
	defer func() {
		if p := recover(); p != nil {
			r.diags = append(r.diags, eval.Diagnostic{File: file, Severity: eval.SeverityError,
				Message: fmt.Sprintf("internal error: evaluation panicked: %v", p)})
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Nothing is written, so the files variables may point anywhere.
	snap, err := src.Produce(ctx, tree, def.Name, "/nonexistent/escfs-files")
	if snap != nil {
		r.diags = snap.Diagnostics
	}
	var de *eval.DiagnosticsError
	if err != nil && !errors.As(err, &de) {
		r.diags = append(r.diags, eval.Diagnostic{File: file, Severity: eval.SeverityError, Message: err.Error()})
	}
	return r
}

// count returns the numbers of errors and warnings in diags.
func count(diags eval.Diagnostics) (errs, warns int) {
	for _, d := range diags {
		if d.Severity == eval.SeverityError {
			errs++
		} else {
			warns++
		}
	}
	return errs, warns
}

// plural formats n things.
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
