package eval

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	composedotenv "github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/docker/cli/pkg/kvfile"
	"github.com/joho/godotenv"
)

// dotenvLoader is one real dotenv parser used as a test oracle.
type dotenvLoader struct {
	name string
	// literal: the loader takes each line as is, quotes included (docker run
	// --env-file); the others must read every value back exactly.
	literal bool
	read    func(path string) (map[string]string, error)
}

// dotenvLoaders returns the loaders the dotenv rendering is checked against:
// godotenv, docker compose's and docker run's parsers in process, and
// python-dotenv and Node's dotenv as helper processes that live as long as
// the test. A missing loader fails the test with how to install it.
func dotenvLoaders(t testing.TB) []dotenvLoader {
	t.Helper()
	python := startLineProc(t, "python-dotenv", pythonWithDotenv(t), filepath.Join("testdata", "dotenv", "python_loader.py"))
	node := startLineProc(t, "node dotenv", nodeWithDotenv(t), filepath.Join("testdata", "node", "load.js"))
	return []dotenvLoader{
		{name: "python-dotenv", read: python.read},
		{name: "node dotenv", read: node.read},
		{name: "godotenv", read: func(path string) (map[string]string, error) {
			src, err := os.ReadFile(path)
			if err != nil {
				return nil, err
			}
			return godotenv.UnmarshalBytes(src)
		}},
		{name: "docker compose (compose-go)", read: func(path string) (map[string]string, error) {
			src, err := os.ReadFile(path)
			if err != nil {
				return nil, err
			}
			// Every variable is "set" to empty: a parser that expands one
			// shows it, and compose-go logs nothing about unset ones.
			return composedotenv.UnmarshalBytesWithLookup(src, func(string) (string, bool) { return "", true })
		}},
		{name: "docker run --env-file (docker/cli kvfile)", literal: true, read: func(path string) (map[string]string, error) {
			lines, err := kvfile.Parse(path, nil)
			if err != nil {
				return nil, err
			}
			out := map[string]string{}
			for _, l := range lines {
				k, v, _ := strings.Cut(l, "=")
				if _, dup := out[k]; dup {
					return nil, fmt.Errorf("variable %s twice", k)
				}
				out[k] = v
			}
			return out, nil
		}},
	}
}

// pythonWithDotenv finds a python3 that can import python-dotenv: the one on
// PATH, else Debian's (python3-dotenv installs for /usr/bin/python3 only).
func pythonWithDotenv(t testing.TB) string {
	t.Helper()
	var tried []string
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		path, err := exec.LookPath(py)
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s: %v", py, err))
			continue
		}
		out, err := exec.Command(path, "-c", "import dotenv").CombinedOutput()
		if err == nil {
			return path
		}
		tried = append(tried, fmt.Sprintf("%s: %v: %s", path, err, bytes.TrimSpace(out)))
	}
	t.Fatalf("python-dotenv is required for this test (install it with: apt-get install python3-dotenv):\n%s", strings.Join(tried, "\n"))
	return ""
}

// nodeWithDotenv returns node once Node's dotenv is installed in testdata/node.
func nodeWithDotenv(t testing.TB) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is required for this test (apt-get install nodejs npm): %v", err)
	}
	if _, err := os.Stat(filepath.Join("testdata", "node", "node_modules", "dotenv", "package.json")); err != nil {
		t.Fatalf("Node's dotenv is required for this test (install it with: cd eval/testdata/node && npm ci): %v", err)
	}
	return node
}

// lineProc is a helper process that answers one JSON line per file path.
type lineProc struct {
	name   string
	cmd    *exec.Cmd
	mu     sync.Mutex // one question at a time
	in     io.Writer
	out    *bufio.Reader
	stderr *syncBuffer
}

// startLineProc starts prog with args; the test's cleanup stops it.
func startLineProc(t testing.TB, name, prog string, args ...string) *lineProc {
	t.Helper()
	cmd := exec.Command(prog, args...)
	// No variables for a loader to expand, and no locale to reinterpret bytes.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C.UTF-8", "PYTHONIOENCODING=utf-8"}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &lineProc{name: name, cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<20), stderr: &syncBuffer{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = in.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return p
}

