package rewrite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/escfs/escfs/internal/testutil"
	"github.com/escfs/escfs/secrets"
	"github.com/escfs/escfs/yamledit"
)

// The attacks of someone who can write definitions but holds no key.

// ciphertextAt returns the base64 ciphertext of the secret at path in src.
func ciphertextAt(t *testing.T, src, path string) string {
	t.Helper()
	ss, err := yamledit.Secrets([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		if s.Path == path && !s.IsPlaintext {
			return s.Ciphertext
		}
	}
	t.Fatalf("no ciphertext at %s in:\n%s", path, src)
	return ""
}

// TestMovedCiphertextsAreNeverReencrypted: swapped within a file or copied
// from another environment, a ciphertext is refused by rotate (nothing is
// written) and by edit (nothing is shown), at its FILE:LINE:COL, naming
// where it belongs; rotate --rebind binds it where it is.
func TestMovedCiphertextsAreNeverReencrypted(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, map[string]string{
		"prod.yaml": "values:\n  a: {fn::secret: prod-a-1}\n  b: {fn::secret: prod-b-1}\n",
		"dev.yaml":  "values:\n  a: {fn::secret: dev-a-11}\n",
	})
	prod := f.write(t)(f.ed.Encrypt(ctx, "prod"))
	dev := f.write(t)(f.ed.Encrypt(ctx, "dev"))
	a, b := ciphertextAt(t, prod, "a"), ciphertextAt(t, prod, "b")

	for _, tt := range []struct {
		name, env, content, want string
	}{
		{"swapped in prod", "prod", strings.NewReplacer(a, b, b, a).Replace(prod), "prod.yaml:2:19: rotating a: decrypt: ciphertext belongs to default/prod b, not to default/prod a"},
		{"prod's copied into dev", "dev", strings.Replace(dev, ciphertextAt(t, dev, "a"), a, 1), "dev.yaml:2:19: rotating a: decrypt: ciphertext belongs to default/prod a, not to default/dev a"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(f.dir, tt.env+".yaml")
			if err := os.WriteFile(file, []byte(tt.content), 0o640); err != nil {
				t.Fatal(err)
			}
			f.rescan(t)
			_, err := f.ed.Rotate(ctx, tt.env, false)
			if err == nil || !strings.HasPrefix(err.Error(), f.dir+"/") || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, secrets.ErrMisplaced) {
				t.Fatalf("rotate: %v\nwant ...%s", err, tt.want)
			}
			if _, err := f.ed.Begin(ctx, tt.env); !errors.Is(err, secrets.ErrMisplaced) || !strings.Contains(err.Error(), "belongs to default/prod") {
				t.Fatalf("edit: %v, want a misplaced ciphertext", err)
			}
			for _, plain := range []string{"prod-a-1", "prod-b-1"} {
				if _, err := f.ed.Rotate(ctx, tt.env, false); err != nil && strings.Contains(err.Error(), plain) {
					t.Fatalf("the error holds a plaintext: %v", err)
				}
			}
			// --rebind: the person who moved them on purpose.
			c, err := f.ed.Rotate(ctx, tt.env, true)
			if err != nil || c.Rebound == 0 {
				t.Fatalf("rotate --rebind: rebound %d, %v", c.Rebound, err)
			}
			f.apply(t, c, nil)
			if _, err := f.ed.Rotate(ctx, tt.env, false); err != nil {
				t.Fatalf("after --rebind, rotate: %v", err)
			}
		})
	}
}

