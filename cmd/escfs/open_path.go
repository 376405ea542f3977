package main

import (
	"github.com/escfs/escfs/eval/yamledit"

	"github.com/pulumi/esc"
)

// propertyPath is a parsed property path (yamledit's: the one parser
// escfs has for esc's syntax).
type propertyPath = yamledit.Path

// parsePropertyPath parses a property path as esc open takes it.
func parsePropertyPath(s string) (propertyPath, error) { return yamledit.ParsePath(s) }

// lookup returns the value at path in v.
func lookupPath(path propertyPath, v esc.Value) (esc.Value, bool) {
	for _, p := range path {
		switch x := v.Value.(type) {
		case map[string]esc.Value:
			key, ok := p.(string)
			if !ok {
				return esc.Value{}, false
			}
			if v, ok = x[key]; !ok {
				return esc.Value{}, false
			}
		case []esc.Value:
			i, ok := p.(int)
			if !ok || i >= len(x) {
				return esc.Value{}, false
			}
			v = x[i]
		default:
			return esc.Value{}, false
		}
	}
	return v, true
}
