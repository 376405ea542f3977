package eval_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/eval/evaltest"
	"github.com/escfs/escfs/providers/builtin"
)

// hostileCase is a definition set built to hurt the evaluator.
type hostileCase struct {
	name  string
	files func(dir string) // writes the definitions; the environment under test is "<name>"
	// want is a substring of the error diagnostic, "" if the environment
	// must evaluate without errors.
	want string
	// at is the file:line the diagnostic must point at, relative to dir.
	at string
}

func writeBig(t *testing.T, p string, size int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("values:\n")
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "  key%08d: value%08d\n", i, i)
	}
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func hostileCases(t *testing.T) []hostileCase {
	w := func(dir, name, content string) { writeFile(t, dir, name, content) }
	return []hostileCase{
		{name: "diamond", want: "--max-imports", at: "diamond.yaml:2", files: func(dir string) {
			// 22 levels of a and b, each importing both of the next level:
			// 2^22 paths; the evaluator overflows the Go stack on it.
			w(dir, "diamond.yaml", "imports:\n  - l0a\n  - l0b\nvalues:\n  top: 1\n")
			for i := range 22 {
				for _, s := range []string{"a", "b"} {
					imp := ""
					if i < 21 {
						imp = fmt.Sprintf("imports:\n  - l%da\n  - l%db\n", i+1, i+1)
					}
					w(dir, fmt.Sprintf("l%d%s.yaml", i, s), imp+fmt.Sprintf("values:\n  v%d%s: 1\n", i, s))
				}
			}
		}},
		{name: "chain", want: "--max-import-depth", at: "chain.yaml:2", files: func(dir string) {
			w(dir, "chain.yaml", "imports:\n  - c0\n")
			for i := range 10000 {
				imp := ""
				if i < 9999 {
					imp = fmt.Sprintf("imports:\n  - c%d\n", i+1)
				}
				w(dir, fmt.Sprintf("c%d.yaml", i), imp+fmt.Sprintf("values:\n  v%d: %d\n", i, i))
			}
		}},
		{name: "wide", want: "--max-imports", at: "wide.yaml", files: func(dir string) {
			var b strings.Builder
			b.WriteString("imports:\n")
			for range 5000 {
				b.WriteString("  - leaf\n")
			}
			w(dir, "wide.yaml", b.String())
			w(dir, "leaf.yaml", "values:\n  leaf: 1\n")
		}},
		{name: "big", want: "--max-definition-size", at: "big.yaml:1", files: func(dir string) {
			writeBig(t, filepath.Join(dir, "big.yaml"), 50<<20)
		}},
		{name: "bigimport", want: "--max-definition-size", at: "bigdep.yaml:1", files: func(dir string) {
			w(dir, "bigimport.yaml", "imports:\n  - bigdep\n")
			writeBig(t, filepath.Join(dir, "bigdep.yaml"), 2<<20)
		}},
		{name: "flow", want: "--max-nesting", at: "flow.yaml:2", files: func(dir string) {
			w(dir, "flow.yaml", "values:\n  a: "+strings.Repeat("{a: ", 5000)+"1"+strings.Repeat("}", 5000)+"\n")
		}},
		{name: "block", want: "--max-nesting", files: func(dir string) {
			var b strings.Builder
			b.WriteString("values:\n")
			for i := range 1000 {
				b.WriteString(strings.Repeat(" ", i+1) + "k:\n")
			}
			b.WriteString(strings.Repeat(" ", 1001) + "v\n")
			w(dir, "block.yaml", b.String())
		}},
		{name: "deepimport", want: "--max-nesting", at: "nested.yaml:2", files: func(dir string) {
			w(dir, "deepimport.yaml", "imports:\n  - nested\n")
			w(dir, "nested.yaml", "values:\n  a: "+strings.Repeat("[", 200)+strings.Repeat("]", 200)+"\n")
		}},
		{name: "hugestring", files: func(dir string) {
			// 900 KiB in one string: under the size limit, so it evaluates.
			w(dir, "hugestring.yaml", "values:\n  environmentVariables:\n    BIG: "+strings.Repeat("x", 900<<10)+"\n")
		}},
		{name: "laughs", want: "alias", files: func(dir string) {
			s := "values:\n  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
			for i := 1; i < 10; i++ {
				s += fmt.Sprintf("  a%d: &a%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d,", i-1), 9), ","))
			}
			w(dir, "laughs.yaml", s)
		}},
		{name: "cycle", want: "cycl", files: func(dir string) {
			w(dir, "cycle.yaml", "imports:\n  - cycle2\n")
			w(dir, "cycle2.yaml", "imports:\n  - cycle\n")
		}},
		{name: "binary", want: "", files: func(dir string) {
			w(dir, "binary.yaml", "\x00\xff\xfe garbage \x00")
		}},
	}
}

