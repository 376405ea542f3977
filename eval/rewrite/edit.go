package rewrite

import (
	"bytes"
	"context"
	"fmt"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/eval/yamledit"
)

// Session is one escfs edit of a definition: the decrypted view a person
// edits, and what each of its secrets was in the file.
type Session struct {
	editor *Editor
	def    eval.Definition
	old    []byte     // the file when the session began
	view   []byte     // the file with every ciphertext shown as its plaintext
	shown  []original // the ciphertexts the view shows as plaintext
}

// original is a ciphertext of the file as the view shows it.
type original struct {
	path  string // its property path under values
	plain string // its plaintext
	arg   string // the argument's text in the file, restored when unchanged
}

// Begin reads the definition of name and decrypts its secrets into a view
// in which every `fn::secret: {ciphertext: ...}` reads `fn::secret:
// <plaintext>`, on the same lines as in the file. The view holds
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
	s := &Session{editor: e, def: def, old: src}
	var edits []yamledit.Edit
	for _, sec := range ss {
		if sec.IsPlaintext {
			continue
		}
		plain, err := e.decrypt(ctx, def.Path, sec)
		if err != nil {
			return nil, err
		}
		s.shown = append(s.shown, original{path: sec.Path, plain: plain, arg: string(src[sec.Start:sec.End])})
		edits = append(edits, yamledit.Edit{Start: sec.Start, End: sec.End, Text: yamledit.ScalarText(plain, sec.Col)})
	}
	view, err := yamledit.Apply(src, edits)
	if err != nil {
		return nil, fmt.Errorf("%s: showing the secrets: %w", def.Path, err)
	}
	s.view = view
	return s, nil
}

// Definition returns the file the session edits.
func (s *Session) Definition() eval.Definition { return s.def }

// View returns the decrypted view. It holds plaintext.
func (s *Session) View() []byte { return s.view }

// Finish turns an edited view back into the file: every plaintext
// fn::secret is encrypted again, except that one whose path and value are
// what the view showed gets its original ciphertext back, byte for byte.
// Before that, the edited view is checked as the environment (YAML and
// evaluation, without opening providers); its problems come back as a
// *eval.DiagnosticsError whose positions are the view's. Secrets that were
// plaintext in the file are encrypted too when a rule covers the
// environment; without a rule they stay plaintext, unless the file held
// ciphertexts, which then is an error rather than a secret written in
// the clear.
func (s *Session) Finish(ctx context.Context, edited []byte) (Change, error) {
	c := Change{Path: s.def.Path, Old: s.old, New: s.old}
	if bytes.Equal(edited, s.view) {
		return c, nil
	}
	e := s.editor
	_, err := e.Evaluator.Evaluate(ctx, e.Tree, eval.Request{Name: s.def.Name.String(), Definition: edited, Check: true})
	if err != nil {
		return Change{}, err
	}
	ss, err := secretsOf(s.def.Path, edited)
	if err != nil {
		return Change{}, err
	}
	restored := make([]bool, len(s.shown))
	var edits []yamledit.Edit
	var fresh []yamledit.Secret
	for _, sec := range ss {
		if !sec.IsPlaintext {
			continue
		}
		i := s.match(sec, restored)
		if i < 0 {
			fresh = append(fresh, sec)
			continue
		}
		restored[i] = true
		edits = append(edits, yamledit.Edit{Start: sec.Start, End: sec.End, Text: s.shown[i].arg})
	}
	if len(fresh) > 0 {
		if _, err := e.recipients(s.def); err != nil && len(s.shown) == 0 {
			fresh = nil // a file of plaintext secrets and no rule: left as the person wrote it
		}
	}
	if len(fresh) > 0 {
		sealer, err := e.sealer(ctx, s.def, ss, true)
		if err != nil {
			return Change{}, err
		}
		for _, sec := range fresh {
			b64, err := encrypt(ctx, sealer, sec.Plaintext)
			if err != nil {
				return Change{}, fmt.Errorf("%s:%d:%d: encrypting %s: %w", s.def.Path, sec.Line, sec.Col, sec.Path, err)
			}
			edits = append(edits, yamledit.Edit{Start: sec.Start, End: sec.End, Text: yamledit.CiphertextArg(b64)})
		}
	}
	r, err := yamledit.ApplyResult(edited, edits)
	if err != nil {
		return Change{}, fmt.Errorf("%s: %w", s.def.Path, err)
	}
	c.New, c.Count, c.Fallback = r.Out, len(fresh), r.Fallback
	return c, nil
}

// match returns the index of the shown ciphertext that sec is, unchanged:
// the same path and plaintext, not restored already; -1 if none.
func (s *Session) match(sec yamledit.Secret, restored []bool) int {
	for i, o := range s.shown {
		if !restored[i] && o.path == sec.Path && o.plain == sec.Plaintext {
			return i
		}
	}
	return -1
}
