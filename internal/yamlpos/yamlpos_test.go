package yamlpos

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// parseError is the error yaml.v3 gives for src, all its documents, or "".
func parseError(src []byte) string {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return ""
		}
		if err != nil {
			return err.Error()
		}
	}
}

// countLines counts src's lines as yaml.v3 does: CR, LF, CRLF, NEL, LS
// and PS each end one.
func countLines(src []byte) int {
	s := strings.NewReplacer("\r\n", "\n", "\r", "\n", "\u0085", "\n", "\u2028", "\n", "\u2029", "\n").Replace(string(src))
	return strings.Count(s, "\n") + 1
}

func TestLocate(t *testing.T) {
	tests := []struct {
		name, src string
		msg       string // "": the error yaml.v3 gives for src
		line, col int
		clean     string // "": only the position counts
	}{
		// the line yaml.v3 names is the one before the fault
		{"flow", "values:\n  a: 1\n  b: [1, 2\n  c: 3\n", "", 3, 3, "yaml: did not find expected ',' or ']'"},
		{"line before", "values:\n  a: [1, 2\n", "", 2, 3, ""},
		{"indent", "values:\n  a: 1\n b: 2\n", "", 3, 2, "yaml: did not find expected key"},
		{"quote", "values:\n  a: \"x\n  b: 2\n", "", 2, 3, "yaml: found unexpected end of stream"},
		{"mapping values", "values:\n  a: b: c\n", "", 2, 3, ""},
		{"unclosed flow", "secrets:\n  - environments: [\n", "", 2, 3, "yaml: did not find expected node content"},
		{"missing colon", "values:\n  a: 1\n  b\n  c: 2\n", "", 3, 3, "yaml: could not find expected ':'"},
		// yaml.v3 names no line for a fault on the first
		{"first line", "a: b: c\n", "", 1, 1, "yaml: mapping values are not allowed in this context"},
		// a later document: the prefixes are parsed whole
		{"document 2", "a: 1\n---\nb:\n  c: 1\n d: 2\n", "", 5, 2, "yaml: did not find expected key"},
		{"document 2 first line", "a: 1\n---\nb: c: d\n", "", 3, 1, ""},
		// a tab, or another character that cannot start a token: its column
		{"tab-indented", "values:\n\ta: 1\n", "", 2, 1, "yaml: found character that cannot start any token"},
		{"tab-indented item", "secrets:\n\t- environments: x\n", "", 2, 1, ""},
		{"tab in a block scalar", "a: |\n  x\n\ty\n", "", 3, 1, ""},
		{"backtick", "a: `x`\n", "", 1, 4, ""},
		{"tab in flow is blank", "a: [1,\n\t2 x\n", "", 2, 2, ""},
		// bad bytes: yaml.v3 gives no position at all
		{"invalid UTF-8", "values:\n  a: \xff\xfe\n", "", 2, 6, "yaml: invalid leading UTF-8 octet"},
		{"invalid UTF-8 alone", "values:\n  a: \xff\n", "", 2, 6, ""},
		{"surrogate", "a: \xed\xa0\x80\n", "", 1, 4, "yaml: invalid Unicode character"},
		{"NUL", "values:\n  a: x\x00y\n", "", 2, 7, "yaml: control characters are not allowed"},
		{"\\x01 in quotes", "values:\n  a: \"x\x01\"\n", "", 2, 8, ""},
		{"C1 character", "a: x\u0086\n", "", 1, 5, ""},
		{"DEL", "a: \x7f\n", "", 1, 4, ""},
		{"columns are characters", "é: \x01\n", "", 1, 4, ""},
		{"after a BOM", "\ufeffa: \x01\n", "", 1, 4, ""},
		{"after a NEL, a line break", "a: \u0085\x01\n", "", 2, 1, ""},
		// yaml.v3's line breaks
		{"CR", "a:\r\r\r[\r", "", 4, 1, "yaml: could not find expected ':'"},
		{"CRLF", "values:\r\n  a: [1, 2\r\n", "", 2, 3, ""},
		// cannot tell
		{"not yaml.v3's", "values:\n  a: 1\n", "no such thing", 0, 0, "no such thing"},
		{"no such problem", "values:\n  a: 1\n", "yaml: something else", 0, 0, "yaml: something else"},
		{"no such problem, a line", "values:\n  a: 1\n", "yaml: line 2: something else", 2, 3, "yaml: something else"},
		{"no bad byte", "a: 1\n", "yaml: control characters are not allowed", 0, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := tt.msg
			if msg == "" {
				if msg = parseError([]byte(tt.src)); msg == "" {
					t.Fatalf("%q parses", tt.src)
				}
			}
			line, col, clean := Locate([]byte(tt.src), msg)
			if line != tt.line || col != tt.col || tt.clean != "" && clean != tt.clean {
				t.Errorf("Locate(%q, %q) = %d:%d %q, want %d:%d %q", tt.src, msg, line, col, clean, tt.line, tt.col, tt.clean)
			}
		})
	}
}

// TestLocateBudget: the line search finds a fault far from the line
// yaml.v3 names, and stops when the bytes it re-parsed pass the budget
// (16 MiB for Locate).
func TestLocateBudget(t *testing.T) {
	src := []byte("a: b\n" + strings.Repeat("# c\n", 1<<10) + "b: c: d\n")
	problem := "yaml: mapping values are not allowed in this context"
	msg := "yaml: line 2: mapping values are not allowed in this context" // where yaml.v3 might have said
	if got := parseError(src); !strings.HasSuffix(got, strings.TrimPrefix(problem, "yaml:")) {
		t.Fatalf("%s, want %s", got, problem)
	}
	fault := countLines(src) - 1
	if line, _, _ := Locate(src, msg); line != fault {
		t.Fatalf("%s: line %d, want %d", msg, line, fault)
	}
	tx := newText(src)
	tx.budget = 1 << 16
	if line := tx.faultLine(2, problem); line != 0 || tx.budget >= 0 {
		t.Fatalf("%s: line %d with %d bytes of budget left, want 0 and the budget spent", msg, line, tx.budget)
	}
	if b := newText(src).budget; b != 16<<20 {
		t.Fatalf("Locate's budget is %d bytes, want 16 MiB", b)
	}
}

// FuzzLocate: Locate never panics, its line is within the file (or one
// past its end) or 0, and a line has a column.
func FuzzLocate(f *testing.F) {
	for _, s := range []string{
		"values:\n  a: [1, 2\n", "values:\n\ta: 1\n", "a: \x01\n", "a: \xff\n", "a: 1\n---\nb:\n  c: 1\n d: 2\n",
		"a:\r\r\r[\r", "\ufeffa: `\n", "a: \"x\n", "a: b: c\r\n", "a: \u2028b: c\u0085",
	} {
		f.Add([]byte(s), "")
	}
	f.Add([]byte("a: 1\n"), "yaml: line 99: found character that cannot start any token")
	f.Fuzz(func(t *testing.T, src []byte, msg string) {
		if msg == "" {
			msg = parseError(src)
		}
		line, col, _ := Locate(src, msg)
		if n := countLines(src); line < 0 || line > n+1 {
			t.Fatalf("Locate(%q, %q): line %d of %d", src, msg, line, n)
		}
		if line > 0 && col < 1 || line == 0 && col != 0 {
			t.Fatalf("Locate(%q, %q): %d:%d", src, msg, line, col)
		}
	})
}
