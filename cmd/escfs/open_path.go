package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pulumi/esc"
)

// propertyPath is a parsed property path: each element is a key (string)
// or an array index (int).
type propertyPath []any

// parsePropertyPath parses a property path as esc open takes it: names
// separated by dots, with [N] for array elements and ["key"] for keys that
// hold dots, brackets or quotes, e.g. aws.creds, app.tags[0] or
// labels["app.kubernetes.io/name"]. Inside ["..."], \" and \\ stand for
// " and \.
func parsePropertyPath(s string) (propertyPath, error) {
	var path propertyPath
	fail := func(i int, msg string) (propertyPath, error) {
		return nil, fmt.Errorf("invalid property path %q at offset %d: %s", s, i, msg)
	}
	for i, first := 0, true; i < len(s); first = false {
		if s[i] == '[' {
			key, n, err := parseSubscript(s[i:])
			if err != nil {
				return fail(i, err.Error())
			}
			path = append(path, key)
			i += n
			continue
		}
		if !first {
			if s[i] != '.' {
				return fail(i, "expected '.' or '['")
			}
			i++
		}
		n := strings.IndexAny(s[i:], ".[]")
		if n < 0 {
			n = len(s) - i
		}
		if n == 0 {
			return fail(i, "expected a name")
		}
		path = append(path, s[i:i+n])
		i += n
	}
	if len(path) == 0 {
		return nil, fmt.Errorf("invalid property path %q: empty", s)
	}
	return path, nil
}

// parseSubscript parses [N] or ["key"] at the start of s, returning the
// index or key and the number of bytes it took.
func parseSubscript(s string) (any, int, error) {
	if len(s) > 1 && s[1] == '"' {
		var key strings.Builder
		for i := 2; i < len(s); i++ {
			switch c := s[i]; {
			case c == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\'):
				key.WriteByte(s[i+1])
				i++
			case c == '"':
				if i+1 >= len(s) || s[i+1] != ']' {
					return nil, 0, fmt.Errorf("expected ']' after the quoted key")
				}
				return key.String(), i + 2, nil
			default:
				key.WriteByte(c)
			}
		}
		return nil, 0, fmt.Errorf("unterminated quoted key")
	}
	end := strings.IndexByte(s, ']')
	if end < 0 {
		return nil, 0, fmt.Errorf("missing ']'")
	}
	n, err := strconv.Atoi(s[1:end])
	if err != nil || n < 0 || s[1] == '+' {
		return nil, 0, fmt.Errorf("%q is not an array index (quote keys: [\"key\"])", s[1:end])
	}
	return n, end + 1, nil
}

// lookup returns the value at path in v.
func (path propertyPath) lookup(v esc.Value) (esc.Value, bool) {
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
