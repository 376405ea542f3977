package yamledit

import (
	"fmt"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/escfs/escfs/internal/proppath"
)

// Secret is one fn::secret call under `values:` whose argument is a
// string (a plaintext) or a mapping of the single key ciphertext to a
// string (`{ciphertext: BASE64}`, flow or block). Any other argument is not
// a Secret: esc reports it itself.
type Secret struct {
	// Path is the property path of the call under values, as proppath.Parse
	// reads it, e.g. db.password, list[0] or a["x.y"]. A call inside
	// another call's arguments has the syntactic path through it, e.g.
	// creds["fn::open::vault"].token (an esc path cannot name it).
	Path string
	// Line and Col are the 1-based position of the argument, as
	// diagnostics name it (Col counts characters).
	Line, Col int
	// Start and End are the byte span of the whole argument: the scalar,
	// or the ciphertext mapping, flow or block (a block mapping starts at
	// its ciphertext key).
	Start, End int
	// Plaintext is the argument's value, when IsPlaintext.
	Plaintext   string
	IsPlaintext bool
	// Ciphertext is the base64 ciphertext, when !IsPlaintext, and
	// CipherStart and CipherEnd the byte span of its scalar.
	Ciphertext             string
	CipherStart, CipherEnd int
	// KeyLine and KeyCol are the 1-based position of the fn::secret key:
	// block scalars for the argument indent under it (ScalarText(v,
	// KeyCol)).
	KeyLine, KeyCol int
	// Slot is the byte offset just after the colon of `fn::secret:`;
	// replacing [Slot, End) with " " + text puts the argument on the key's
	// line, whatever line it was on.
	Slot int
	// Flow reports an argument inside a flow collection
	// (`{fn::secret: x}`), where a block scalar cannot go.
	Flow bool
}

// Secrets returns the fn::secret calls under `values:` of the definition
// src (its first YAML document, the one esc reads), in file order. A
// definition yaml.v3 cannot parse gives a *SyntaxError with the line and
// column at fault; a secret whose text cannot be located (a construct the
// scanner does not follow, which yaml.v3 accepts) is an error too, rather
// than a Secret with a wrong span.
func Secrets(src []byte) ([]Secret, error) {
	x, err := parse(src)
	if err != nil {
		return nil, err
	}
	return x.secrets()
}

// secrets is Secrets on the parsed source.
func (x *index) secrets() ([]Secret, error) {
	var out []Secret
	for _, c := range Calls(x.doc) {
		s, ok, err := x.secret(c.Node, c.Path)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, s)
		}
	}
	return out, nil
}

// Call is one fn::secret call under values: the mapping {fn::secret: ARG}
// and its property path.
type Call struct {
	Node *yaml.Node
	Path proppath.Path
}

// Calls returns the fn::secret calls under values of a parsed definition
// (a yaml.v3 document node), in file order, with their property paths: the
// one walk that both the writers (Secrets) and the evaluation's check of
// where each ciphertext belongs use, so they agree on every path.
func Calls(doc *yaml.Node) []Call {
	values := valuesNode(doc)
	if values == nil {
		return nil
	}
	var out []Call
	var walk func(n *yaml.Node, path proppath.Path)
	walk = func(n *yaml.Node, path proppath.Path) {
		switch n.Kind {
		case yaml.MappingNode:
			if len(n.Content) == 2 && n.Content[0].Kind == yaml.ScalarNode && n.Content[0].Value == "fn::secret" {
				out = append(out, Call{Node: n, Path: path})
				return
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				walk(n.Content[i+1], path.Append(n.Content[i].Value))
			}
		case yaml.SequenceNode:
			for i, item := range n.Content {
				walk(item, path.Append(i))
			}
		}
	}
	walk(values, nil)
	return out
}

// Ciphertext returns the base64 ciphertext of a call whose argument is
// {ciphertext: STRING}, and that string's node.
func (c Call) Ciphertext() (string, *yaml.Node, bool) {
	arg := c.Node.Content[1]
	if arg.Kind == yaml.MappingNode && len(arg.Content) == 2 && arg.Content[0].Value == "ciphertext" && isString(arg.Content[1]) {
		return arg.Content[1].Value, arg.Content[1], true
	}
	return "", nil, false
}

