package eval_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulumi/esc/schema"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/eval/evaltest"
	"github.com/escfs/escfs/providers/builtin"
)

// inputPaths lists the paths of a provider's inputs down to two levels
// (aws-login: oidc.roleArn), the places a secret can be passed.
func inputPaths(s *schema.Schema, prefix []string, depth int) [][]string {
	if s == nil || depth > 2 || len(s.Properties) == 0 {
		if len(prefix) == 0 {
			return nil
		}
		return [][]string{prefix}
	}
	names := make([]string, 0, len(s.Properties))
	for n := range s.Properties {
		names = append(names, n)
	}
	sort.Strings(names)
	var out [][]string
	if len(prefix) > 0 {
		out = append(out, prefix) // the whole object replaced by a secret string
	}
	for _, n := range names {
		out = append(out, inputPaths(s.Properties[n], append(append([]string{}, prefix...), n), depth+1)...)
	}
	return out
}

// TestNoSecretInDiagnostics seeds a marker secret into every input of
// every provider (as a whole object and as each property), in two spellings
// (plain, and with a quote and a backslash that %q and JSON escape), and
// asserts the marker appears in no error, no status and no log line.
func TestNoSecretInDiagnostics(t *testing.T) {
	home := t.TempDir()
	for k, v := range map[string]string{
		"HOME": home, "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_REGION": "us-east-1",
		"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "notreal", "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_MAX_ATTEMPTS": "1", "PULUMI_BACKEND_URL": "file://" + filepath.Join(home, "nostate"),
		"AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_ROLE_ARN": "", "PULUMI_CONFIG_PASSPHRASE": "", "PULUMI_ACCESS_TOKEN": "",
	} {
		t.Setenv(k, v)
	}
	dir := t.TempDir()
	reg := builtin.Registry()
	type probe struct{ env, marker string }
	var probes []probe
	for _, name := range reg.Names() {
		p, err := reg.LoadProvider(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		inputs, _ := p.Schema()
		for i, path := range inputPaths(inputs, nil, 0) {
			for j, spelling := range []string{`LEAKMARK-%s-%d-plain`, `LEAK\"MARK\\%s-%d`} {
				marker := fmt.Sprintf(spelling, name, i)
				env := fmt.Sprintf("%s-%d-%d", name, i, j)
				var b strings.Builder
				b.WriteString("values:\n  x:\n    fn::open::" + name + ":\n")
				for k, part := range path {
					b.WriteString(strings.Repeat("  ", k+3) + part + ":\n")
				}
				fmt.Fprintf(&b, "%sfn::secret: \"%s\"\n", strings.Repeat("  ", len(path)+3), marker)
				writeFile(t, dir, env+".yaml", b.String())
				probes = append(probes, probe{env, strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(marker)})
			}
		}
	}
	if len(probes) < 20 {
		t.Fatalf("only %d probes: the registry's schemas were not walked", len(probes))
	}
	var logs bytes.Buffer
	s := evaltest.NewStore(t, dir, func(c *evaltest.Config) {
		c.Source.Evaluator = &eval.Evaluator{Providers: reg}
		c.Store.FilesDir = func(eval.Name) string { return "/files" }
		c.Store.EvalTimeout = 20 * time.Second
		c.Store.Logger = slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	failed := 0
	for _, p := range probes {
		_, err := s.Snapshot(context.Background(), evaltest.Name(t, p.env))
		if err != nil {
			failed++
			if leaks(err.Error()) {
				t.Errorf("%s: the error quotes the secret: %s", p.env, where(err.Error()))
			}
		}
		st, _ := s.Status(evaltest.Name(t, p.env))
		b, _ := json.Marshal(st)
		if leaks(string(b)) {
			t.Errorf("%s: status quotes the secret: %s", p.env, where(string(b)))
		}
	}
	if failed < len(probes)/2 {
		t.Fatalf("only %d of %d probes failed: they do not reach the providers' input checks", failed, len(probes))
	}
	if leaks(logs.String()) {
		t.Errorf("the log quotes a secret: %s", where(logs.String()))
	}
	t.Logf("%d probes, %d failed without leaking", len(probes), failed)
}

// leaks reports whether s holds any spelling of a marker.
func leaks(s string) bool { return strings.Contains(s, "LEAK") }

// where says where a marker is, without printing the secret itself in full.
func where(s string) string {
	i := strings.Index(s, "LEAK")
	return fmt.Sprintf("at byte %d, after %q", i, s[max(0, i-60):i])
}

// syncWriter serialises writes from the store's goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}
