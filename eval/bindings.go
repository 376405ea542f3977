package eval

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"

	esceval "github.com/pulumi/esc/eval"
	"gopkg.in/yaml.v3"

	"github.com/escfs/escfs/secrets"
	"github.com/escfs/escfs/yamledit"
)

// ciphertextAt is one fn::secret {ciphertext: ...} of a definition: its
// property path under values and where its base64 is.
type ciphertextAt struct {
	path      string
	b64       string
	line, col int
}

// ciphertextsOf returns the ciphertexts of a parsed definition, found by
// the same walk the writers use, so that both name each path alike.
func ciphertextsOf(doc *yaml.Node) []ciphertextAt {
	var out []ciphertextAt
	for _, c := range yamledit.Calls(doc) {
		if b64, n, ok := c.Ciphertext(); ok {
			out = append(out, ciphertextAt{path: c.Path.String(), b64: b64, line: n.Line, col: n.Column})
		}
	}
	return out
}

// boundFile is one definition of an evaluation and its ciphertexts.
type boundFile struct {
	name        Name
	path        string
	ciphertexts []ciphertextAt
}

// placeCheck checks that every ciphertext of an evaluation is where its
// envelope says it belongs, before anything is decrypted, and remembers
// the envelopes that are: the evaluation's decrypter opens a bound
// (version-2) envelope only if it was checked in place here. Safe for
// concurrent use.
type placeCheck struct {
	mu      sync.Mutex
	checked map[[sha256.Size]byte]bool // GUARDED_BY(mu): inner envelopes found in place
}

func newPlaceCheck() *placeCheck {
	return &placeCheck{checked: map[[sha256.Size]byte]bool{}}
}

// check returns an error diagnostic for each ciphertext of f bound to
// another environment or path, and, if warn, a warning for each version-1
// (unbound) ciphertext and each whose recipients are not rule's.
func (pc *placeCheck) check(f boundFile, warn bool, rules *secrets.Rules) Diagnostics {
	var out Diagnostics
	var rule secrets.Rule
	ruled := false
	if warn && rules != nil {
		rule, ruled = rules.For(f.name.Project, f.name.Env)
	}
	for _, c := range f.ciphertexts {
		inner, err := secrets.Inner(c.b64)
		if err != nil {
			continue // the evaluator reports it where it decrypts
		}
		b, bound, err := secrets.EnvelopeBinding(inner)
		if err != nil {
			continue // likewise
		}
		at := func(sev Severity, msg string) {
			out = append(out, Diagnostic{File: f.path, Line: c.line, Column: c.col, Severity: sev, Message: msg})
		}
		want := secrets.Binding{Env: f.name.String(), Path: c.path}
		switch {
		case bound && b != want:
			at(SeverityError, (&secrets.MisplacedError{Got: b, Want: want}).Error())
			continue
		case bound:
			pc.mu.Lock()
			pc.checked[sha256.Sum256(inner)] = true
			pc.mu.Unlock()
		case warn:
			at(SeverityWarning, fmt.Sprintf("%s: a version-1 ciphertext, bound to no environment or path (it could have been copied here from anywhere); escfs secrets rotate %s binds it here", c.path, f.name.Short()))
		}
		if ruled {
			if listed, err := secrets.EnvelopeRecipients(inner); err == nil && !sameStrings(listed, rule.Recipients()) {
				at(SeverityWarning, fmt.Sprintf("%s is encrypted to %s, but the rule at %s:%d (%q) names %s: if that change to the rule is yours, escfs secrets rotate %s re-encrypts",
					c.path, recipientList(listed), rules.File, rule.Line, rule.Environments, recipientList(rule.Recipients()), f.name.Short()))
			}
		}
	}
	return out
}

// checkSource checks the ciphertexts of an imported definition that the
// check before evaluation did not parse (an import reached through
// ${environments...}); a misplaced one is an error for its importer.
func (pc *placeCheck) checkSource(name Name, path string, src []byte) error {
	var doc yaml.Node
	if yaml.Unmarshal(src, &doc) != nil {
		return nil // the evaluator reports the syntax
	}
	for _, d := range pc.check(boundFile{name: name, path: path, ciphertexts: ciphertextsOf(&doc)}, false, nil) {
		return errors.New(d.String())
	}
	return nil
}

// placedDecrypter opens a bound envelope only if the check found it in
// place; version-1 envelopes, bound to nothing, pass.
type placedDecrypter struct {
	esceval.Decrypter
	places *placeCheck
}

func (d placedDecrypter) Decrypt(ctx context.Context, inner []byte) ([]byte, error) {
	if _, bound, err := secrets.EnvelopeBinding(inner); err == nil && bound {
		d.places.mu.Lock()
		ok := d.places.checked[sha256.Sum256(inner)]
		d.places.mu.Unlock()
		if !ok {
			return nil, errors.New("this ciphertext was not found in place in any definition of the evaluation, so it is not decrypted")
		}
	}
	return d.Decrypter.Decrypt(ctx, inner)
}

// sameStrings reports whether a and b hold the same strings as sets.
func sameStrings(a, b []string) bool {
	set := map[string]bool{}
	for _, s := range a {
		set[s] = true
	}
	for _, s := range b {
		if !set[s] {
			return false
		}
	}
	seen := map[string]bool{}
	for _, s := range b {
		seen[s] = true
	}
	return len(seen) == len(set)
}

// recipientList names at most 4 recipients.
func recipientList(rs []string) string {
	if len(rs) <= 4 {
		return strings.Join(rs, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(rs[:4], ", "), len(rs)-4)
}
