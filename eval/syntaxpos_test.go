package eval

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDiagnosticPositions: every diagnostic names the file, line and column
// at fault, also where yaml.v3 names another line or none.
func TestDiagnosticPositions(t *testing.T) {
	for _, c := range []struct {
		name, src string
		want      []string // FILE-relative "name.yaml:LINE:COL: message" prefixes, all of them
	}{
		{"flow", "values:\n  a: 1\n  b: [1, 2\n  c: 3\n", []string{"flow.yaml:3:3: yaml: did not find expected ',' or ']'"}},
		{"indent", "values:\n  a: 1\n b: 2\n", []string{"indent.yaml:3:2: yaml: did not find expected key"}},
		{"quote", "values:\n  a: \"x\n  b: 2\n", []string{"quote.yaml:2:3: yaml: found unexpected end of stream"}},
		{"utf8", "values:\n  a: \xff\xfe\n", []string{"utf8.yaml:2:6: yaml: invalid leading UTF-8 octet"}},
		{"nul", "values:\n  a: x\x00y\n", []string{"nul.yaml:2:7: yaml: control characters are not allowed"}},
		{"tab", "values:\n\ta: 1\n", []string{"tab.yaml:2:1: yaml: found character that cannot start any token"}},
		// keep evaluating after load errors: every error of the file at once
		// (the official evaluator's builtin-concat-errors and
		// builtin-split-errors cases, in small)
		{"multi", "values:\n  a:\n    fn::concat: [1, 2]\n  b:\n    fn::split: [1]\n  c: ${nope.x}\n", []string{
			"multi.yaml:5:16: the argument to fn::split must be a two-valued list",
			"multi.yaml:3:18: expected array, got number",
			"multi.yaml:3:21: expected array, got number",
			"multi.yaml:6:8: unknown property \"nope\"",
		}},
		{"comments", "# nothing here\n  # nor here\n", nil},
		{"blank", "  \n\n\t\n", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, c.name+".yaml"), []byte(c.src), 0o644); err != nil {
				t.Fatal(err)
			}
			tree, err := ScanDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			snap, err := testEvaluator().Evaluate(context.Background(), tree, Request{Name: c.name, FilesDir: "/files"})
			if c.want == nil {
				if err != nil || len(snap.Diagnostics) != 0 {
					t.Fatalf("a file of comments and blanks: %v %v, want an empty environment", err, snap.Diagnostics)
				}
				return
			}
			if snap == nil {
				t.Fatalf("no snapshot: %v", err)
			}
			var got []string
			for _, d := range snap.Diagnostics {
				got = append(got, strings.TrimPrefix(d.String(), dir+"/"))
			}
			if len(got) != len(c.want) {
				t.Fatalf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
			for i, w := range c.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("diagnostic %d = %q, want %q", i, got[i], w)
				}
			}
		})
	}
}

func TestDiagnosticQuotesHostilePaths(t *testing.T) {
	d := Diagnostic{File: "/defs/evil\n/etc/passwd:1:1: forged.yaml", Line: 2, Column: 3, Severity: SeverityError, Message: "m"}
	if s := d.String(); strings.Count(s, "\n") != 0 || !strings.HasPrefix(s, `"/defs/evil\n/etc/passwd`) {
		t.Fatalf("String() = %q, want the path quoted on one line", s)
	}
	if s := (Diagnostic{File: "/defs/plain.yaml", Line: 1, Column: 1, Message: "m"}).String(); s != "/defs/plain.yaml:1:1: m" {
		t.Fatalf("a plain path changed: %q", s)
	}
}
