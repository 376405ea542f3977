package rewrite

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/escfs/escfs/secrets"
	"github.com/escfs/escfs/yamledit"
)

// editForm is a definition holding the secret password in one form of
// ciphertext argument, beside the secret other (flow, on its key's line),
// comments and a plain value. In file, {{pw}} and {{other}} stand for
// the ciphertexts of pw and "other-value"; view is what Begin shows.
type editForm struct {
	name       string
	pw         string
	file, view string
}

var editForms = []editForm{
	{
		name: "flow on the key's line",
		pw:   "hunter22",
		file: "# top\nvalues:\n  password:\n    fn::secret: {ciphertext: {{pw}}}  # kept\n  other: {fn::secret: {ciphertext: {{other}}}}\n  n: 1 # a number\n",
		view: "# top\nvalues:\n  password:\n    fn::secret: hunter22  # kept\n  other: {fn::secret: other-value}\n  n: 1 # a number\n",
	},
	{
		name: "block",
		pw:   "hunter22",
		file: "# top\nvalues:\n  password:\n    fn::secret:\n      ciphertext: {{pw}}\n  other: {fn::secret: {ciphertext: {{other}}}}\n  n: 1 # a number\n",
		view: "# top\nvalues:\n  password:\n    fn::secret: hunter22\n  other: {fn::secret: other-value}\n  n: 1 # a number\n",
	},
	{
		name: "block, quoted, with a comment",
		pw:   "hunter22",
		file: "# top\nvalues:\n  password:\n    # the db\n    fn::secret:\n      ciphertext: \"{{pw}}\"   # rotated in May\n\n  other: {fn::secret: {ciphertext: {{other}}}}\n  n: 1 # a number\n",
		view: "# top\nvalues:\n  password:\n    # the db\n    fn::secret: hunter22   # rotated in May\n\n  other: {fn::secret: other-value}\n  n: 1 # a number\n",
	},
	{
		name: "flow on the next line",
		pw:   "hunter22",
		file: "values:\n  password:\n    fn::secret:\n      {ciphertext: {{pw}}}\n  other: {fn::secret: {ciphertext: {{other}}}}\n",
		view: "values:\n  password:\n    fn::secret: hunter22\n  other: {fn::secret: other-value}\n",
	},
	{
		name: "block in a list",
		pw:   "hunter22",
		file: "values:\n  password:\n    - fn::secret:\n        ciphertext: {{pw}}\n    - plain\n  other: {fn::secret: {ciphertext: {{other}}}}\n",
		view: "values:\n  password:\n    - fn::secret: hunter22\n    - plain\n  other: {fn::secret: other-value}\n",
	},
	{
		name: "block, a value of several lines",
		pw:   "line one\nline two\n",
		file: "values:\n  password:\n    fn::secret:\n      ciphertext: {{pw}}\n  other: {fn::secret: {ciphertext: {{other}}}}\n",
		view: "values:\n  password:\n    fn::secret: |\n      line one\n      line two\n  other: {fn::secret: other-value}\n",
	},
	{
		name: "inside a flow sequence",
		pw:   "hunter22",
		file: "values:\n  password: [{fn::secret: {ciphertext: {{pw}}}}, x]\n  other: {fn::secret: {ciphertext: {{other}}}}\n",
		view: "values:\n  password: [{fn::secret: hunter22}, x]\n  other: {fn::secret: other-value}\n",
	},
}

