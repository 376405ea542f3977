package fs

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escfs/escfs/eval"
)

// TestRenewalInvalidatesCachedVersions: entries are cached until a
// snapshot's refresh point, and from there until its expiry. A reader that
// looks during the renewal caches the old version until its expiry; only
// the daemon's invalidation after the renewal makes the next read current,
// for env and for files/NAME alike.
func TestRenewalInvalidatesCachedVersions(t *testing.T) {
	dir := t.TempDir()
	def := "values:\n  creds:\n    fn::open::token: {ttl: 4s, delay: 600ms, failIfExists: " + filepath.Join(dir, "nofail") + "}\n" +
		"  environmentVariables:\n    TOKEN: ${creds.token}\n  files:\n    TOKFILE: ${creds.token}\n"
	tm := mountT(t, map[string]string{"x.yaml": def},
		withRefresh(eval.RefreshPolicy{KeepWarm: time.Minute, Margin: 2 * time.Second}))
	first := tokenOf(t, mustRead(t, tm.path("x", "env")))
	evaluated := func() time.Time {
		var st eval.Status
		if err := json.Unmarshal(mustRead(t, tm.path("x", "status")), &st); err != nil || st.EvaluatedAt == nil {
			t.Fatalf("status: %v", err)
		}
		return *st.EvaluatedAt
	}
	firstAt := evaluated()
	// Read through the refresh point and the renewal that follows: these
	// reads make the kernel cache the old version until its expiry.
	deadline := time.Now().Add(10 * time.Second)
	for evaluated().Equal(firstAt) {
		mustRead(t, tm.path("x", "env"))
		mustRead(t, tm.path("x", "files", "TOKFILE"))
		if time.Now().After(deadline) {
			t.Fatal("no renewal within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	renewed := time.Now()
	// The old credentials are still valid for about 1.4 s: give the
	// invalidation 300 ms, far less than that.
	time.Sleep(300 * time.Millisecond)
	env, file := tokenOf(t, mustRead(t, tm.path("x", "env"))), string(mustRead(t, tm.path("x", "files", "TOKFILE")))
	if env == first || file == first {
		t.Fatalf("%v after the renewal, env has the old token: %v, files/TOKFILE: %v; want the new one (the kernel's cached entries were not invalidated)",
			time.Since(renewed), env == first, file == first)
	}
	if env != file {
		t.Fatalf("env and files/TOKFILE disagree after the renewal")
	}
}

// tokenOf returns the TOKEN value of an env rendering.
func tokenOf(t *testing.T, env []byte) string {
	t.Helper()
	for _, line := range strings.Split(string(env), "\n") {
		if v, ok := strings.CutPrefix(line, "export TOKEN='"); ok {
			return strings.TrimSuffix(v, "'")
		}
	}
	t.Fatalf("no TOKEN in %q", env)
	return ""
}
