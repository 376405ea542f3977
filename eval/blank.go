package eval

import "bytes"

// blankYAML reports whether src holds nothing but whitespace and comments:
// an empty environment, as an empty file is.
func blankYAML(src []byte) bool {
	for _, l := range bytes.Split(src, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) > 0 && l[0] != '#' {
			return false
		}
	}
	return true
}
