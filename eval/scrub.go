package eval

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/pulumi/esc"
	esceval "github.com/pulumi/esc/eval"
	"gopkg.in/yaml.v3"
)

// Scrubbed is what a diagnostic shows in place of a secret.
const Scrubbed = "[secret]"

// minScrubLen is the length below which a secret is not scrubbed: such
// short strings carry little entropy, and replacing them would mangle every
// message (esc run's redaction makes the same choice).
const minScrubLen = 3

// secretSet collects every secret string one evaluation touches: fn::secret
// literals, decrypted ciphertexts, and the secret inputs and outputs of
// every provider call. Diagnostics and errors are scrubbed of all of them
// before anyone (status, check, the log) sees them, so a provider that
// quotes a bad input ("ttl \"s3cr3t\" is not a duration") leaks nothing.
// A secretSet is safe for concurrent use.
type secretSet struct {
	mu sync.Mutex
	m  map[string]bool // GUARDED_BY(mu)
}

func newSecretSet() *secretSet { return &secretSet{m: map[string]bool{}} }

// add records a secret string.
func (s *secretSet) add(v string) {
	if len(v) < minScrubLen {
		return
	}
	s.mu.Lock()
	s.m[v] = true
	s.mu.Unlock()
}

// addValue records every string and number in v that is secret, or below a
// secret value.
func (s *secretSet) addValue(v esc.Value, secret bool) {
	secret = secret || v.Secret
	switch x := v.Value.(type) {
	case string:
		if secret {
			s.add(x)
		}
	case json.Number:
		if secret {
			s.add(string(x))
		}
	case []esc.Value:
		for _, e := range x {
			s.addValue(e, secret)
		}
	case map[string]esc.Value:
		for _, e := range x {
			s.addValue(e, secret)
		}
	}
}

// addLiterals records the plaintext of every fn::secret literal in a
// definition's source.
func (s *secretSet) addLiterals(src []byte) {
	var doc yaml.Node
	if yaml.Unmarshal(src, &doc) != nil {
		return
	}
	for _, lit := range literalSecrets(&doc) {
		s.add(lit.value)
	}
}

// secretLiteral is a plaintext fn::secret in a definition.
type secretLiteral struct {
	value     string
	line, col int // where the plaintext is
}

// literalSecrets returns every fn::secret literal (plaintext) in a parsed
// definition.
func literalSecrets(doc *yaml.Node) []secretLiteral {
	var out []secretLiteral
	stack := []*yaml.Node{doc}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == "fn::secret" && n.Content[i+1].Kind == yaml.ScalarNode {
					v := n.Content[i+1]
					out = append(out, secretLiteral{value: v.Value, line: v.Line, col: v.Column})
				}
			}
		}
		stack = append(stack, n.Content...)
	}
	return out
}

func (s *secretSet) empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m) == 0
}

// replacer returns a replacer of every secret, longest first, in the forms
// a message may quote it: as is, and escaped as Go's %q and JSON do.
func (s *secretSet) replacer() *strings.Replacer {
	s.mu.Lock()
	forms := map[string]bool{}
	for v := range s.m {
		forms[v] = true
		q := strconv.Quote(v)
		forms[q[1:len(q)-1]] = true
		if j, err := json.Marshal(v); err == nil {
			forms[string(j[1:len(j)-1])] = true
		}
	}
	s.mu.Unlock()
	list := make([]string, 0, len(forms))
	for f := range forms {
		list = append(list, f)
	}
	sort.Slice(list, func(i, j int) bool {
		if len(list[i]) != len(list[j]) {
			return len(list[i]) > len(list[j])
		}
		return list[i] < list[j]
	})
	pairs := make([]string, 0, 2*len(list))
	for _, f := range list {
		pairs = append(pairs, f, Scrubbed)
	}
	return strings.NewReplacer(pairs...)
}

// scrubDiagnostics replaces every secret in the messages of ds, in place.
func (s *secretSet) scrubDiagnostics(ds Diagnostics) {
	if len(ds) == 0 || s.empty() {
		return
	}
	r := s.replacer()
	for i := range ds {
		ds[i].Message = r.Replace(ds[i].Message)
	}
}

// scrubError returns err with every secret replaced in its message.
func (s *secretSet) scrubError(err error) error {
	if err == nil || s.empty() {
		return err
	}
	msg := err.Error()
	if clean := s.replacer().Replace(msg); clean != msg {
		return errors.New(clean)
	}
	return err
}

// secretProvider records the secret inputs and outputs of a provider's
// calls, and scrubs them from its errors.
// It also tells the evaluation's inflight tracker that it runs.
type secretProvider struct {
	esc.Provider
	name    string
	secrets *secretSet
}

func (p *secretProvider) Open(ctx context.Context, inputs map[string]esc.Value, ec esc.EnvExecContext) (esc.Value, error) {
	defer inflightFrom(ctx).begin(p.name)()
	for _, v := range inputs {
		p.secrets.addValue(v, false)
	}
	out, err := p.Provider.Open(ctx, inputs, ec)
	p.secrets.addValue(out, false)
	return out, p.secrets.scrubError(err)
}

// secretDecrypter records every plaintext it decrypts.
type secretDecrypter struct {
	esceval.Decrypter
	secrets *secretSet
}

func (d secretDecrypter) Decrypt(ctx context.Context, ciphertext []byte) ([]byte, error) {
	plain, err := d.Decrypter.Decrypt(ctx, ciphertext)
	if err == nil {
		d.secrets.add(string(plain))
	}
	return plain, err
}
