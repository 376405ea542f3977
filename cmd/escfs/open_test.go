package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/internal/filetree"
	"github.com/escfs/escfs/internal/proppath"
)

// openEnv has nested values, arrays, a secret, awkward strings for shells
// and a files entry.
const openEnv = `values:
  app:
    name: demo
    port: 8080
    tags: [a, b]
    labels:
      app.kubernetes.io/name: demo
    token:
      fn::secret: tok-$(id)-'q'
  environmentVariables:
    APP_NAME: ${app.name}
    TRICKY: "it's \"$HOME\" $(id) ` + "`id`" + ` \\n\nnext line\ttab\n"
    TOKEN: ${app.token}
  files:
    CONFIG: "name=${app.name}\n"
`

// trickyWarning is the warning every evaluation of openEnv carries: no
// dotenv quoting holds TRICKY (a line break with ", \\ and $HOME), so it is
// left out of dotenv.
func trickyWarning(dir string) string {
	return filepath.Join(dir, "app.yaml") + `:12:5: warning: variable TRICKY left out of dotenv: no dotenv quoting keeps a value holding a line break, ', ", \, $, trailing white space the same in python-dotenv, godotenv, docker compose and Node's dotenv` + "\n"
}

// openDefs returns a definitions directory with openEnv as "app" and a
// broken environment "broken".
func openDefs(t *testing.T) string {
	return filetree.Write(t, "", map[string]string{
		"app.yaml":    openEnv,
		"broken.yaml": "values:\n  a: ok\n  b: ${nope}\n",
	})
}

func TestOpenJSONIsValuesJSON(t *testing.T) {
	dir := openDefs(t)
	tree, err := eval.ScanDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := newEvaluator().Evaluate(context.Background(), tree, eval.Request{Name: "app", FilesDir: "/x"})
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"open", "app"}, {"open", "app", "-f", "json"}} {
		r := escfsCLI(t, append([]string{"--dir", dir}, args...)...)
		if r.code != 0 || r.stdout != string(snap.ValuesJSON) || r.stderr != trickyWarning(dir) {
			t.Fatalf("%v: exit %d, stderr %q, stdout\n%s\nwant\n%s", args, r.code, r.stderr, r.stdout, snap.ValuesJSON)
		}
	}
}

func TestOpenPathAndFormats(t *testing.T) {
	dir := openDefs(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"app.name"}, "\"demo\"\n"},
		{[]string{"app.port"}, "8080\n"},
		{[]string{"app.tags[1]"}, "\"b\"\n"},
		{[]string{"app.tags"}, "[\n  \"a\",\n  \"b\"\n]\n"},
		{[]string{`app.labels["app.kubernetes.io/name"]`}, "\"demo\"\n"},
		{[]string{"app.token"}, "\"tok-$(id)-'q'\"\n"},
		{[]string{"app.tags", "-f", "yaml"}, "- a\n- b\n"},
		{[]string{"app", "-f", "yaml"}, "labels:\n   app.kubernetes.io/name: demo\nname: demo\nport: \"8080\"\ntags:\n   - a\n   - b\ntoken: tok-$(id)-'q'\n"},
		{[]string{"app.name", "-f", "string"}, "demo\n"},
		{[]string{"app.token", "-f", "string"}, "tok-$(id)-'q'\n"},
		{[]string{"app.tags", "-f", "string"}, "\"a\",\"b\"\n"},
		{[]string{"environmentVariables.APP_NAME", "-f", "string"}, "demo\n"},
		{[]string{"files.CONFIG", "-f", "string"}, "name=demo\n"}, // ends in a newline already
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := escfsCLI(t, append([]string{"--dir", dir, "open", "app"}, tt.args...)...)
			if r.code != 0 || r.stdout != tt.want {
				t.Fatalf("exit %d, stderr %q, stdout\n%q\nwant\n%q", r.code, r.stderr, r.stdout, tt.want)
			}
		})
	}
}

