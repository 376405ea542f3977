package eval

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the .golden files of eval/testdata/golden")

const goldenDir = "testdata/golden"

// renderings returns every rendering of snap by golden file suffix.
func renderings(snap *Snapshot) map[string][]byte {
	var files, vars, secrets, warnings bytes.Buffer
	for _, f := range snap.Files {
		fmt.Fprintf(&files, "%s secret=%t %s\n", f.Name, f.Secret, strconv.Quote(string(f.Content)))
	}
	for _, v := range snap.Vars {
		fmt.Fprintf(&vars, "%s secret=%t file=%t %s\n", v.Name, v.Secret, v.File, strconv.Quote(v.Value))
	}
	for _, s := range snap.Secrets {
		fmt.Fprintf(&secrets, "%s\n", strconv.Quote(s))
	}
	for _, d := range snap.Diagnostics {
		fmt.Fprintf(&warnings, "%s\n", d)
	}
	return map[string][]byte{
		"env":      snap.Env,
		"dotenv":   snap.Dotenv,
		"json":     snap.ValuesJSON,
		"files":    files.Bytes(),
		"vars":     vars.Bytes(),
		"secrets":  secrets.Bytes(),
		"warnings": warnings.Bytes(),
	}
}

func TestGolden(t *testing.T) {
	for _, env := range []string{"rich", "base"} {
		t.Run(env, func(t *testing.T) {
			snap, err := evaluate(t, testEvaluator(), goldenDir, env)
			if err != nil {
				t.Fatal(err)
			}
			for suffix, got := range renderings(snap) {
				path := filepath.Join(goldenDir, env+"."+suffix+".golden")
				if *update {
					if err := os.WriteFile(path, got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test ./eval -run TestGolden -update to create it)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs (go test ./eval -run TestGolden -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
				}
			}
		})
	}
}

// TestRenderDeterministic evaluates one environment repeatedly: map
// iteration order must never leak into a rendering or the warnings.
func TestRenderDeterministic(t *testing.T) {
	first, err := evaluate(t, testEvaluator(), goldenDir, "rich")
	if err != nil {
		t.Fatal(err)
	}
	want := renderings(first)
	for i := 0; i < 20; i++ {
		snap, err := evaluate(t, testEvaluator(), goldenDir, "rich")
		if err != nil {
			t.Fatal(err)
		}
		for k, got := range renderings(snap) {
			if !bytes.Equal(got, want[k]) {
				t.Fatalf("run %d: %s differs:\n%s\nfirst:\n%s", i, k, got, want[k])
			}
		}
	}
}

// TestRenderRules states the rendering rules one by one, independent of the
// golden files.
func TestRenderRules(t *testing.T) {
	snap, err := evaluate(t, testEvaluator(), goldenDir, "rich")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]Var{}
	for _, v := range snap.Vars {
		vars[v.Name] = v
	}
	env := string(snap.Env)
	filesDir := "/run/escfs/rich"

	tests := []struct {
		name    string
		present bool   // in Vars
		value   string // its value when present
		inEnv   bool   // exported by Env and (unless noDotenv) Dotenv
		// noDotenv: left out of Dotenv, since no quoting is read back the
		// same by every dotenv loader (see DotenvValue).
		noDotenv bool
		secret   bool
		file     bool
	}{
		{name: "STRING", present: true, value: "plain-value_1.2:3/4+5@6%7=8~9,", inEnv: true},
		{name: "EMPTY", present: true, value: "", inEnv: true},
		{name: "NUMBER", present: true, value: "8080", inEnv: true},
		{name: "FLOAT", present: true, value: "1.5", inEnv: true}, // the evaluator's number text, not the source's "1.50"
		{name: "BIG", present: true, value: "12345678901234567890", inEnv: true},
		{name: "EXP", present: true, value: "1000", inEnv: true},
		{name: "TRUE", present: true, value: "true", inEnv: true},
		{name: "FALSE", present: true, value: "false", inEnv: true},
		{name: "NULL", present: true, value: "", inEnv: true},
		{name: "OBJECT"},
		{name: "ARRAY"},
		{name: "OVERRIDDEN", present: true, value: "rich", inEnv: true},
		{name: "FROM_BASE", present: true, value: "base", inEnv: true},
		{name: "SHADOWED", present: true, value: filesDir + "/SHADOWED", inEnv: true, file: true},
		{name: "SECRET", present: true, value: "s3cr3t'\"$(id)`id`", inEnv: true, secret: true},
		{name: "SECRET_FILE", present: true, value: filesDir + "/SECRET_FILE", inEnv: true, file: true},
		{name: "NULL_FILE", present: true, value: filesDir + "/NULL_FILE", inEnv: true, file: true},
		{name: "OBJECT_FILE"},
		{name: "INVALID_UTF8", present: true, value: "\xff\xc0\xc0a", inEnv: true, noDotenv: true},
		{name: "DOLLAR", present: true, value: "$HOME and ${HOME} and $(id)", inEnv: true, noDotenv: true},
		{name: "PADDED", present: true, value: " padded ", inEnv: true},
		{name: "WINDOWS", present: true, value: `C:\dir\`, inEnv: true},
		{name: "DOLLAR_PLAIN", present: true, value: "US$ 5 and $(id)", inEnv: true},
		{name: "QUOTE_LINE", present: true, value: "say \"hi\"\n", inEnv: true, noDotenv: true},
		{name: "ALL_KINDS", present: true, value: "it's \"x\" and $5\n", inEnv: true, noDotenv: true},
		{name: "CONTROL", present: true, value: "\x01\x02\x1b\x1f\x7f", inEnv: true},
		{name: "HAS_NUL"},
		{name: "WITH_NUL", present: true, value: filesDir + "/WITH_NUL", inEnv: true, file: true},
		{name: "not-shell", present: true, value: "left out of env and dotenv"},
		{name: "1ST", present: true, value: "starts with a digit"},
		{name: "base.dotted", present: true, value: "not a shell name"},
		{name: "app.conf", present: true, value: filesDir + "/app.conf", file: true},
		{name: "_ok_9", present: true, value: "underscore and digits", inEnv: true},
		{name: "a/b"},
		{name: ".."},
		{name: "."},
	}
	for _, tt := range tests {
		v, ok := vars[tt.name]
		if ok != tt.present {
			t.Errorf("%s: in Vars = %v, want %v", tt.name, ok, tt.present)
			continue
		}
		if ok && (v.Value != tt.value || v.Secret != tt.secret || v.File != tt.file) {
			t.Errorf("%s = %+v, want value %q secret %v file %v", tt.name, v, tt.value, tt.secret, tt.file)
		}
		line := "export " + tt.name + "="
		if got := strings.Contains(env, "\n"+line) || strings.HasPrefix(env, line); got != tt.inEnv {
			t.Errorf("%s: in Env = %v, want %v", tt.name, got, tt.inEnv)
		}
		inDotenv := bytes.HasPrefix(snap.Dotenv, []byte(tt.name+"=")) || bytes.Contains(snap.Dotenv, []byte("\n"+tt.name+"="))
		if want := tt.inEnv && !tt.noDotenv; inDotenv != want {
			t.Errorf("%s: in Dotenv = %v, want %v", tt.name, inDotenv, want)
		}
	}

	// Files: refused names are absent, the rest carry their content.
	wantFiles := map[string]string{
		"BASE_FILE": "from base", "CONFIG": "{\"a\": 1}\n", "NULL_FILE": "", "NUMBER_FILE": "42",
		"SECRET_FILE": "s3cr3t'\"$(id)`id`", "SHADOWED": "file content\n", "WITH_NUL": "a\x00b",
		"app.conf": "not a shell name, but a fine file name",
	}
	if len(snap.Files) != len(wantFiles) {
		t.Errorf("Files = %d entries, want %d", len(snap.Files), len(wantFiles))
	}
	for name, content := range wantFiles {
		f, ok := snap.File(name)
		if !ok || string(f.Content) != content {
			t.Errorf("File(%q) = %q, %v; want %q", name, f.Content, ok, content)
		}
		if f.Secret != (name == "SECRET_FILE") {
			t.Errorf("File(%q).Secret = %v", name, f.Secret)
		}
	}

	// Every warning is located, in the file that defines its key.
	wantWarnings := map[string]string{
		`file ".." left out`:                                                     "rich.yaml:55:5",
		`file "." left out`:                                                      "rich.yaml:56:5",
		`file "a/b" left out`:                                                    "rich.yaml:54:5",
		`variable "1ST" left out of env and dotenv`:                              "rich.yaml:45:5",
		`variable HAS_NUL left out: its value holds a NUL`:                       "rich.yaml:41:5",
		`variable "app.conf" left out of env and dotenv`:                         "rich.yaml:57:5",
		`variable "base.dotted" left out of env and dotenv`:                      "base.yaml:7:5",
		`variable "not-shell" left out of env and dotenv`:                        "rich.yaml:44:5",
		`variable INVALID_UTF8 left out of dotenv: its value is not valid UTF-8`: "rich.yaml:40:5",
		`variable DOLLAR left out of dotenv: its value holds ${...}`:             "rich.yaml:32:5",
		`variable QUOTE_LINE left out of dotenv: no dotenv quoting`:              "base.yaml:11:5",
		`variable ALL_KINDS left out of dotenv: no dotenv quoting`:               "base.yaml:12:5",
		"YAML reads 1.50 as the number 1.5":                                      "rich.yaml:8:12",
		"12345678901234567890 is larger than 2^53":                               "rich.yaml:9:10",
		"YAML reads 1e3 as the number 1000":                                      "rich.yaml:22:10",
	}
	if len(snap.Diagnostics) != len(wantWarnings) {
		t.Errorf("%d diagnostics, want %d:\n%s", len(snap.Diagnostics), len(wantWarnings), diagLines(snap.Diagnostics))
	}
	for msg, loc := range wantWarnings {
		found := false
		for _, d := range snap.Diagnostics {
			if strings.Contains(d.Message, msg) {
				found = true
				if got := fmt.Sprintf("%s:%d:%d", filepath.Base(d.File), d.Line, d.Column); got != loc || d.Severity != SeverityWarning {
					t.Errorf("%q at %s (%s), want %s (warning)", msg, got, d.Severity, loc)
				}
			}
		}
		if !found {
			t.Errorf("no warning %q in:\n%s", msg, diagLines(snap.Diagnostics))
		}
	}

	// The secret and nothing else is listed for redaction.
	if want := []string{"s3cr3t'\"$(id)`id`"}; len(snap.Secrets) != 1 || snap.Secrets[0] != want[0] {
		t.Errorf("Secrets = %q, want %q", snap.Secrets, want)
	}
}

func TestSecretStringsOrder(t *testing.T) {
	dir := writeTree(t, map[string]string{"s.yaml": `values:
  a: {fn::secret: ab}
  b: {fn::secret: abc}
  c: {fn::secret: b}
  d: {fn::secret: abc}
  e: {fn::secret: ""}
  nested:
    fn::secret: x
  plain: abcd
`})
	snap, err := evaluate(t, testEvaluator(), dir, "s")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"abc", "ab", "b", "x"}
	if strings.Join(snap.Secrets, ",") != strings.Join(want, ",") {
		t.Errorf("Secrets = %q, want %q (longest first, no repeats, no empty)", snap.Secrets, want)
	}
}
