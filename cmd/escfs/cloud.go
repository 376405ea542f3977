package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/escfs/escfs/cloud"
	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/internal/pulumiaccount"
)

// cloudDefaultOrg is --cloud's value when it is given without one: the
// account's default organization.
const cloudDefaultOrg = "(default)"

// addCloudFlags adds --cloud, which makes Pulumi Cloud the source of the
// environments, and the settings of that source.
func addCloudFlags(root *cobra.Command, g *globalFlags) {
	f := root.PersistentFlags()
	f.StringVar(&g.cloudOrg, "cloud", "", "serve the environments of Pulumi Cloud organization `ORG` instead of a directory (without ORG: the account's default organization)")
	f.Lookup("cloud").NoOptDefVal = cloudDefaultOrg
	f.DurationVar(&g.openDuration, "open-duration", cloud.DefaultOpenDuration, "with --cloud: how long each open session lasts (it is renewed before it ends)")
	f.DurationVar(&g.poll, "poll", cloud.DefaultPoll, "with --cloud: how often to look for new, removed and changed environments")
	f.DurationVar(&g.requestTimeout, "request-timeout", cloud.DefaultRequestTimeout, "with --cloud: the longest a listing or an open may wait for Pulumi Cloud")
}

// cloudArgs lets --cloud take its organization as the next argument
// (escfs --cloud acme ls) as well as --cloud=acme, although the
// organization is optional: before the command, "--cloud X" becomes
// "--cloud=X" unless X is a flag or a command (escfs --cloud ls lists the
// default organization; an organization named like a command needs
// --cloud=NAME). Nothing from the command on is touched: run's command
// line is the command's.
func cloudArgs(root *cobra.Command, args []string) []string {
	out := slices.Clone(args)
	i := 0
	if len(out) > 0 && (out[0] == cobra.ShellCompRequestCmd || out[0] == cobra.ShellCompNoDescRequestCmd) {
		i = 1
	}
	for ; i < len(out); i++ {
		a := out[i]
		switch {
		case a == "--":
			return out
		case a == "--cloud":
			if i+1 < len(out) && isOrgArg(root, out[i+1]) {
				out[i] = "--cloud=" + out[i+1]
				out = slices.Delete(out, i+1, i+2)
			}
		case strings.HasPrefix(a, "-"):
			if takesValue(root, a) {
				i++ // --dir DIR, -d DIR, --max-nesting N
			}
		default:
			return out // the command
		}
	}
	return out
}

// isOrgArg reports whether the argument after a bare --cloud is its
// organization: not a flag and not a command.
func isOrgArg(root *cobra.Command, a string) bool {
	if a == "" || strings.HasPrefix(a, "-") || a == "help" || a == "completion" || strings.HasPrefix(a, "__") {
		return false
	}
	for _, c := range root.Commands() {
		if c.Name() == a || slices.Contains(c.Aliases, a) {
			return false
		}
	}
	return true
}

// takesValue reports whether the root flag a (--name or -n, without =) is
// followed by its value as the next argument.
func takesValue(root *cobra.Command, a string) bool {
	if strings.Contains(a, "=") {
		return false
	}
	name, short := strings.TrimPrefix(a, "--"), strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--")
	flags := root.PersistentFlags()
	f := flags.Lookup(name)
	if short && len(a) == 2 {
		f = flags.ShorthandLookup(a[1:])
	}
	return f != nil && f.NoOptDefVal == "" && f.Value.Type() != "bool"
}

// cloudSelected reports whether --cloud was given.
func (g *globalFlags) cloudSelected() bool { return g.changed("cloud") }

// changed reports whether the global flag name was given.
func (g *globalFlags) changed(name string) bool {
	if g.flags == nil {
		return false
	}
	f := g.flags.Lookup(name)
	return f != nil && f.Changed
}