// read asks the helper to load the dotenv file at path.
func (p *lineProc) read(path string) (map[string]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := io.WriteString(p.in, path+"\n"); err != nil {
		return nil, fmt.Errorf("%s: write: %v (stderr: %s)", p.name, err, p.stderr.String())
	}
	type reply struct {
		line []byte
		err  error
	}
	ch := make(chan reply, 1)
	go func() {
		line, err := p.out.ReadBytes('\n')
		ch <- reply{line, err}
	}()
	var r reply
	select {
	case r = <-ch:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		return nil, fmt.Errorf("%s did not answer in 30s", p.name)
	}
	if r.err != nil {
		return nil, fmt.Errorf("%s: read: %v (stderr: %s)", p.name, r.err, p.stderr.String())
	}
	var ans struct {
		Values map[string]*string `json:"values"`
		Error  string             `json:"error"`
	}
	if err := json.Unmarshal(r.line, &ans); err != nil {
		return nil, fmt.Errorf("%s: bad answer %q: %v", p.name, r.line, err)
	}
	if ans.Error != "" {
		return nil, errors.New(ans.Error)
	}
	out := make(map[string]string, len(ans.Values))
	for k, v := range ans.Values {
		if v == nil {
			out[k] = "\x00(no value)" // python-dotenv's None: a line without '='
			continue
		}
		out[k] = *v
	}
	return out, nil
}

// syncBuffer is a bytes.Buffer safe for a process's writes and a test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// loaderMismatch compares what a loader read with the values wanted. A
// literal loader must find the same variables, each with its rendered form
// (rendered[name], quotes included). It returns "" when they agree.
func loaderMismatch(l dotenvLoader, got, want, rendered map[string]string) string {
	var diffs []string
	for _, name := range slices.Sorted(maps.Keys(want)) {
		w := want[name]
		if l.literal {
			w = rendered[name]
		}
		g, ok := got[name]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s missing (want %q)", name, w))
		case g != w:
			diffs = append(diffs, fmt.Sprintf("%s = %q, want %q (written %s)", name, g, w, rendered[name]))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			diffs = append(diffs, fmt.Sprintf("unexpected variable %q = %q", name, got[name]))
		}
	}
	if len(diffs) > 5 {
		diffs = append(diffs[:5], fmt.Sprintf("and %d more", len(diffs)-5))
	}
	return strings.Join(diffs, "; ")
}

// readAll has every loader read the dotenv file at path and returns, by
// loader, how it disagrees with want ("" when it agrees).
func readAll(loaders []dotenvLoader, path string, want, rendered map[string]string) map[string]string {
	out := map[string]string{}
	for _, l := range loaders {
		got, err := l.read(path)
		if err != nil {
			out[l.name] = fmt.Sprintf("cannot read the file: %v", err)
			continue
		}
		out[l.name] = loaderMismatch(l, got, want, rendered)
	}
	return out
}

// writeDotenv writes lines to a new file in dir.
func writeDotenv(t testing.TB, dir, content string) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "dotenv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// checkDotenvBatch renders values as V0, V1, ... in one file and has every
// loader read it: each accepted value must come back exactly (docker run:
// its rendered line, literally), and each refused one must be one that no
// candidate form holds in every loader.
func checkDotenvBatch(t *testing.T, loaders []dotenvLoader, dir string, values []string) {
	t.Helper()
	var file strings.Builder
	want, rendered := map[string]string{}, map[string]string{}
	var refused []string
	for i, v := range values {
		name := fmt.Sprintf("V%d", i)
		line, err := dotenvLine(name, v)
		if err != nil {
			refused = append(refused, v)
			continue
		}
		file.WriteString(line)
		want[name], rendered[name] = v, strings.TrimSuffix(strings.TrimPrefix(line, name+"="), "\n")
	}
	path := writeDotenv(t, dir, file.String())
	defer os.Remove(path)
	for loader, diff := range readAll(loaders, path, want, rendered) {
		if diff != "" {
			t.Errorf("%s disagrees with the rendering: %s", loader, diff)
		}
	}
	for _, v := range refused {
		checkRefusal(t, loaders, dir, v)
	}
}

