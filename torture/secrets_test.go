//go:build torture

package torture

import (
	"crypto/rand"
	"encoding/hex"
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

// markerPrefix starts every marker secret; each case has its own marker.
const markerPrefix = "LEAKMARK"

// secretCase is an environment that hands a marker secret to something
// that may quote it.
type secretCase struct {
	name string
	// def returns the definition, given the case's marker and a directory
	// for files the case needs.
	def   func(t *testing.T, marker, scratch string) string
	fails bool // whether the environment must fail (EIO and an error in status)
}

// secretValue is a YAML flow value holding s as a secret.
func secretValue(s string) string { return fmt.Sprintf("{fn::secret: %q}", s) }

// tokenWith returns a definition opening the token provider with inputs
// (a YAML flow mapping) and exporting its token.
func tokenWith(inputs string) string {
	return "values:\n  creds:\n    fn::open::token: " + inputs + "\n  environmentVariables:\n    TOKEN: ${creds.token}\n"
}

// fnOf returns a definition applying builtin fn to ${s}, s being secret.
func fnOf(s, fn string) string {
	return "values:\n  s: " + secretValue(s) + "\n  out:\n    " + fn + ": ${s}\n  environmentVariables:\n    OUT: ${out}\n"
}

// secretCases returns the probes (clouds.cases adds those of the Google,
// Azure and Vault providers): every input of the token provider, the
// provider's inputs as a whole, builtins that fail on their secret
// argument, property access into a secret, a provider input that names a
// backend, and a value dotenv cannot hold.
func secretCases() []secretCase {
	return []secretCase{
		{name: "token-ttl", fails: true, def: func(_ *testing.T, m, _ string) string {
			return tokenWith("{ttl: " + secretValue(m) + "}")
		}},
		{name: "token-delay", fails: true, def: func(_ *testing.T, m, _ string) string {
			return tokenWith("{delay: " + secretValue(m) + "}")
		}},
		{name: "token-failifexists-present", fails: true, def: func(t *testing.T, m, scratch string) string {
			p := filepath.Join(scratch, m)
			filetree.WriteFile(t, filepath.Join(scratch, m), "")
			return tokenWith("{failIfExists: " + secretValue(p) + "}")
		}},
		{name: "token-failifexists-absent", def: func(_ *testing.T, m, scratch string) string {
			return tokenWith("{failIfExists: " + secretValue(filepath.Join(scratch, "absent", m)) + "}")
		}},
		{name: "token-all-inputs", fails: true, def: func(_ *testing.T, m, scratch string) string {
			return tokenWith(fmt.Sprintf("{ttl: %s, delay: %s, failIfExists: %s}", secretValue(m+"-ttl"), secretValue(m+"-delay"), secretValue(filepath.Join(scratch, m+"-f"))))
		}},
		{name: "token-inputs-secret", fails: true, def: func(_ *testing.T, m, _ string) string {
			return tokenWith(secretValue(m))
		}},
		{name: "token-ttl-interpolated", fails: true, def: func(_ *testing.T, m, _ string) string {
			return "values:\n  s: " + secretValue(m) + "\n  creds:\n    fn::open::token: {ttl: \"${s}s\"}\n  environmentVariables:\n    TOKEN: ${creds.token}\n"
		}},
		{name: "fromBase64", fails: true, def: func(_ *testing.T, m, _ string) string { return fnOf(m+"!*not base64*", "fn::fromBase64") }},
		{name: "fromJSON", fails: true, def: func(_ *testing.T, m, _ string) string { return fnOf(m+"{not json", "fn::fromJSON") }},
		{name: "fromJSON-quoted", fails: true, def: func(_ *testing.T, m, _ string) string { return fnOf(`{"a": "`+m+`", }`, "fn::fromJSON") }},
		{name: "property-access", fails: true, def: func(_ *testing.T, m, _ string) string {
			return "values:\n  s: " + secretValue(m) + "\n  environmentVariables:\n    OUT: ${s.field}\n    IDX: ${s[3]}\n"
		}},
		{name: "pulumi-stacks-backend", fails: true, def: func(_ *testing.T, m, _ string) string {
			return "values:\n  st:\n    fn::open::pulumi-stacks:\n      backend: " + secretValue("bogus://"+m) + "\n      stacks:\n        a: {stack: p/s}\n  environmentVariables:\n    OUT: ${st.a.x}\n"
		}},
		{name: "dotenv-too-long", def: func(_ *testing.T, m, _ string) string {
			return "values:\n  environmentVariables:\n    LONG: " + secretValue(m+strings.Repeat("y", 70<<10)) + "\n"
		}},
	}
}

// newMarker returns a fresh marker secret.
func newMarker(t *testing.T) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return markerPrefix + hex.EncodeToString(b[:])
}

// TestSecrets evaluates every probe through one mount and with escfs check,
// and counts each marker's occurrences in status, the escfs log and check's
// output. Only where a marker appeared is reported, never the marker.
func TestSecrets(t *testing.T) {
	dir, scratch := t.TempDir(), t.TempDir()
	filetree.WriteFile(t, filepath.Join(dir, "good.yaml"), goodDef)
	cl := startClouds(t)
	cases := append(secretCases(), cl.cases()...)
	markers := map[string]string{}
	for _, c := range cases {
		markers[c.name] = newMarker(t)
		filetree.WriteFile(t, filepath.Join(dir, c.name+".yaml"), c.def(t, markers[c.name], scratch))
	}
	stdout, stderr, _ := escfstest.Run(t, 2*time.Minute, escfstest.Options{Env: cl.env}, "--dir", dir, "check").Parts()
	check := stdout + stderr
	e := escfstest.Mount(t, dir, cl.env, "--eval-timeout", "10s")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			track(t, groupSecrets, e)
			secretProbe(t, e, dir, c, markers[c.name], check)
		})
	}
	// Anything logged after the cases: a marker of any case, or any marker.
	if n := strings.Count(e.Log(), markerPrefix); n > 0 {
		record(groupSecrets, func(g *tally) { g.leaked += n })
		t.Errorf("the escfs log holds %d marker secrets after all cases", n)
	}
	note(groupSecrets, "%d probes; status, log and check searched", len(cases))
}

// secretProbe reads c's environment through the mount, checks the outcome
// and counts c's marker in its status, the log and check's output.
func secretProbe(t *testing.T, e *escfstest.Escfs, dir string, c secretCase, marker, check string) {
	b, err := escfstest.Read(e.Path(c.name+"/env"), 30*time.Second)
	st := statusWithin(t, e, c.name)
	raw, _ := escfstest.Read(e.Path(c.name+"/status"), 15*time.Second)
	switch {
	case c.fails && !errors.Is(err, syscall.EIO):
		t.Errorf("%s/env: %d bytes, %v; want EIO", c.name, len(b), err)
	case c.fails:
		if msg := errorAt(st, dir, ""); msg != "" {
			t.Errorf("%s: %s", c.name, msg)
		}
	case err != nil:
		t.Errorf("%s/env: %v, want it to read (status %s)", c.name, err, st.State)
	}
	time.Sleep(100 * time.Millisecond) // let the log line of the evaluation arrive
	where := map[string]int{
		"status":      strings.Count(string(raw), marker),
		"escfs log":   strings.Count(e.Log(), marker),
		"escfs check": strings.Count(check, marker),
	}
	leaked := 0
	for place, n := range where {
		if n > 0 {
			leaked += n
			t.Errorf("%s: its marker secret appears %d times in %s", c.name, n, place)
		}
	}
	record(groupSecrets, func(g *tally) { g.leaked += leaked })
}
