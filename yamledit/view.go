package yamledit

import (
	"bytes"
	"fmt"
	"unicode/utf8"
)

// Encrypt replaces the argument of every plaintext secret of src with
// {ciphertext: encrypt(plaintext)} (`escfs secrets encrypt`). Nothing else
// changes; a definition without plaintext secrets comes back as it is. An
// error of encrypt comes back as a *SecretError at its secret.
func Encrypt(src []byte, encrypt func(path, plaintext string) (string, error)) (Result, error) {
	return rewriteSecrets(src, true, func(s Secret) (Edit, error) {
		b64, err := encrypt(s.Path, s.Plaintext)
		if err != nil {
			return Edit{}, &SecretError{Secret: s, Op: "encrypting", Err: err}
		}
		return s.CiphertextEdit(b64), nil
	})
}

// Rotate replaces the base64 of every ciphertext secret of src with
// rotate(base64) (`escfs secrets rotate`), leaving the rest of each
// argument, and of the definition, as it is. An error of rotate comes back
// as a *SecretError at its secret.
func Rotate(src []byte, rotate func(path, ciphertext string) (string, error)) (Result, error) {
	return rewriteSecrets(src, false, func(s Secret) (Edit, error) {
		b64, err := rotate(s.Path, s.Ciphertext)
		if err != nil {
			return Edit{}, &SecretError{Secret: s, Op: "rotating", Err: err}
		}
		return s.RotateEdit(b64), nil
	})
}

// rewriteSecrets applies edit to every secret of src that is (plaintext
// true) or is not (false) a plaintext secret, and the edits to src.
func rewriteSecrets(src []byte, plaintext bool, edit func(Secret) (Edit, error)) (Result, error) {
	x, err := parse(src)
	if err != nil {
		return Result{}, err
	}
	secrets, err := x.secrets()
	if err != nil {
		return Result{}, err
	}
	var edits []Edit
	for _, s := range secrets {
		if s.IsPlaintext != plaintext {
			continue
		}
		e, err := edit(s)
		if err != nil {
			return Result{}, err
		}
		edits = append(edits, e)
	}
	if len(edits) == 0 {
		return Result{Out: src}, nil
	}
	return x.apply(edits)
}

// SecretError is a failure of the function that encrypts or rotates one
// secret, at that secret: "LINE:COL: encrypting PATH: ERR".
type SecretError struct {
	Secret Secret
	Op     string // "encrypting" or "rotating"
	Err    error
}

func (e *SecretError) Error() string {
	return fmt.Sprintf("%d:%d: %s %s: %v", e.Secret.Line, e.Secret.Col, e.Op, e.Secret.Path, e.Err)
}

func (e *SecretError) Unwrap() error { return e.Err }

// View is a definition with every ciphertext secret shown as its
// plaintext, for a person to edit (`escfs edit`); Seal turns the edited
// view back into a definition.
type View struct {
	// Text is the view: the definition with `fn::secret: <plaintext>` for
	// each ciphertext secret (PlaintextEdit).
	Text []byte
	// Fallback reports that the view had to be re-encoded by yaml.v3.
	Fallback bool

	src        []byte
	shown      map[string]shownSecret // the ciphertext secrets of src, by path
	plain      map[string]string      // the plaintext secrets of src, by path
	addedBreak bool                   // Text got a final line break src has not
}

// shownSecret is a ciphertext secret of the source as the view shows it.
type shownSecret struct {
	plaintext  string
	ciphertext string
	text       string // the argument's source text from its slot (flow: from its start) to its end
	flow       bool
	keyCol     int
}

