package eval_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	esceval "github.com/pulumi/esc/eval"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/internal/filetree"
	"github.com/escfs/escfs/internal/kumotest"
	"github.com/escfs/escfs/internal/testutil"
	"github.com/escfs/escfs/secrets"
)

// bindingKit is an age identity, a keyring holding it and a sealer to its
// recipient.
type bindingKit struct {
	rcpt   string
	keys   *secrets.Keyring
	sealer *secrets.Sealer
}

func newBindingKit(t *testing.T) *bindingKit {
	t.Helper()
	ids := filepath.Join(t.TempDir(), "identities.txt")
	rcpt, err := secrets.Keygen(ids)
	if err != nil {
		t.Fatal(err)
	}
	keys := secrets.NewKeyring(secrets.KeyringOptions{IdentitiesFile: ids})
	t.Cleanup(keys.Close)
	s, err := keys.NewSealer(context.Background(), []string{rcpt})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return &bindingKit{rcpt: rcpt, keys: keys, sealer: s}
}

// seal returns the base64 ciphertext of plain bound to env and path.
func (k *bindingKit) seal(t *testing.T, env, path, plain string) string {
	t.Helper()
	ct, err := esceval.EncryptSecret(context.Background(), k.sealer.For(secrets.Binding{Env: env, Path: path}), []byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(ct)
}

// sealV1 returns a version-1 ciphertext of plain (bound to nothing), made by
// hand from the format escfs wrote before bindings: 0x01, the recipient
// list, the age-wrapped data key, a nonce and the value sealed with the
// header as additional data.
func (k *bindingKit) sealV1(t *testing.T, plain string) string {
	t.Helper()
	key := make([]byte, chacha20poly1305.KeySize)
	rand.Read(key)
	r, err := age.ParseX25519Recipient(k.rcpt)
	if err != nil {
		t.Fatal(err)
	}
	var wrapped bytes.Buffer
	w, err := age.Encrypt(&wrapped, r)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(key)
	w.Close()
	header := []byte{1}
	header = binary.AppendUvarint(header, 1)
	header = binary.AppendUvarint(header, uint64(len(k.rcpt)))
	header = append(header, k.rcpt...)
	header = binary.AppendUvarint(header, uint64(wrapped.Len()))
	header = append(header, wrapped.Bytes()...)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	rand.Read(nonce)
	inner := aead.Seal(append(bytes.Clone(header), nonce...), nonce, []byte(plain), header)
	ct, err := esceval.EncryptSecret(context.Background(), passInner{inner}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(ct)
}

// passInner is an Encrypter whose ciphertext is given.
type passInner struct{ inner []byte }

func (p passInner) Encrypt(context.Context, []byte) ([]byte, error) { return p.inner, nil }

// TestCiphertextsStayInPlace: a ciphertext decrypts only in the environment
// and at the path it was sealed for. Swapped within a file, or copied into
// another environment, it is an error at its FILE:LINE:COL naming where it
// belongs, and the evaluation renders nothing; imported as designed, it
// decrypts. A version-1 ciphertext decrypts with a warning, and one whose
// recipients differ from its rule's is warned about.
func TestCiphertextsStayInPlace(t *testing.T) {
	k := newBindingKit(t)
	pw := k.seal(t, "default/prod", "db.password", "prod-password")
	user := k.seal(t, "default/prod", "db.user", "prod-user")
	def := func(pwCT, userCT string) string {
		return fmt.Sprintf("values:\n  db:\n    password: {fn::secret: {ciphertext: %s}}\n    user:\n      fn::secret:\n        ciphertext: %s\n  environmentVariables:\n    PW: ${db.password}\n", pwCT, userCT)
	}
	rules := fmt.Sprintf("secrets:\n  - environments: \"*\"\n    age: [%s]\n", k.rcpt)
	e := eval.TestEvaluator()
	e.Decrypter, e.AtRest = k.keys, secrets.AtRest{}

	t.Run("in place", func(t *testing.T) {
		dir := filetree.Write(t, "", map[string]string{"prod.yaml": def(pw, user), "app.yaml": "imports: [prod]\nvalues:\n  environmentVariables:\n    APP_PW: ${db.password}\n", ".escfs.yaml": rules})
		for _, env := range []string{"prod", "app"} {
			snap, err := eval.EvaluateDir(t, e, dir, env)
			if err != nil {
				t.Fatalf("%s: %v", env, err)
			}
			if !strings.Contains(string(snap.Env), "prod-password") {
				t.Errorf("%s: env %q lacks the password", env, snap.Env)
			}
			if len(snap.Diagnostics) != 0 {
				t.Errorf("%s: diagnostics %v", env, snap.Diagnostics)
			}
		}
	})
	t.Run("swapped", func(t *testing.T) {
		dir := filetree.Write(t, "", map[string]string{"prod.yaml": def(user, pw), ".escfs.yaml": rules})
		snap, err := eval.EvaluateDir(t, e, dir, "prod")
		if err == nil || snap.Env != nil {
			t.Fatalf("swapped ciphertexts evaluated: %q", snap.Env)
		}
		eval.CheckDiags(t, dir, snap.Diagnostics, []eval.WantDiag{
			eval.Want("prod.yaml", 3, 41, eval.SeverityError, "ciphertext belongs to default/prod db.user, not to default/prod db.password"),
			eval.Want("prod.yaml", 6, 21, eval.SeverityError, "ciphertext belongs to default/prod db.password, not to default/prod db.user"),
		})
	})
	t.Run("copied to another environment", func(t *testing.T) {
		dir := filetree.Write(t, "", map[string]string{"prod.yaml": def(pw, user), "dev.yaml": def(pw, k.seal(t, "default/dev", "db.user", "dev-user")), ".escfs.yaml": rules})
		snap, err := eval.EvaluateDir(t, e, dir, "dev")
		if err == nil || snap.Env != nil {
			t.Fatalf("a prod ciphertext evaluated in dev: %q", snap.Env)
		}
		eval.CheckDiags(t, dir, snap.Diagnostics, []eval.WantDiag{eval.Want("dev.yaml", 3, 41, eval.SeverityError, "ciphertext belongs to default/prod db.password")})
		for _, d := range snap.Diagnostics {
			if strings.Contains(d.Message, "prod-password") {
				t.Fatalf("the diagnostic holds the plaintext: %s", d)
			}
		}
	})
	t.Run("copied into an import", func(t *testing.T) {
		// base holds prod's ciphertext; dev imports base: the error is
		// base's, and dev renders nothing either.
		dir := filetree.Write(t, "", map[string]string{"prod.yaml": def(pw, user), "base.yaml": def(pw, user), "dev.yaml": "imports: [base]\n", ".escfs.yaml": rules})
		snap, err := eval.EvaluateDir(t, e, dir, "dev")
		if err == nil || snap.Env != nil {
			t.Fatalf("evaluated: %q", snap.Env)
		}
		eval.CheckDiags(t, dir, snap.Diagnostics, []eval.WantDiag{
			eval.Want("base.yaml", 3, 41, eval.SeverityError, "belongs to default/prod db.password"),
			eval.Want("base.yaml", 6, 21, eval.SeverityError, "belongs to default/prod db.user"),
		})
	})
	t.Run("version 1 and a rules change", func(t *testing.T) {
		_, other := testutil.AgeIdentity(t)
		changed := fmt.Sprintf("secrets:\n  - environments: \"*\"\n    age: [%s, %s]\n", k.rcpt, other)
		dir := filetree.Write(t, "", map[string]string{"prod.yaml": def(k.sealV1(t, "old-password"), user), ".escfs.yaml": changed})
		snap, err := eval.EvaluateDir(t, e, dir, "prod")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(snap.Env), "old-password") {
			t.Errorf("the version-1 value did not decrypt: %q", snap.Env)
		}
		eval.CheckDiags(t, dir, snap.Diagnostics, []eval.WantDiag{
			eval.Want("prod.yaml", 3, 41, eval.SeverityWarning, "db.password: a version-1 ciphertext, bound to no environment or path"),
			eval.Want("prod.yaml", 3, 41, eval.SeverityWarning, "db.password is encrypted to "+k.rcpt+", but the rule at"),
			eval.Want("prod.yaml", 6, 21, eval.SeverityWarning, "db.user is encrypted to "+k.rcpt+", but the rule at"),
		})
	})
}

// TestPlacedDecrypterRefusesUnchecked: the evaluation's decrypter opens a
// bound ciphertext only if the check found it in place (the backstop for
// a definition the check did not see), and passes version 1.
func TestPlacedDecrypterRefusesUnchecked(t *testing.T) {
	k := newBindingKit(t)
	ctx := context.Background()
	inner := func(b64 string) []byte {
		i, err := secrets.Inner(b64)
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	bound := inner(k.seal(t, "default/prod", "db.password", "v2"))
	v1 := inner(k.sealV1(t, "v1"))
	_, places := secrets.AtRest{}.Begin(ctx, t.TempDir())
	d := places.Decrypter(k.keys)
	if _, err := d.Decrypt(ctx, bound); err == nil || !strings.Contains(err.Error(), "not found in place") {
		t.Fatalf("unchecked bound ciphertext: %v", err)
	}
	if p, err := d.Decrypt(ctx, v1); err != nil || string(p) != "v1" {
		t.Fatalf("version 1: %q, %v", p, err)
	}
	name := eval.Name{Project: "default", Env: "prod"}
	src := []byte("values:\n  db:\n    password: {fn::secret: {ciphertext: " + base64.StdEncoding.EncodeToString(mustOuter(t, bound)) + "}}\n")
	if err := eval.CheckSource(places, name, "prod.yaml", src); err != nil {
		t.Fatal(err)
	}
	if p, err := d.Decrypt(ctx, bound); err != nil || string(p) != "v2" {
		t.Fatalf("after the check: %q, %v", p, err)
	}
	if err := eval.CheckSource(places, eval.Name{Project: "default", Env: "dev"}, "dev.yaml", src); err == nil || !strings.Contains(err.Error(), "belongs to default/prod db.password") {
		t.Fatalf("checkSource of a copy: %v", err)
	}
}

// mustOuter wraps an inner envelope in esc's outer one.
func mustOuter(t *testing.T, inner []byte) []byte {
	ct, err := esceval.EncryptSecret(context.Background(), passInner{inner}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

// TestOnlyTheRulesKMSKeysAreCalled: an evaluation decrypts under its
// directory's rules, so a ciphertext in place whose stanzas name KMS keys
// no rule names (a colleague's forgery) costs no KMS call at all.
func TestOnlyTheRulesKMSKeysAreCalled(t *testing.T) {
	k := newBindingKit(t)
	kms := kumotest.NewRecorder(t, kumotest.AWSError(http.StatusBadRequest, "AccessDeniedException", "no"))
	kumotest.Env(t, kms.URL)
	inner, err := secrets.ForgeKMSEnvelope(secrets.Binding{Env: "default/app", Path: "pw"}, 20, 1)
	if err != nil {
		t.Fatal(err)
	}
	def := "values:\n  pw: {fn::secret: {ciphertext: " + base64.StdEncoding.EncodeToString(mustOuter(t, inner)) + "}}\n"
	rules := fmt.Sprintf("secrets:\n  - environments: \"*\"\n    age: [%s]\n", k.rcpt)
	dir := filetree.Write(t, "", map[string]string{"app.yaml": def, ".escfs.yaml": rules})
	e := eval.TestEvaluator()
	e.Decrypter, e.AtRest = k.keys, secrets.AtRest{}
	if _, err := eval.EvaluateDir(t, e, dir, "app"); err == nil {
		t.Fatal("a forged envelope decrypted")
	}
	if calls := kms.Take(); len(calls) != 0 {
		t.Fatalf("%d KMS calls for keys no rule names (first: %s %s), want none", len(calls), calls[0].Target, calls[0].Body["KeyId"])
	}
}