// candidateForms are the renderings a refused value is tried in: as is, in
// single quotes, in double quotes with \n and \r escaped, and in double
// quotes with every escape some loader knows (escfs's former form).
func candidateForms(v string) []string {
	full := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\t", `\t`, "$", `\$`)
	return []string{v, "'" + v + "'", `"` + dotenvEscaper.Replace(v) + `"`, `"` + full.Replace(v) + `"`}
}

// checkRefusal fails the test when DotenvValue refuses v although one of the
// candidate forms holds it in every loader.
func checkRefusal(t *testing.T, loaders []dotenvLoader, dir, v string) {
	t.Helper()
	holders, err := formsThatHold(loaders, dir, v)
	if err != nil {
		t.Fatal(err)
	}
	if len(holders) > 0 {
		_, why := DotenvValue(v)
		t.Errorf("DotenvValue(%q) refuses it (%v), but every loader reads it back written as %s", v, why, holders[0])
	}
}

// formsThatHold returns the candidate forms of v that every quote-aware
// loader reads back exactly while docker run --env-file still reads the file
// as the same variables (it reads quotes literally).
func formsThatHold(loaders []dotenvLoader, dir, v string) ([]string, error) {
	var holders []string
	for _, form := range candidateForms(v) {
		f, err := os.CreateTemp(dir, "dotenv")
		if err != nil {
			return nil, err
		}
		_, err = f.WriteString("V=" + form + "\nZ=end\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		diffs := readAll(loaders, f.Name(), map[string]string{"V": v, "Z": "end"}, map[string]string{"V": form, "Z": "end"})
		_ = os.Remove(f.Name())
		// A raw line break: docker run reads what follows as a line of its
		// own, which may set any variable.
		holds := !strings.ContainsAny(form, "\n\r")
		for _, l := range loaders {
			d := diffs[l.name]
			if l.literal && !strings.HasPrefix(d, "cannot read") && !strings.Contains(d, "missing") && !strings.Contains(d, "unexpected") {
				d = "" // only the variables docker run finds count
			}
			holds = holds && d == ""
		}
		if holds {
			holders = append(holders, form)
		}
	}
	return holders, nil
}

// TestDotenvLoadersReadRender has every real loader read a whole rendered
// dotenv file and compares each variable with the snapshot's value.
func TestDotenvLoadersReadRender(t *testing.T) {
	snap, err := evaluate(t, testEvaluator(), goldenDir, "rich")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dotenv")
	if err := os.WriteFile(path, snap.Dotenv, 0o600); err != nil {
		t.Fatal(err)
	}
	want, rendered := map[string]string{}, map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(string(snap.Dotenv), "\n"), "\n") {
		name, form, _ := strings.Cut(line, "=")
		rendered[name] = form
	}
	for _, v := range snap.Vars {
		if _, ok := rendered[v.Name]; ok {
			want[v.Name] = v.Value
		}
	}
	if len(want) < 20 || len(want) != len(rendered) {
		t.Fatalf("%d variables in dotenv, %d of them in Vars; the fixture lost its nasty values", len(rendered), len(want))
	}
	for loader, diff := range readAll(dotenvLoaders(t), path, want, rendered) {
		if diff != "" {
			t.Errorf("%s: %s", loader, diff)
		}
	}
}