// NewView makes the view of src, with decrypt turning each ciphertext into
// its plaintext.
func NewView(src []byte, decrypt func(ciphertext string) (string, error)) (*View, error) {
	x, err := parse(src)
	if err != nil {
		return nil, err
	}
	secrets, err := x.secrets()
	if err != nil {
		return nil, err
	}
	v := &View{src: src, shown: map[string]shownSecret{}, plain: map[string]string{}}
	var edits []Edit
	for _, s := range secrets {
		if _, dup := v.shown[s.Path]; dup {
			return nil, fmt.Errorf("two secrets at %s", s.Path)
		}
		if _, dup := v.plain[s.Path]; dup {
			return nil, fmt.Errorf("two secrets at %s", s.Path)
		}
		if s.IsPlaintext {
			v.plain[s.Path] = s.Plaintext
			continue
		}
		pt, err := decrypt(s.Ciphertext)
		if err != nil {
			return nil, fmt.Errorf("decrypt %s: %w", s.Path, err)
		}
		if !utf8.ValidString(pt) {
			return nil, fmt.Errorf("decrypt %s: the plaintext is not UTF-8 text", s.Path)
		}
		e := s.PlaintextEdit(pt)
		v.shown[s.Path] = shownSecret{plaintext: pt, ciphertext: s.Ciphertext, text: string(src[e.Start:e.End]), flow: s.Flow, keyCol: s.KeyCol}
		edits = append(edits, e)
	}
	r := Result{Out: src}
	if len(edits) > 0 {
		if r, err = x.apply(edits); err != nil {
			return nil, err
		}
	}
	v.Text, v.Fallback = r.Out, r.Fallback
	v.addedBreak = !endsWithBreak(src) && endsWithBreak(r.Out) && len(src) > 0
	return v, nil
}

// Seal turns edited, the view after a person's edits, back into a
// definition. A plaintext secret at the path of a shown one with the value
// it was shown with gets back its original argument text, byte for byte
// (or its original ciphertext in a fresh {ciphertext: ...} if it moved to
// another indentation or into or out of a flow collection); any other
// plaintext secret is encrypted with encrypt, except one the source
// already had, unchanged, in plaintext. An unchanged view seals to the
// source, byte for byte.
func (v *View) Seal(edited []byte, encrypt func(path, plaintext string) (string, error)) (Result, error) {
	x, err := parse(edited)
	if err != nil {
		return Result{}, err
	}
	secrets, err := x.secrets()
	if err != nil {
		return Result{}, err
	}
	var edits []Edit
	for _, s := range secrets {
		if !s.IsPlaintext {
			continue
		}
		sh, shown := v.shown[s.Path]
		pt, wasPlain := v.plain[s.Path]
		switch {
		case shown && sh.plaintext == s.Plaintext && s.Flow == sh.flow && (s.Flow || s.KeyCol == sh.keyCol):
			start, end := s.plaintextSpan()
			edits = append(edits, Edit{Start: start, End: end, Text: sh.text})
		case shown && sh.plaintext == s.Plaintext:
			edits = append(edits, s.CiphertextEdit(sh.ciphertext))
		case !shown && wasPlain && pt == s.Plaintext:
			// Plaintext in the source too, and untouched: esc check warns.
		default:
			b64, err := encrypt(s.Path, s.Plaintext)
			if err != nil {
				return Result{}, &SecretError{Secret: s, Op: "encrypting", Err: err}
			}
			edits = append(edits, s.CiphertextEdit(b64))
		}
	}
	r := Result{Out: edited}
	if len(edits) > 0 {
		if r, err = x.apply(edits); err != nil {
			return Result{}, err
		}
	}
	if v.addedBreak && !r.Fallback {
		r.Out = dropAddedBreak(r.Out)
	}
	return r, nil
}

// endsWithBreak reports whether b ends with a line break.
func endsWithBreak(b []byte) bool {
	return len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r')
}

// dropAddedBreak removes the final line break the view added at the end
// of the file, when the result still ends with it and reads the same
// without it.
func dropAddedBreak(out []byte) []byte {
	trimmed := bytes.TrimSuffix(out, []byte("\n"))
	trimmed = bytes.TrimSuffix(trimmed, []byte("\r"))
	if len(trimmed) == len(out) {
		return out
	}
	a, errA := decodeAll(out)
	b, errB := decodeAll(trimmed)
	if errA != nil || errB != nil || len(a) != len(b) {
		return out
	}
	for i := range a {
		if sameTree(b[i], a[i], "") != nil {
			return out
		}
	}
	return trimmed
}
