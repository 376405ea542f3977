package rewrite

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/escfs/escfs/internal/proppath"
	"github.com/escfs/escfs/yamledit"
)

// Kind says how Set takes its value.
type Kind int

// The kinds of value Set writes.
const (
	YAML   Kind = iota // the value is YAML, as esc env set takes it: 8080 is a number, true a boolean, [a, b] a list
	String             // the value is a string, whatever it looks like
	Secret             // the value is a string, written as an encrypted fn::secret
)

// Set sets values.PATH of the environment name (PATH as esc writes it:
// db.password, list[0], a["b.c"]) to value, replacing what is there or
// adding the keys that are missing. A Secret is encrypted to its rule's
// recipients with a new data key, bound to ENV and PATH.
func (e *Editor) Set(ctx context.Context, name, path, value string, kind Kind) (Change, error) {
	def, src, err := e.read(name)
	if err != nil {
		return Change{}, err
	}
	var text string
	var added []string
	switch kind {
	case Secret:
		ss, err := secretsOf(def.Path, src)
		if err != nil {
			return Change{}, err
		}
		sealer, err := e.sealer(ctx, def)
		if err != nil {
			return Change{}, err
		}
		defer sealer.Close()
		added = addedRecipients(ctx, sealer, ss)
		p, err := proppath.Parse(path)
		if err != nil {
			return Change{}, fmt.Errorf("%s: set %s: %w", def.Path, path, err)
		}
		b64, err := encrypt(ctx, sealer, bindingOf(def, p.String()), value)
		if err != nil {
			return Change{}, fmt.Errorf("%s: encrypting %s: %w", def.Path, path, err)
		}
		text = "{fn::secret: " + yamledit.CiphertextArg(b64) + "}"
	case String:
		text = yamledit.FlowScalarText(value)
	default:
		if text, err = flowYAML(value); err != nil {
			return Change{}, err
		}
	}
	r, err := yamledit.Set(src, path, text)
	if err != nil {
		return Change{}, fmt.Errorf("%s: set %s: %w", def.Path, path, err)
	}
	return Change{Path: def.Path, Old: src, New: r.Out, Count: 1, Fallback: r.Fallback, Added: added}, nil
}

// flowYAML checks that value is one line of YAML (a scalar, or a flow list
// or map) and returns it.
func flowYAML(value string) (string, error) {
	if strings.ContainsAny(value, "\r\n") {
		return "", errors.New("a value of several lines must be a string (--string) or a secret (--secret)")
	}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte("v: "+value), &n); err != nil {
		return "", fmt.Errorf("the value is not YAML (%v): quote it, or use --string", err)
	}
	if strings.TrimSpace(value) == "" {
		return `""`, nil
	}
	return value, nil
}
