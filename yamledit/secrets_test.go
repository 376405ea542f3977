package yamledit

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestSecrets: every form of fn::secret under values is found, with the
// argument's exact position, span and ciphertext span; others are not.
func TestSecrets(t *testing.T) {
	type want struct {
		path      string
		line, col int
		span      string // src[Start:End]
		plaintext string // or, for a ciphertext secret, "cipher:" and src[CipherStart:CipherEnd]
		flow      bool
	}
	tests := []struct {
		name string
		src  string
		want []want
	}{
		{"plain", "values:\n  a:\n    fn::secret: hunter2\n",
			[]want{{"a", 3, 17, "hunter2", "hunter2", false}}},
		{"trailing comment", "values:\n  a:\n    fn::secret: hunter2   # c\n",
			[]want{{"a", 3, 17, "hunter2", "hunter2", false}}},
		{"plain multi-line", "values:\n  a:\n    fn::secret: one\n      two\n    # c\n",
			[]want{{"a", 3, 17, "one\n      two", "one two", false}}},
		{"single-quoted", "values:\n  a: {fn::secret: 'it''s' }\n",
			[]want{{"a", 2, 19, "'it''s'", "it's", true}}},
		{"double-quoted multi-line", "values:\n  a:\n    fn::secret: \"a\\\"\n      b\"\n",
			[]want{{"a", 3, 17, "\"a\\\"\n      b\"", "a\" b", false}}},
		{"literal", "values:\n  a:\n    fn::secret: |\n      x\n      y\n\n  b: 1\n",
			[]want{{"a", 3, 17, "|\n      x\n      y", "x\ny\n", false}}},
		{"literal keep", "values:\n  a:\n    fn::secret: |+\n      x\n\n\n  b: 1\n",
			[]want{{"a", 3, 17, "|+\n      x\n\n", "x\n\n\n", false}}},
		{"literal indicator", "values:\n  a:\n    fn::secret: |2-\n        x\n      y\n",
			[]want{{"a", 3, 17, "|2-\n        x\n      y", "  x\ny", false}}},
		{"folded with header comment", "values:\n  a:\n    fn::secret: >- # c\n      x\n      y\n",
			[]want{{"a", 3, 17, ">- # c\n      x\n      y", "x y", false}}},
		{"flow ciphertext", "values:\n  a:\n    fn::secret: {ciphertext: QUJD}  # c\n",
			[]want{{"a", 3, 17, "{ciphertext: QUJD}", "cipher:QUJD", false}}},
		{"block ciphertext", "values:\n  a:\n    fn::secret:\n      ciphertext: \"QUJD\"  # c\n  b: 1\n",
			[]want{{"a", 4, 7, "ciphertext: \"QUJD\"", "cipher:\"QUJD\"", false}}},
		{"flow mapping", "values: {a: {fn::secret: x}, b: [{fn::secret: {ciphertext: Y}}]}\n",
			[]want{{"a", 1, 26, "x", "x", true}, {"b[0]", 1, 47, "{ciphertext: Y}", "cipher:Y", true}}},
		{"sequences", "values:\n  l:\n  - fn::secret: a\n  -\n    - fn::secret:  b\n",
			[]want{{"l[0]", 3, 17, "a", "a", false}, {"l[1][0]", 5, 20, "b", "b", false}}},
		{"quoted keys", "values:\n  \"a.b\":\n    x y:\n      fn::secret: s\n",
			[]want{{`["a.b"].x y`, 4, 19, "s", "s", false}}},
		{"tag and anchor", "values:\n  a:\n    fn::secret: !!str &x tagged\n",
			[]want{{"a", 3, 17, "!!str &x tagged", "tagged", false}}},
		{"properties on their own line", "values:\n  a:\n    fn::secret: &x\n      tagged\n",
			[]want{{"a", 3, 17, "&x\n      tagged", "tagged", false}}},
		{"inside a call", "values:\n  c:\n    fn::open::vault:\n      token: {fn::secret: t}\n",
			[]want{{"c.fn::open::vault.token", 4, 27, "t", "t", true}}},
		{"timestamp is a string", "values:\n  a: {fn::secret: 2024-01-01}\n",
			[]want{{"a", 2, 19, "2024-01-01", "2024-01-01", true}}},
		{"unicode and tabs", "values:\n  ä:\n    fn::secret:\tö # c\n",
			[]want{{"ä", 3, 17, "ö", "ö", false}}},
		{"CRLF", "values:\r\n  a:\r\n    fn::secret: |\r\n      x\r\n  b:\r\n    fn::secret: y\r\n",
			[]want{{"a", 3, 17, "|\r\n      x", "x\n", false}, {"b", 6, 17, "y", "y", false}}},
		{"byte order mark", "\ufeffvalues:\n  a: {fn::secret: x}\n",
			[]want{{"a", 2, 19, "x", "x", true}}},
		{"documents", "%YAML 1.1\n---\nvalues:\n  a: {fn::secret: x}\n...\n---\nvalues:\n  b: {fn::secret: y}\n",
			[]want{{"a", 4, 19, "x", "x", true}}},
		{"not secrets", "imports:\n- {fn::secret: i}\nvalues:\n  n: {fn::secret: 42}\n  l: {fn::secret: [a]}\n  m: {fn::secret: {ciphertext: a, b: c}}\n  two: {fn::secret: x, y: z}\n  null: {fn::secret: }\nother: {fn::secret: o}\n",
			nil},
		{"no values", "imports: [a]\n", nil},
		{"empty", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			secrets, err := Secrets([]byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			var got []want
			for _, s := range secrets {
				w := want{s.Path, s.Line, s.Col, tc.src[s.Start:s.End], s.Plaintext, s.Flow}
				if !s.IsPlaintext {
					w.plaintext = "cipher:" + tc.src[s.CipherStart:s.CipherEnd]
					if unq := strings.Trim(tc.src[s.CipherStart:s.CipherEnd], `"`); unq != s.Ciphertext {
						t.Errorf("%s: Ciphertext %q, text %q", s.Path, s.Ciphertext, unq)
					}
				}
				got = append(got, w)
			}
			if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", tc.want) {
				t.Errorf("got  %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

// TestSecretsSyntaxError: a definition yaml.v3 cannot parse gives a
// *SyntaxError at the line and column at fault.
func TestSecretsSyntaxError(t *testing.T) {
	tests := []struct {
		src       string
		line, col int
	}{
		{"values:\n  a: [1, 2\n", 2, 3},
		{"values:\n  a: \"x\x01\"\n", 2, 8},
		{"values:\n  a: b: c\n", 2, 3},
		{"values:\n  a: \xff\n", 2, 6},
	}
	for _, tc := range tests {
		_, err := Secrets([]byte(tc.src))
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("%q: %v, want a *SyntaxError", tc.src, err)
			continue
		}
		if se.Line != tc.line || se.Col != tc.col {
			t.Errorf("%q: %v, want %d:%d", tc.src, err, tc.line, tc.col)
		}
	}
}
