package eval

import (
	"fmt"

	"github.com/pulumi/esc"

	"github.com/escfs/escfs/internal/proppath"
)

// Lookup returns the value at a parsed property path in v.
func Lookup(path proppath.Path, v esc.Value) (esc.Value, bool) {
	for _, elem := range path {
		switch x := v.Value.(type) {
		case map[string]esc.Value:
			key, ok := elem.(string)
			if !ok {
				return esc.Value{}, false
			}
			if v, ok = x[key]; !ok {
				return esc.Value{}, false
			}
		case []esc.Value:
			i, ok := elem.(int)
			if !ok || i < 0 || i >= len(x) {
				return esc.Value{}, false
			}
			v = x[i]
		default:
			return esc.Value{}, false
		}
	}
	return v, true
}

// LookupPath returns the value at a property path (aws.creds, a["b"][0],
// as esc open takes one) in v; the error names the path when it is
// malformed or leads nowhere.
func LookupPath(path string, v esc.Value) (esc.Value, error) {
	p, err := proppath.Parse(path)
	if err != nil {
		return esc.Value{}, fmt.Errorf("property path %q: %w", path, err)
	}
	if v, ok := Lookup(p, v); ok {
		return v, nil
	}
	return esc.Value{}, fmt.Errorf("no value at property path %q", path)
}
