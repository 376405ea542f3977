package eval

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"os"
	"slices"
	"strconv"

	"github.com/pulumi/esc"
	"github.com/pulumi/esc/syntax"
	"gopkg.in/yaml.v3"
)

// ESC reads an unquoted YAML number as a number, not as its text: the
// evaluator keeps strconv's shortest form of the value it parsed (int64,
// uint64 or float64), and every rendering shows that form, as `esc` does
// (esc.Value.ToString for variables, encoding/json for values). So
// 012345678901 becomes 1.2345678901e+10, 1.10 becomes 1.1, 0x1F becomes 31,
// and .inf has no JSON form at all. numberDiagnostics finds such literals and
// says where they are, so users can quote them.

// maxExactDouble is 2^53: larger integers are not all doubles, so readers
// that parse JSON numbers as doubles (JavaScript, jq 1.6) change them.
var maxExactDouble = new(big.Int).Lsh(big.NewInt(1), 53)

// numberLiteral is a number written in a definition, as the evaluator read it.
type numberLiteral struct {
	rng    esc.Range
	number json.Number
	secret bool // under fn::secret: its text must not appear in a diagnostic
}

// numberDiagnostics returns a warning for every number literal that reaches
// env's values and whose rendering differs from its text in the definition,
// or that JSON readers using doubles would change, and an error for every one
// JSON cannot hold (.inf, .nan). Each is located at the literal; the text of
// a secret is never quoted. fileOf maps the evaluator's file names to paths.
func numberDiagnostics(env *esc.Environment, secrets []string, fileOf func(string) string) Diagnostics {
	if env == nil {
		return nil
	}
	var lits []numberLiteral
	for _, k := range slices.Sorted(maps.Keys(env.Exprs)) {
		collectNumbers(env.Exprs[k], false, &lits)
	}
	sources := map[string]map[[2]int]*yaml.Node{} // path -> scalars by line and column
	var out Diagnostics
	for _, lit := range lits {
		path := fileOf(lit.rng.Environment)
		scalars, ok := sources[path]
		if !ok {
			scalars = yamlScalars(path)
			sources[path] = scalars
		}
		node := scalars[[2]int{lit.rng.Begin.Line, lit.rng.Begin.Column}]
		if node == nil || yamlNumber(node) != lit.number {
			continue // the file changed since it was evaluated
		}
		secret := lit.secret || slices.Contains(secrets, node.Value) || slices.Contains(secrets, lit.number.String())
		if msg, sev := numberMessage(node.Value, lit.number, secret); msg != "" {
			out = append(out, Diagnostic{File: path, Line: lit.rng.Begin.Line, Column: lit.rng.Begin.Column, Severity: sev, Message: msg})
		}
	}
	slices.SortStableFunc(out, func(a, b Diagnostic) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	return out
}

// numberMessage says what happens to a number written as text that the
// evaluator reads as n, or "" if nothing worth saying does.
func numberMessage(text string, n json.Number, secret bool) (string, Severity) {
	shown := n.String()
	if !json.Valid([]byte(shown)) {
		if secret {
			return "a secret number has no JSON form (values.json and esc open -f json cannot hold it); quote it to keep its text", SeverityError
		}
		return fmt.Sprintf("YAML reads %s as the number %s, which JSON cannot hold (values.json and esc open -f json fail on it); quote it to keep %s", text, shown, text), SeverityError
	}
	if text != shown {
		if secret {
			return "YAML reads a secret number as a number whose text differs from what is written; quote it to keep its text", SeverityWarning
		}
		return fmt.Sprintf("YAML reads %s as the number %s, which env, dotenv and values.json show; quote it to keep %s", text, shown, text), SeverityWarning
	}
	if i, ok := new(big.Int).SetString(shown, 10); ok && new(big.Int).Abs(i).Cmp(maxExactDouble) > 0 {
		f, _ := strconv.ParseFloat(shown, 64)
		if asDouble := strconv.FormatFloat(f, 'f', -1, 64); asDouble != shown {
			if secret {
				return "a secret integer is larger than 2^53: readers of values.json that parse numbers as doubles (JavaScript, jq 1.6) change it; quote it to keep it exact", SeverityWarning
			}
			return fmt.Sprintf("%s is larger than 2^53: env, dotenv and values.json hold it exactly, but readers of values.json that parse numbers as doubles (JavaScript, jq 1.6) see %s; quote it to keep %s", text, asDouble, text), SeverityWarning
		}
	}
	return "", ""
}

// collectNumbers appends the number literals of x that reach the values: an
// object's keys come from the first expression of its base chain that
// defines them (a key defined again by an importer hides the imported one).
func collectNumbers(x esc.Expr, secret bool, out *[]numberLiteral) {
	if n, ok := x.Literal.(json.Number); ok {
		*out = append(*out, numberLiteral{rng: x.Range, number: n, secret: secret})
	}
	for _, e := range x.List {
		collectNumbers(e, secret, out)
	}
	if x.Builtin != nil {
		collectNumbers(x.Builtin.Arg, secret || x.Builtin.Name == "fn::secret", out)
	}
	if x.Object == nil {
		return
	}
	seen := map[string]bool{}
	for e := &x; e != nil && e.Object != nil; e = e.Base {
		for _, k := range slices.Sorted(maps.Keys(e.Object)) {
			if !seen[k] {
				seen[k] = true
				collectNumbers(e.Object[k], secret, out)
			}
		}
	}
}

// yamlScalars parses the definition at path with the parser the evaluator
// uses and indexes its scalars by position. An unreadable file has none.
func yamlScalars(path string) map[[2]int]*yaml.Node {
	out := map[[2]int]*yaml.Node{}
	src, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return out
	}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode {
			out[[2]int{n.Line, n.Column}] = n
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&doc)
	return out
}

// yamlNumber is the number the evaluator makes of a scalar, as its YAML
// reader does (syntax/encoding), or "" if the scalar is not a number.
func yamlNumber(n *yaml.Node) json.Number {
	var v any
	if err := n.Decode(&v); err != nil {
		return ""
	}
	switch v := v.(type) {
	case int:
		return syntax.AsNumber(v)
	case int64:
		return syntax.AsNumber(v)
	case uint64:
		return syntax.AsNumber(v)
	case float64:
		return syntax.AsNumber(v)
	}
	return ""
}
