package main

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

func init() { commands = append(commands, newVersionCommand) }

// escModule is the module path of the Pulumi ESC evaluator escfs embeds.
const escModule = "github.com/pulumi/esc"

func newVersionCommand(*globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print escfs's version, the pulumi/esc version it embeds and the Go version",
		Long: `Print escfs's version as escfs --version does: the module version when escfs was built
by go install ...@VERSION (a tag or a pseudo-version), else the commit it was built from
(with "-dirty" if the checkout had changes) and its time; then the version of the Pulumi
ESC evaluator (github.com/pulumi/esc) it embeds, and the Go version that built it.`,
		Example: `  escfs version
  escfs --version`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), versionString())
			return err
		},
	}
}

// versionString describes this binary from its build information.
func versionString() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "escfs (no build information)"
	}
	return formatVersion(info)
}

// formatVersion describes a build: "escfs VERSION pulumi/esc vX goX", where
// VERSION is the main module's version if it is a real one, else "(devel)"
// with the commit, "-dirty" if modified, and the commit's date.
func formatVersion(info *debug.BuildInfo) string {
	parts := []string{"escfs", mainVersion(info)}
	if esc := depVersion(info, escModule); esc != "" {
		parts = append(parts, "pulumi/esc "+esc)
	}
	if info.GoVersion != "" {
		parts = append(parts, info.GoVersion)
	}
	return strings.Join(parts, " ")
}

// mainVersion is the main module's version when go install stamped one,
// else what the VCS settings say about the checkout go build ran in.
func mainVersion(info *debug.BuildInfo) string {
	v := info.Main.Version
	if v != "" && v != "(devel)" && !strings.HasSuffix(v, "+dirty") {
		return v
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	rev := settings["vcs.revision"]
	if rev == "" {
		if v == "" {
			return "(devel)"
		}
		return v
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if settings["vcs.modified"] == "true" {
		rev += "-dirty"
	}
	desc := "commit " + rev
	if t := settings["vcs.time"]; t != "" {
		desc += ", " + t
	}
	if v == "" {
		v = "(devel)"
	}
	return v + " (" + desc + ")"
}

// depVersion returns the version of the dependency path, after any
// replacement, or "".
func depVersion(info *debug.BuildInfo, path string) string {
	for _, d := range info.Deps {
		if d.Path != path {
			continue
		}
		if d.Replace != nil && d.Replace.Version != "" {
			return d.Replace.Version
		}
		return d.Version
	}
	return ""
}
