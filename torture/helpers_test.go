//go:build torture

package torture

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/escfs/escfs/internal/escfstest"
)

// The control environment every mount of the suite serves beside the cases:
// a case survives only if it still reads exactly goodEnv afterwards.
const (
	goodDef = "values:\n  environmentVariables:\n    GOOD: control\n"
	goodEnv = "export GOOD='control'\n"
)

// track counts t as one case of group. When t ends it checks that ctl's
// escfs is still alive, logged no panic and still serves the control
// environment; the case survived if t did not fail. Call it after the
// mount it checks was made, so that this check runs before that mount's
// cleanup.
func track(t *testing.T, group string, ctl *escfstest.Escfs) {
	t.Helper()
	t.Cleanup(func() {
		crashed := crashedLog(ctl.Log()) || !ctl.Alive()
		if crashed {
			t.Errorf("the escfs serving %s crashed or exited", ctl.Mnt)
		} else if msg := controlReads(ctl); msg != "" {
			t.Errorf("control environment: %s", msg)
		}
		record(group, func(g *tally) {
			g.cases++
			if crashed {
				g.crashes++
			}
			if !t.Failed() {
				g.survived++
			}
		})
	})
}

// crashedLog reports whether an escfs log shows a Go panic or fatal error.
func crashedLog(log string) bool {
	return strings.Contains(log, "panic:") || strings.Contains(log, "fatal error:")
}

// controlReads returns "" if e serves the control environment exactly, else
// what it got.
func controlReads(e *escfstest.Escfs) string {
	b, err := escfstest.Read(e.Path("good/env"), 15*time.Second)
	if err != nil {
		return fmt.Sprintf("read good/env: %v", err)
	}
	if string(b) != goodEnv {
		return fmt.Sprintf("good/env = %q, want %q", b, goodEnv)
	}
	return ""
}

// valueDef is a definition exporting V=v.
func valueDef(v string) string {
	return "values:\n  environmentVariables:\n    V: " + v + "\n"
}

// errorAt returns "" if st holds an error diagnostic located at
// FILE:LINE:COL with FILE inside dir and a message containing want, else a
// complaint.
func errorAt(st escfstest.Status, dir, want string) string {
	for _, d := range st.Diagnostics {
		if d.Severity == "error" && d.Line > 0 && d.Column > 0 &&
			strings.HasPrefix(d.File, dir+string(filepath.Separator)) && strings.Contains(d.Message, want) {
			return ""
		}
	}
	return fmt.Sprintf("status %s has no error diagnostic at FILE:LINE:COL in %s mentioning %q: %+v", st.State, dir, want, st.Diagnostics)
}

// statusWithin reads and decodes env's status within 15 s.
func statusWithin(t testing.TB, e *escfstest.Escfs, env string) escfstest.Status {
	t.Helper()
	b, err := escfstest.Read(e.Path(env+"/status"), 15*time.Second)
	if err != nil {
		t.Fatalf("read %s/status: %v", env, err)
	}
	var st escfstest.Status
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("%s/status is not JSON: %v\n%s", env, err, b)
	}
	return st
}

// decodeStatus decodes a status file; a status that is not JSON has state
// "not JSON".
func decodeStatus(b []byte) escfstest.Status {
	var st escfstest.Status
	if err := json.Unmarshal(b, &st); err != nil {
		st.State = "not JSON"
	}
	return st
}

// peakRSS returns the peak resident set size (VmHWM) of pid, in bytes.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("peak RSS of %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("peak RSS of %d: %q: %w", pid, line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("peak RSS of %d: no VmHWM in /proc/%d/status", pid, pid)
}

// startDaemon runs `escfs --dir dir mount mnt` and waits until mnt/good/env
// reads goodEnv. When t ends the process is continued (in case a test
// stopped it), terminated, killed if it lingers, and mnt is left with no
// mount on it.
func startDaemon(t testing.TB, dir, mnt string) *escfstest.Escfs {
	t.Helper()
	d := escfstest.MountAt(t, escfstest.Options{}, mnt, "--dir", dir, "mount")
	d.WaitFor(t, "good/env served at "+mnt, func() bool {
		b, err := escfstest.Read(filepath.Join(mnt, "good", "env"), 5*time.Second)
		return err == nil && string(b) == goodEnv
	})
	return d
}
