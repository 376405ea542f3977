package rewrite

import (
	"bytes"
	"context"
	"fmt"
	"unicode/utf8"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/secrets"
	"github.com/escfs/escfs/yamledit"
)

// Session is one escfs edit of a definition: the decrypted view a person
// edits, and what each of its secrets was in the file.
type Session struct {
	editor  *Editor
	def     eval.Definition
	old     []byte            // the file when the session began
	secrets []yamledit.Secret // the fn::secret calls of old
	view    *yamledit.View    // old with every ciphertext shown as its plaintext
}

// Begin reads the definition of name and decrypts its secrets into a view
// in which every ciphertext argument of fn::secret, flow
// (`{ciphertext: ...}`) or block (`ciphertext: ...` on the lines below),
// reads `fn::secret: <plaintext>` on the fn::secret key's line (a block
// scalar for a multi-line value; inside a flow collection, a quoted
// scalar). Comments, order and every other byte stay. The view holds
// plaintext: keep it in memory or on a memory filesystem.
func (e *Editor) Begin(ctx context.Context, name string) (*Session, error) {
	def, src, err := e.read(name)
	if err != nil {
		return nil, err
	}
	ss, err := secretsOf(def.Path, src)
	if err != nil {
		return nil, err
	}
	// Decrypt here, where each ciphertext's FILE:LINE:COL is known, and
	// hand the plaintexts to the view.
	plain := map[string]string{}
	for _, sec := range ss {
		if sec.IsPlaintext {
			continue
		}
		// Each is decrypted at its own path, a copy too: a ciphertext
		// that belongs elsewhere is refused, never shown.
		p, _, err := e.decrypt(ctx, def, sec)
		if err != nil {
			return nil, err
		}
		if !utf8.ValidString(p) {
			return nil, fmt.Errorf("%s:%d:%d: %s: the plaintext is not UTF-8 text, which an editor cannot show", def.Path, sec.Line, sec.Col, sec.Path)
		}
		plain[sec.Ciphertext] = p
	}
	view, err := yamledit.NewView(src, func(ciphertext string) (string, error) {
		p, ok := plain[ciphertext]
		if !ok { // not a ciphertext Secrets found: cannot happen
			return "", fmt.Errorf("no plaintext for a ciphertext")
		}
		return p, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: showing the secrets: %w", def.Path, err)
	}
	return &Session{editor: e, def: def, old: src, secrets: ss, view: view}, nil
}

// Definition returns the file the session edits.
func (s *Session) Definition() eval.Definition { return s.def }

// View returns the decrypted view. It holds plaintext.
func (s *Session) View() []byte { return s.view.Text }

// Finish turns an edited view back into the file: every plaintext
// fn::secret is encrypted again, except that one whose path and value are
// what the view showed gets its original ciphertext back: its argument
// text byte for byte, flow or block, when it stayed where it was (or the
// same ciphertext in a fresh {ciphertext: ...} if it moved into or out of a
// flow collection or to another indentation). Before that, the edited view
// is checked as the environment (YAML and evaluation, without opening
// providers); its problems come back as a *eval.DiagnosticsError whose
// positions are the view's. Secrets that were plaintext in the file are
// encrypted too when a rule covers the environment; without a rule they
// stay plaintext, unless the file held ciphertexts, which then is an
// error rather than a secret written in the clear. New ciphertexts share
// one new data key, and each is bound to its path; Change.Added names the
// recipients none of the file's ciphertexts had.
func (s *Session) Finish(ctx context.Context, edited []byte) (Change, error) {
	c := Change{Path: s.def.Path, Old: s.old, New: s.old}
	if bytes.Equal(edited, s.view.Text) {
		return c, nil
	}
	e := s.editor
	_, err := e.Evaluator.Evaluate(ctx, e.Tree, eval.Request{Name: s.def.Name.String(), Definition: edited, Check: true})
	if err != nil {
		return Change{}, err
	}
	shown := false
	for _, sec := range s.secrets {
		shown = shown || !sec.IsPlaintext
	}
	if !shown {
		if _, err := e.recipients(s.def); err != nil {
			// A file of plaintext secrets and no rule: left as the person
			// wrote it.
			c.New = edited
			return c, nil
		}
	}
	var (
		sealer  *secrets.Sealer
		failure error               // why sealing stopped, already naming the file
		fresh   = map[string]bool{} // the ciphertexts encryptOne made
	)
	encryptOne := func(path, plain string) (string, error) {
		if sealer == nil {
			sl, err := e.sealer(ctx, s.def)
			if err != nil {
				failure = err
				return "", err
			}
			sealer = sl
			c.Added = addedRecipients(ctx, sl, s.secrets)
		}
		b64, err := encrypt(ctx, sealer, bindingOf(s.def, path), plain)
		if err != nil {
			return "", err
		}
		fresh[b64] = true
		return b64, nil
	}
	fail := func(err error) (Change, error) {
		if failure != nil {
			return Change{}, failure
		}
		return Change{}, fmt.Errorf("%s: %w", s.def.Path, err)
	}
	// The shown secrets back to their ciphertexts, changed and new ones
	// encrypted...
	r, err := s.view.Seal(edited, encryptOne)
	if err != nil {
		return fail(err)
	}
	// ...a changed one in the form its ciphertext had (block stays
	// block)...
	if !r.Fallback {
		if kept, err := s.keepForms(r.Out, fresh); err == nil && !kept.Fallback {
			r.Out = kept.Out
		}
	}
	// ...and those the file had in plaintext, which Seal leaves as they
	// were.
	r2, err := yamledit.Encrypt(r.Out, encryptOne)
	if err != nil {
		return fail(err)
	}
	c.New, c.Count, c.Fallback = r2.Out, len(fresh), s.view.Fallback || r.Fallback || r2.Fallback
	return c, nil
}

// keepForms gives each new ciphertext of sealed (one of fresh) at the path
// of a ciphertext of the file, at the same indentation and in or out of a
// flow collection as it was, the argument text the file had there with
// only the base64 replaced: a changed block `ciphertext:` stays block,
// with its quoting, spacing and comment, instead of becoming
// {ciphertext: ...} (Seal's form for a new value).
func (s *Session) keepForms(sealed []byte, fresh map[string]bool) (yamledit.Result, error) {
	was := map[string]yamledit.Secret{}
	for _, sec := range s.secrets {
		if !sec.IsPlaintext {
			was[sec.Path] = sec
		}
	}
	now, err := yamledit.Secrets(sealed)
	if err != nil {
		return yamledit.Result{}, err
	}
	var edits []yamledit.Edit
	for _, sec := range now {
		o, ok := was[sec.Path]
		if sec.IsPlaintext || !fresh[sec.Ciphertext] || !ok || o.Flow != sec.Flow || (o.Slot < 0) != (sec.Slot < 0) || (!o.Flow && o.KeyCol != sec.KeyCol) {
			continue
		}
		from, to := o.PlaintextEdit(""), sec.PlaintextEdit("") // the spans the view replaced
		text := string(s.old[from.Start:o.CipherStart]) + yamledit.FlowScalarText(sec.Ciphertext) + string(s.old[o.CipherEnd:from.End])
		edits = append(edits, yamledit.Edit{Start: to.Start, End: to.End, Text: text})
	}
	if len(edits) == 0 {
		return yamledit.Result{Out: sealed}, nil
	}
	return yamledit.Apply(sealed, edits)
}
