package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/escfs/escfs/internal/filetree"
)

func allDistinct(s []string) bool {
	seen := map[string]bool{}
	for _, v := range s {
		if seen[v] {
			return false
		}
		seen[v] = true
	}
	return true
}

// open and run evaluate afresh every time: they keep no cache, so expiring
// credentials are new on every call.
func TestOpenAndRunEvaluateAfresh(t *testing.T) {
	dir := filetree.Write(t, "", map[string]string{"live.yaml": `values:
  creds:
    fn::open::token:
      ttl: 1h
  environmentVariables:
    TOKEN: ${creds.token}
`})
	var tokens []string
	for range 2 {
		r := escfsCLI(t, "--dir", dir, "open", "live", "creds.token", "-f", "string")
		if r.code != 0 {
			t.Fatalf("open: %d %s", r.code, r.stderr)
		}
		tokens = append(tokens, strings.TrimSpace(r.stdout))
	}
	for range 2 {
		out := filepath.Join(t.TempDir(), "token")
		r := escfsCLI(t, "--dir", dir, "run", "-i", "live", "--", "sh", "-c", `printf %s "$TOKEN" > "$0"`, out)
		if r.code != 0 {
			t.Fatalf("run: %d %s", r.code, r.stderr)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, string(b))
	}
	if !allDistinct(tokens) || len(tokens[0]) != 32 {
		t.Fatalf("two opens and two runs gave tokens %q: want four different fresh ones", tokens)
	}
	r := escfsCLI(t, "--dir", dir, "open", "live")
	if strings.Contains(r.stdout, "ESCFS_EXPIRES_AT") {
		t.Errorf("open -f json must print values only:\n%s", r.stdout)
	}
}

// The shipped examples evaluate without errors or warnings, with the
// example stack backend that make run gives them.
func TestExamplesAreClean(t *testing.T) {
	stacks, err := filepath.Abs("../../examples/stacks")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PULUMI_BACKEND_URL", "file://"+stacks)
	t.Setenv("PULUMI_CONFIG_PASSPHRASE_FILE", filepath.Join(stacks, "PASSPHRASE"))
	t.Setenv("PULUMI_CONFIG_PASSPHRASE", "") // restored after the test;
	os.Unsetenv("PULUMI_CONFIG_PASSPHRASE")  // set but empty is a passphrase
	r := escfsCLI(t, "--dir", "../../examples", "check")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "" {
		t.Fatalf("check examples: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, env := range []string{"app", "demos/aws-access", "demos/cluster", "demos/session", "docker-desktop"} {
		if !strings.Contains(r.stderr, "ok  "+env+"\n") {
			t.Errorf("check did not report %s ok:\n%s", env, r.stderr)
		}
	}
	// The cluster's kubeconfig is the example stack's secret output.
	r = escfsCLI(t, "--dir", "../../examples", "open", "demos/cluster", "files.KUBECONFIG", "-f", "string")
	if r.code != 0 || !strings.Contains(r.stdout, `"server":"https://127.0.0.1:6443"`) || !strings.Contains(r.stdout, "example-token-from-the-eks-cluster-stack") {
		t.Errorf("open demos/cluster files.KUBECONFIG: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}
