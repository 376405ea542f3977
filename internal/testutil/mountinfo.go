package testutil

import (
	"os"
	"strings"
	"testing"
)

// MountsAt returns the filesystem types mounted at path, bottom first, as
// Mounts does, failing the test if mountinfo cannot be read.
func MountsAt(tb testing.TB, path string) []string {
	tb.Helper()
	types, err := Mounts(path)
	if err != nil {
		tb.Fatal(err)
	}
	return types
}

// Mounts returns the filesystem types mounted at path, bottom first, from
// /proc/self/mountinfo (path as mountinfo spells it: no octal escapes are
// undone, so use it for paths without spaces).
func Mounts(path string) ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var types []string
	for _, line := range strings.Split(string(b), "\n") {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER
		fields := strings.Fields(line)
		if len(fields) < 5 || fields[4] != path {
			continue
		}
		for i, f := range fields {
			if f == "-" && i+1 < len(fields) {
				types = append(types, fields[i+1])
				break
			}
		}
	}
	return types, nil
}
