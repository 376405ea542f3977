package fs

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/escfs/escfs/eval"
)

// tmpfsDir returns a fresh directory on tmpfs (/dev/shm), removed at the end.
func tmpfsDir(b *testing.B) string {
	b.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		b.Skip("/dev/shm is not a tmpfs")
	}
	d, err := os.MkdirTemp("/dev/shm", "escfs-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// compare runs base and subject b.N times each, in alternating batches so
// that both see the same machine, and reports both per-op times and the
// ratio subject/base as "x-base".
func compare(b *testing.B, baseName string, base, subject func() error) {
	b.Helper()
	var tBase, tSubject time.Duration
	const batch = 50
	b.ResetTimer()
	for done := 0; done < b.N; done += batch {
		n := min(batch, b.N-done)
		start := time.Now()
		for range n {
			if err := base(); err != nil {
				b.Fatal(err)
			}
		}
		tBase += time.Since(start)
		start = time.Now()
		for range n {
			if err := subject(); err != nil {
				b.Fatal(err)
			}
		}
		tSubject += time.Since(start)
	}
	b.StopTimer()
	perBase := float64(tBase.Nanoseconds()) / float64(b.N)
	perSubject := float64(tSubject.Nanoseconds()) / float64(b.N)
	b.ReportMetric(perSubject, "ns/escfs")
	b.ReportMetric(perBase, "ns/"+baseName)
	b.ReportMetric(perSubject/perBase, "x-"+baseName)
	b.Logf("N=%d: escfs %.1fµs, %s %.1fµs, ratio %.1fx", b.N, perSubject/1e3, baseName, perBase/1e3, perSubject/perBase)
}

func readAll(p string) func() error {
	return func() error {
		_, err := os.ReadFile(p)
		return err
	}
}

// BenchmarkWarmRead: open+read+close of an evaluated MNT/x/env against the
// same bytes in a file on tmpfs.
func BenchmarkWarmRead(b *testing.B) {
	tm := mountT(b, map[string]string{"x.yaml": filesDef})
	p := tm.path("x", "env")
	data := mustRead(b, p)
	ref := filepath.Join(tmpfsDir(b), "env")
	if err := os.WriteFile(ref, data, 0o400); err != nil {
		b.Fatal(err)
	}
	compare(b, "tmpfs", readAll(ref), readAll(p))
}

// BenchmarkColdRead: the first read of an environment after its snapshot
// was dropped (Rescan, untimed) against a warm read of it.
func BenchmarkColdRead(b *testing.B) {
	tm := mountT(b, map[string]string{"x.yaml": filesDef})
	p := tm.path("x", "env")
	n, _ := eval.ParseName("x")
	mustRead(b, p)
	var tWarm, tCold time.Duration
	evals := tm.store.Evaluations()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := os.ReadFile(p); err != nil {
			b.Fatal(err)
		}
		tWarm += time.Since(start)
		if err := tm.store.Rescan([]eval.Name{n}); err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		if _, err := os.ReadFile(p); err != nil {
			b.Fatal(err)
		}
		tCold += time.Since(start)
	}
	b.StopTimer()
	if got := tm.store.Evaluations() - evals; got < int64(b.N) {
		b.Fatalf("%d cold reads caused only %d evaluations", b.N, got)
	}
	warm := float64(tWarm.Nanoseconds()) / float64(b.N)
	cold := float64(tCold.Nanoseconds()) / float64(b.N)
	b.ReportMetric(cold, "ns/cold")
	b.ReportMetric(warm, "ns/warm")
	b.ReportMetric(cold/warm, "x-warm")
	b.Logf("N=%d: cold %.1fµs, warm %.1fµs, ratio %.1fx", b.N, cold/1e3, warm/1e3, cold/warm)
}

// BenchmarkListTree (run it with fewer iterations, e.g. -benchtime 20x: one
// walk takes about 0.15 s) walks 1,000 environments (20 projects × 50) like ls -R,
// without reading files, against the same directories on tmpfs. The files/
// directories are skipped: which files an environment has is only known by
// evaluating it. The walk must evaluate nothing.
func BenchmarkListTree(b *testing.B) {
	const projects, envs = 20, 50
	defs := map[string]string{}
	ref := tmpfsDir(b)
	for p := range projects {
		for e := range envs {
			rel := fmt.Sprintf("p%02d/e%02d", p, e)
			defs[rel+".yaml"] = simpleDef
			for _, f := range envEntries {
				if f == entryFiles {
					if err := os.MkdirAll(filepath.Join(ref, rel, f), 0o500); err != nil {
						b.Fatal(err)
					}
					continue
				}
				if err := os.MkdirAll(filepath.Join(ref, rel), 0o700); err != nil {
					b.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(ref, rel, f), nil, 0o400); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	tm := mountT(b, defs)
	walk := func(root string, want int) func() error {
		return func() error {
			count := 0
			err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				count++
				if d.IsDir() && d.Name() == entryFiles {
					return fs.SkipDir
				}
				return nil
			})
			if err == nil && count != want {
				err = fmt.Errorf("walk of %s saw %d entries, want %d", root, count, want)
			}
			return err
		}
	}
	want := 1 + projects + projects*envs*(1+len(envEntries))
	compare(b, "tmpfs", walk(ref, want), walk(tm.mnt, want))
	if n := tm.store.Evaluations(); n != 0 {
		b.Fatalf("walking the tree evaluated %d environments, want 0", n)
	}
}
