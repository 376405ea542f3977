package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

func TestFormatVersion(t *testing.T) {
	deps := []*debug.Module{
		{Path: "github.com/spf13/cobra", Version: "v1.10.1"},
		{Path: escModule, Version: "v0.26.0"},
	}
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: "2026-12-02T20:50:43Z"},
			{Key: "vcs.modified", Value: modified},
		}
	}
	const rev = "e3db19a949d6a1b2c3d4e5f60718293a4b5c6d7e"
	tests := []struct {
		name string
		info debug.BuildInfo
		want string
	}{
		{"tag", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}, Deps: deps},
			"escfs v1.2.3 pulumi/esc v0.26.0 go1.26.8"},
		{"pseudo-version", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261202205043-e3db19a949d6"}, Deps: deps},
			"escfs v0.0.0-20261202205043-e3db19a949d6 pulumi/esc v0.26.0 go1.26.8"},
		{"devel, clean checkout", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Deps: deps, Settings: vcs(rev, "false")},
			"escfs (devel) (commit e3db19a949d6, 2026-12-02T20:50:43Z) pulumi/esc v0.26.0 go1.26.8"},
		{"devel, modified checkout", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Deps: deps, Settings: vcs(rev, "true")},
			"escfs (devel) (commit e3db19a949d6-dirty, 2026-12-02T20:50:43Z) pulumi/esc v0.26.0 go1.26.8"},
		{"dirty pseudo-version", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261202205043-e3db19a949d6+dirty"}, Deps: deps, Settings: vcs(rev, "true")},
			"escfs v0.0.0-20261202205043-e3db19a949d6+dirty (commit e3db19a949d6-dirty, 2026-12-02T20:50:43Z) pulumi/esc v0.26.0 go1.26.8"},
		{"no VCS information", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Deps: deps},
			"escfs (devel) pulumi/esc v0.26.0 go1.26.8"},
		{"replaced evaluator", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"},
			Deps: []*debug.Module{{Path: escModule, Version: "v0.26.0", Replace: &debug.Module{Path: "../esc", Version: "v0.27.0-rc1"}}}},
			"escfs v1.2.3 pulumi/esc v0.27.0-rc1 go1.26.8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := formatVersion(&tt.info); got != tt.want {
				t.Fatalf("formatVersion:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestVersionOfBuiltBinary builds escfs with go build in this checkout
// (version control stamping on, whatever GOFLAGS says) and checks that
// --version and version name a version or a commit and the evaluator.
func TestVersionOfBuiltBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "escfs")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-buildvcs=auto", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// A version (go 1.24+ stamps a pseudo-version in a checkout, "+dirty" with
	// the commit when modified), or "(devel)" and the commit.
	want := regexp.MustCompile(`^escfs (v\d+\.\d+\.\d+\S*( \(commit [0-9a-f]{12}-dirty, [^)]+\))?|\(devel\) \(commit [0-9a-f]{12}(-dirty)?, [^)]+\)) pulumi/esc v\d+\.\d+\.\d+\S* go1\.\d+`)
	for _, args := range [][]string{{"--version"}, {"version"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, bin, args...).Output()
		cancel()
		got := strings.TrimSuffix(string(out), "\n")
		if err != nil || !want.MatchString(got) || strings.Contains(got, "\n") {
			t.Fatalf("escfs %s: %v, output %q; want a line matching %s", args[0], err, got, want)
		}
	}
}
