package main

import (
	"strings"
	"testing"

	"github.com/escfs/escfs/internal/filetree"
)

func TestLs(t *testing.T) {
	dir := filetree.Write(t, "", map[string]string{
		"prod.yaml":          "values: {}\n",
		"app.yml":            "values: {}\n",
		"demos/z.yaml":       "values: {}\n",
		"demos/aws.yaml":     "values: {}\n",
		"default/other.yaml": "values: {}\n",
		"bad name.yaml":      "values: {}\n",
		"notes.txt":          "not a definition\n",
	})
	r := escfsCLI(t, "--dir", dir, "ls")
	want := "app\ndemos/aws\ndemos/z\nother\nprod\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("exit %d, stdout %q; want 0, %q", r.code, r.stdout, want)
	}
	if !strings.Contains(r.stderr, "bad name.yaml: warning: not an environment") {
		t.Fatalf("stderr %q does not report bad name.yaml", r.stderr)
	}
}

func TestLsMissingDir(t *testing.T) {
	r := escfsCLI(t, "--dir", t.TempDir()+"/nope", "ls")
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "read definitions directory") {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}