// setUpForm writes tc's definition as app.yaml, with real ciphertexts, and
// returns it.
func setUpForm(t *testing.T, tc editForm) (*fixture, string) {
	t.Helper()
	f := newFixture(t, map[string]string{})
	ctx := context.Background()
	sealer, err := f.ed.Keys.NewSealer(ctx, []string{f.rcpt})
	if err != nil {
		t.Fatal(err)
	}
	// Each placeholder as a stand-in base64 first, to learn its path.
	stand := map[string]string{"{{pw}}": "cHdwd3B3", "{{other}}": "b3RoZXJv"}
	file := tc.file
	for ph, b := range stand {
		file = strings.ReplaceAll(file, ph, b)
	}
	ss, err := yamledit.Secrets([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	plain := map[string]string{stand["{{pw}}"]: tc.pw, stand["{{other}}"]: "other-value"}
	for _, sec := range ss {
		p, ok := plain[sec.Ciphertext]
		if !ok {
			continue
		}
		b64, err := encrypt(ctx, sealer, secrets.Binding{Env: "default/app", Path: sec.Path}, p)
		if err != nil {
			t.Fatal(err)
		}
		file = strings.Replace(file, sec.Ciphertext, b64, 1)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "app.yaml"), []byte(file), 0o640); err != nil {
		t.Fatal(err)
	}
	f.rescan(t)
	return f, file
}

// secretsByPath returns the fn::secret calls of src by path.
func secretsByPath(t *testing.T, src string) map[string]yamledit.Secret {
	t.Helper()
	ss, err := yamledit.Secrets([]byte(src))
	if err != nil {
		t.Fatalf("%v in:\n%s", err, src)
	}
	m := map[string]yamledit.Secret{}
	for _, s := range ss {
		m[s.Path] = s
	}
	return m
}

// TestEditViewForms: whatever the form of a ciphertext argument, the edit
// view shows `fn::secret: <plaintext>` on the key's line, keeping comments
// and order; a view saved with an unrelated change gives the file back
// byte for byte but that change; a view with one value changed gives the
// file back with only that value's ciphertext different, in the form it
// had.
func TestEditViewForms(t *testing.T) {
	ctx := context.Background()
	for _, tc := range editForms {
		t.Run(tc.name, func(t *testing.T) {
			f, file := setUpForm(t, tc)
			s, err := f.ed.Begin(ctx, "app")
			if err != nil {
				t.Fatal(err)
			}
			if got := string(s.View()); got != tc.view {
				t.Fatalf("view:\n%s\nwant:\n%s", got, tc.view)
			}

			t.Run("unchanged", func(t *testing.T) {
				if c, err := s.Finish(ctx, s.View()); err != nil || c.Changed() {
					t.Fatalf("the view as shown: changed %v, %v", c.Changed(), err)
				}
				// A change elsewhere: every secret goes through the restore.
				c, err := s.Finish(ctx, append(s.View(), "# touched\n"...))
				if err != nil {
					t.Fatal(err)
				}
				if want := file + "# touched\n"; string(c.New) != want {
					t.Fatalf("sealed:\n%s\nwant:\n%s", c.New, want)
				}
				if c.Count != 0 || c.Fallback {
					t.Errorf("Count %d, Fallback %v; want 0, false", c.Count, c.Fallback)
				}
			})

			t.Run("one value changed", func(t *testing.T) {
				first := strings.SplitN(tc.pw, "\n", 2)[0]
				edited := strings.Replace(tc.view, first, "changed-"+first, 1)
				want := strings.Replace(tc.pw, first, "changed-"+first, 1)
				c, err := s.Finish(ctx, []byte(edited))
				if err != nil {
					t.Fatal(err)
				}
				if c.Count != 1 || c.Fallback {
					t.Errorf("Count %d, Fallback %v; want 1, false", c.Count, c.Fallback)
				}
				out := string(c.New)
				if strings.Contains(out, "changed-") || strings.Contains(out, "other-value") {
					t.Fatalf("plaintext in the file:\n%s", out)
				}
				before, after := secretsByPath(t, file), secretsByPath(t, out)
				if len(before) != len(after) {
					t.Fatalf("secrets %d, want %d:\n%s", len(after), len(before), out)
				}
				var path string
				for p := range before {
					if strings.HasPrefix(p, "password") {
						path = p
					}
				}
				old, now := before[path], after[path]
				if now.IsPlaintext || now.Ciphertext == old.Ciphertext {
					t.Fatalf("%s not encrypted again:\n%s", path, out)
				}
				// The file, with only that ciphertext's text replaced.
				if spliced := file[:old.CipherStart] + out[now.CipherStart:now.CipherEnd] + file[old.CipherEnd:]; spliced != out {
					t.Fatalf("more than %s's ciphertext changed:\n%s\nwas:\n%s", path, out, file)
				}
				def, _ := f.ed.Tree.Lookup("app")
				if got, _, err := f.ed.decrypt(ctx, def, now); err != nil || got != want {
					t.Errorf("%s decrypts to %q, %v; want %q", path, got, err, want)
				}
				if after["other"].Ciphertext != before["other"].Ciphertext {
					t.Errorf("the unchanged secret's ciphertext changed")
				}
			})

			t.Run("saved and edited again", func(t *testing.T) {
				// The saved edit, decrypted again: the view as it was saved.
				first := strings.SplitN(tc.pw, "\n", 2)[0]
				edited := strings.Replace(tc.view, first, "again-"+first, 1)
				f.write(t)(s.Finish(ctx, []byte(edited)))
				s2, err := f.ed.Begin(ctx, "app")
				if err != nil {
					t.Fatal(err)
				}
				if string(s2.View()) != edited {
					t.Errorf("view after the save:\n%s\nwant:\n%s", s2.View(), edited)
				}
			})
		})
	}
}

// TestEditBlockMoved: a shown secret whose plaintext stays but whose
// form changes (out of block, into a flow mapping) gets its own
// ciphertext back, not a new one; a secret the file had in plaintext is
// encrypted when a rule covers the environment.
func TestEditBlockMoved(t *testing.T) {
	ctx := context.Background()
	f, file := setUpForm(t, editForms[1])
	if err := os.WriteFile(filepath.Join(f.dir, "app.yaml"), []byte(file+"  plain: {fn::secret: pppppppp}\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	f.rescan(t)
	s, err := f.ed.Begin(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(s.View()), "  password:\n    fn::secret: hunter22\n", "  password: {fn::secret: hunter22}\n", 1)
	c, err := s.Finish(ctx, []byte(edited))
	if err != nil {
		t.Fatal(err)
	}
	before, after := secretsByPath(t, file), secretsByPath(t, string(c.New))
	if after["password"].Ciphertext != before["password"].Ciphertext || !after["password"].Flow {
		t.Errorf("the moved secret:\n%s", c.New)
	}
	if after["plain"].IsPlaintext || c.Count != 1 || strings.Contains(string(c.New), "pppppppp") {
		t.Errorf("the plaintext secret of the file, Count %d:\n%s", c.Count, c.New)
	}
}

// TestEditCorruptBlock: a ciphertext that does not decrypt stops the edit
// at its FILE:LINE:COL.
func TestEditCorruptBlock(t *testing.T) {
	f := newFixture(t, map[string]string{"app.yaml": "values:\n  password:\n    fn::secret:\n      ciphertext: ZXNjeAAAAAEA\n"})
	_, err := f.ed.Begin(context.Background(), "app")
	if err == nil || !strings.Contains(err.Error(), "app.yaml:4:7:") || !strings.Contains(err.Error(), "password") {
		t.Errorf("Begin on a corrupt ciphertext: %v; want it located at app.yaml:4:7", err)
	}
}

// TestEditRuleGoneKeepsCiphertexts: when the rule stops covering a file
// that holds ciphertexts while it is being edited, Finish refuses (nobody
// to encrypt to) rather than write the shown plaintext back; a file of
// plaintext secrets only is left as written.
func TestEditRuleGoneKeepsCiphertexts(t *testing.T) {
	ctx := context.Background()
	f, _ := setUpForm(t, editForms[0])
	s, err := f.ed.Begin(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	f.ed.Rules = nil // the rules file lost the rule meanwhile
	edited := strings.Replace(string(s.View()), "hunter22", "changed-hunter22", 1)
	c, err := s.Finish(ctx, []byte(edited))
	if err == nil || !strings.Contains(err.Error(), "no rule in") {
		t.Fatalf("Finish = %v; want the missing rule", err)
	}
	if strings.Contains(string(c.New), "hunter22") || strings.Contains(string(c.New), "other-value") {
		t.Fatalf("plaintext to write:\n%s", c.New)
	}

	// The control: plaintext secrets only, no rule: left as written.
	p := newFixture(t, map[string]string{"app.yaml": "values:\n  pw: {fn::secret: plain-pw}\n"})
	p.ed.Rules = nil
	s, err = p.ed.Begin(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	c, err = s.Finish(ctx, append(s.View(), "# touched\n"...))
	if err != nil || !strings.Contains(string(c.New), "plain-pw") {
		t.Fatalf("plaintext-only file: %v\n%s", err, c.New)
	}
}
