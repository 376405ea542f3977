package eval

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// quoteSeeds are values that break naive quoting. The seed corpus runs under
// plain go test.
var quoteSeeds = []string{
	"", "plain", " ", "  lead and trail  ", "'", "''", `'\''`, `"`, `\`, `\\`, `\'`, `\"`,
	"it's", `say "hi"`, "$HOME", "${HOME}", "$(id)", "`id`", "$((1+1))", "$'\\n'", `$"x"`,
	"!!", "!$", "~", "~root", "*", "?", "[a]", "{a,b}", "a;b", "a&b", "a|b", "a>b", "<", "#x", "x#",
	"a=b", "-e", "-n", "--", "%s%d%n", `\n`, `\t`, `\x41`, `\101`, `\c`,
	"\n", "\n\n", "trailing newline\n", "\r", "\r\n", "a\rb", "\t", "\v\f",
	"\x01\x02\x03\x04\x05\x06\x07\x08\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f",
	"\x7f", "\x1b[31mred\x1b[0m",
	"héllo wörld", "日本語", "🎉", "\u00a0", "\u200b", "\u2028\u2029", "\ufeffbom",
	"\xff", "it's \xff\n", "\xfe\xff", "\xc0\x80", "\xed\xa0\x80", "\xe2\x82", "a\x80b", "\xf8\x88\x80\x80\x80",
	"' ; touch /tmp/escfs-pwned ; '", "'$(touch /tmp/escfs-pwned)'", "\"$(touch /tmp/escfs-pwned)\"",
	strings.Repeat("a'b\"c\\d\n$", 5000),
	strings.Repeat("x", 100_000),
}

// doubleQuoteSeeds are values a shell quoter with a double-quote branch
// would double-quote (they hold a single quote, which single quotes cannot),
// with what double quotes must escape: ` (a command substitution), $, \
// and ". ShellQuote single-quotes everything; these seeds catch it the day
// it gains such a branch that misses one of them.
var doubleQuoteSeeds = []string{
	"it's `id`", "`'`", "'`", "`", "``", "it's `echo x`", "it's $HOME", "it's ${HOME}", "it's $(id)",
	`it's \`, `it's \\`, `it's \$`, "it's \\`id\\`", `it's "q"`, `'"'`, "it's `a` $b \\c \"d\"", "it's\n`id`\n",
	"it's `", "it's \\`", "'$'`'\\'\"'",
}

// shellOracle is one shell that reads an export file and prints $V.
type shellOracle struct {
	name string
	args []string // arguments before the file
}

// shellOracles returns the shells that source an export file: bash, sh and
// zsh, all required (.ci/run installs them); a missing one fails the test
// with how to install it, never silently drops out of the comparison.
func shellOracles(t testing.TB) []shellOracle {
	t.Helper()
	shells := []struct {
		name, pkg string
		script    string
	}{
		{"bash", "bash", `. "$1"; printf %s "$V"`},
		{"sh", "dash", `. "$1"; printf %s "$V"`},
		// zsh's own mode reads the same quoting the same way; emulate sh
		// keeps it from treating "$V" specially in any other respect.
		{"zsh", "zsh", `emulate sh; . "$1"; printf %s "$V"`},
	}
	var out []shellOracle
	for _, sh := range shells {
		if _, err := exec.LookPath(sh.name); err != nil {
			t.Fatalf("%s is required for this test (apt-get install %s; .ci/run does): %v", sh.name, sh.pkg, err)
		}
		out = append(out, shellOracle{sh.name, []string{"-c", sh.script, "_"}})
	}
	return out
}

// runShell runs a shell with a bounded time and a UTF-8 locale (the locale
// most likely to make a shell reinterpret bytes), returning its stdout.
func runShell(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s %q: %v\nstderr: %s", name, args, err, stderr.Bytes())
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("%s %q did not finish in 10s", name, args)
	}
	if stderr.Len() > 0 {
		t.Fatalf("%s %q wrote to stderr: %s", name, args, stderr.Bytes())
	}
	return stdout.Bytes()
}

