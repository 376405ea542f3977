package layering

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/escfs/escfs/"

// rank is the layer of each top-level directory: a package may import
// packages of a lower layer and of its own directory tree, nothing above.
var rank = map[string]int{
	"internal":    0,
	"providers":   1,
	"yamledit":    1,
	"eval":        2,
	"secrets":     3, // eval.AtRest for escfs's envelopes
	"cloud":       3, // an eval.Source
	"fs":          3,
	"runner":      3,
	"csiprovider": 3,
	"rewrite":     4, // the write side: secrets and yamledit over eval
	"cmd":         5,
	"e2e":         6, // test suites of the whole
	"torture":     6,
}

// maxShare is the largest share of the module's Go lines one package may
// hold.
const maxShare = 0.25

type pkg struct {
	ImportPath                string
	Dir                       string
	Imports                   []string
	GoFiles                   []string
	TestGoFiles, XTestGoFiles []string
}

func packages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "-tags", "e2e torture", module+"...")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// top returns the top-level directory of an import path of the module.
func top(path string) string {
	rel := strings.TrimPrefix(path, module)
	first, _, _ := strings.Cut(rel, "/")
	return first
}

// TestImportsPointDown: no import of a production file points up the
// layers; within one directory tree, a package may import its own tree.
func TestImportsPointDown(t *testing.T) {
	for _, p := range packages(t) {
		from := top(p.ImportPath)
		r, ok := rank[from]
		if !ok {
			t.Errorf("%s: top-level directory %s has no layer; add it to rank", p.ImportPath, from)
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			to := top(imp)
			if to != from && rank[to] >= r {
				t.Errorf("%s imports %s: layer %d (%s) may import only lower layers, not %d (%s)", p.ImportPath, imp, r, from, rank[to], to)
			}
		}
	}
}

// TestNoPackageHoldsAQuarter: no package holds more than maxShare of the
// module's Go lines (tests included).
func TestNoPackageHoldsAQuarter(t *testing.T) {
	lines := map[string]int{}
	total := 0
	for _, p := range packages(t) {
		for _, f := range append(append(append([]string{}, p.GoFiles...), p.TestGoFiles...), p.XTestGoFiles...) {
			n := countLines(t, filepath.Join(p.Dir, f))
			lines[p.ImportPath] += n
			total += n
		}
	}
	names := make([]string, 0, len(lines))
	for n := range lines {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return lines[names[i]] > lines[names[j]] })
	for i, n := range names {
		share := float64(lines[n]) / float64(total)
		if i < 8 {
			t.Logf("%-45s %6d lines %5.1f%%", strings.TrimPrefix(n, module), lines[n], 100*share)
		}
		if share > maxShare {
			t.Errorf("%s holds %.0f%% of the module's %d lines, more than %.0f%%", n, 100*share, total, 100*maxShare)
		}
	}
	t.Logf("%d lines of Go in %d packages", total, len(lines))
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		n++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(fmt.Errorf("%s: %w", path, err))
	}
	return n
}