// checkSourceFlags refuses a command line that names two sources, or
// Cloud settings without Cloud.
func (g *globalFlags) checkSourceFlags() error {
	cloudOn, changed := g.cloudSelected(), g.changed
	switch {
	case cloudOn && changed("dir"):
		return errors.New("--cloud and --dir both say where the environments come from: give one")
	case cloudOn && os.Getenv("ESCFS_DIR") != "":
		return errors.New("--cloud and $ESCFS_DIR both say where the environments come from: unset ESCFS_DIR to use --cloud")
	case !cloudOn && changed("open-duration"):
		return errors.New("--open-duration applies to Pulumi Cloud: add --cloud")
	case !cloudOn && changed("poll"):
		return errors.New("--poll applies to Pulumi Cloud: add --cloud")
	case cloudOn && g.openDuration <= 0:
		return fmt.Errorf("--open-duration %s: must be positive", g.openDuration)
	case cloudOn && g.poll <= 0:
		return fmt.Errorf("--poll %s: must be positive", g.poll)
	case !cloudOn && changed("request-timeout"):
		return errors.New("--request-timeout applies to Pulumi Cloud: add --cloud")
	case cloudOn && g.requestTimeout <= 0:
		return fmt.Errorf("--request-timeout %s: must be positive", g.requestTimeout)
	}
	return nil
}

// cloudSource returns the Pulumi Cloud source --cloud selects, for the
// account the Pulumi CLI would use (see pulumiaccount.Current). log
// receives its listing and polling failures (nil: slog.Default()).
func (g *globalFlags) cloudSource(ctx context.Context, log *slog.Logger) (*cloud.Source, error) {
	if err := g.checkSourceFlags(); err != nil {
		return nil, err
	}
	acct, err := pulumiaccount.Current("")
	if err != nil {
		return nil, err
	}
	org := g.cloudOrg
	if org == cloudDefaultOrg {
		org = ""
	}
	return cloud.New(ctx, cloud.Config{
		URL: acct.URL, Token: acct.Token, Org: org, DefaultOrg: acct.DefaultOrg, Username: acct.Username,
		OpenDuration: g.openDuration, Poll: g.poll, RequestTimeout: g.requestTimeout, ConsoleDomain: os.Getenv("PULUMI_CONSOLE_DOMAIN"),
		UserAgent: userAgent(), Logger: log,
	})
}

// newSource is the one place where cmd builds a source: Pulumi Cloud with
// --cloud, else the definitions directory evaluated by ev (its absolute
// path if abs, so that a mount's status and diagnostics name files from
// anywhere). It returns the source and its name for the log; a definitions
// directory that cannot be listed is an error. log receives the source's
// failures (nil: slog.Default()).
func (g *globalFlags) newSource(ctx context.Context, ev *eval.Evaluator, log *slog.Logger, abs bool) (eval.Source, string, error) {
	if g.cloudSelected() {
		src, err := g.cloudSource(ctx, log)
		if err != nil {
			return nil, "", err
		}
		return src, src.Root(), nil
	}
	dir, err := g.definitionsDir()
	if err != nil {
		return nil, "", err
	}
	if abs {
		dir = absPath(dir)
	}
	tree, err := eval.ScanDir(dir)
	if err != nil {
		return nil, "", err
	}
	return &eval.DirSource{Dir: tree.Root, Evaluator: ev, Logger: log}, tree.Root, nil
}

// source returns where this invocation's environments come from, and their
// listing. A listing that fails is an error.
func (g *globalFlags) source(ctx context.Context) (eval.Source, *eval.Tree, error) {
	src, _, err := g.newSource(ctx, newEvaluator(), nil, false)
	if err != nil {
		return nil, nil, err
	}
	var tree *eval.Tree
	if c, ok := src.(*cloud.Source); ok {
		tree, err = c.List(ctx) // not Scan, which serves the last listing on failure
	} else {
		tree, err = src.Scan(ctx)
	}
	if err != nil {
		return nil, nil, err
	}
	return src, tree, nil
}

// userAgent names this build in requests to Pulumi Cloud: escfs/VERSION.
func userAgent() string {
	v := "devel"
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	return "escfs/" + v
}