// TestPlantedDataKeyReadsNothing: the attacker writes a ciphertext of their
// own into the file, sealed under a data key they made and wrapped to the
// team's public recipient (so it even decrypts for the team). Every write
// after that (set --secret, encrypt, edit) takes a data key of its own: the
// attacker, who holds the planted key and no identity, reads none of the
// new secrets.
func TestPlantedDataKeyReadsNothing(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, map[string]string{"app.yaml": "values:\n  x: 1\n"})
	// The attacker's keyring: no identity, only the data key it generates.
	attacker := secrets.NewKeyring(secrets.KeyringOptions{IdentitiesFile: filepath.Join(t.TempDir(), "none.txt")})
	t.Cleanup(attacker.Close)
	planted, err := attacker.NewSealer(ctx, []string{f.rcpt})
	if err != nil {
		t.Fatal(err)
	}
	b64, err := encrypt(ctx, planted, secrets.Binding{Env: "default/app", Path: "planted"}, "bait")
	if err != nil {
		t.Fatal(err)
	}
	src := "values:\n  x: 1\n  planted: {fn::secret: {ciphertext: " + b64 + "}}\n  later: {fn::secret: later-plaintext}\n"
	if err := os.WriteFile(filepath.Join(f.dir, "app.yaml"), []byte(src), 0o640); err != nil {
		t.Fatal(err)
	}
	f.rescan(t)
	// The control: the attacker reads what is sealed under the planted key.
	if p, _, err := attacker.DecryptAt(ctx, mustInner(t, b64), secrets.Binding{Env: "default/app", Path: "planted"}); err != nil || string(p) != "bait" {
		t.Fatalf("control: the attacker cannot read its own planted value: %q, %v", p, err)
	}

	out := f.write(t)(f.ed.Set(ctx, "app", "db.password", "set-secret", Secret))
	out = f.write(t)(f.ed.Encrypt(ctx, "app"))
	s, err := f.ed.Begin(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(s.View()), "x: 1", "x: 1\n  edited: {fn::secret: edit-secret}", 1)
	c, err := s.Finish(ctx, []byte(edited))
	out = f.apply(t, c, err)

	read := 0
	for _, p := range []string{"db.password", "later", "edited"} {
		if got, _, err := attacker.DecryptAt(ctx, mustInner(t, ciphertextAt(t, out, p)), secrets.Binding{Env: "default/app", Path: p}); err == nil {
			read++
			t.Errorf("the attacker read %s: %q", p, got)
		}
	}
	t.Logf("new secrets the attacker read: %d of 3", read)
}

// TestAddedRecipientsAreNamed: a recipient added to the rule since the
// file's ciphertexts were written is in Change.Added for set, encrypt,
// edit and rotate, and nothing is added when the rule did not change.
func TestAddedRecipientsAreNamed(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, map[string]string{"app.yaml": "values:\n  a: {fn::secret: aaaaaaaa}\n"})
	f.write(t)(f.ed.Encrypt(ctx, "app"))
	c, err := f.ed.Set(ctx, "app", "b", "bbbbbbbb", Secret)
	if err != nil || len(c.Added) != 0 {
		t.Fatalf("unchanged rule: added %v, %v", c.Added, err)
	}
	_, intruder := testutil.AgeIdentity(t)
	rules := "secrets:\n  - environments: \"*\"\n    age: [" + f.rcpt + ", " + intruder + "]\n"
	if err := os.WriteFile(filepath.Join(f.dir, ".escfs.yaml"), []byte(rules), 0o640); err != nil {
		t.Fatal(err)
	}
	f.rescan(t)
	check := func(op string, c Change, err error) {
		t.Helper()
		if err != nil || len(c.Added) != 1 || c.Added[0] != intruder {
			t.Errorf("%s: added %v, %v; want [%s]", op, c.Added, err, intruder)
		}
	}
	c, err = f.ed.Set(ctx, "app", "b", "bbbbbbbb", Secret)
	check("set", c, err)
	c, err = f.ed.Rotate(ctx, "app", false)
	check("rotate", c, err)
	src, _ := os.ReadFile(filepath.Join(f.dir, "app.yaml"))
	os.WriteFile(filepath.Join(f.dir, "app.yaml"), append(src, "  c: {fn::secret: cccccccc}\n"...), 0o640)
	f.rescan(t)
	c, err = f.ed.Encrypt(ctx, "app")
	check("encrypt", c, err)
	s, err := f.ed.Begin(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	c, err = s.Finish(ctx, []byte(strings.Replace(string(s.View()), "aaaaaaaa", "changed!", 1)))
	check("edit", c, err)
}

func mustInner(t *testing.T, b64 string) []byte {
	t.Helper()
	inner, err := innerOf(context.Background(), b64)
	if err != nil {
		t.Fatal(err)
	}
	return inner
}
