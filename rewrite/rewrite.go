// Package rewrite changes environment definition files the way a careful
// person would by hand: set one value, encrypt the plaintext fn::secret
// values, re-encrypt them to the current recipients, and the round trip of
// escfs edit (a decrypted view, then back to ciphertexts).
//
// Every change keeps the rest of the file byte for byte (yamledit),
// a ciphertext whose value did not change stays as it was (small diffs),
// one data key serves a whole write (secrets), and a file is replaced
// atomically, only if nobody changed it meanwhile.
package rewrite

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	esceval "github.com/pulumi/esc/eval"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/secrets"
	"github.com/escfs/escfs/yamledit"
)

// Editor rewrites the definitions of one tree.
type Editor struct {
	// Tree is the definitions directory as scanned.
	Tree *eval.Tree
	// Rules say whom each environment's secrets are encrypted to.
	Rules *secrets.Rules
	// Keys decrypt existing ciphertexts and wrap new data keys.
	Keys *secrets.Keyring
	// Evaluator checks an edit before it is saved.
	Evaluator *eval.Evaluator
}

// Change is a rewrite of one definition file, not yet written.
type Change struct {
	Path     string // the definition file
	Old, New []byte // its content when read, and after the change
	Count    int    // how many values the change touched
	// Fallback is true when a text splice could not be verified and the
	// file was re-encoded instead (comments and order kept, layout not).
	Fallback bool
	// Added are the recipients the new values are encrypted to that none
	// of the file's existing ciphertexts was: the rule gained them since.
	// Ask before writing (escfs does, or needs --yes).
	Added []string
	// Upgraded counts version-1 ciphertexts (bound to nothing) that a
	// rotation re-encrypted bound to their place; Rebound those bound
	// elsewhere that a rotation with rebind bound here.
	Upgraded, Rebound int
}

// Changed reports whether the change alters the file.
func (c Change) Changed() bool { return !bytes.Equal(c.Old, c.New) }

// ErrChanged is returned by Write when the file is no longer what the
// change was computed from.
var ErrChanged = errors.New("the file changed since it was read; nothing was written")

// Write replaces the file with c.New atomically (a temporary file in the
// same directory, synced, then renamed over it), keeping its mode and
// owner. A definition reached through symlinks is replaced where it really
// is, so the links stay. It refuses with ErrChanged if the file's content
// is no longer c.Old.
func (c Change) Write() error {
	if !c.Changed() {
		return nil
	}
	real, err := filepath.EvalSymlinks(c.Path)
	if err != nil {
		return fmt.Errorf("write %s: %w", c.Path, err)
	}
	cur, err := os.ReadFile(real)
	if err != nil {
		return fmt.Errorf("write %s: %w", c.Path, err)
	}
	if !bytes.Equal(cur, c.Old) {
		return fmt.Errorf("write %s: %w", c.Path, ErrChanged)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return fmt.Errorf("write %s: %w", c.Path, err)
	}
	dir := filepath.Dir(real)
	// A hidden name: a definitions scan never takes it for an environment.
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(real)+".escfs-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", c.Path, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", c.Path, err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
		if err := tmp.Chown(int(st.Uid), int(st.Gid)); err != nil {
			tmp.Close()
			return fmt.Errorf("write %s: %w", c.Path, err)
		}
	}
	if _, err := tmp.Write(c.New); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", c.Path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", c.Path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", c.Path, err)
	}
	if err := os.Rename(tmp.Name(), real); err != nil {
		return fmt.Errorf("write %s: %w", c.Path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // the rename itself, durable
		d.Close()
	}
	return nil
}

// read returns the definition of name and its content.
func (e *Editor) read(name string) (eval.Definition, []byte, error) {
	def, err := e.Tree.Lookup(name)
	if err != nil {
		return eval.Definition{}, nil, err
	}
	src, err := os.ReadFile(def.Path)
	if err != nil {
		return eval.Definition{}, nil, fmt.Errorf("read %s: %w", def.Path, err)
	}
	return def, src, nil
}

