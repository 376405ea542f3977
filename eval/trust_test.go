package eval_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/providers/builtin"
)

// TestUntrustedDefinitionsRefused: escfs serving user 1000 reads only
// definitions that user could trust, and the refusal quotes nothing of the
// file (the attack: defs/x.yaml -> /etc/shadow, then read status).
func TestUntrustedDefinitionsRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (chown); run make test as root")
	}
	dir, private := t.TempDir(), t.TempDir()
	const secret = "root:SHADOWLINE:19000:0:99999:7:::"
	shadow := filepath.Join(private, "shadow")
	writeFile(t, private, "shadow", secret+"\n")
	must(t, os.Chmod(shadow, 0o640))
	must(t, os.Symlink(shadow, filepath.Join(dir, "shadow.yaml")))
	writeFile(t, dir, "theirs.yaml", "values: {a: 1}\n")
	must(t, os.Chown(filepath.Join(dir, "theirs.yaml"), 2000, 2000))
	writeFile(t, dir, "open.yaml", "values: {a: 1}\n")
	must(t, os.Chmod(filepath.Join(dir, "open.yaml"), 0o666))
	writeFile(t, dir, "mine.yaml", "values: {a: 1}\n")
	must(t, os.Chown(filepath.Join(dir, "mine.yaml"), 1000, 1000))
	must(t, os.Chmod(filepath.Join(dir, "mine.yaml"), 0o600))
	writeFile(t, dir, "rootpublic.yaml", "values: {a: 1}\n")
	writeFile(t, dir, "importer.yaml", "imports: [shadow]\nvalues: {b: 1}\n")
	must(t, os.Chown(filepath.Join(dir, "importer.yaml"), 1000, 1000))

	ev := &eval.Evaluator{Providers: builtin.Registry(), Reader: &eval.Reader{UID: 1000, GID: 1000}}
	tree, err := eval.ScanDir(dir)
	must(t, err)
	for _, c := range []struct {
		env, want string
	}{
		{"shadow", "may not read"},
		{"theirs", "owned by uid 2000"},
		{"open", "writable by every user"},
		{"importer", "may not read"},
		{"mine", ""},
		{"rootpublic", ""},
	} {
		_, err := ev.Evaluate(context.Background(), tree, eval.Request{Name: c.env, FilesDir: "/files"})
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: a trusted definition was refused: %v", c.env, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: err = %v, want a refusal saying %q", c.env, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "SHADOWLINE") {
			t.Errorf("%s: the refusal quotes the file", c.env)
		}
		var de *eval.DiagnosticsError
		if c.want != "" && c.env != "importer" && errors.As(err, &de) && (de.Diagnostics[0].Line != 1 || !strings.HasSuffix(de.Diagnostics[0].File, "/"+c.env+".yaml")) {
			t.Errorf("%s: diagnostic %v, want it at the definition's 1:1", c.env, de.Diagnostics[0])
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
