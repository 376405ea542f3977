package fs

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestListingsAreZeroMessage: after the first OPENDIR (answered ENOSYS), the
// kernel opens directories without asking, and a listing it holds costs no
// request at all: listing the same directories again reaches the daemon
// neither with OPENDIR nor with READDIR. A change still shows (TestLive).
func TestListingsAreZeroMessage(t *testing.T) {
	tm := mountT(t, map[string]string{"a.yaml": valueDef("one"), "b.yaml": valueDef("two"), "p/c.yaml": valueDef("three")})
	dirs := tm.m.dirs
	if dirs == nil || !dirs.supported() {
		t.Fatal("the kernel does not support zero-message opendir (FUSE_NO_OPENDIR_SUPPORT, Linux 5.1): this test needs it")
	}
	list := func() {
		for _, rel := range []string{"", "p", "a", "p/c"} {
			names(t, tm.path(rel))
		}
	}
	list()
	opendirs, readdirs := dirs.opendirs.Load(), dirs.readdirs.Load()
	if opendirs > 1 {
		t.Errorf("%d OPENDIRs for the first listings, want at most 1 (the one answered ENOSYS)", opendirs)
	}
	if readdirs == 0 {
		t.Fatal("no READDIR reached the daemon: the listings were not served by it")
	}
	for range 3 {
		list()
	}
	if n := dirs.opendirs.Load() - opendirs; n != 0 {
		t.Errorf("listing again sent %d OPENDIRs, want 0", n)
	}
	if n := dirs.readdirs.Load() - readdirs; n != 0 {
		t.Errorf("listing again sent %d READDIRs, want 0 (the kernel's cached listing)", n)
	}
}

// TestLongListingIsExact: a directory whose listing takes many READDIR
// replies (each up to a page; here about 35), every one without a directory
// handle and so on a fresh handle of its own at its offset, lists every
// entry exactly once, in order, cold and then from the kernel's cache.
func TestLongListingIsExact(t *testing.T) {
	defs := map[string]string{}
	var want []string
	for i := range 600 {
		name := fmt.Sprintf("env-%03d-%s", i, strings.Repeat("n", 200))
		defs[name+".yaml"] = valueDef("x")
		want = append(want, name)
	}
	slices.Sort(want)
	tm := mountT(t, defs)
	for round := range 2 {
		got := boundedList(t, tm.mnt, len(want)+10)
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: listed %d entries (want %d); first difference at %d", round, len(got), len(want), firstDiff(got, want))
		}
	}
	if n := tm.m.dirs.readdirs.Load(); n < 10 {
		t.Errorf("the listing took %d READDIRs: too few to test offsets (want 10 or more)", n)
	}
}

// boundedList returns the names in dir, sorted, failing the test if there
// are more than limit (a listing that never ends: offsets going round).
func boundedList(t *testing.T, dir string, limit int) []string {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []string
	for {
		batch, err := f.Readdirnames(100)
		got = append(got, batch...)
		if len(got) > limit {
			t.Fatalf("%s lists more than %d entries (offsets going round?)", dir, limit)
		}
		if err != nil || len(batch) == 0 {
			break
		}
	}
	slices.Sort(got)
	return got
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
