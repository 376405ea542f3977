//go:build torture

package torture

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"errors"

	"github.com/escfs/escfs/internal/escfstest"
	"github.com/escfs/escfs/internal/filetree"
)

// hostileEvalTimeout is the --eval-timeout of the hostile mount: no read
// of a hostile environment may wait longer (plus hostileSlack).
const (
	hostileEvalTimeout = 10 * time.Second
	hostileSlack       = 2 * time.Second
	// rssBound is the most the daemon may ever hold resident while serving
	// the whole corpus (measured: see the README's Torture table).
	rssBound = 256 << 20
)

// hostileCase is one environment of the hostile corpus.
type hostileCase struct {
	name  string                          // the environment under test
	files func(t testing.TB, dir string)  // writes its definitions
	want  string                          // in its error diagnostic; "" for any located error
	legit func(env []byte) (string, bool) // for a legitimate definition: checks its env
}

// hostileCorpus returns the definitions built to hurt the evaluator, and
// two legitimate ones at the edge (a 900 KiB string, comments only).
func hostileCorpus() []hostileCase {
	return []hostileCase{
		{name: "diamond", want: "--max-imports", files: writeDiamond},
		{name: "chain", want: "--max-import-depth", files: writeChain},
		{name: "big", want: "--max-definition-size", files: func(t testing.TB, dir string) {
			filetree.WriteFile(t, filepath.Join(dir, "big.yaml"), bigDefinition(50<<20))
		}},
		{name: "bigimport", want: "--max-definition-size", files: func(t testing.TB, dir string) {
			filetree.WriteFile(t, filepath.Join(dir, "bigimport.yaml"), "imports:\n  - bigdep\n")
			filetree.WriteFile(t, filepath.Join(dir, "bigdep.yaml"), bigDefinition(2<<20))
		}},
		{name: "flow", want: "--max-nesting", files: func(t testing.TB, dir string) {
			filetree.WriteFile(t, filepath.Join(dir, "flow.yaml"), "values:\n  a: "+strings.Repeat("{a: ", 5000)+"1"+strings.Repeat("}", 5000)+"\n")
		}},
		{name: "block", want: "--max-nesting", files: writeBlock},
		{name: "wide", want: "--max-imports", files: func(t testing.TB, dir string) {
			filetree.WriteFile(t, filepath.Join(dir, "wide.yaml"), "imports:\n"+strings.Repeat("  - leaf\n", 5000))
			filetree.WriteFile(t, filepath.Join(dir, "leaf.yaml"), "values:\n  leaf: 1\n")
		}},
		{name: "laughs", want: "alias", files: writeLaughs},
		{name: "binary", files: func(t testing.TB, dir string) {
			filetree.WriteFile(t, filepath.Join(dir, "binary.yaml"), "\x00\xff\xfe garbage \x00\x01\x02values: [\x00]\n\x00")
		}},
		{name: "cycle", want: "cycl", files: func(t testing.TB, dir string) {
			filetree.WriteFile(t, filepath.Join(dir, "cycle.yaml"), "imports:\n  - cycle2\nvalues:\n  a: 1\n")
			filetree.WriteFile(t, filepath.Join(dir, "cycle2.yaml"), "imports:\n  - cycle\nvalues:\n  b: 2\n")
		}},
		{name: "hugestring", files: func(t testing.TB, dir string) {
			filetree.WriteFile(t, filepath.Join(dir, "hugestring.yaml"), "values:\n  environmentVariables:\n    BIG: "+strings.Repeat("x", 900<<10)+"\n")
		}, legit: func(env []byte) (string, bool) {
			want := "export BIG='" + strings.Repeat("x", 900<<10) + "'\n"
			return fmt.Sprintf("env of %d bytes, want %d", len(env), len(want)), string(env) == want
		}},
		{name: "comments", files: func(t testing.TB, dir string) {
			filetree.WriteFile(t, filepath.Join(dir, "comments.yaml"), "# only comments\n\n   # indented\n#values:\n#  a: 1\n")
		}, legit: func(env []byte) (string, bool) {
			return fmt.Sprintf("env = %q, want empty", env), len(env) == 0
		}},
	}
}

// writeDiamond writes 22 levels of imports where l{i}a and l{i}b each import
// both l{i+1}a and l{i+1}b: 44 files, 2^22 import paths.
func writeDiamond(t testing.TB, dir string) {
	filetree.WriteFile(t, filepath.Join(dir, "diamond.yaml"), "imports:\n  - l0a\n  - l0b\nvalues:\n  top: 1\n")
	for i := range 22 {
		for _, s := range []string{"a", "b"} {
			imp := ""
			if i < 21 {
				imp = fmt.Sprintf("imports:\n  - l%da\n  - l%db\n", i+1, i+1)
			}
			filetree.WriteFile(t, filepath.Join(dir, fmt.Sprintf("l%d%s.yaml", i, s)), imp+fmt.Sprintf("values:\n  v%d%s: 1\n", i, s))
		}
	}
}