func TestOpenShellSourcesExactly(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)         // on disk: escfs open must not put the files here
	t.Setenv("XDG_RUNTIME_DIR", "") // so the files go to /dev/shm
	dir := openDefs(t)
	r := escfsCLI(t, "--dir", dir, "open", "app", "-f", "shell")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	script := filepath.Join(t.TempDir(), "env.sh")
	if err := os.WriteFile(script, []byte(r.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"APP_NAME": "demo",
		"TRICKY":   "it's \"$HOME\" $(id) `id` \\n\nnext line\ttab\n",
		"TOKEN":    "tok-$(id)-'q'",
	}
	for name, value := range want {
		out, err := exec.Command("bash", "-c", `. "$1"; printf %s "${!2}"`, "bash", script, name).Output()
		if err != nil || string(out) != value {
			t.Errorf("sourced %s = %q, %v; want %q", name, out, err, value)
		}
	}

	// The files entry: its variable points into a new private directory on
	// a memory filesystem that escfs open keeps, and says so on stderr.
	out, err := exec.Command("bash", "-c", `. "$1"; printf %s "$CONFIG"`, "bash", script).Output()
	if err != nil {
		t.Fatal(err)
	}
	config := string(out)
	filesDir := filepath.Dir(config)
	t.Cleanup(func() { os.RemoveAll(filesDir) })
	if filepath.Dir(filesDir) != "/dev/shm" || filepath.Base(config) != "CONFIG" {
		t.Fatalf("CONFIG=%q, want /dev/shm/<new dir>/CONFIG (never $TMPDIR, which is on disk)", config)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(filesDir, &fs); err != nil || fs.Type != unix.TMPFS_MAGIC {
		t.Fatalf("%s is not on tmpfs (type %#x, %v)", filesDir, fs.Type, err)
	}
	if !strings.Contains(r.stderr, filesDir) {
		t.Errorf("stderr %q does not name the files directory %s", r.stderr, filesDir)
	}
	if content, err := os.ReadFile(config); err != nil || string(content) != "name=demo\n" {
		t.Errorf("CONFIG content %q, %v", content, err)
	}
	for path, mode := range map[string]os.FileMode{filesDir: 0o700 | os.ModeDir, config: 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode() != mode {
			t.Errorf("%s: mode %v, %v; want %v", path, fi.Mode(), err, mode)
		}
	}
}

// memRuntimeDir makes a private directory on /dev/shm (tmpfs), sets
// $XDG_RUNTIME_DIR to it for the test, and removes it afterwards.
func memRuntimeDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("/dev/shm", "escfs-test-runtime-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	t.Setenv("XDG_RUNTIME_DIR", d)
	return d
}

func TestOpenDotenv(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	tmp := memRuntimeDir(t)
	dir := openDefs(t)
	r := escfsCLI(t, "--dir", dir, "open", "app", "-f", "dotenv")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	entries, err := os.ReadDir(tmp)
	if err != nil || len(entries) != 1 {
		t.Fatalf("files directories in $XDG_RUNTIME_DIR: %v, %v; want one", entries, err)
	}
	// No dotenv quoting holds TRICKY: it is left out, and said so on stderr.
	wantStderr := trickyWarning(dir) + "escfs: wrote 1 file(s) for app to " + filepath.Join(tmp, entries[0].Name()) + "; it is not removed, delete it when done\n"
	if r.stderr != wantStderr {
		t.Errorf("stderr %q, want the warning that TRICKY is left out, then where the files are: %q", r.stderr, wantStderr)
	}
	want := []string{
		"APP_NAME=demo",
		"CONFIG=" + filepath.Join(tmp, entries[0].Name(), "CONFIG"),
		`TOKEN=tok-$(id)-'q'`, // bare: every dotenv loader and docker --env-file read it literally
	}
	got := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("dotenv lines %q, want exactly %q (TRICKY left out)", got, want)
	}
}

// TestOpenShellWithoutFiles checks that no directory is left behind when
// there is nothing to put in it.
func TestOpenShellWithoutFiles(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	tmp := memRuntimeDir(t)
	dir := filetree.Write(t, "", map[string]string{"plain.yaml": "values:\n  environmentVariables:\n    A: b\n"})
	r := escfsCLI(t, "--dir", dir, "open", "plain", "-f", "shell")
	if r.code != 0 || r.stdout != "export A='b'\n" || r.stderr != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Fatalf("left in $XDG_RUNTIME_DIR: %v", entries)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	tmp := memRuntimeDir(t)
	dir := openDefs(t)
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"broken"}, filepath.Join(dir, "broken.yaml") + ":3:8: unknown property \"nope\"\n"},
		{[]string{"broken", "-f", "shell"}, filepath.Join(dir, "broken.yaml") + ":3:8: unknown property \"nope\"\n"},
		{[]string{"nosuch"}, "escfs: environment \"nosuch\" not found in " + dir + "\n"},
		{[]string{"app", "app.nope"}, trickyWarning(dir) + "escfs: app has no value at app.nope\n"},
		{[]string{"app", "app.tags[2]"}, trickyWarning(dir) + "escfs: app has no value at app.tags[2]\n"},
		{[]string{"app", "app..name"}, "escfs: invalid property path \"app..name\" at offset 4: expected a name\n"},
		{[]string{"app", "-f", "xml"}, "escfs: unknown output format \"xml\" (use one of json, yaml, string, shell, dotenv)\n"},
		{[]string{"app", "app.name", "-f", "shell"}, "escfs: output format \"shell\" may not be used with a property path\n"},
		{[]string{"app", "app.name", "-f", "dotenv"}, "escfs: output format \"dotenv\" may not be used with a property path\n"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := escfsCLI(t, append([]string{"--dir", dir, "open"}, tt.args...)...)
			if r.code != 1 || r.stdout != "" || r.stderr != tt.wantErr {
				t.Fatalf("exit %d, stdout %q, stderr\n%q\nwant\n%q", r.code, r.stdout, r.stderr, tt.wantErr)
			}
		})
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Fatalf("left in $XDG_RUNTIME_DIR: %v", entries)
	}
}

func TestParsePropertyPath(t *testing.T) {
	tests := []struct {
		in   string
		want proppath.Path
	}{
		{"a", proppath.Path{"a"}},
		{"aws.creds", proppath.Path{"aws", "creds"}},
		{"app.tags[0]", proppath.Path{"app", "tags", 0}},
		{"a[1][2].b", proppath.Path{"a", 1, 2, "b"}},
		{`a["x.y[z]"]`, proppath.Path{"a", "x.y[z]"}},
		{`a["q\"b\\s"]`, proppath.Path{"a", `q"b\s`}},
		{`["top"].x`, proppath.Path{"top", "x"}},
		{"[3]", proppath.Path{3}},
		{"key-with_dash:colon", proppath.Path{"key-with_dash:colon"}},
	}
	for _, tt := range tests {
		got, err := proppath.Parse(tt.in)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("proppath.Parse(%q) = %#v, %v; want %#v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", ".a", "a.", "a..b", "a[", "a[x]", "a[-1]", "a[+1]", `a["x`, `a["x"`, "a]", "a[0]b", `a["x"]y`} {
		if got, err := proppath.Parse(bad); err == nil {
			t.Errorf("proppath.Parse(%q) = %#v, want an error", bad, got)
		}
	}
}