// TestDotenvRefusalsAreNeeded shows, with the real loaders, that each kind of
// value DotenvValue refuses is misread by some loader in every candidate
// form, and that the loaders can tell: the forms the seeds are accepted in
// come back exactly.
func TestDotenvRefusalsAreNeeded(t *testing.T) {
	loaders := dotenvLoaders(t)
	refused := []string{
		"\xff",                        // not UTF-8
		"${HOME}", "a${X:-y}b", "${}", // python-dotenv expands these everywhere
		"both ' and \" and\na line",
		"a \"quote\"\nand a line", // Node cannot escape " in double quotes
		"a\\b\nc",                 // godotenv drops \ before b, Node keeps \\
		"$x\nline",                // godotenv and compose expand $, python keeps \$
		" it's $5",                // not bare (space, $), not single (')
		" a\\\\b $",               // not bare, \\ breaks single quotes, $ breaks double
		" ends in a backslash\\",  // not bare; godotenv and compose read '...\' as an escaped quote
		"x\\",                     // fine bare: control case below
	}
	for _, v := range refused[:len(refused)-1] {
		if q, err := DotenvValue(v); err == nil {
			t.Errorf("DotenvValue(%q) = %s, want a refusal", v, q)
			continue
		}
		checkRefusal(t, loaders, t.TempDir(), v)
	}
	// Control: the check can fail. x\ is accepted bare, and every loader
	// reads it written as is.
	control := refused[len(refused)-1]
	holders, err := formsThatHold(loaders, t.TempDir(), control)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(holders, control) {
		t.Errorf("control: no loader-checked form holds %q; the refusal check proves nothing", control)
	}
}

// TestDotenvForms states which form each kind of value is written in.
func TestDotenvForms(t *testing.T) {
	tests := []struct {
		value, want string // want "" means refused
	}{
		{"", ""},
		{"plain-value_1.2:3/4+5@6%7=8~9,", "plain-value_1.2:3/4+5@6%7=8~9,"},
		{"a b c", "a b c"},
		{"it's", "it's"},
		{`say "hi"`, `say "hi"`},
		{`C:\dir\`, `C:\dir\`}, // python-dotenv mangled '...\'
		{`a\\b`, `a\\b`},       // python-dotenv read 'a\\b' as a\b
		{"a\tb", "a\tb"},
		{"日本語 🎉", "日本語 🎉"},
		{" lead", "' lead'"},
		{"trail ", "'trail '"},
		{"'quoted'", `"'quoted'"`},
		{`"dq"`, `'"dq"'`},
		{"$HOME", "'$HOME'"}, // godotenv would expand it bare and in double quotes
		{`\$`, `\$`},         // python-dotenv kept \$ in double quotes
		{"US$ 5", "US$ 5"},
		{"$(id) `id`", "$(id) `id`"},
		{"$$", "'$$'"},       // docker compose reads $
		{"$(ID)", "'$(ID)'"}, // godotenv expands it
		{"${x", "'${x'"},     // docker compose fails the file
		{"it's\n$5", ""},     // godotenv expands $5, single quotes cannot hold a line break
		{"a #b", "'a #b'"},
		{"\t", "'\t'"},
		{"\x01\x1b", "'\x01\x1b'"},
		{"line\nbreak", `"line\nbreak"`},
		{"a\r\nb", `"a\r\nb"`},
		{"it's\tnot\nbare", "\"it's\tnot\\nbare\""}, // godotenv read \t as t
	}
	for _, tt := range tests {
		got, err := DotenvValue(tt.value)
		if tt.want == "" && tt.value != "" {
			if err == nil {
				t.Errorf("DotenvValue(%q) = %q, want a refusal", tt.value, got)
			}
			continue
		}
		if tt.value == "" {
			if err != nil || got != "" {
				t.Errorf("DotenvValue(%q) = %q, %v; want the empty bare form", tt.value, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("DotenvValue(%q) = %q, %v; want %q", tt.value, got, err, tt.want)
		}
	}
	// Refusal messages never hold the value.
	for _, v := range []string{"s3cr3t\xff", "s3cr3t${X}", "s3cr3t'\"\n"} {
		if _, err := DotenvValue(v); err == nil || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("DotenvValue(%q): error %v, want one that does not quote the value", v, err)
		}
	}
	if _, err := dotenvLine("V", strings.Repeat("x", dotenvMaxLine)); err == nil {
		t.Error("a line longer than docker --env-file reads was accepted")
	}
	if _, err := dotenvLine("V", strings.Repeat("x", dotenvMaxLine-2)); err != nil {
		t.Errorf("the longest line docker --env-file reads was refused: %v", err)
	}
}
