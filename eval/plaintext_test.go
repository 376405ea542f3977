package eval_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/providers/builtin"
	"github.com/escfs/escfs/secrets"
)

// TestPlaintextSecretWarning checks the warning about a plaintext
// fn::secret in a file whose secrets a rule says are encrypted, at the
// plaintext's line and column, and its absence where no rule applies.
func TestPlaintextSecretWarning(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		rules string // "" for no rules file
		env   string
		want  string // "" for no warning
	}{
		{"covered", "secrets:\n  - environments: \"prod/*\"\n    age: [" + id.Recipient().String() + "]\n", "prod/db", "db.yaml:3:17: warning: plaintext fn::secret: the rule at "},
		{"not covered", "secrets:\n  - environments: \"prod/*\"\n    age: [" + id.Recipient().String() + "]\n", "dev/db", ""},
		{"no rules", "", "prod/db", ""},
		{"broken rules", "secrets: [\n", "prod/db", "db.yaml:3:17: warning: plaintext fn::secret, and the secrets rules cannot be read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			project, env, _ := strings.Cut(tc.env, "/")
			if err := os.MkdirAll(filepath.Join(dir, project), 0o755); err != nil {
				t.Fatal(err)
			}
			def := "values:\n  pw:\n    fn::secret: hunter2\n  environmentVariables:\n    PW: ${pw}\n"
			if err := os.WriteFile(filepath.Join(dir, project, env+".yaml"), []byte(def), 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.rules != "" {
				if err := os.WriteFile(filepath.Join(dir, ".escfs.yaml"), []byte(tc.rules), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			tree, err := eval.ScanDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			snap, err := (&eval.Evaluator{Providers: builtin.Registry(), AtRest: secrets.AtRest{}}).Evaluate(context.Background(), tree, eval.Request{Name: tc.env, FilesDir: "/f"})
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			for _, d := range snap.Diagnostics {
				got += d.String() + "\n"
			}
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("diagnostics:\n%s\nwant %q", got, tc.want)
			}
			if strings.Contains(got, "hunter2") {
				t.Errorf("a warning quotes the secret: %s", got)
			}
			if !strings.Contains(string(snap.Env), "hunter2") {
				t.Errorf("the warning broke the environment: %q", snap.Env)
			}
		})
	}
}
