package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/escfs/escfs/internal/filetree"
)

// TestCheckWarnsAboutRenderings: check prints, at the literal or the key,
// the warnings rendering adds (a number that does not keep its text, a
// variable no dotenv quoting holds), and warnings alone still exit 0.
func TestCheckWarnsAboutRenderings(t *testing.T) {
	dir := filetree.Write(t, "", map[string]string{"n.yaml": `values:
  environmentVariables:
    ACCOUNT: 012345678901
    RATIO: 1.10
    PORT: 8080
    TEMPLATE: $${HOME}
`})
	r := escfsCLI(t, "--dir", dir, "check")
	if r.code != 0 {
		t.Fatalf("exit %d, want 0 (warnings only); stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	file := filepath.Join(dir, "n.yaml")
	want := []string{
		file + ":3:14: warning: YAML reads 012345678901 as the number 1.2345678901e+10, which env, dotenv and values.json show; quote it to keep 012345678901",
		file + ":4:12: warning: YAML reads 1.10 as the number 1.1, which env, dotenv and values.json show; quote it to keep 1.10",
		file + ":6:5: warning: variable TEMPLATE left out of dotenv: its value holds ${...}, which python-dotenv expands in every value, quoted or not",
	}
	if got := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, strings.Join(want, "\n"))
	}
	if r.stderr != "ok  n (3 warnings)\n" {
		t.Errorf("stderr %q, want %q", r.stderr, "ok  n (3 warnings)\n")
	}
}
