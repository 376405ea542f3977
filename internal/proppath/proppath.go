// Package proppath parses and spells the property paths of ESC values
// (db.password, hosts[0], labels["app.kubernetes.io/name"]), for every
// package that names a value: the writers, lookups and completion.
package proppath

import (
	"fmt"
	"strconv"
	"strings"
)

// Path is a parsed property path: each element is a key (string) or a
// list index (int).
type Path []any

// Parse parses a property path as esc takes it: names separated by
// dots, [N] for list items and ["key"] for keys with dots, brackets or
// quotes (inside, \" and \\ stand for " and \), e.g. db.password,
// hosts[0] or labels["app.kubernetes.io/name"].
func Parse(s string) (Path, error) {
	var path Path
	fail := func(i int, msg string) (Path, error) {
		return nil, fmt.Errorf("invalid property path %q at offset %d: %s", s, i, msg)
	}
	for i, first := 0, true; i < len(s); first = false {
		if s[i] == '[' {
			elem, n, err := parseSubscript(s[i:])
			if err != nil {
				return fail(i, err.Error())
			}
			path = append(path, elem)
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
		return nil, 0, fmt.Errorf("%q is not a list index (quote keys: [\"key\"])", s[1:end])
	}
	return n, end + 1, nil
}

// String spells the path as Parse reads it: a key with dots, brackets,
// quotes or backslashes (or none at all) as ["key"].
func (p Path) String() string {
	var b strings.Builder
	for i, e := range p {
		switch e := e.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", e)
		case string:
			b.WriteString(Key(e, i == 0))
		}
	}
	return b.String()
}

// Key spells key as the next element of a path (the first one if first):
// .key, key, or ["key"] for a key with dots, brackets, quotes or
// backslashes, or none at all.
func Key(key string, first bool) string {
	switch {
	case key == "" || strings.ContainsAny(key, `.[]"\`):
		return fmt.Sprintf(`["%s"]`, strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(key))
	case first:
		return key
	default:
		return "." + key
	}
}

// Append returns p with the element e (a key or an index) added, in a
// fresh slice.
func (p Path) Append(e any) Path {
	return append(p[:len(p):len(p)], e)
}
