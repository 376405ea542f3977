package providers

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/pulumi/esc"
	"github.com/pulumi/esc/schema"
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

// CheckKnown fails if in holds a key not in known, naming the inputs there are.
func CheckKnown(in map[string]esc.Value, known []string) error {
	var unknown []string
	for k := range in {
		if !slices.Contains(known, k) {
			unknown = append(unknown, fmt.Sprintf("%q", k))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	return fmt.Errorf("unknown input %s (the inputs are %s)", strings.Join(unknown, ", "), strings.Join(known, ", "))
}

// EntryPath is the path of key name under parent, as ESC writes paths:
// parent.name, or parent["name"] for names that are not simple identifiers.
func EntryPath(parent, name string) string {
	simple := name != ""
	for _, r := range name {
		if !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			simple = false
			break
		}
	}
	if simple {
		return parent + "." + name
	}
	return fmt.Sprintf("%s[%q]", parent, name)
}

// ObjectSchema is an object schema with required and optional properties.
// (schema.Record(...).Properties(...) would replace the record's properties.)
func ObjectSchema(required, optional schema.BuilderMap) *schema.ObjectBuilder {
	all := schema.BuilderMap{}
	maps.Copy(all, required)
	maps.Copy(all, optional)
	return schema.Object().Properties(all).Required(slices.Sorted(maps.Keys(required))...)
}