// writeChain writes a linear chain of 10,000 imports.
func writeChain(t testing.TB, dir string) {
	filetree.WriteFile(t, filepath.Join(dir, "chain.yaml"), "imports:\n  - c0\n")
	for i := range 10000 {
		imp := ""
		if i < 9999 {
			imp = fmt.Sprintf("imports:\n  - c%d\n", i+1)
		}
		filetree.WriteFile(t, filepath.Join(dir, fmt.Sprintf("c%d.yaml", i)), imp+fmt.Sprintf("values:\n  v%d: %d\n", i, i))
	}
}

// writeBlock writes 1,000 levels of nested block mappings.
func writeBlock(t testing.TB, dir string) {
	var b strings.Builder
	b.WriteString("values:\n")
	for i := range 1000 {
		b.WriteString(strings.Repeat(" ", i+1) + "k:\n")
	}
	b.WriteString(strings.Repeat(" ", 1001) + "v\n")
	filetree.WriteFile(t, filepath.Join(dir, "block.yaml"), b.String())
}

// writeLaughs writes YAML's billion laughs: 9 levels of 9 aliases each.
func writeLaughs(t testing.TB, dir string) {
	s := "values:\n  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
	for i := 1; i < 10; i++ {
		s += fmt.Sprintf("  a%d: &a%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d,", i-1), 9), ","))
	}
	filetree.WriteFile(t, filepath.Join(dir, "laughs.yaml"), s)
}

// bigDefinition returns a definition of at least size bytes, one key a line.
func bigDefinition(size int) string {
	var b strings.Builder
	b.Grow(size + 64)
	b.WriteString("values:\n")
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "  key%08d: value%08d\n", i, i)
	}
	return b.String()
}

// TestHostile serves the whole corpus from one mount: each hostile
// environment fails with EIO within --eval-timeout and a located diagnostic
// (naming the --max-* flag for a limit), each legitimate one reads, the
// control environment reads after every case, and the daemon's peak RSS
// stays under rssBound.
func TestHostile(t *testing.T) {
	dir := t.TempDir()
	corpus := hostileCorpus()
	for _, c := range corpus {
		c.files(t, dir)
	}
	filetree.WriteFile(t, filepath.Join(dir, "good.yaml"), goodDef)
	e := escfstest.Mount(t, dir, nil, "--eval-timeout", hostileEvalTimeout.String())
	defer checkRSS(t, e.PID())
	for i, c := range corpus {
		t.Run(c.name, func(t *testing.T) {
			track(t, groupHostile, e)
			hostileRead(t, e, dir, c)
		})
		if msg := controlReads(e); msg != "" || !e.Alive() {
			// A hung or dead mount: the remaining cases cannot run.
			record(groupHostile, func(g *tally) { g.cases += len(corpus) - i - 1 })
			t.Fatalf("the mount no longer serves after %s (%s); %d cases not run, counted as not survived", c.name, msg, len(corpus)-i-1)
		}
	}
}

// checkRSS notes the peak RSS of pid and fails t if it is over rssBound.
func checkRSS(t *testing.T, pid int) {
	rss, err := peakRSS(pid)
	if err != nil {
		t.Error(err)
		return
	}
	note(groupHostile, "peak RSS %d MB (bound %d MiB)", rss>>20, rssBound>>20)
	if rss > rssBound {
		t.Errorf("escfs peak RSS %d MB serving the hostile corpus, over the bound of %d MiB", rss>>20, rssBound>>20)
	}
}

// hostileRead reads one environment of the corpus and checks the outcome.
func hostileRead(t *testing.T, e *escfstest.Escfs, dir string, c hostileCase) {
	start := time.Now()
	b, err := escfstest.Read(e.Path(c.name+"/env"), hostileEvalTimeout+5*time.Second)
	took := time.Since(start)
	t.Logf("%s/env: %d bytes, %v, in %v", c.name, len(b), err, took.Round(time.Millisecond))
	if c.legit != nil {
		if err != nil {
			t.Fatalf("legitimate %s/env: %v (status %+v)", c.name, err, statusWithin(t, e, c.name))
		}
		if msg, ok := c.legit(b); !ok {
			t.Fatalf("%s: %s", c.name, msg)
		}
		if st := statusWithin(t, e, c.name); st.State != "ok" {
			t.Fatalf("legitimate %s: status %s, diagnostics %+v", c.name, st.State, st.Diagnostics)
		}
		return
	}
	if !errors.Is(err, syscall.EIO) {
		t.Errorf("%s/env: %d bytes, err %v; want EIO", c.name, len(b), err)
	}
	if took > hostileEvalTimeout+hostileSlack {
		t.Errorf("%s/env took %v, over --eval-timeout %v", c.name, took, hostileEvalTimeout)
	}
	if msg := errorAt(statusWithin(t, e, c.name), dir, c.want); msg != "" {
		t.Errorf("%s: %s", c.name, msg)
	}
}
