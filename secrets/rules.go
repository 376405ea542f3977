package secrets

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/escfs/escfs/internal/yamlpos"
)

// RulesFile is the name of the rules file in a definitions directory.
const RulesFile = ".escfs.yaml"

// Rule says which recipients the secrets of the environments matching a
// pattern are encrypted to.
type Rule struct {
	// Environments is a glob over the environment's name ("project/env",
	// or "env" alone in the default project): * matches any run of
	// characters, / included; ? one character; [...] a class as in
	// path.Match ([a-z], [^0-9] or [!0-9]); \ quotes the next character.
	Environments string
	// Age lists age X25519 recipients (age1...).
	Age []string
	// AWSKMS lists AWS KMS key ARNs (or alias ARNs).
	AWSKMS []string `yaml:"awskms"`
	// Line and Col are where the rule starts in the rules file.
	Line, Col int
}

// Recipients returns the rule's age recipients, then its KMS keys.
func (r Rule) Recipients() []string {
	return slices.Concat(r.Age, r.AWSKMS)
}

// Rules are the secrets rules of a definitions directory, in the order of
// its rules file.
type Rules struct {
	File  string // the rules file
	Rules []Rule
}

// LoadRules reads DIR/.escfs.yaml, whose `secrets:` key lists rules, the
// first that matches an environment applying (as .sops.yaml's
// creation_rules):
//
//	secrets:
//	  - environments: "prod/*"
//	    age: [age1...]
//	    awskms: ["arn:aws:kms:eu-west-1:111122223333:key/..."]
//	  - environments: "*"
//	    age: [age1..., age1...]
//
// A missing file is no rules and no error. Bad YAML, a key other than these,
// an invalid recipient or pattern, or a rule without recipients is an error
// at FILE:LINE:COL.
func LoadRules(dir string) (*Rules, error) {
	path := filepath.Join(dir, RulesFile)
	rules := &Rules{File: path}
	src, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return rules, nil
	}
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		line, col, msg := yamlpos.Locate(src, err.Error())
		if line == 0 {
			line, col = 1, 1
		}
		return nil, fmt.Errorf("%s:%d:%d: %s", path, line, col, msg)
	}
	at := func(n *yaml.Node, format string, args ...any) error {
		return fmt.Errorf("%s:%d:%d: %s", path, n.Line, n.Column, fmt.Sprintf(format, args...))
	}
	if len(doc.Content) == 0 {
		return rules, nil // empty file
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, at(top, "expected a mapping with a secrets key")
	}
	for i := 0; i < len(top.Content); i += 2 {
		key, val := top.Content[i], top.Content[i+1]
		if key.Value != "secrets" {
			return nil, at(key, "unknown key %q (known: secrets)", key.Value)
		}
		if i > 0 {
			return nil, at(key, "secrets given twice")
		}
		if val.Kind != yaml.SequenceNode {
			return nil, at(val, "secrets: expected a list of rules")
		}
		for _, item := range val.Content {
			rule, err := parseRule(item, at)
			if err != nil {
				return nil, err
			}
			rules.Rules = append(rules.Rules, rule)
		}
	}
	return rules, nil
}

// parseRule reads one rule, checking its pattern and recipients.
func parseRule(n *yaml.Node, at func(*yaml.Node, string, ...any) error) (Rule, error) {
	rule := Rule{Line: n.Line, Col: n.Column}
	ruleNode := n
	if n.Kind != yaml.MappingNode {
		return rule, at(n, "a rule is a mapping with environments, age and awskms")
	}
	var pattern *yaml.Node
	seen := map[string]bool{}
	for i := 0; i < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		if seen[key.Value] {
			return rule, at(key, "%s given twice", key.Value)
		}
		seen[key.Value] = true
		switch key.Value {
		case "environments":
			if val.Kind != yaml.ScalarNode || val.Tag == "!!null" {
				return rule, at(val, "environments: expected a string (a pattern such as \"prod/*\")")
			}
			if err := checkGlob(val.Value); err != nil {
				return rule, at(val, "environments: %v", err)
			}
			rule.Environments, pattern = val.Value, val
		case "age", "awskms":
			list, err := stringList(val, key.Value, at)
			if err != nil {
				return rule, err
			}
			for j, s := range list {
				_, isKMS, err := parseRecipient(s)
				if err == nil && len(s) > maxRecipientLen {
					err = fmt.Errorf("a recipient of %d bytes: at most %d", len(s), maxRecipientLen)
				}
				if err == nil && isKMS != (key.Value == "awskms") {
					err = fmt.Errorf("belongs under %s", map[bool]string{true: "awskms", false: "age"}[isKMS])
				}
				if err != nil {
					return rule, at(val.Content[j], "%s: %v", key.Value, err)
				}
			}
			if key.Value == "age" {
				rule.Age = list
			} else {
				rule.AWSKMS = list
			}
		default:
			return rule, at(key, "unknown key %q (known: environments, age, awskms)", key.Value)
		}
	}
	if pattern == nil {
		return rule, at(n, "rule without environments (a pattern such as \"prod/*\", or \"*\" for all)")
	}
	if n := len(rule.Age) + len(rule.AWSKMS); n > maxRecipients {
		return rule, at(ruleNode, "rule for %q with %d recipients: at most %d", rule.Environments, n, maxRecipients)
	}
	if len(rule.Age)+len(rule.AWSKMS) == 0 {
		return rule, at(n, "rule for %q without recipients (age or awskms)", rule.Environments)
	}
	return rule, nil
}

