package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/escfs/escfs/internal/filetree"
	"github.com/escfs/escfs/internal/proppath"
	"github.com/escfs/escfs/internal/testutil"
)

// TestRunFlagsAroundEnv checks run's command line rule: escfs's flags go
// before or after ENV, the command starts after -- or at the first argument
// after ENV that is not a flag, and the command's own flags are never
// escfs's. (It lives here because run_test.go belongs to another change.)
func TestRunFlagsAroundEnv(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	t.Setenv("XDG_RUNTIME_DIR", testutil.MemTempDir(t))
	dir := runDefs(t)
	printToken := []string{"sh", "-c", `printf '%s' "$TOKEN"`}
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantOut    string
		wantErrHas string
	}{
		{"-i before ENV", append([]string{"-i", "app", "--"}, printToken...), 0, "s3cr3t-token", ""},
		{"-i after ENV", append([]string{"app", "-i", "--"}, printToken...), 0, "s3cr3t-token", ""},
		{"--interactive after ENV, no --", append([]string{"app", "--interactive"}, printToken...), 0, "s3cr3t-token", ""},
		{"--dir after ENV", append([]string{"app", "--dir", dir, "--"}, printToken...), 0, "[secret]", ""},
		{"no -i: redacted", append([]string{"app", "--"}, printToken...), 0, "[secret]", ""},
		{"the command's -i is its own", []string{"app", "--", "sh", "-c", "echo -i"}, 0, "-i\n", ""},
		{"the command's -i is its own, no --", []string{"app", "sh", "-c", "echo -i"}, 0, "-i\n", ""},
		{"flags after the command are its own", []string{"app", "-i", "--", "echo", "-i", "--", "x"}, 0, "-i -- x\n", ""},
		{"unknown flag after ENV", []string{"app", "-x", "sh"}, 1, "", `goes after --`},
		{"flag without its value after ENV", []string{"app", "--dir"}, 1, "", `flag needs an argument`},
		{"a command starting with - after --", []string{"app", "--", "-no-such-command"}, 127, "", "executable file not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := escfsCLI(t, append([]string{"--dir", dir, "run"}, tt.args...)...)
			if r.code != tt.wantCode || r.stdout != tt.wantOut || !strings.Contains(r.stderr, tt.wantErrHas) {
				t.Fatalf("exit %d, stdout %q, stderr %q\nwant exit %d, stdout %q, stderr with %q",
					r.code, r.stdout, r.stderr, tt.wantCode, tt.wantOut, tt.wantErrHas)
			}
		})
	}
}

// completeDefs is a definitions directory for the completion tests: prod
// imports base, which uses a provider; demos/aws-access is in project demos.
func completeDefs(t *testing.T) string {
	return filetree.Write(t, "", map[string]string{
		"prod.yaml": `imports:
  - base
values:
  aws:
    region: us-west-2
    creds:
      fn::open::aws-login:
        static:
          accessKeyId: AKIAEXAMPLE
          secretAccessKey:
            fn::secret: do-not-print-me
  tags: [a, b]
  labels:
    app.kubernetes.io/name: web
  quoted:
    'say "hi"': 1
    kubernetes:kubeconfig: 2
`,
		"base.yaml": `values:
  app:
    port: 8080
`,
		"preview.yaml":          "values:\n  x: 1\n",
		"demos/aws-access.yaml": "values:\n  aws:\n    region: eu-west-1\n",
	})
}

// completions runs escfs __complete with args and returns the candidates
// and the directive.
func completions(t *testing.T, args ...string) ([]string, string) {
	t.Helper()
	r := escfsCLI(t, append([]string{"__complete"}, args...)...)
	if r.code != 0 {
		t.Fatalf("escfs __complete %q: exit %d, stderr %q", args, r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	return lines[:len(lines)-1], lines[len(lines)-1]
}

func TestCompletion(t *testing.T) {
	dir := completeDefs(t)
	const noFile, fileDefault = ":4", ":0"
	tests := []struct {
		name          string
		args          []string
		want          []string
		wantDirective string
	}{
		{"open: every environment", []string{"open", ""}, []string{"base", "demos/aws-access", "preview", "prod"}, noFile},
		{"open: prefix", []string{"open", "pr"}, []string{"preview", "prod"}, noFile},
		{"open: project prefix", []string{"open", "de"}, []string{"demos/aws-access"}, noFile},
		{"open: no match", []string{"open", "zz"}, nil, noFile},
		{"open ENV: every path, imports first, fn:: calls not opened", []string{"open", "prod", ""},
			[]string{"app", "app.port", "aws", "aws.region", "aws.creds", "tags", "tags[0]", "tags[1]", "labels", `labels["app.kubernetes.io/name"]`,
				"quoted", `quoted["say \"hi\""]`, "quoted.kubernetes:kubeconfig"}, noFile},
		{"open ENV: path prefix", []string{"open", "prod", "aws.c"}, []string{"aws.creds"}, noFile},
		{"open ENV: project environment", []string{"open", "demos/aws-access", "aws."}, []string{"aws.region"}, noFile},
		{"open ENV: unknown environment", []string{"open", "nosuch", ""}, nil, noFile},
		{"open ENV PATH: nothing more", []string{"open", "prod", "aws", ""}, nil, noFile},
		{"open -f: formats", []string{"open", "prod", "-f", ""}, openFormats, noFile},
		{"run: environments", []string{"run", "p"}, []string{"preview", "prod"}, noFile},
		{"run -i: environments", []string{"run", "-i", "p"}, []string{"preview", "prod"}, noFile},
		{"run ENV: the command is the shell's to complete", []string{"run", "prod", ""}, nil, fileDefault},
		{"check: environments not given yet", []string{"check", "prod", "p"}, []string{"preview"}, noFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, directive := completions(t, append([]string{"--dir", dir}, tt.args...)...)
			if !slices.Equal(got, tt.want) || directive != tt.wantDirective {
				t.Fatalf("candidates %q, directive %s; want %q, %s", got, directive, tt.want, tt.wantDirective)
			}
			for _, c := range got {
				if strings.Contains(c, "do-not-print-me") || strings.Contains(c, "AKIAEXAMPLE") {
					t.Fatalf("a value was offered: %q", c)
				}
				if len(tt.args) == 3 && tt.args[0] == "open" {
					if _, err := proppath.Parse(c); err != nil {
						t.Fatalf("offered path %q is not one open takes: %v", c, err)
					}
				}
			}
		})
	}
}

// TestCompletionSource checks that names come from $ESCFS_DIR without --dir,
// and that --dir wins over it.
func TestCompletionSource(t *testing.T) {
	t.Setenv("ESCFS_DIR", completeDefs(t))
	if got, _ := completions(t, "open", "demos/"); !slices.Equal(got, []string{"demos/aws-access"}) {
		t.Fatalf("from $ESCFS_DIR: %q", got)
	}
	other := filetree.Write(t, "", map[string]string{"staging.yaml": "values: {}\n"})
	if got, _ := completions(t, "--dir", other, "open", ""); !slices.Equal(got, []string{"staging"}) {
		t.Fatalf("from --dir: %q", got)
	}
}
