package eval

import (
	"context"
	"errors"

	esceval "github.com/pulumi/esc/eval"
	"gopkg.in/yaml.v3"

	"github.com/escfs/escfs/yamledit"
)

// AtRest is what an Evaluator knows of secrets encrypted at rest: the rules
// of a definitions directory and where each ciphertext belongs. Package
// secrets implements it for escfs's envelopes; an Evaluator is given it as
// it is given its Decrypter, so eval knows no envelope format.
type AtRest interface {
	// Begin starts the checks of one evaluation of definitions under the
	// definitions directory root. The context it returns is the one the
	// evaluation decrypts with (it carries what the rules allow, such as
	// the KMS keys they name).
	Begin(ctx context.Context, root string) (context.Context, Placement)
}

// Placement is the at-rest checks of one evaluation, made before anything
// is decrypted. It is safe for concurrent use.
type Placement interface {
	// Check returns an error for each ciphertext of file, a definition of
	// env, that is bound to another environment or path and, when own
	// (file defines the environment evaluated), warnings about what the
	// rules would change. It remembers the ciphertexts found in place.
	Check(env Name, file string, cts []Ciphertext, own bool) Diagnostics
	// Plaintext warns about def's plaintext fn::secret literals, at the
	// positions given, when a rule says its secrets are encrypted.
	Plaintext(def Definition, at []Position) Diagnostics
	// Decrypter wraps d so that a ciphertext bound to a place opens only
	// if Check found it there.
	Decrypter(d esceval.Decrypter) esceval.Decrypter
}

// Ciphertext is one fn::secret {ciphertext: ...} of a definition.
type Ciphertext struct {
	Path   string // its property path under values
	Base64 string // the ciphertext as written
	Position
}

// Position is a place in a definition file, 1-based.
type Position struct {
	Line, Column int
}

// ErrNoAtRest is the error of an Evaluator given a Decrypter but no
// AtRest: ciphertexts would decrypt wherever they were copied.
var ErrNoAtRest = errors.New("evaluator: a Decrypter needs AtRest, which checks where each ciphertext belongs")

// noAtRest is the AtRest of an Evaluator without a key: nothing decrypts,
// so there is nothing to check.
type noAtRest struct{}

func (noAtRest) Begin(ctx context.Context, _ string) (context.Context, Placement) {
	return ctx, noAtRest{}
}
func (noAtRest) Check(Name, string, []Ciphertext, bool) Diagnostics { return nil }
func (noAtRest) Plaintext(Definition, []Position) Diagnostics       { return nil }
func (noAtRest) Decrypter(d esceval.Decrypter) esceval.Decrypter    { return d }

// ciphertextsOf returns the ciphertexts of a parsed definition, found by
// the same walk the writers use, so that both name each path alike.
func ciphertextsOf(doc *yaml.Node) []Ciphertext {
	var out []Ciphertext
	for _, c := range yamledit.Calls(doc) {
		if b64, n, ok := c.Ciphertext(); ok {
			out = append(out, Ciphertext{Path: c.Path.String(), Base64: b64, Position: Position{n.Line, n.Column}})
		}
	}
	return out
}

// boundFile is one definition of an evaluation and its ciphertexts.
type boundFile struct {
	name        Name
	path        string
	ciphertexts []Ciphertext
}

// checkSource checks the ciphertexts of an imported definition that the
// check before evaluation did not parse (an import reached through
// ${environments...}); a misplaced one is an error for its importer.
func checkSource(p Placement, name Name, path string, src []byte) error {
	var doc yaml.Node
	if yaml.Unmarshal(src, &doc) != nil {
		return nil // the evaluator reports the syntax
	}
	for _, d := range p.Check(name, path, ciphertextsOf(&doc), false) {
		if d.Severity == SeverityError {
			return errors.New(d.String())
		}
	}
	return nil
}
