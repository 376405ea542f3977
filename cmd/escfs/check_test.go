package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/escfs/escfs/internal/filetree"
)

// checkDefs is a tree with environments broken in different ways, good ones
// (one importing another) and one with a warning.
var checkDefs = map[string]string{
	"syntax.yaml":        "values:\n  a: [1, 2\n  b: 3\n",
	"undefined.yaml":     "values:\n  greeting: hello\n  ref: ${nope}\n",
	"demos/missing.yaml": "imports:\n  - good\n  - nothere\nvalues:\n  x: 1\n",
	"provider.yaml":      "values:\n  creds:\n    fn::open::nope:\n      x: 1\n",
	"bad name.yaml":      "values:\n  a: 1\n",
	"good.yaml":          "values:\n  name: good\n  environmentVariables:\n    NAME: ${name}\n",
	"demos/also.yaml":    "imports:\n  - good\nvalues:\n  other: ${name}\n",
	"warn.yaml":          "values:\n  files:\n    a/b: x\n",
}

func TestCheckReportsEveryBrokenEnvironment(t *testing.T) {
	dir := filetree.Write(t, "", checkDefs)
	r := escfsCLI(t, "--dir", dir, "check")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1; stderr %q", r.code, r.stderr)
	}
	p := func(rel string) string { return filepath.Join(dir, filepath.FromSlash(rel)) }
	// Diagnostics go to stdout in order, the tree's problems first.
	wantOut := []string{
		p("bad name.yaml") + `: warning: not an environment: invalid environment name "bad name"`,
		p("demos/missing.yaml") + `:3:5: environment "nothere" not found in ` + dir,
		p("provider.yaml") + `:3:5: unknown provider "nope"`,
		p("syntax.yaml") + `:2:3: yaml: did not find expected`, // the unclosed list, not yaml.v3's line 1
		p("undefined.yaml") + `:3:10: unknown property "nope"`,
		p("warn.yaml") + `:3:5: warning: file "a/b" left out`,
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != len(wantOut) {
		t.Fatalf("stdout has %d lines, want %d:\n%s", len(lines), len(wantOut), r.stdout)
	}
	for i, want := range wantOut {
		if !strings.HasPrefix(lines[i], want) {
			t.Errorf("stdout line %d:\n%s\nwant it to start with\n%s", i+1, lines[i], want)
		}
	}
	wantErr := `ok  demos/also
FAIL demos/missing (1 error)
ok  good
FAIL provider (1 error)
FAIL syntax (1 error)
FAIL undefined (1 error)
ok  warn (1 warning)
`
	if r.stderr != wantErr {
		t.Fatalf("stderr\n%s\nwant\n%s", r.stderr, wantErr)
	}
}

func TestCheckNamed(t *testing.T) {
	dir := filetree.Write(t, "", checkDefs)
	tests := []struct {
		names    []string
		wantCode int
		wantErr  string
		wantOut  string // a prefix of stdout
	}{
		{[]string{"good", "demos/also"}, 0, "ok  good\nok  demos/also\n", ""},
		{[]string{"good", "undefined"}, 1, "ok  good\nFAIL undefined (1 error)\n", filepath.Join(dir, "undefined.yaml") + ":3:10: "},
		{[]string{"nosuch"}, 1, "FAIL nosuch (1 error)\n", dir + `: environment "nosuch" not found`},
		{[]string{"bad name"}, 1, "FAIL bad name (1 error)\n", dir + `: invalid environment name "bad name"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.names, ","), func(t *testing.T) {
			r := escfsCLI(t, append([]string{"--dir", dir, "check"}, tt.names...)...)
			if r.code != tt.wantCode || r.stderr != tt.wantErr || !strings.HasPrefix(r.stdout, tt.wantOut) {
				t.Fatalf("exit %d, stderr %q, stdout %q\nwant exit %d, stderr %q, stdout starting %q",
					r.code, r.stderr, r.stdout, tt.wantCode, tt.wantErr, tt.wantOut)
			}
			if tt.wantOut == "" && r.stdout != "" {
				t.Fatalf("stdout %q, want nothing", r.stdout)
			}
		})
	}
}

func TestCheckAllGood(t *testing.T) {
	dir := filetree.Write(t, "", map[string]string{
		"good.yaml":       checkDefs["good.yaml"],
		"demos/also.yaml": checkDefs["demos/also.yaml"],
	})
	r := escfsCLI(t, "--dir", dir, "check")
	if r.code != 0 || r.stdout != "" || r.stderr != "ok  demos/also\nok  good\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}
