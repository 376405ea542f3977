package rewrite

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/providers/builtin"
	"github.com/escfs/escfs/secrets"
	"github.com/escfs/escfs/yamledit"
)

// fixture is a definitions directory with a rule to one age recipient, and
// an editor over it whose keyring holds that recipient's identity.
type fixture struct {
	dir    string
	ed     *Editor
	rcpt   string
	keyTxt string
}

func newFixture(t *testing.T, files map[string]string) *fixture {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	idFile := filepath.Join(t.TempDir(), "ids.txt")
	if err := os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	files[".escfs.yaml"] = "secrets:\n  - environments: \"*\"\n    age: [" + id.Recipient().String() + "]\n"
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	f := &fixture{dir: dir, rcpt: id.Recipient().String(), keyTxt: idFile}
	f.rescan(t)
	return f
}

// rescan makes a new editor over the directory as it is now.
func (f *fixture) rescan(t *testing.T) {
	t.Helper()
	tree, err := eval.ScanDir(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := secrets.LoadRules(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	keys := secrets.NewKeyring(secrets.KeyringOptions{IdentitiesFile: f.keyTxt})
	t.Cleanup(keys.Close)
	f.ed = &Editor{Tree: tree, Rules: rules, Keys: keys, Evaluator: &eval.Evaluator{Providers: builtin.Registry(), Decrypter: keys, AtRest: secrets.AtRest{}}}
}

// write returns a function that writes a change and rescans, for
// f.write(t)(f.ed.Encrypt(...)).
func (f *fixture) write(t *testing.T) func(Change, error) string {
	return func(c Change, err error) string { t.Helper(); return f.apply(t, c, err) }
}

// apply writes a change and rescans.
func (f *fixture) apply(t *testing.T, c Change, err error) string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Write(); err != nil {
		t.Fatal(err)
	}
	f.rescan(t)
	return string(c.New)
}

// values evaluates name and returns its values as JSON.
func (f *fixture) values(t *testing.T, name string) string {
	t.Helper()
	snap, err := f.ed.Evaluator.Evaluate(context.Background(), f.ed.Tree, eval.Request{Name: name, FilesDir: "/f"})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(strings.Fields(string(snap.ValuesJSON)), "")
}

// headers returns, for each ciphertext of src, its recipients and data
// key. Equal headers, one data key.
func headers(t *testing.T, src string) []string {
	t.Helper()
	ss, err := yamledit.Secrets([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range ss {
		if s.IsPlaintext {
			continue
		}
		inner, err := innerOf(context.Background(), s.Ciphertext)
		if err != nil {
			t.Fatal(err)
		}
		recipients, err := secrets.EnvelopeRecipients(inner)
		if err != nil {
			t.Fatal(err)
		}
		id, err := secrets.DataKeyID(inner)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.Join(recipients, ",")+"|"+id)
	}
	return out
}

// TestRewriteErrorsAreLocated: a secret that cannot be rotated fails at
// its FILE:LINE:COL, naming the secret and what failed.
func TestRewriteErrorsAreLocated(t *testing.T) {
	f := newFixture(t, map[string]string{"app.yaml": "values:\n  ok: 1\n  pw:\n    fn::secret: {ciphertext: ZXNjeAAAAAEBAgM=}\n"})
	_, err := f.ed.Rotate(context.Background(), "app", false)
	want := filepath.Join(f.dir, "app.yaml") + ":4:17: rotating pw: decrypt: "
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("rotate: %v, want %s...", err, want)
	}
}

// TestEncryptDataKeys: one data key per write, a new one each time: a
// later set --secret or encrypt never takes the file's (which anyone could
// have planted), and rotate takes one for all.
func TestEncryptDataKeys(t *testing.T) {
	f := newFixture(t, map[string]string{
		"app.yaml": "# top\nvalues:\n  a:\n    fn::secret: aaaaaaaa # keep me\n\n  b: {fn::secret: bbbbbbbb}\n  plain: x\n",
	})
	out := f.write(t)(f.ed.Encrypt(context.Background(), "app"))
	if strings.Contains(out, "aaaaaaaa") || strings.Contains(out, "bbbbbbbb") || !strings.Contains(out, "# keep me\n\n  b: {fn::secret: {ciphertext: ") || !strings.HasPrefix(out, "# top\nvalues:\n  a:\n") {
		t.Fatalf("encrypted file:\n%s", out)
	}
	h := headers(t, out)
	if len(h) != 2 || h[0] != h[1] {
		t.Fatalf("two values, want one data key: %d headers, equal %v", len(h), len(h) == 2 && h[0] == h[1])
	}
	if !strings.Contains(h[0], f.rcpt) {
		t.Errorf("envelope recipients %q, want %s", h[0][:strings.IndexByte(h[0], '|')], f.rcpt)
	}
	if got := f.values(t, "app"); !strings.Contains(got, `"a":"aaaaaaaa"`) || !strings.Contains(got, `"b":"bbbbbbbb"`) {
		t.Errorf("values after encrypt: %s", got)
	}
	// A set --secret later takes a new data key.
	out = f.write(t)(f.ed.Set(context.Background(), "app", "c", "cccccccc", Secret))
	if h2 := headers(t, out); len(h2) != 3 || h2[2] == h[0] || h2[0] != h[0] {
		t.Errorf("set --secret reused the file's data key, or changed the others")
	}
	// Rotate takes a new one, for all.
	before := out
	out = f.write(t)(f.ed.Rotate(context.Background(), "app", false))
	if h3 := headers(t, out); len(h3) != 3 || h3[0] == h[0] || h3[0] != h3[2] {
		t.Errorf("rotate: want one new data key for all three")
	}
	if strings.Count(out, "\n") != strings.Count(before, "\n") || !strings.Contains(out, "# keep me") {
		t.Errorf("rotate changed the layout:\n%s", out)
	}
	if got := f.values(t, "app"); !strings.Contains(got, `"c":"cccccccc"`) {
		t.Errorf("values after rotate: %s", got)
	}
	// Encrypt of a plaintext added later takes a new data key too.
	rotated := headers(t, out)[0]
	if err := os.WriteFile(filepath.Join(f.dir, "app.yaml"), []byte(out+"  d: {fn::secret: dddddddd}\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	f.rescan(t)
	out = f.write(t)(f.ed.Encrypt(context.Background(), "app"))
	if h4 := headers(t, out); len(h4) != 4 || h4[3] == rotated || h4[0] != rotated {
		t.Errorf("encrypt of a new plaintext reused the file's data key, or changed the others")
	}
}

func TestEditRoundTrip(t *testing.T) {
	f := newFixture(t, map[string]string{
		"app.yaml": "values:\n  a:\n    fn::secret: aaaaaaaa\n  b: {fn::secret: bbbbbbbb}\n  n: 1 # a number\n",
	})
	enc := f.write(t)(f.ed.Encrypt(context.Background(), "app"))
	ctx := context.Background()
	s, err := f.ed.Begin(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	view := string(s.View())
	if !strings.Contains(view, "fn::secret: aaaaaaaa") || !strings.Contains(view, "{fn::secret: bbbbbbbb}") || strings.Count(view, "\n") != strings.Count(enc, "\n") {
		t.Fatalf("view:\n%s", view)
	}
	// Unchanged: nothing to write.
	if c, err := s.Finish(ctx, s.View()); err != nil || c.Changed() {
		t.Fatalf("unchanged view: changed %v, %v", c.Changed(), err)
	}
	// A change of one value and a new secret: the other ciphertext stays.
	edited := strings.Replace(view, "bbbbbbbb", "BBBBBBBB", 1) + "  d:\n    fn::secret: dddddddd\n"
	c, err := s.Finish(ctx, []byte(edited))
	if err != nil {
		t.Fatal(err)
	}
	out := f.apply(t, c, nil)
	if c.Count != 2 {
		t.Errorf("Count = %d, want 2 (b changed, d new)", c.Count)
	}
	if lineOf(out, "a:", 1) != lineOf(enc, "a:", 1) {
		t.Errorf("the unchanged ciphertext changed:\n%s\nwas\n%s", out, enc)
	}
	for _, plain := range []string{"aaaaaaaa", "BBBBBBBB", "dddddddd", "bbbbbbbb"} {
		if strings.Contains(out, plain) {
			t.Errorf("plaintext %s in the file:\n%s", plain, out)
		}
	}
	if got := f.values(t, "app"); !strings.Contains(got, `"b":"BBBBBBBB"`) || !strings.Contains(got, `"d":"dddddddd"`) || !strings.Contains(got, `"a":"aaaaaaaa"`) {
		t.Errorf("values after edit: %s", got)
	}
	// Invalid edits are refused with positions in the edit.
	for _, bad := range []string{"values:\n  a: [\n", "values:\n  a: ${nowhere.x}\n"} {
		_, err := s.Finish(ctx, []byte(bad))
		var de *eval.DiagnosticsError
		var se *yamledit.SyntaxError
		if !errors.As(err, &de) && !errors.As(err, &se) {
			t.Errorf("Finish(%q) = %v, want a located error", bad, err)
		} else if !strings.Contains(err.Error(), ":2:") {
			t.Errorf("Finish(%q) = %v, want line 2", bad, err)
		}
	}
}

// lineOf returns the n-th line after the first line containing sub.
func lineOf(s, sub string, n int) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.Contains(l, sub) && i+n < len(lines) {
			return lines[i+n]
		}
	}
	return ""
}

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real.yaml")
	if err := os.WriteFile(real, []byte("values: {a: 1}\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "app.yaml")
	if err := os.Symlink("real.yaml", link); err != nil {
		t.Fatal(err)
	}
	c := Change{Path: link, Old: []byte("values: {a: 1}\n"), New: []byte("values: {a: 2}\n")}
	if err := c.Write(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symlink was replaced: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(real); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode not kept: %v %v", fi.Mode(), err)
	}
	if b, _ := os.ReadFile(real); !bytes.Equal(b, c.New) {
		t.Errorf("content %q", b)
	}
	// Changed meanwhile: refused, nothing written, no temporary left.
	stale := Change{Path: link, Old: []byte("values: {a: 1}\n"), New: []byte("values: {a: 3}\n")}
	if err := stale.Write(); !errors.Is(err, ErrChanged) {
		t.Errorf("a stale change: %v, want ErrChanged", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("left in the directory: %v", entries)
	}
}

func TestNoRuleNoEncryption(t *testing.T) {
	f := newFixture(t, map[string]string{"app.yaml": "values:\n  a: {fn::secret: aaaaaaaa}\n"})
	if err := os.WriteFile(filepath.Join(f.dir, ".escfs.yaml"), []byte("secrets:\n  - environments: \"prod/*\"\n    age: ["+f.rcpt+"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.rescan(t)
	_, err := f.ed.Encrypt(context.Background(), "app")
	if err == nil || !strings.Contains(err.Error(), "no rule in") || strings.Contains(err.Error(), "aaaaaaaa") {
		t.Errorf("Encrypt without a rule: %v", err)
	}
	// An edit of a plaintext-only file without a rule leaves it plaintext.
	s, err := f.ed.Begin(context.Background(), "app")
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Finish(context.Background(), []byte("values:\n  a: {fn::secret: AAAAAAAA}\n"))
	if err != nil || !strings.Contains(string(c.New), "AAAAAAAA") {
		t.Errorf("plaintext edit without a rule: %v\n%s", err, c.New)
	}
}
