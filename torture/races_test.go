//go:build torture

package torture

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/escfs/escfs/internal/escfstest"
	"github.com/escfs/escfs/internal/filetree"
)

// The edit races: saves every raceSavePeriod for raceDuration while
// raceReaders goroutines read x/env without a pause.
const (
	raceDuration   = 5 * time.Second
	raceSavePeriod = 150 * time.Millisecond
	raceReaders    = 4
)

// raceEnv is a complete rendering of x: exactly one export of V.
var raceEnv = regexp.MustCompile(`^export V='v[0-9]+'\n$`)

// raceDef is version n of x: V=v<n>, padded with values that are not
// exported so that a save cut in the middle cannot be a valid definition
// with the same exports.
func raceDef(n int) string {
	var b strings.Builder
	b.WriteString("values:\n  padding:\n")
	for i := range 64 {
		fmt.Fprintf(&b, "    p%02d: %s\n", i, strings.Repeat("z", 40))
	}
	fmt.Fprintf(&b, "  environmentVariables:\n    V: v%d\n", n)
	return b.String()
}

// raceCounts is what the readers saw.
type raceCounts struct {
	mu                     sync.Mutex
	reads, eio, bad, other int
	versions               map[string]bool
	firstBad               string
}

// add counts one read.
func (c *raceCounts) add(b []byte, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads++
	switch {
	case errors.Is(err, syscall.EIO):
		c.eio++
	case err != nil:
		c.other++
		if c.firstBad == "" {
			c.firstBad = err.Error()
		}
	case !raceEnv.Match(b):
		c.bad++
		if c.firstBad == "" {
			c.firstBad = fmt.Sprintf("%d bytes, not one complete export of V", len(b))
		}
	default:
		c.versions[string(b)] = true
	}
}

// TestEditRaces saves x continuously, in place and by rename, while
// readers read x/env: every read must be a complete, valid rendering.
func TestEditRaces(t *testing.T) {
	var mu sync.Mutex
	var notes []string
	for _, c := range []struct {
		name string
		save func(p, content string) error
	}{
		{"in place", func(p, content string) error { return filetree.SaveInPlace(p, content, 3*time.Millisecond) }},
		{"by rename", filetree.SaveByRename},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			filetree.WriteFile(t, filepath.Join(dir, "x.yaml"), raceDef(0))
			filetree.WriteFile(t, filepath.Join(dir, "good.yaml"), goodDef)
			e := escfstest.Mount(t, dir, nil)
			track(t, groupRaces, e)
			counts := race(t, e, filepath.Join(dir, "x.yaml"), c.save)
			lost := counts.eio + counts.bad + counts.other
			record(groupRaces, func(g *tally) { g.bytesLost += lost })
			mu.Lock()
			notes = append(notes, fmt.Sprintf("%s: %d reads, %d versions", c.name, counts.reads, len(counts.versions)))
			mu.Unlock()
			t.Logf("%s: %d reads, %d EIO, %d empty or torn, %d other errors, %d versions seen", c.name, counts.reads, counts.eio, counts.bad, counts.other, len(counts.versions))
			if lost > 0 {
				t.Errorf("%d of %d reads failed or were not a complete rendering (%d EIO, %d empty or torn, %d other; first: %s)",
					lost, counts.reads, counts.eio, counts.bad, counts.other, counts.firstBad)
			}
			if len(counts.versions) < 3 {
				t.Errorf("readers saw %d versions of x during %v of saves: the edits did not show", len(counts.versions), raceDuration)
			}
		})
	}
	note(groupRaces, "%s", strings.Join(notes, ", "))
}

// race runs the saves and the readers and returns what the readers saw.
// The last version must show within 5 s of the last save.
func race(t *testing.T, e *escfstest.Escfs, p string, save func(p, content string) error) *raceCounts {
	counts := &raceCounts{versions: map[string]bool{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range raceReaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				b, err := os.ReadFile(e.Path("x/env"))
				counts.add(b, err)
			}
		}()
	}
	n := 0
	for end := time.Now().Add(raceDuration); time.Now().Before(end); time.Sleep(raceSavePeriod) {
		n++
		if err := save(p, raceDef(n)); err != nil {
			t.Error(err)
			break
		}
	}
	close(stop)
	readersDone := make(chan struct{})
	go func() { wg.Wait(); close(readersDone) }()
	select {
	case <-readersDone:
	case <-time.After(30 * time.Second):
		t.Fatal("readers of x/env still blocked 30s after the saves stopped")
	}
	want := fmt.Sprintf("export V='v%d'\n", n)
	escfstest.Eventually(t, 5*time.Second, func() string {
		b, err := escfstest.Read(e.Path("x/env"), 5*time.Second)
		if err != nil || string(b) != want {
			return fmt.Sprintf("x/env after the last save = %q, %v; want %q", b, err, want)
		}
		return ""
	})
	return counts
}