// recipients returns whom def's secrets are encrypted to, by the first rule
// that covers it.
func (e *Editor) recipients(def eval.Definition) ([]string, error) {
	if e.Rules != nil {
		if r, ok := e.Rules.For(def.Name.Project, def.Name.Env); ok {
			if rs := r.Recipients(); len(rs) > 0 {
				return rs, nil
			}
		}
	}
	file := filepath.Join(e.Tree.Root, secrets.RulesFile)
	return nil, fmt.Errorf("%s: no rule in %s covers %s, so there is nobody to encrypt to: add one (see README, Secrets in git)", def.Path, file, def.Name.Short())
}

// sealer returns the sealer for one write of def: always a new data key,
// wrapped to the recipients of def's rule (one KMS Encrypt per KMS key). A
// data key found in the file is never reused: anyone who can write the file
// can plant an envelope, wrapped to the public recipients, whose data key
// they chose, and so read whatever is sealed under it next.
func (e *Editor) sealer(ctx context.Context, def eval.Definition) (*secrets.Sealer, error) {
	recipients, err := e.recipients(def)
	if err != nil {
		return nil, err
	}
	sealer, err := e.Keys.NewSealer(ctx, recipients)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", def.Path, err)
	}
	return sealer, nil
}

// addedRecipients returns the recipients of sealer that no ciphertext of
// existing was encrypted to: a rule that gained a recipient (maybe in a
// commit nobody read) is named before anything is encrypted to it. A file
// without ciphertexts has no recipients to compare with: none is new.
func addedRecipients(ctx context.Context, sealer *secrets.Sealer, existing []yamledit.Secret) []string {
	had := map[string]bool{}
	for _, s := range existing {
		if s.IsPlaintext {
			continue
		}
		inner, err := innerOf(ctx, s.Ciphertext)
		if err != nil {
			continue
		}
		rs, err := secrets.EnvelopeRecipients(inner)
		if err != nil {
			continue
		}
		for _, r := range rs {
			had[r] = true
		}
	}
	if len(had) == 0 {
		return nil
	}
	var added []string
	for _, r := range sealer.Recipients() {
		if !had[r] {
			added = append(added, r)
		}
	}
	return added
}

// bindingOf is where a value of def at path belongs.
func bindingOf(def eval.Definition, path string) secrets.Binding {
	return secrets.Binding{Env: def.Name.String(), Path: path}
}

// encrypt returns the base64 text of a fn::secret ciphertext for plain,
// bound to b.
func encrypt(ctx context.Context, sealer *secrets.Sealer, b secrets.Binding, plain string) (string, error) {
	ct, err := esceval.EncryptSecret(ctx, sealer.For(b), []byte(plain))
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(ct), nil
}

// decrypt returns the plaintext of the ciphertext s of def, refusing one
// that belongs elsewhere (a *secrets.MisplacedError). bound is false for a
// version-1 ciphertext, which is bound to nothing.
func (e *Editor) decrypt(ctx context.Context, def eval.Definition, s yamledit.Secret) (plain string, bound bool, err error) {
	inner, err := innerOf(ctx, s.Ciphertext)
	if err != nil {
		return "", false, fmt.Errorf("%s:%d:%d: decrypting %s: %w", def.Path, s.Line, s.Col, s.Path, err)
	}
	p, bound, err := e.Keys.DecryptAt(secrets.WithRules(ctx, e.Rules), inner, bindingOf(def, s.Path))
	if err != nil {
		return "", bound, fmt.Errorf("%s:%d:%d: decrypting %s: %w", def.Path, s.Line, s.Col, s.Path, err)
	}
	return string(p), bound, nil
}

// innerOf returns the escfs envelope inside the esc envelope of a
// fn::secret ciphertext (base64 of "escx", version, envelope, crc32).
func innerOf(ctx context.Context, b64 string) ([]byte, error) {
	return esceval.DecryptSecret(ctx, passThrough{}, b64)
}

// passThrough is a Decrypter that returns what it is given: with esc's
// DecryptSecret, it unwraps esc's envelope and nothing else.
type passThrough struct{}

func (passThrough) Decrypt(_ context.Context, b []byte) ([]byte, error) { return slices.Clone(b), nil }

