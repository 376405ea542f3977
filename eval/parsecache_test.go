package eval

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestParseCacheReusesUnchangedDefinitions: a second evaluation of an
// unchanged definition takes both of its parses (the limits' and esc's)
// from the cache, and a changed definition is parsed afresh, so its new
// value shows at once.
func TestParseCacheReusesUnchangedDefinitions(t *testing.T) {
	dir := writeTree(t, map[string]string{"app.yaml": "values:\n  environmentVariables:\n    A: one\n"})
	path := filepath.Join(dir, "app.yaml")
	src := []byte("values:\n  environmentVariables:\n    A: one\n")
	keys := []parseKey{keyOf(parseLimits, path, src, DefaultMaxNesting), keyOf(parseDecl, path, src, 0)}
	e := testEvaluator()
	for i := range 3 {
		snap, err := evaluate(t, e, dir, "app")
		if err != nil {
			t.Fatal(err)
		}
		if got := string(snap.Env); got != "export A='one'\n" {
			t.Fatalf("evaluation %d: env %q", i, got)
		}
		for _, k := range keys {
			if hits := parses.hitsOf(k); hits != i {
				t.Errorf("evaluation %d: parse %d of app.yaml answered %d gets, want %d", i, k.kind, hits, i)
			}
		}
	}
	time.Sleep(150 * time.Millisecond) // past the settle window of the first write
	if err := os.WriteFile(path, []byte("values:\n  environmentVariables:\n    A: two\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var snap *Snapshot
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var err error
		if snap, err = evaluate(t, e, dir, "app"); err == nil || time.Now().After(deadline) {
			if err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if got := string(snap.Env); got != "export A='two'\n" {
		t.Errorf("after the edit: env %q, want A='two'", got)
	}
}

// TestParseCacheKeysByNestingLimit: a parse kept under one nesting limit
// does not answer for another, so a lower --max-nesting still applies to a
// definition already evaluated.
func TestParseCacheKeysByNestingLimit(t *testing.T) {
	dir := writeTree(t, map[string]string{"deep.yaml": "values:\n  a:\n    b:\n      c:\n        d: 1\n"})
	if _, err := evaluate(t, testEvaluator(), dir, "deep"); err != nil {
		t.Fatal(err)
	}
	e := testEvaluator()
	e.Limits.MaxNesting = 3
	snap, err := evaluate(t, e, dir, "deep")
	if err == nil || !strings.Contains(snap.Diagnostics.Err().Error(), "nest deeper than 3 levels") {
		t.Fatalf("with MaxNesting 3: err = %v, want the nesting limit", err)
	}
}

// TestParseCacheComparesContent: an entry answers only for the very content
// it was made from, even under the same key (as a hash collision would
// give), and the cache keeps at most its bound of bytes, the oldest
// dropped first; a file over parseCacheMaxFile is not kept.
func TestParseCacheComparesContent(t *testing.T) {
	c := newParseCache(100)
	k := parseKey{kind: parseDecl, path: "/x.yaml", sum: 42}
	c.put(k, []byte("values: {a: 1}"), "parse of a")
	if v, ok := c.get(k, []byte("values: {a: 2}")); ok {
		t.Fatalf("another content under the same key got %v", v)
	}
	if v, ok := c.get(k, []byte("values: {a: 1}")); !ok || v != "parse of a" {
		t.Fatalf("get = %v, %v", v, ok)
	}
	for i := range 5 {
		c.put(parseKey{path: fmt.Sprint(i)}, make([]byte, 30), i)
	}
	if c.size > 100 {
		t.Errorf("cache holds %d bytes, over its bound of 100", c.size)
	}
	if _, ok := c.get(k, []byte("values: {a: 1}")); ok {
		t.Error("the oldest entry was kept past the bound")
	}
	if _, ok := c.get(parseKey{path: "4"}, make([]byte, 30)); !ok {
		t.Error("the newest entry was dropped")
	}
	big := newParseCache(parseCacheMaxBytes)
	bk := parseKey{path: "big"}
	src := make([]byte, parseCacheMaxFile+1)
	big.put(bk, src, "big")
	if _, ok := big.get(bk, src); ok {
		t.Error("a file over parseCacheMaxFile was kept")
	}
}

// TestConcurrentEvaluationsShareParses: evaluations running at once share
// one kept parse (run with -race: nothing may write to it) and all render
// the same bytes.
func TestConcurrentEvaluationsShareParses(t *testing.T) {
	var b strings.Builder
	b.WriteString("imports:\n  - base\nvalues:\n  s:\n    fn::secret: hunter2\n  list: [1, 2, {x: \"${v}\"}]\n  environmentVariables:\n")
	for i := range 20 {
		fmt.Fprintf(&b, "    V%d: ${v}-%d\n", i, i)
	}
	dir := writeTree(t, map[string]string{"app.yaml": b.String(), "base.yaml": "values:\n  v: base\n"})
	time.Sleep(150 * time.Millisecond) // settled
	tree, err := ScanDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := testEvaluator()
	want, err := evaluate(t, e, dir, "app")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for range 5 {
				snap, err := e.Evaluate(t.Context(), tree, Request{Name: "app", FilesDir: "/run/escfs/app"})
				if err != nil {
					errs <- err
					return
				}
				if string(snap.Env) != string(want.Env) || string(snap.ValuesJSON) != string(want.ValuesJSON) {
					errs <- fmt.Errorf("env %q, want %q", snap.Env, want.Env)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
