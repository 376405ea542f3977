package eval

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pulumi/esc"
	esceval "github.com/pulumi/esc/eval"

	"github.com/escfs/escfs/internal/testutil"
	"github.com/escfs/escfs/providers/builtin"
)

const (
	benchImports        = 10
	benchInterpolations = 200
)

// benchDefinitions returns an environment "main" that imports benchImports
// environments and holds benchInterpolations interpolations of their values,
// a quarter of them exported as environment variables, by file name.
func benchDefinitions() map[string]string {
	defs := map[string]string{}
	var main strings.Builder
	main.WriteString("imports:\n")
	for i := range benchImports {
		fmt.Fprintf(&main, "  - imp%d\n", i)
		var imp strings.Builder
		fmt.Fprintf(&imp, "values:\n  imp%d:\n", i)
		for j := range 20 {
			fmt.Fprintf(&imp, "    k%d: value-%d-%d\n", j, i, j)
		}
		fmt.Fprintf(&imp, "  shared: imp%d\n", i)
		defs[fmt.Sprintf("imp%d.yaml", i)] = imp.String()
	}
	main.WriteString("values:\n  v:\n")
	for n := range benchInterpolations {
		fmt.Fprintf(&main, "    i%d: \"${imp%d.k%d}/${shared}\"\n", n, n%benchImports, n%20)
	}
	main.WriteString("  environmentVariables:\n")
	for n := 0; n < benchInterpolations; n += 4 {
		fmt.Fprintf(&main, "    VAR_%d: ${v.i%d}\n", n, n)
	}
	defs["main.yaml"] = main.String()
	return defs
}

// memLoader is the minimal in-memory EnvironmentLoader for the bare evaluator.
type memLoader map[string][]byte

func (m memLoader) LoadEnvironment(_ context.Context, name string) ([]byte, esceval.Decrypter, error) {
	if src, ok := m[name]; ok {
		return src, noKeyDecrypter{}, nil
	}
	return nil, nil, fmt.Errorf("environment %q not found", name)
}

// BenchmarkEvaluate compares escfs's full path (read files, check the limits,
// evaluate, scrub, render; the directory scan excluded) with the bare
// pulumi/esc evaluator on the same definitions held in memory. The escfs
// sub-benchmarks report their time as a multiple of bare's, measured in the
// same loop, as "x-bare".
func BenchmarkEvaluate(b *testing.B) {
	defs := benchDefinitions()
	dir := writeTree(b, defs)
	tree, err := ScanDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	registry := builtin.Registry()

	mem := memLoader{}
	for file, src := range defs {
		mem[strings.TrimSuffix(file, ".yaml")] = []byte(src)
	}
	bare := func() {
		decl, diags, err := esceval.LoadYAMLBytes("main", mem["main"])
		if err != nil || diags.HasErrors() {
			b.Fatal(err, diags)
		}
		execCtx, err := esc.NewExecContext(map[string]esc.Value{})
		if err != nil {
			b.Fatal(err)
		}
		env, diags := esceval.EvalEnvironment(ctx, "default/main", decl, noKeyDecrypter{}, registry, mem, execCtx)
		if diags.HasErrors() || len(env.GetEnvironmentVariables()) != benchInterpolations/4 {
			b.Fatal(diags)
		}
	}
	b.Run("bare", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			bare()
		}
	})
	// "escfs" evaluates unchanged definitions again, as renewals and
	// importers do, with their parses kept (parsecache.go); "escfs-unparsed"
	// keeps no parse, as the first evaluation after a change. Each is timed
	// in the same loop as bare (testutil.Paired).
	for _, sub := range []struct {
		name  string
		cache *parseCache
	}{{"escfs", parses}, {"escfs-unparsed", newParseCache(0)}} {
		b.Run(sub.name, func(b *testing.B) {
			saved := parses
			parses = sub.cache
			defer func() { parses = saved }()
			e := &Evaluator{Providers: registry}
			testutil.Paired(b, "x-bare", bare, func() {
				snap, err := e.Evaluate(ctx, tree, Request{Name: "main", FilesDir: "/run/escfs/main"})
				if err != nil || len(snap.Vars) != benchInterpolations/4 {
					b.Fatal(err)
				}
			})
		})
	}
}

// TestBenchDefinitions keeps the benchmark's input honest: it evaluates, and
// holds the promised number of imports and interpolations.
func TestBenchDefinitions(t *testing.T) {
	defs := benchDefinitions()
	if n := strings.Count(defs["main.yaml"], "  - imp"); n != benchImports {
		t.Errorf("%d imports", n)
	}
	if n := strings.Count(defs["main.yaml"], "${"); n < benchInterpolations {
		t.Errorf("%d interpolations", n)
	}
	dir := writeTree(t, defs)
	snap, err := evaluate(t, testEvaluator(), dir, "main")
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Deps) != benchImports+1 {
		t.Errorf("Deps = %v", snap.Deps)
	}
	if want := "export VAR_12='value-2-12/imp9'\n"; !strings.Contains(string(snap.Env), want) {
		t.Errorf("Env lacks %q:\n%s", want, snap.Env)
	}
	if _, err := os.Stat(filepath.Join(dir, "main.yaml")); err != nil {
		t.Fatal(err)
	}
}
