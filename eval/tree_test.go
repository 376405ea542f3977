package eval

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeTree creates files (path relative to the returned directory -> content)
// in a new temporary directory.
func writeTree(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// defsOf returns "short=relative path" for every definition of tree.
func defsOf(t *testing.T, tree *Tree) []string {
	t.Helper()
	var out []string
	for _, d := range tree.Definitions() {
		rel, err := filepath.Rel(tree.Root, d.Path)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d.Name.Short()+"="+filepath.ToSlash(rel))
	}
	return out
}

// problemsOf returns "relative path: message" for every problem of tree.
func problemsOf(t *testing.T, tree *Tree) []string {
	t.Helper()
	var out []string
	for _, p := range tree.Problems {
		rel, err := filepath.Rel(tree.Root, p.File)
		if err != nil {
			t.Fatal(err)
		}
		if p.Severity != SeverityWarning {
			t.Errorf("problem %v has severity %q, want warning", p, p.Severity)
		}
		out = append(out, filepath.ToSlash(rel)+": "+p.Message)
	}
	return out
}

func TestScanDir(t *testing.T) {
	const def = "values: {a: 1}\n"
	tests := []struct {
		name     string
		files    map[string]string
		defs     []string // short=path, sorted by short name
		problems []string // substrings, one per problem, in order
	}{
		{
			name:  "top level is the default project",
			files: map[string]string{"prod.yaml": def, "dev.yml": def},
			defs:  []string{"dev=dev.yml", "prod=prod.yaml"},
		},
		{
			name:  "one level of project directories",
			files: map[string]string{"demos/x.yml": def, "demos/y.yaml": def, "default/z.yaml": def},
			defs:  []string{"demos/x=demos/x.yml", "demos/y=demos/y.yaml", "z=default/z.yaml"},
		},
		{
			name:     "upper-case extensions are warned about, not read",
			files:    map[string]string{"prod.YAML": def, "demos/x.Yml": def, "ok.yaml": def},
			defs:     []string{"ok=ok.yaml"},
			problems: []string{"prod.YAML: not an environment: the extension .YAML is not .yaml", "demos/x.Yml: not an environment: the extension .Yml is not .yml"},
		},
		{
			name:  "deeper files are ignored",
			files: map[string]string{"demos/deep/x.yaml": def, "a/b/c/d.yaml": def},
		},
		{
			name: "other extensions, hidden files and editor droppings are ignored",
			files: map[string]string{
				"prod.json": def, "prod.yaml~": def, "prod": def, "README.md": "hi",
				".hidden.yaml": def, ".prod.yaml.swp": def, ".#prod.yaml": def, "#prod.yaml#": def,
				"demos/.x.yaml": def, "demos/x.yaml.bak": def, ".git/config.yaml": def, "4913": "",
			},
		},
		{
			name:     "invalid file names are problems",
			files:    map[string]string{"bad name.yaml": def, "ok.yaml": def, "demos/x@1.yaml": def, "bad proj/y.yaml": def},
			defs:     []string{"ok=ok.yaml"},
			problems: []string{`bad name.yaml: not an environment: invalid environment name "bad name"`, `bad proj/y.yaml: not an environment: invalid environment name "bad proj/y": project:`, `demos/x@1.yaml: not an environment:`},
		},
		{
			name:     ".yaml wins over .yml",
			files:    map[string]string{"prod.yml": def, "prod.yaml": def},
			defs:     []string{"prod=prod.yaml"},
			problems: []string{"prod.yml: ignored: " + "ROOT/prod.yaml also defines prod"},
		},
		{
			name:     ".yaml wins over .yml in a project",
			files:    map[string]string{"demos/x.yaml": def, "demos/x.yml": def},
			defs:     []string{"demos/x=demos/x.yaml"},
			problems: []string{"demos/x.yml: ignored: ROOT/demos/x.yaml also defines demos/x"},
		},
		{
			name:     "top level wins over default/",
			files:    map[string]string{"prod.yml": def, "default/prod.yaml": def},
			defs:     []string{"prod=prod.yml"},
			problems: []string{"default/prod.yaml: ignored: ROOT/prod.yml also defines prod"},
		},
		{
			name:     "three definitions of one name",
			files:    map[string]string{"prod.yml": def, "prod.yaml": def, "default/prod.yaml": def},
			defs:     []string{"prod=prod.yaml"},
			problems: []string{"ignored: ROOT/prod.yaml also defines prod", "ignored: ROOT/prod.yaml also defines prod"},
		},
		{
			name:  "empty directory",
			files: map[string]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeTree(t, tt.files)
			tree, err := ScanDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := defsOf(t, tree); !reflect.DeepEqual(got, tt.defs) {
				t.Errorf("definitions = %q, want %q", got, tt.defs)
			}
			got := problemsOf(t, tree)
			if len(got) != len(tt.problems) {
				t.Fatalf("problems = %q, want %d matching %q", got, len(tt.problems), tt.problems)
			}
			// Problems about clashes come in directory order; match as a set.
			used := make([]bool, len(got))
		next:
			for _, want := range tt.problems {
				want = strings.ReplaceAll(want, "ROOT/", dir+"/")
				for i, g := range got {
					if !used[i] && strings.Contains(g, want) {
						used[i] = true
						continue next
					}
				}
				t.Errorf("no problem matches %q in %q", want, got)
			}
		})
	}
}

