package main

import (
	"strings"
	"testing"

	"github.com/escfs/escfs/internal/filetree"
)

// TestMountRefusesNonsenseFlags: settings that would serve expired
// credentials or renew in a loop are refused before anything is mounted.
func TestMountRefusesNonsenseFlags(t *testing.T) {
	dir := filetree.Write(t, "", map[string]string{"prod.yaml": "values: {a: 1}\n"})
	mnt := t.TempDir()
	for _, c := range []struct {
		flag, value, want string
	}{
		{"--refresh-margin", "-1s", "negative"},
		{"--eval-timeout", "0s", "must be positive"},
		{"--eval-timeout", "-5s", "must be positive"},
		{"--min-renewal-interval", "0s", "must be positive"},
	} {
		r := escfsCLI(t, "--dir", dir, "mount", c.flag, c.value, mnt)
		if r.code == 0 || !strings.Contains(r.stderr, c.flag) || !strings.Contains(r.stderr, c.want) {
			t.Errorf("mount %s %s: exit %d, stderr %q; want a refusal naming the flag (%q)", c.flag, c.value, r.code, r.stderr, c.want)
		}
	}
}

// TestLimitFlags: a definition over a limit fails check with a located
// diagnostic naming the flag, and passes once the flag raises the limit.
func TestLimitFlags(t *testing.T) {
	dir := filetree.Write(t, "", map[string]string{
		"deep.yaml": "values:\n  a: " + strings.Repeat("[", 70) + strings.Repeat("]", 70) + "\n",
	})
	r := escfsCLI(t, "--dir", dir, "check", "deep")
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "deep.yaml:2:") || !strings.Contains(r.stdout+r.stderr, "--max-nesting") {
		t.Fatalf("check of a definition over the nesting limit: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = escfsCLI(t, "--dir", dir, "--max-nesting", "100", "check", "deep")
	if r.code != 0 {
		t.Fatalf("check --max-nesting 100: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
