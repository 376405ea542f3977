package eval

import (
	"fmt"

	"github.com/pulumi/esc"

	"github.com/escfs/escfs/eval/yamledit"
)

// LookupPath returns the value at a property path (aws.creds, a["b"][0],
// as esc open takes one) in v; the error names the path when it is
// malformed or leads nowhere.
func LookupPath(path string, v esc.Value) (esc.Value, error) {
	p, err := yamledit.ParsePath(path)
	if err != nil {
		return esc.Value{}, fmt.Errorf("property path %q: %w", path, err)
	}
	for _, elem := range p {
		switch x := v.Value.(type) {
		case map[string]esc.Value:
			key, ok := elem.(string)
			if !ok {
				return esc.Value{}, fmt.Errorf("property path %q: an object has no index", path)
			}
			if v, ok = x[key]; !ok {
				return esc.Value{}, fmt.Errorf("property path %q: no property %q", path, key)
			}
		case []esc.Value:
			i, ok := elem.(int)
			if !ok || i < 0 || i >= len(x) {
				return esc.Value{}, fmt.Errorf("property path %q: no such element of an array of %d", path, len(x))
			}
			v = x[i]
		default:
			return esc.Value{}, fmt.Errorf("property path %q leads into a value that is not an object or array", path)
		}
	}
	return v, nil
}