func FuzzShellQuote(f *testing.F) {
	for _, s := range append(quoteSeeds, doubleQuoteSeeds...) {
		f.Add(s)
	}
	shells := shellOracles(f)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, value string) {
		// NUL is the one byte no shell variable can hold (render leaves such
		// variables out with a warning): test the rest of the input.
		value = strings.ReplaceAll(value, "\x00", "")
		file, err := os.CreateTemp(dir, "env")
		if err != nil {
			t.Fatal(err)
		}
		defer os.Remove(file.Name())
		if _, err := fmt.Fprintf(file, "export V=%s\n", ShellQuote(value)); err != nil {
			t.Fatal(err)
		}
		if err := file.Close(); err != nil {
			t.Fatal(err)
		}
		for _, sh := range shells {
			got := runShell(t, sh.name, append(sh.args, file.Name())...)
			if string(got) != value {
				t.Errorf("%s read %q back as %q", sh.name, value, got)
			}
		}
	})
}

// TestShellQuoteNoExpansion checks that quoted values never run anything,
// even where the value would if written bare.
func TestShellQuoteNoExpansion(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "pwned")
	var b strings.Builder
	for i, v := range []string{"$(touch MARK)", "`touch MARK`", "'; touch MARK; '", "\"; touch MARK; \"", "\n touch MARK\n", "'\n touch MARK #"} {
		fmt.Fprintf(&b, "export V%d=%s\n", i, ShellQuote(strings.ReplaceAll(v, "MARK", marker)))
	}
	script := filepath.Join(dir, "env")
	if err := os.WriteFile(script, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, sh := range shellOracles(t) {
		runShell(t, sh.name, append(sh.args, script)...)
		if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s ran a command from a quoted value", sh.name)
		}
	}
	// The check can fail: the same command written bare does run.
	if err := os.WriteFile(script, []byte("V=$(touch "+marker+")\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runShell(t, "sh", "-c", `. "$1"`, "_", script)
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("control case: the bare command did not run: %v", err)
	}
}

// TestEnvSourcedByShells sources a whole rendered Env in each shell and
// compares every exported variable, as the shell's child process sees it,
// with the snapshot's value.
func TestEnvSourcedByShells(t *testing.T) {
	snap, err := evaluate(t, testEvaluator(), goldenDir, "rich")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "env")
	if err := os.WriteFile(script, snap.Env, 0o600); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, v := range snap.Vars {
		if IsShellName(v.Name) {
			want[v.Name] = v.Value
		}
	}
	if len(want) < 20 {
		t.Fatalf("only %d variables; the fixture lost its nasty values", len(want))
	}
	for _, sh := range shellOracles(t) {
		args := append([]string{}, sh.args...)
		args[1] = strings.Replace(args[1], `printf %s "$V"`, `exec env -0`, 1)
		out := runShell(t, sh.name, append(args, script)...)
		got := map[string]string{}
		for _, kv := range strings.Split(string(out), "\x00") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				got[k] = v
			}
		}
		for name, value := range want {
			if g, ok := got[name]; !ok {
				t.Errorf("%s: %s not exported", sh.name, name)
			} else if g != value {
				t.Errorf("%s: %s = %q, want %q", sh.name, name, g, value)
			}
		}
	}
}

// FuzzDotenvQuote checks the dotenv rendering against the real loaders
// (dotenvLoaders): python-dotenv, Node's dotenv, godotenv, docker compose's
// parser and docker run's. An input is a batch: NUL, which no variable can
// hold, separates its values, and each batch is one file read once by each
// loader. Every value DotenvValue accepts must come back exactly; every value
// it refuses must be one that no candidate form holds in every loader.
func FuzzDotenvQuote(f *testing.F) {
	f.Add(strings.Join(quoteSeeds, "\x00"))
	for _, s := range quoteSeeds {
		f.Add(s)
	}
	loaders := dotenvLoaders(f)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, input string) {
		checkDotenvBatch(t, loaders, dir, strings.Split(input, "\x00"))
	})
}

// TestDotenvSeedsReachEveryForm: the seeds reach every form and a refusal,
// or the fuzz target's seed run proves less than it seems to.
func TestDotenvSeedsReachEveryForm(t *testing.T) {
	forms := map[string]bool{}
	for _, s := range quoteSeeds {
		q, err := DotenvValue(s)
		switch {
		case err != nil:
			forms["refused"] = true
		case q == "" || q == s:
			forms["bare"] = true
		default:
			forms[q[:1]] = true
		}
	}
	for _, form := range []string{"bare", "'", `"`, "refused"} {
		if !forms[form] {
			t.Errorf("no seed is rendered %s: %v", form, forms)
		}
	}
}