// secretsOf parses the fn::secret calls of the file at path.
func secretsOf(path string, src []byte) ([]yamledit.Secret, error) {
	ss, err := yamledit.Secrets(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ss, nil
}

// Encrypt encrypts every plaintext fn::secret of the environment name to
// the recipients of its rule, each bound to its place, with one new data key
// for the file, made only if there is something to encrypt.
func (e *Editor) Encrypt(ctx context.Context, name string) (Change, error) {
	def, src, err := e.read(name)
	if err != nil {
		return Change{}, err
	}
	var sealer *secrets.Sealer
	defer func() {
		if sealer != nil {
			sealer.Close()
		}
	}()
	var sealErr error // the file's, not one secret's
	var added []string
	n := 0
	r, err := yamledit.Encrypt(src, func(path, plain string) (string, error) {
		if sealer == nil {
			if sealer, sealErr = e.sealer(ctx, def); sealErr != nil {
				return "", sealErr
			}
			existing, _ := yamledit.Secrets(src)
			added = addedRecipients(ctx, sealer, existing)
		}
		n++
		return encrypt(ctx, sealer, bindingOf(def, path), plain)
	})
	if sealErr != nil {
		return Change{}, sealErr
	}
	c, err := change(def.Path, src, r, n, err)
	c.Added = added
	return c, err
}

// Rotate re-encrypts every ciphertext of the environment name with a new
// data key to the recipients its rule names now, each bound to its place: a
// recipient removed from the rule cannot decrypt what Rotate wrote, and a
// version-1 ciphertext (bound to nothing) is upgraded. A ciphertext bound
// elsewhere (moved or copied here) is an error and nothing is written,
// unless rebind, which binds it to where it is now: for values moved on
// purpose (a renamed key or environment). Plaintext secrets are left to
// Encrypt.
func (e *Editor) Rotate(ctx context.Context, name string, rebind bool) (Change, error) {
	def, src, err := e.read(name)
	if err != nil {
		return Change{}, err
	}
	existing, err := secretsOf(def.Path, src)
	if err != nil {
		return Change{}, err
	}
	var sealer *secrets.Sealer
	defer func() {
		if sealer != nil {
			sealer.Close()
		}
	}()
	var sealErr error // the file's, not one secret's
	var added []string
	n, upgraded, rebound := 0, 0, 0
	r, err := yamledit.Rotate(src, func(path, b64 string) (string, error) {
		if sealer == nil {
			if sealer, sealErr = e.sealer(ctx, def); sealErr != nil {
				return "", sealErr
			}
			added = addedRecipients(ctx, sealer, existing)
		}
		inner, err := innerOf(ctx, b64)
		if err != nil {
			return "", fmt.Errorf("decrypt: %w", err)
		}
		kctx := secrets.WithRules(ctx, e.Rules)
		plain, bound, err := e.Keys.DecryptAt(kctx, inner, bindingOf(def, path))
		if errors.Is(err, secrets.ErrMisplaced) && rebind {
			plain, err = e.Keys.Decrypt(kctx, inner)
			rebound++
		} else if err == nil && !bound {
			upgraded++
		}
		if err != nil {
			return "", fmt.Errorf("decrypt: %w", err)
		}
		n++
		defer clear(plain)
		return encrypt(ctx, sealer, bindingOf(def, path), string(plain))
	})
	if sealErr != nil {
		return Change{}, sealErr
	}
	c, err := change(def.Path, src, r, n, err)
	c.Added, c.Upgraded, c.Rebound = added, upgraded, rebound
	return c, err
}

// change is the Change of the file at path from src to what r holds, n
// values touched; err, if any, is given the file's name (before the line
// and column of a located error).
func change(path string, src []byte, r yamledit.Result, n int, err error) (Change, error) {
	if err != nil {
		var secretErr *yamledit.SecretError
		var syntaxErr *yamledit.SyntaxError
		if errors.As(err, &secretErr) || errors.As(err, &syntaxErr) {
			return Change{}, fmt.Errorf("%s:%w", path, err)
		}
		return Change{}, fmt.Errorf("%s: %w", path, err)
	}
	return Change{Path: path, Old: src, New: r.Out, Count: n, Fallback: r.Fallback}, nil
}