func TestScanDirSymlinkedProject(t *testing.T) {
	other := writeTree(t, map[string]string{"x.yaml": "values: {}\n"})
	dir := writeTree(t, map[string]string{"top.yaml": "values: {}\n"})
	if err := os.Symlink(other, filepath.Join(dir, "linked")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "top.yaml"), filepath.Join(dir, "alias.yaml")); err != nil {
		t.Fatal(err)
	}
	tree, err := ScanDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"alias=alias.yaml", "linked/x=linked/x.yaml", "top=top.yaml"}
	if got := defsOf(t, tree); !reflect.DeepEqual(got, want) {
		t.Errorf("definitions = %q, want %q", got, want)
	}
}

func TestScanDirMissing(t *testing.T) {
	if _, err := ScanDir(filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Fatal("ScanDir of a missing directory succeeded")
	}
}

func TestScanDirUncleanRoot(t *testing.T) {
	// A root given with a trailing slash or "./" still puts top-level files in
	// the default project and prefers them over DIR/default/.
	dir := writeTree(t, map[string]string{"prod.yaml": "values: {}\n", "default/prod.yaml": "values: {}\n"})
	for _, root := range []string{dir + "/", dir + "/.", dir + "//"} {
		tree, err := ScanDir(root)
		if err != nil {
			t.Fatal(err)
		}
		d, err := tree.Lookup("prod")
		if err != nil {
			t.Fatalf("root %q: %v", root, err)
		}
		if d.Path != filepath.Join(dir, "prod.yaml") {
			t.Errorf("root %q: prod is %s, want the top-level file", root, d.Path)
		}
	}
}

func TestTreeLookup(t *testing.T) {
	dir := writeTree(t, map[string]string{"prod.yaml": "", "demos/x.yaml": ""})
	tree, err := ScanDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, err string
	}{
		{name: "prod", path: "prod.yaml"},
		{name: "default/prod", path: "prod.yaml"},
		{name: "demos/x", path: "demos/x.yaml"},
		{name: "x", err: `environment "x" not found`},
		{name: "demos/prod", err: "not found"},
		{name: "bad name", err: "invalid environment name"},
		{name: "prod@2", err: "versions"},
	}
	for _, tt := range tests {
		d, err := tree.Lookup(tt.name)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Lookup(%q) = %v, %v; want error containing %q", tt.name, d, err, tt.err)
			}
			continue
		}
		if err != nil || d.Path != filepath.Join(dir, tt.path) {
			t.Errorf("Lookup(%q) = %v, %v; want %s", tt.name, d, err, tt.path)
		}
	}
}
