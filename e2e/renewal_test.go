//go:build e2e

package e2e

import (
	"testing"
	"time"

	"github.com/escfs/escfs/internal/escfstest"
)

// Renewals reads env through the mount (sourcing env in bash) every 300 ms
// for rounds lifetimes of its credentials after the first read, and fails
// the test at the first read whose ESCFS_EXPIRES_AT had already passed
// when it was read: an expired read. It returns the first and last reads
// (names and ESCFS_EXPIRES_AT) and how many distinct values of tokenVar
// the reads saw.
func Renewals(t *testing.T, e *escfstest.Escfs, env, tokenVar string, lifetime time.Duration, rounds int, names ...string) (first, last map[string]string, tokens int) {
	t.Helper()
	names = append(names, tokenVar, "ESCFS_EXPIRES_AT")
	first = sourced(t, e, env, names...)
	firstExpiry, err := time.Parse(time.RFC3339, first["ESCFS_EXPIRES_AT"])
	if err != nil {
		t.Fatalf("ESCFS_EXPIRES_AT %q: %v", first["ESCFS_EXPIRES_AT"], err)
	}
	seen := map[string]bool{first[tokenVar]: true}
	last = first
	for end := firstExpiry.Add(time.Duration(rounds-1) * lifetime); time.Now().Before(end); time.Sleep(300 * time.Millisecond) {
		readAt := time.Now().Truncate(time.Second)
		vars := sourced(t, e, env, names...)
		exp, err := time.Parse(time.RFC3339, vars["ESCFS_EXPIRES_AT"])
		if err != nil {
			t.Fatalf("ESCFS_EXPIRES_AT %q: %v", vars["ESCFS_EXPIRES_AT"], err)
		}
		if !exp.After(readAt) {
			t.Fatalf("an expired read: at %v the mount served credentials that expired at %v", readAt, exp)
		}
		seen[vars[tokenVar]] = true
		last = vars
	}
	return first, last, len(seen)
}
