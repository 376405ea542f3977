package eval

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// yamlLine finds the line yaml.v3 gives in a syntax error ("yaml: line 3:
// ..."). The evaluator passes such errors on without a position, and the
// line is often not the one at fault: for parser errors yaml.v3 names the
// line before the construct it was parsing began (it reports a 0-based
// context line as if it were 1-based).
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// maxLocateBytes bounds the bytes locateSyntaxError parses in all.
const maxLocateBytes = 16 << 20

// locateSyntaxError finds where a YAML syntax error of src really is, from
// the message yaml.v3 gave, and returns its 1-based line and column and the
// message without yaml.v3's own (often wrong) "line N:" prefix. It returns
// line 0 if it cannot tell.
func locateSyntaxError(src []byte, msg string) (line, col int, clean string) {
	clean = msg
	switch {
	case strings.Contains(msg, "UTF-8") || strings.Contains(msg, "invalid Unicode character"):
		if off := firstInvalidUTF8(src); off >= 0 {
			line, col = position(src, off)
			return line, col, msg
		}
	case strings.Contains(msg, "control characters are not allowed"):
		if off := firstControl(src); off >= 0 {
			line, col = position(src, off)
			return line, col, msg
		}
	}
	m := yamlLine.FindStringSubmatch(msg)
	if m == nil {
		return 0, 0, msg
	}
	reported, _ := strconv.Atoi(m[1])
	rest := msg[len(m[0]):]
	clean = "yaml: " + rest
	line = faultLine(src, reported, rest)
	if line == 0 {
		line = reported
	}
	return line, firstNonBlank(src, line), clean
}

// faultLine returns the first line k at or after from (and never past the
// end) such that the first k lines of src alone fail to parse with the same
// problem as the whole file: the line where the problem becomes certain.
func faultLine(src []byte, from int, problem string) int {
	lines := bytes.SplitAfter(src, []byte("\n"))
	parsed := 0
	for k := max(from, 1); k <= len(lines); k++ {
		prefix := bytes.Join(lines[:k], nil)
		if parsed += len(prefix); parsed > maxLocateBytes {
			return 0
		}
		var n yaml.Node
		err := yaml.Unmarshal(prefix, &n)
		if err == nil {
			continue
		}
		if pm := yamlLine.FindStringSubmatch(err.Error()); pm != nil && err.Error()[len(pm[0]):] == problem {
			return k
		}
	}
	return 0
}

// firstNonBlank returns the 1-based column of the first non-blank byte of
// the 1-based line, or 1.
func firstNonBlank(src []byte, line int) int {
	lines := bytes.Split(src, []byte("\n"))
	if line < 1 || line > len(lines) {
		return 1
	}
	l := lines[line-1]
	return len(l) - len(bytes.TrimLeft(l, " ")) + 1
}

// position converts a byte offset to a 1-based line and column (in bytes).
func position(src []byte, off int) (line, col int) {
	line = bytes.Count(src[:off], []byte("\n")) + 1
	col = off - bytes.LastIndexByte(src[:off], '\n')
	return line, col
}

func firstInvalidUTF8(src []byte) int {
	for off := 0; off < len(src); {
		r, n := utf8.DecodeRune(src[off:])
		if r == utf8.RuneError && n <= 1 {
			return off
		}
		off += n
	}
	return -1
}

func firstControl(src []byte) int {
	for i, c := range src {
		if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f {
			return i
		}
	}
	return -1
}

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
