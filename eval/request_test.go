package eval_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pulumi/esc"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/providers"
	"github.com/escfs/escfs/providers/token"
)

// TestRequestDefinitionAndCheck evaluates a definition given in the request
// instead of the file (what edit checks before it saves), with its imports
// read from the tree, and checks symbolically without opening providers.
func TestRequestDefinitionAndCheck(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"base.yaml": "values:\n  region: eu-west-1\n",
		"app.yaml":  "values:\n  environmentVariables:\n    FROM_FILE: yes-file\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tree, err := eval.ScanDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	tok := &token.Provider{}
	e := &eval.Evaluator{Providers: providers.NewRegistry(map[string]esc.Provider{token.Name: tok})}
	edited := "imports: [base]\nvalues:\n  creds:\n    fn::open::token: {ttl: 1h}\n  environmentVariables:\n    REGION: ${region}\n    TOKEN: ${creds.token}\n"

	snap, err := e.Evaluate(context.Background(), tree, eval.Request{Name: "app", FilesDir: "/f", Definition: []byte(edited)})
	if err != nil {
		t.Fatal(err)
	}
	if env := string(snap.Env); !strings.Contains(env, "REGION='eu-west-1'") || strings.Contains(env, "FROM_FILE") {
		t.Errorf("Definition not evaluated in place of the file:\n%s", env)
	}
	if tok.Opens() != 1 {
		t.Fatalf("evaluation opened the provider %d times, want 1", tok.Opens())
	}

	snap, err = e.Evaluate(context.Background(), tree, eval.Request{Name: "app", FilesDir: "/f", Definition: []byte(edited), Check: true})
	if err != nil {
		t.Fatal(err)
	}
	if tok.Opens() != 1 {
		t.Errorf("a check opened the provider (%d opens)", tok.Opens())
	}
	if snap.Env != nil {
		t.Errorf("a check rendered: %q", snap.Env)
	}

	broken := "values:\n  x: ${nowhere.y}\n"
	_, err = e.Evaluate(context.Background(), tree, eval.Request{Name: "app", Definition: []byte(broken), Check: true})
	var de *eval.DiagnosticsError
	if err == nil || !strings.Contains(err.Error(), "app.yaml:2:") {
		t.Errorf("a broken edit: %v, want a diagnostic at app.yaml:2", err)
	} else if !errors.As(err, &de) {
		t.Errorf("a broken edit: %T, want *DiagnosticsError", err)
	}

	big := "values:\n  x: '" + strings.Repeat("a", 200) + "'\n"
	small := &eval.Evaluator{Providers: e.Providers, Limits: eval.Limits{MaxDefinitionSize: 100}}
	if _, err := small.Evaluate(context.Background(), tree, eval.Request{Name: "app", Definition: []byte(big), Check: true}); err == nil || !strings.Contains(err.Error(), eval.FlagMaxDefinitionSize) {
		t.Errorf("an edit over the size limit: %v", err)
	}
}
