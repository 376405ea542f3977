// Package rewrite changes environment definition files the way a careful
// person would by hand: set one value, encrypt the plaintext fn::secret
// values, re-encrypt them to the current recipients, and the round trip of
// escfs edit (a decrypted view, then back to ciphertexts).
//
// Every change keeps the rest of the file byte for byte (eval/yamledit),
// a ciphertext whose value did not change stays as it was (small diffs),
// one data key serves a whole write (eval/secrets), and a file is replaced
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
	"github.com/escfs/escfs/eval/secrets"
	"github.com/escfs/escfs/eval/yamledit"
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

// sealer returns the sealer for one write of def: the data key of a
// ciphertext already in the file if it was encrypted to exactly the rule's
// recipients and can be unwrapped (no new data key, no new KMS wrap), else
// a new one. reuse is false for a rotation, which always takes a new key.
func (e *Editor) sealer(ctx context.Context, def eval.Definition, existing []yamledit.Secret, reuse bool) (*secrets.Sealer, error) {
	recipients, err := e.recipients(def)
	if err != nil {
		return nil, err
	}
	if reuse {
		for _, s := range existing {
			if s.IsPlaintext {
				continue
			}
			inner, err := innerOf(ctx, s.Ciphertext)
			if err != nil {
				continue
			}
			if sealer, ok := e.Keys.Reuse(ctx, inner, recipients); ok {
				return sealer, nil
			}
		}
	}
	sealer, err := e.Keys.NewSealer(ctx, recipients)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", def.Path, err)
	}
	return sealer, nil
}

// encrypt returns the base64 text of a fn::secret ciphertext for plain.
func encrypt(ctx context.Context, sealer *secrets.Sealer, plain string) (string, error) {
	b, err := esceval.EncryptSecret(ctx, sealer, []byte(plain))
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// decrypt returns the plaintext of the secret s of the file at path.
func (e *Editor) decrypt(ctx context.Context, path string, s yamledit.Secret) (string, error) {
	plain, err := esceval.DecryptSecret(ctx, e.Keys, s.Ciphertext)
	if err != nil {
		return "", fmt.Errorf("%s:%d:%d: decrypting %s: %w", path, s.Line, s.Col, s.Path, err)
	}
	return string(plain), nil
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
// the recipients of its rule, with one data key for the file (the data key
// of its existing ciphertexts when they were encrypted to the same
// recipients), made only if there is something to encrypt.
func (e *Editor) Encrypt(ctx context.Context, name string) (Change, error) {
	def, src, err := e.read(name)
	if err != nil {
		return Change{}, err
	}
	var sealer *secrets.Sealer
	var sealErr error // the file's, not one secret's
	n := 0
	r, err := yamledit.Encrypt(src, func(plain string) (string, error) {
		if sealer == nil {
			existing, err := yamledit.Secrets(src) // whose data key to reuse
			if err == nil {
				sealer, err = e.sealer(ctx, def, existing, true)
			}
			if err != nil {
				sealErr = err
				return "", err
			}
		}
		n++
		return encrypt(ctx, sealer, plain)
	})
	if sealErr != nil {
		return Change{}, sealErr
	}
	return change(def.Path, src, r, n, err)
}

// Rotate re-encrypts every ciphertext of the environment name with a new
// data key to the recipients its rule names now: a recipient removed from
// the rule cannot decrypt what Rotate wrote. Plaintext secrets are left to
// Encrypt.
func (e *Editor) Rotate(ctx context.Context, name string) (Change, error) {
	def, src, err := e.read(name)
	if err != nil {
		return Change{}, err
	}
	var sealer *secrets.Sealer
	var sealErr error // the file's, not one secret's
	n := 0
	r, err := yamledit.Rotate(src, func(b64 string) (string, error) {
		if sealer == nil {
			if sealer, sealErr = e.sealer(ctx, def, nil, false); sealErr != nil {
				return "", sealErr
			}
		}
		plain, err := esceval.DecryptSecret(ctx, e.Keys, b64)
		if err != nil {
			return "", fmt.Errorf("decrypt: %w", err)
		}
		n++
		return encrypt(ctx, sealer, string(plain))
	})
	if sealErr != nil {
		return Change{}, sealErr
	}
	return change(def.Path, src, r, n, err)
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