var locRe = regexp.MustCompile(`^(.+):(\d+):(\d+): `)

// TestHostileDefinitions: every hostile definition gives a located
// diagnostic naming the limit's flag (or evaluates, if it is legitimate),
// quickly, without a panic, and a good environment beside them is unharmed.
func TestHostileDefinitions(t *testing.T) {
	dir := t.TempDir()
	cases := hostileCases(t)
	for _, c := range cases {
		c.files(dir)
	}
	writeFile(t, dir, "good.yaml", "values:\n  environmentVariables:\n    GOOD: yes\n")
	s := evaltest.NewStore(t, dir, func(c *evaltest.Config) {
		c.Store.FilesDir = func(eval.Name) string { return "/files" }
		c.Store.EvalTimeout = 20 * time.Second
	})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			snap, err := snapshotWithin(t, s, c.name, 30*time.Second)
			if errors.Is(err, eval.ErrEvalTimeout) || errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("evaluation timed out instead of refusing the input: %v", err)
			}
			if c.name == "binary" {
				if err == nil {
					t.Fatalf("a binary file evaluated without errors")
				}
				return
			}
			if c.want == "" {
				if err != nil {
					t.Fatalf("a legitimate definition failed: %v", err)
				}
				return
			}
			var derr *eval.DiagnosticsError
			if !errors.As(err, &derr) {
				t.Fatalf("err = %v, want diagnostics mentioning %q", err, c.want)
			}
			found := false
			for _, d := range derr.Diagnostics {
				if d.Severity != eval.SeverityError || !strings.Contains(d.Message, c.want) {
					continue
				}
				found = true
				m := locRe.FindStringSubmatch(d.String())
				if m == nil || !strings.HasPrefix(m[1], dir) {
					t.Fatalf("diagnostic %q is not located at FILE:LINE:COL in %s", d, dir)
				}
				if c.at != "" && !strings.HasPrefix(strings.TrimPrefix(d.String(), dir+"/"), c.at) {
					t.Fatalf("diagnostic %q, want it at %s", d, c.at)
				}
			}
			if !found {
				t.Fatalf("no error diagnostic mentions %q:\n%v", c.want, err)
			}
			_ = snap
		})
	}
	if got := envVar(t, s, "good", "GOOD"); got != "yes" {
		t.Fatalf("GOOD = %q beside the hostile definitions", got)
	}
}

// TestLimitsRaisedByOptions: a definition over a default limit evaluates
// once the limit is raised, so the flag named in the diagnostic works.
func TestLimitsRaisedByOptions(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "deep.yaml", "values:\n  environmentVariables:\n    A: "+strings.Repeat("{a: ", 70)+"1"+strings.Repeat("}", 70)+"\n")
	writeFile(t, dir, "fan.yaml", "imports:\n"+strings.Repeat("  - leaf\n", 1001))
	writeFile(t, dir, "leaf.yaml", "values:\n  leaf: 1\n")
	for _, c := range []struct {
		env    string
		limits eval.Limits
	}{
		{"deep", eval.Limits{MaxNesting: 80}},
		{"fan", eval.Limits{MaxImports: 1001}},
	} {
		for _, raised := range []bool{false, true} {
			ev := &eval.Evaluator{Providers: builtin.Registry()}
			if raised {
				ev.Limits = c.limits
			}
			s := evaltest.NewStore(t, dir, func(c *evaltest.Config) {
				c.Source.Evaluator = ev
				c.Store.FilesDir = func(eval.Name) string { return "/files" }
			})
			_, err := s.Snapshot(context.Background(), evaltest.Name(t, c.env))
			s.Close()
			if raised && err != nil {
				t.Errorf("%s with %+v: %v", c.env, c.limits, err)
			}
			if !raised && err == nil {
				t.Errorf("%s passed the default limits", c.env)
			}
		}
	}
}
