package providers

import (
	"fmt"

	"github.com/pulumi/esc"
)

// String returns the string input at key, or "" if it is absent or null.
// It fails if the input is present with another type.
func String(inputs map[string]esc.Value, key string) (string, error) {
	v, ok := inputs[key]
	if !ok || v.Value == nil {
		return "", nil
	}
	s, ok := v.Value.(string)
	if !ok {
		return "", fmt.Errorf("input %q must be a string", key)
	}
	return s, nil
}

// Object returns the object input at key, or nil if it is absent or null.
// It fails if the input is present with another type.
func Object(inputs map[string]esc.Value, key string) (map[string]esc.Value, error) {
	v, ok := inputs[key]
	if !ok || v.Value == nil {
		return nil, nil
	}
	m, ok := v.Value.(map[string]esc.Value)
	if !ok {
		return nil, fmt.Errorf("input %q must be an object", key)
	}
	return m, nil
}