// stringList reads a YAML list of strings.
func stringList(n *yaml.Node, name string, at func(*yaml.Node, string, ...any) error) ([]string, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, at(n, "%s: expected a list", name)
	}
	out := make([]string, 0, len(n.Content))
	for _, item := range n.Content {
		if item.Kind != yaml.ScalarNode || item.Tag == "!!null" {
			return nil, at(item, "%s: expected a string", name)
		}
		out = append(out, item.Value)
	}
	return out, nil
}

// For returns the first rule whose pattern matches the environment: its
// canonical name "project/env", or, in the default project, "env" alone.
func (r *Rules) For(project, env string) (Rule, bool) {
	if r == nil {
		return Rule{}, false
	}
	names := []string{project + "/" + env}
	if project == "default" {
		names = append(names, env)
	}
	for _, rule := range r.Rules {
		for _, name := range names {
			if ok, err := matchGlob(rule.Environments, name); err == nil && ok {
				return rule, true
			}
		}
	}
	return Rule{}, false
}

// checkGlob reports a malformed pattern: empty, not UTF-8, an unclosed or
// empty class, a bad range, or a trailing \.
func checkGlob(pattern string) error {
	if pattern == "" {
		return errors.New("empty pattern")
	}
	if !utf8.ValidString(pattern) {
		return errors.New("pattern is not UTF-8")
	}
	for i := 0; i < len(pattern); {
		switch pattern[i] {
		case '[':
			_, n, err := matchClass(pattern[i:], 0)
			if err != nil {
				return err
			}
			i += n
		case '\\':
			if i+1 == len(pattern) {
				return errors.New("pattern ends with \\")
			}
			_, w := utf8.DecodeRuneInString(pattern[i+1:])
			i += 1 + w
		default:
			i++
		}
	}
	return nil
}

// matchGlob reports whether name matches pattern as a whole (see
// Rule.Environments). It backtracks to the last * only, so it runs in
// O(len(pattern) * len(name)).
func matchGlob(pattern, name string) (bool, error) {
	if err := checkGlob(pattern); err != nil {
		return false, err
	}
	px, nx := 0, 0
	// Where to resume after a mismatch: just after the last *, with the
	// name one character further on. nextNx 0 means no * yet.
	nextPx, nextNx := 0, 0
	for px < len(pattern) || nx < len(name) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				nextPx = px
				nextNx = len(name) + 1 // nothing left to give the *
				if nx < len(name) {
					_, w := utf8.DecodeRuneInString(name[nx:])
					nextNx = nx + w
				}
				px++
				continue
			case '?':
				if nx < len(name) {
					_, w := utf8.DecodeRuneInString(name[nx:])
					px, nx = px+1, nx+w
					continue
				}
			case '[':
				if nx < len(name) {
					r, w := utf8.DecodeRuneInString(name[nx:])
					ok, n, _ := matchClass(pattern[px:], r)
					if ok {
						px, nx = px+n, nx+w
						continue
					}
				}
			case '\\':
				px++ // checkGlob: a character follows
				fallthrough
			default:
				_, w := utf8.DecodeRuneInString(pattern[px:])
				if nx+w <= len(name) && pattern[px:px+w] == name[nx:nx+w] {
					px, nx = px+w, nx+w
					continue
				}
			}
		}
		if 0 < nextNx && nextNx <= len(name) {
			px, nx = nextPx, nextNx
			continue
		}
		return false, nil
	}
	return true, nil
}

// matchClass matches r against the class at the start of p ("[...]") and
// returns the class's length in bytes.
func matchClass(p string, r rune) (matched bool, n int, err error) {
	i := 1
	negated := false
	if i < len(p) && (p[i] == '^' || p[i] == '!') {
		negated = true
		i++
	}
	for ranges := 0; ; ranges++ {
		if i < len(p) && p[i] == ']' && ranges > 0 {
			return matched != negated, i + 1, nil
		}
		lo, w, err := classChar(p[i:])
		if err != nil {
			return false, 0, err
		}
		i += w
		hi := lo
		if i < len(p) && p[i] == '-' {
			if hi, w, err = classChar(p[i+1:]); err != nil {
				return false, 0, err
			}
			i += 1 + w
			if hi < lo {
				return false, 0, fmt.Errorf("range %c-%c is backwards", lo, hi)
			}
		}
		if lo <= r && r <= hi {
			matched = true
		}
	}
}

// classChar reads one character of a class, \-quoted or not.
func classChar(p string) (rune, int, error) {
	switch {
	case len(p) == 0:
		return 0, 0, errors.New("unclosed [")
	case p[0] == ']' || p[0] == '-':
		return 0, 0, fmt.Errorf("%q in a class must be quoted with \\", p[0])
	case p[0] == '\\':
		if len(p) == 1 {
			return 0, 0, errors.New("unclosed [")
		}
		r, w := utf8.DecodeRuneInString(p[1:])
		return r, 1 + w, nil
	}
	r, w := utf8.DecodeRuneInString(p)
	return r, w, nil
}
