package secrets

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"

	esceval "github.com/pulumi/esc/eval"

	"github.com/escfs/escfs/eval"
)

// AtRest is the eval.AtRest of escfs's envelopes: an evaluation loads the
// rules of its definitions directory (only the KMS keys they name are
// called), every bound ciphertext must be where its envelope says, and a
// bound envelope decrypts only once it was found there.
type AtRest struct{}

var _ eval.AtRest = AtRest{}

// Begin loads the rules of root for one evaluation. Rules that cannot be
// read never break it: they are a warning on a plaintext secret.
func (AtRest) Begin(ctx context.Context, root string) (context.Context, eval.Placement) {
	rules, err := LoadRules(root)
	return WithRules(ctx, rules), &placement{rules: rules, rulesErr: err, checked: map[[sha256.Size]byte]bool{}}
}

// placement checks the ciphertexts of one evaluation and remembers the
// envelopes found in place.
type placement struct {
	rules    *Rules // nil if they could not be read
	rulesErr error

	mu      sync.Mutex
	checked map[[sha256.Size]byte]bool // GUARDED_BY(mu): inner envelopes found in place
}

// Check returns an error diagnostic for each ciphertext bound to another
// environment or path, and, if own, a warning for each version-1 (unbound)
// ciphertext and each whose recipients are not its rule's.
func (p *placement) Check(env eval.Name, file string, cts []eval.Ciphertext, own bool) eval.Diagnostics {
	var out eval.Diagnostics
	var rule Rule
	ruled := false
	if own && p.rules != nil {
		rule, ruled = p.rules.For(env.Project, env.Env)
	}
	for _, c := range cts {
		inner, err := Inner(c.Base64)
		if err != nil {
			continue // the evaluator reports it where it decrypts
		}
		b, bound, err := EnvelopeBinding(inner)
		if err != nil {
			continue // likewise
		}
		at := func(sev eval.Severity, msg string) {
			out = append(out, eval.Diagnostic{File: file, Line: c.Line, Column: c.Column, Severity: sev, Message: msg})
		}
		want := Binding{Env: env.String(), Path: c.Path}
		switch {
		case bound && b != want:
			at(eval.SeverityError, (&MisplacedError{Got: b, Want: want}).Error())
			continue
		case bound:
			p.mu.Lock()
			p.checked[sha256.Sum256(inner)] = true
			p.mu.Unlock()
		case own:
			at(eval.SeverityWarning, fmt.Sprintf("%s: a version-1 ciphertext, bound to no environment or path (it could have been copied here from anywhere); escfs secrets rotate %s binds it here", c.Path, env.Short()))
		}
		if ruled {
			if listed, err := EnvelopeRecipients(inner); err == nil && !sameStrings(listed, rule.Recipients()) {
				at(eval.SeverityWarning, fmt.Sprintf("%s is encrypted to %s, but the rule at %s:%d (%q) names %s: if that change to the rule is yours, escfs secrets rotate %s re-encrypts",
					c.Path, recipientList(listed), p.rules.File, rule.Line, rule.Environments, recipientList(rule.Recipients()), env.Short()))
			}
		}
	}
	return out
}

// Plaintext warns about each plaintext fn::secret of def when a rule of
// the directory's .escfs.yaml says its secrets are encrypted: it was
// committed in the clear by mistake, or is waiting for escfs secrets
// encrypt. A rules file that cannot be read is a warning too.
func (p *placement) Plaintext(def eval.Definition, at []eval.Position) eval.Diagnostics {
	if len(at) == 0 {
		return nil
	}
	if p.rulesErr != nil {
		return eval.Diagnostics{{File: def.Path, Line: at[0].Line, Column: at[0].Column, Severity: eval.SeverityWarning,
			Message: fmt.Sprintf("plaintext fn::secret, and the secrets rules cannot be read: %v", p.rulesErr)}}
	}
	rule, ok := p.rules.For(def.Name.Project, def.Name.Env)
	if !ok {
		return nil
	}
	var out eval.Diagnostics
	for _, pos := range at {
		out = append(out, eval.Diagnostic{File: def.Path, Line: pos.Line, Column: pos.Column, Severity: eval.SeverityWarning,
			Message: fmt.Sprintf("plaintext fn::secret: the rule at %s:%d (%q) says %s's secrets are encrypted; run escfs secrets encrypt %s",
				p.rules.File, rule.Line, rule.Environments, def.Name.Short(), def.Name.Short())})
	}
	return out
}

// Decrypter wraps d: it opens a bound envelope only if Check found it in
// place; version-1 envelopes, bound to nothing, pass.
func (p *placement) Decrypter(d esceval.Decrypter) esceval.Decrypter {
	return placedDecrypter{Decrypter: d, places: p}
}

type placedDecrypter struct {
	esceval.Decrypter
	places *placement
}

func (d placedDecrypter) Decrypt(ctx context.Context, inner []byte) ([]byte, error) {
	if _, bound, err := EnvelopeBinding(inner); err == nil && bound {
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
	seen := map[string]bool{}
	for _, s := range b {
		if !set[s] {
			return false
		}
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