// valuesNode returns the value of the top-level values key, or nil.
func valuesNode(doc *yaml.Node) *yaml.Node {
	if doc == nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	top := doc.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == "values" {
			return top.Content[i+1]
		}
	}
	return nil
}

// secret makes the Secret of the call mapping call at path, if its
// argument has the form of one.
func (x *index) secret(call *yaml.Node, path proppath.Path) (Secret, bool, error) {
	key, arg := call.Content[0], call.Content[1]
	s := Secret{Path: path.String(), Line: arg.Line, Col: arg.Column, KeyLine: key.Line, KeyCol: key.Column}
	var cipher *yaml.Node
	switch {
	case isString(arg):
		s.IsPlaintext, s.Plaintext = true, arg.Value
	case arg.Kind == yaml.MappingNode && len(arg.Content) == 2 && arg.Content[0].Value == "ciphertext" && isString(arg.Content[1]):
		cipher = arg.Content[1]
		s.Ciphertext = cipher.Value
	default:
		return Secret{}, false, nil
	}
	t := x.texts[arg]
	if t == nil || t.err != nil {
		return Secret{}, false, fmt.Errorf("fn::secret at %d:%d: %w", arg.Line, arg.Column, locateErr(t))
	}
	s.Start, s.End, s.Slot, s.Flow = t.start, t.end, t.slot, t.flow
	if cipher != nil {
		ct := x.texts[cipher]
		if ct == nil || ct.err != nil {
			return Secret{}, false, fmt.Errorf("ciphertext at %d:%d: %w", cipher.Line, cipher.Column, locateErr(ct))
		}
		s.CipherStart, s.CipherEnd = ct.start, ct.end
	}
	return s, true, nil
}

func locateErr(t *nodeText) error {
	if t == nil {
		return errLocate
	}
	return t.err
}

// isString reports a scalar esc reads as a string: anything yaml.v3 does
// not decode as null, a bool or a number (timestamps and binaries are
// strings of their text, as esc takes them).
func isString(n *yaml.Node) bool {
	if n.Kind != yaml.ScalarNode {
		return false
	}
	var v any
	if n.Decode(&v) != nil {
		return false
	}
	switch v.(type) {
	case nil, bool, int, int64, uint64, float64:
		return false
	case string, time.Time, []byte:
		return true
	}
	return true
}

// PlaintextEdit returns the edit that makes the argument the plaintext
// value: on the fn::secret key's line, as ScalarText(value, KeyCol) (a
// block scalar for a multi-line value), or as FlowScalarText inside a flow
// collection.
func (s Secret) PlaintextEdit(value string) Edit {
	start, end := s.plaintextSpan()
	if s.Flow || s.Slot < 0 {
		return Edit{Start: start, End: end, Text: FlowScalarText(value)}
	}
	return Edit{Start: start, End: end, Text: " " + ScalarText(value, s.KeyCol)}
}

// plaintextSpan is the span PlaintextEdit writes over.
func (s Secret) plaintextSpan() (start, end int) {
	if s.Flow || s.Slot < 0 {
		return s.Start, s.End
	}
	return s.Slot, s.End
}

// CiphertextEdit returns the edit that makes the argument
// CiphertextArg(b64), written where the argument starts (on the key's line
// if the argument was not).
func (s Secret) CiphertextEdit(b64 string) Edit {
	if !s.Flow && s.Slot >= 0 && s.Line != s.KeyLine {
		return Edit{Start: s.Slot, End: s.End, Text: " " + CiphertextArg(b64)}
	}
	return Edit{Start: s.Start, End: s.End, Text: CiphertextArg(b64)}
}

// RotateEdit returns the edit that replaces the ciphertext of a ciphertext
// secret with b64, leaving the rest of the argument as it is; for a
// plaintext secret it is CiphertextEdit.
func (s Secret) RotateEdit(b64 string) Edit {
	if s.IsPlaintext {
		return s.CiphertextEdit(b64)
	}
	return Edit{Start: s.CipherStart, End: s.CipherEnd, Text: FlowScalarText(b64)}
}
