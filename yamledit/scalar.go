package yamledit

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// ScalarText returns YAML text for the string value as the value of a
// block mapping entry whose key is at 1-based column col (any column at or
// right of the key is also valid, only indenting deeper). The text decodes
// to exactly value, and, in this order of preference, is:
//
//   - plain when that is safe: one line, no leading or trailing blanks, no
//     indicator, nothing YAML 1.1 or 1.2 would read as a bool, null,
//     number or timestamp (`yes`, `null`, `1e3` and `2024-01-01` are quoted);
//   - a literal block scalar (|, |- or |+, the chomping that keeps the
//     value's trailing line breaks) for a multi-line value such as a PEM
//     key, its lines indented to column col+2; the text does not end with
//     a line break: the one that ends the line in the file ends the last
//     line (Apply adds one at the end of a file without);
//   - double-quoted, with escapes, on one line, for everything else:
//     values with CR, control or non-characters, a first line starting
//     with a blank, and single-line values that cannot be plain.
//
// value must be valid UTF-8, as YAML text cannot hold other bytes: an
// invalid byte is written as U+FFFD.
func ScalarText(value string, col int) string {
	if plainSafe(value, false) {
		return value
	}
	if lit, ok := literalText(value, col); ok {
		return lit
	}
	return doubleQuoted(value)
}

// FlowScalarText returns YAML text for the string value that is valid
// anywhere, inside flow collections too: plain when that is safe (as in
// ScalarText, and without ",[]{}?:"), else double-quoted on one line.
func FlowScalarText(value string) string {
	if plainSafe(value, true) {
		return value
	}
	return doubleQuoted(value)
}

// CiphertextArg returns the argument of fn::secret that holds the base64
// ciphertext b64: {ciphertext: B64}, the base64 plain (quoted only if it
// could read as something other than a string).
func CiphertextArg(b64 string) string {
	return "{ciphertext: " + FlowScalarText(b64) + "}"
}

// plainSafe reports whether value may be written as a plain scalar that
// reads back as exactly the same string, in a flow collection or not. It is
// conservative: what other YAML readers might take for another type or an
// indicator is not plain.
func plainSafe(value string, flow bool) bool {
	if value == "" || !utf8.ValidString(value) || value[0] == ' ' || value[len(value)-1] == ' ' {
		return false
	}
	if strings.ContainsRune("-?:,[]{}#&*!|>'\"%@`", rune(value[0])) {
		return false
	}
	if strings.Contains(value, ": ") || strings.Contains(value, " #") || strings.HasSuffix(value, ":") {
		return false
	}
	if flow && strings.ContainsAny(value, ",[]{}?:") {
		return false
	}
	for _, r := range value {
		if !allowedInYAML(r) || r < 0x20 || r == 0x7F || r == 0x85 || r == 0x2028 || r == 0x2029 || r == 0xFEFF {
			return false
		}
	}
	if mayReadAsNonString(value) {
		return false
	}
	// Last word: yaml.v3 itself must read it back as this string.
	var doc yaml.Node
	text := "k: " + value
	if flow {
		text = "[" + value + "]"
	}
	if yaml.Unmarshal([]byte(text), &doc) != nil || len(doc.Content) != 1 {
		return false
	}
	n := doc.Content[0]
	if flow {
		if n.Kind != yaml.SequenceNode || len(n.Content) != 1 {
			return false
		}
		n = n.Content[0]
	} else {
		if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
			return false
		}
		n = n.Content[1]
	}
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" && n.Value == value
}

// yaml11Words are the plain scalars YAML 1.1 reads as bools or null (and
// "<<" and "=", its merge and value keys).
var yaml11Words = map[string]bool{
	"y": true, "n": true, "yes": true, "no": true, "true": true, "false": true, "on": true, "off": true,
	"null": true, "~": true, "<<": true, "=": true,
}

// mayReadAsNonString reports a plain scalar that some YAML reader could
// take for a bool, null, number or timestamp: a YAML 1.1 word, or anything
// that starts like a number (a digit, or a sign or dot before a digit, or
// .inf/.nan).
func mayReadAsNonString(v string) bool {
	if yaml11Words[strings.ToLower(v)] {
		return true
	}
	digit := func(i int) bool { return i < len(v) && v[i] >= '0' && v[i] <= '9' }
	switch {
	case digit(0):
		return true
	case v[0] == '+' || v[0] == '.':
		if digit(1) || len(v) > 1 && v[1] == '.' && digit(2) {
			return true
		}
	}
	switch strings.ToLower(strings.TrimLeft(v, "+-")) {
	case ".inf", ".nan":
		return true
	}
	return false
}

// literalText returns value as a literal block scalar for a mapping value
// whose key is at 1-based column col, if it can be one: it has a line
// break, a non-empty line, no CR or other character a block scalar cannot
// hold, and its first non-empty line does not start with a blank (that
// would need an indentation indicator, which counts from the parent's
// indentation, unknown here).
func literalText(value string, col int) (string, bool) {
	if !strings.Contains(value, "\n") || !utf8.ValidString(value) {
		return "", false
	}
	for _, r := range value {
		if r != '\t' && r != '\n' && (!allowedInYAML(r) || r < 0x20 || r == 0x7F || r == 0x85 || r == 0x2028 || r == 0x2029 || r == 0xFEFF) {
			return "", false
		}
	}
	body := strings.TrimRight(value, "\n")
	trailing := len(value) - len(body)
	lines := strings.Split(body, "\n")
	first := ""
	for _, l := range lines {
		if l != "" {
			first = l
			break
		}
	}
	if first == "" || first[0] == ' ' || first[0] == '\t' {
		return "", false
	}
	var b strings.Builder
	switch trailing {
	case 0:
		b.WriteString("|-")
	case 1:
		b.WriteString("|")
	default:
		b.WriteString("|+")
	}
	indent := strings.Repeat(" ", max(col, 1)+1)
	for _, l := range lines {
		b.WriteByte('\n')
		if l != "" {
			b.WriteString(indent)
			b.WriteString(l)
		}
	}
	// With |+ every trailing break but the last (the file's) is an empty line.
	for range max(trailing-1, 0) {
		b.WriteByte('\n')
	}
	return b.String(), true
}

// doubleQuoted returns value as a double-quoted scalar on one line.
func doubleQuoted(value string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range value {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case 0:
			b.WriteString(`\0`)
		case '\a':
			b.WriteString(`\a`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\v':
			b.WriteString(`\v`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		case 0x1B:
			b.WriteString(`\e`)
		case 0x85:
			b.WriteString(`\N`)
		case 0x2028:
			b.WriteString(`\L`)
		case 0x2029:
			b.WriteString(`\P`)
		default:
			switch {
			case r >= 0x20 && r <= 0x7E || r >= 0xA0 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD && r != 0xFEFF || r >= 0x10000 && r <= 0x10FFFF:
				b.WriteRune(r)
			case r <= 0xFF:
				fmt.Fprintf(&b, `\x%02X`, r)
			default:
				fmt.Fprintf(&b, `\u%04X`, r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// keyText returns YAML text for a new mapping key: plain when safe (as
// inside a flow collection, which also rules out ':'), else double-quoted;
// double-quoted too when quoted says the mapping's keys are.
func keyText(key string, quoted bool) string {
	if quoted {
		return doubleQuoted(key)
	}
	return FlowScalarText(key)
}
