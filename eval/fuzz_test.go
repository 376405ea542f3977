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

// shellOracle is one shell that reads an export file and prints $V.
type shellOracle struct {
	name string
	args []string // arguments before the file
}

// shellOracles returns the shells found on this machine that can source an
// export file: bash and sh are required, zsh is used when present.
func shellOracles(t testing.TB) []shellOracle {
	t.Helper()
	var out []shellOracle
	for _, name := range []string{"bash", "sh"} {
		if _, err := exec.LookPath(name); err != nil {
			t.Fatalf("%s is required for this test: %v", name, err)
		}
		out = append(out, shellOracle{name, []string{"-c", `. "$1"; printf %s "$V"`, "_"}})
	}
	if _, err := exec.LookPath("zsh"); err == nil {
		// zsh's own mode reads the same quoting the same way; emulate sh
		// keeps it from treating "$V" specially in any other respect.
		out = append(out, shellOracle{"zsh", []string{"-c", `emulate sh; . "$1"; printf %s "$V"`, "_"}})
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
	for _, s := range quoteSeeds {
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

// decodeDotenv is a reference decoder for the three forms DotenvQuote
// documents: bare, single-quoted (literal), double-quoted with the escapes
// \\ \" \n \r \t \$. It rejects anything else, including a raw line break, an
// unescaped $ or " inside double quotes, and an unknown escape.
func decodeDotenv(s string) (string, error) {
	if strings.ContainsAny(s, "\n\r") {
		return "", errors.New("raw line break")
	}
	switch {
	case s == "":
		return "", errors.New("empty rendering")
	case s[0] == '\'':
		if len(s) < 2 || s[len(s)-1] != '\'' || strings.Contains(s[1:len(s)-1], "'") {
			return "", fmt.Errorf("bad single-quoted value %q", s)
		}
		return s[1 : len(s)-1], nil
	case s[0] == '"':
		if len(s) < 2 || s[len(s)-1] != '"' {
			return "", fmt.Errorf("unterminated double-quoted value %q", s)
		}
		in := s[1 : len(s)-1]
		var b strings.Builder
		for i := 0; i < len(in); i++ {
			switch c := in[i]; c {
			case '"', '$':
				return "", fmt.Errorf("unescaped %c in %q", c, s)
			case '\\':
				i++
				if i == len(in) {
					return "", fmt.Errorf("trailing backslash in %q", s)
				}
				esc, ok := map[byte]byte{'\\': '\\', '"': '"', 'n': '\n', 'r': '\r', 't': '\t', '$': '$'}[in[i]]
				if !ok {
					return "", fmt.Errorf("unknown escape \\%c in %q", in[i], s)
				}
				b.WriteByte(esc)
			default:
				b.WriteByte(c)
			}
		}
		return b.String(), nil
	default:
		if strings.Trim(s, plainDotenv) != "" {
			return "", fmt.Errorf("bare value %q holds a character that needs quoting", s)
		}
		return s, nil
	}
}

func FuzzDotenvQuote(f *testing.F) {
	for _, s := range quoteSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		value = strings.ReplaceAll(value, "\x00", "") // render never writes a value holding NUL
		q := DotenvQuote(value)
		got, err := decodeDotenv(q)
		if err != nil {
			t.Fatalf("DotenvQuote(%q) = %q: %v", value, q, err)
		}
		if got != value {
			t.Fatalf("DotenvQuote(%q) = %q, which reads back as %q", value, q, got)
		}
		// A single-quoted rendering must not need escapes; a bare one must
		// be the value itself.
		if q[0] != '"' && q[0] != '\'' && q != value {
			t.Fatalf("bare rendering %q of %q", q, value)
		}
	})
}

func TestDotenvDecodeAllForms(t *testing.T) {
	// The reference decoder must reject what it should, or the fuzz oracle
	// proves nothing.
	for _, bad := range []string{"", "a b", "'a'b'", "\"a\"b\"", `"$x"`, `"\q"`, `"a\"`, "'a\nb'", "a\rb", "\"abc", "'abc"} {
		if got, err := decodeDotenv(bad); err == nil {
			t.Errorf("decodeDotenv(%q) = %q, want an error", bad, got)
		}
	}
	for in, want := range map[string]string{"plain": "plain", "'a b $x'": "a b $x", `"it's \$x\n\\"`: "it's $x\n\\"} {
		if got, err := decodeDotenv(in); err != nil || got != want {
			t.Errorf("decodeDotenv(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	// Each branch of DotenvQuote is reached by the seeds.
	forms := map[byte]bool{}
	for _, s := range quoteSeeds {
		q := DotenvQuote(s)
		forms[q[0]] = true
	}
	if !forms['"'] || !forms['\''] || !forms['p'] {
		t.Errorf("seeds do not reach every form: %v", forms)
	}
}
