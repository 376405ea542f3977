package eval_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/eval/evaltest"
)

// saveInPlace saves content as many editors and shell redirections do:
// truncate the file, then write it, here in two pieces, the first 50 ms
// after the truncation (a slow writer, longer than the debounce: the
// watcher sees a quiet, empty file).
func saveInPlace(t *testing.T, p, content string) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	half := len(content) / 2
	time.Sleep(50 * time.Millisecond)
	f.WriteString(content[:half]) //nolint:errcheck // checked by the readers
	time.Sleep(2 * time.Millisecond)
	f.WriteString(content[half:]) //nolint:errcheck
}

// saveByRename saves content as careful editors do: write a temporary
// file, then rename it over the definition.
func saveByRename(t *testing.T, p, content string) {
	tmp := filepath.Join(filepath.Dir(p), ".tmp-"+filepath.Base(p))
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Error(err)
		return
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Error(err)
	}
}

// TestEditsNeverYieldEmptyOrBrokenReads: while a definition is saved over
// and over (in place and by rename, every 30-150 ms), every read gets a
// whole, valid version: no error, no empty environment.
func TestEditsNeverYieldEmptyOrBrokenReads(t *testing.T) {
	for _, save := range []struct {
		name string
		fn   func(*testing.T, string, string)
	}{{"in place", saveInPlace}, {"by rename", saveByRename}} {
		t.Run(save.name, func(t *testing.T) {
			dir := t.TempDir()
			def := func(i int) string {
				return fmt.Sprintf("values:\n  pad: %q\n  environmentVariables:\n    V: v%d\n", strings.Repeat("x", 4000), i)
			}
			writeFile(t, dir, "app.yaml", def(0))
			time.Sleep(150 * time.Millisecond)
			s := evaltest.NewStore(t, dir, func(c *evaltest.Config) {
				c.Store.FilesDir = func(eval.Name) string { return "/files" }
			})
			if err := s.Watch(); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 1; ; i++ {
					select {
					case <-stop:
						return
					case <-time.After(time.Duration(30+i%5*30) * time.Millisecond):
					}
					save.fn(t, filepath.Join(dir, "app.yaml"), def(i))
				}
			}()
			var reads, bad int
			versions := map[string]bool{}
			name := evaltest.Name(t, "app")
			for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
				snap, err := s.Snapshot(context.Background(), name)
				reads++
				switch {
				case err != nil:
					bad++
					t.Logf("read %d: %v", reads, err)
				case !strings.Contains(string(snap.Env), "export V='v"):
					bad++
					t.Logf("read %d: env without V: %q", reads, snap.Env)
				default:
					versions[string(snap.Env)] = true
				}
			}
			close(stop)
			wg.Wait()
			if bad > 0 {
				t.Fatalf("%d of %d reads under continuous saves were errors or empty", bad, reads)
			}
			if len(versions) < 5 {
				t.Fatalf("only %d versions seen in %d reads: the edits did not land", len(versions), reads)
			}
			t.Logf("%d reads, %d versions, 0 bad", reads, len(versions))
		})
	}
}
