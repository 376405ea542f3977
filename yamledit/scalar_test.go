package yamledit

import (
	"fmt"
	"strings"
	"testing"
)

// nastyValues are strings ScalarText must write so they read back exactly.
var nastyValues = []string{
	"", " ", "  ", " lead", "trail ", "\t", "a\tb", "#", "a #b", "a#b", ": ", "a: b", "a:", "- ", "-", "-a", "? x", "?",
	"'", "''", "\"", "it's", "say \"hi\"", `back\slash`, `\n`, "ünïcödé", "日本語", "emoji 🎉", "\u2028", "\u0085", "\ufeff", "\uFFFE",
	"\x00", "\x01", "\x7f", "\x1b[31m", "yes", "Yes", "NO", "on", "off", "y", "n", "true", "False", "null", "Null", "~", "1e3",
	"0x1F", "0o17", "017", "1_000", "+1", "-1", ".5", "1.", ".inf", "-.Inf", ".NaN", "2024-01-01", "2001-12-14t21:59:43.10-05:00",
	"12:30", "<<", "=", "*alias", "&anchor", "!tag", "%YAML", "@at", "`tick`", "|", ">", "{a}", "[a]", "a,b", "a]b",
	"---", "...", "--- x", "line1\nline2", "line1\nline2\n", "line1\nline2\n\n", "line1\n\n\nline2\n\n\n", "\nleading break",
	"\n\nleading breaks\n", "  indented first\nsecond", "first\n  indented second\n", "\tfirst tab\n", "a\n\tb\n", "trailing spaces  \nx",
	"x\n   \n", "   \nx", "crlf\r\nline\r\n", "cr\ronly", "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nAKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n",
	"# not a comment\n# either\n", "key: value\nother: x\n", "- item\n- item\n", "\n", "\n\n", "a\n", "a\u2028b\n", "a\u0085b\n",
	"\"quoted\"\n'single'\n", "ends with backslash\\", "x\n---\ny\n", "x\n...\n",
}

// TestScalarTextForms: the form ScalarText picks for each kind of value:
// plain when safe, literal blocks for multi-line text, double quotes for
// the rest; YAML 1.1 bools, nulls, numbers and timestamps stay strings.
func TestScalarTextForms(t *testing.T) {
	tests := []struct {
		value string
		col   int
		want  string
		flow  string // FlowScalarText
	}{
		{"hunter2", 3, "hunter2", "hunter2"},
		{"a b#c", 3, "a b#c", "a b#c"},
		{"a,b", 3, "a,b", `"a,b"`},
		{"http://x:8080/p?q", 3, "http://x:8080/p?q", `"http://x:8080/p?q"`},
		{"", 3, `""`, `""`},
		{" lead", 3, `" lead"`, `" lead"`},
		{"trail ", 3, `"trail "`, `"trail "`},
		{"a #b", 3, `"a #b"`, `"a #b"`},
		{"a: b", 3, `"a: b"`, `"a: b"`},
		{"- x", 3, `"- x"`, `"- x"`},
		{"it's", 3, "it's", "it's"},
		{`say "hi"`, 3, `say "hi"`, `say "hi"`},
		{`"q"`, 3, `"\"q\""`, `"\"q\""`},
		{`back\slash`, 3, `back\slash`, `back\slash`},
		{"ünï 🎉", 3, "ünï 🎉", "ünï 🎉"},
		{"tab\there", 3, `"tab\there"`, `"tab\there"`},
		{"bell\a", 3, `"bell\a"`, `"bell\a"`},
		{"\x7f\u0085\u2028\ufeff", 3, `"\x7F\N\L\uFEFF"`, `"\x7F\N\L\uFEFF"`},
		{"yes", 3, `"yes"`, `"yes"`},
		{"Off", 3, `"Off"`, `"Off"`},
		{"y", 3, `"y"`, `"y"`},
		{"null", 3, `"null"`, `"null"`},
		{"~", 3, `"~"`, `"~"`},
		{"1e3", 3, `"1e3"`, `"1e3"`},
		{"0x1F", 3, `"0x1F"`, `"0x1F"`},
		{".5", 3, `".5"`, `".5"`},
		{"-.inf", 3, `"-.inf"`, `"-.inf"`},
		{"2024-01-01", 3, `"2024-01-01"`, `"2024-01-01"`},
		{"<<", 3, `"<<"`, `"<<"`},
		{".env", 3, ".env", ".env"},
		{"v1.2.3", 3, "v1.2.3", "v1.2.3"},
		{"line1\nline2", 3, "|-\n    line1\n    line2", `"line1\nline2"`},
		{"line1\nline2\n", 5, "|\n      line1\n      line2", `"line1\nline2\n"`},
		{"line1\n\n", 1, "|+\n  line1\n", `"line1\n\n"`},
		{"a\n\n\n", 1, "|+\n  a\n\n", `"a\n\n\n"`},
		{"\nfirst empty", 1, "|-\n\n  first empty", `"\nfirst empty"`},
		{"x\n  indented\n\ty", 1, "|-\n  x\n    indented\n  \ty", `"x\n  indented\n\ty"`},
		{"  first indented\nx", 1, `"  first indented\nx"`, `"  first indented\nx"`},
		{"crlf\r\nline", 1, `"crlf\r\nline"`, `"crlf\r\nline"`},
		{"\n", 1, `"\n"`, `"\n"`},
	}
	for _, tc := range tests {
		if got := ScalarText(tc.value, tc.col); got != tc.want {
			t.Errorf("ScalarText(%q, %d) = %q, want %q", tc.value, tc.col, got, tc.want)
		}
		if got := FlowScalarText(tc.value); got != tc.flow {
			t.Errorf("FlowScalarText(%q) = %q, want %q", tc.value, got, tc.flow)
		}
		checkScalarText(t, tc.value, max(tc.col, 2))
	}
	if got := CiphertextArg("QUJD+/=="); got != "{ciphertext: QUJD+/==}" {
		t.Errorf("CiphertextArg = %q", got)
	}
	if got := CiphertextArg("1234"); got != `{ciphertext: "1234"}` {
		t.Errorf("CiphertextArg of a base64 that reads as a number = %q", got)
	}
}

// TestScalarTextRoundTrip: every nasty value reads back exactly, at many
// key columns, as a mapping value, list item and flow value, LF and CRLF.
func TestScalarTextRoundTrip(t *testing.T) {
	for _, v := range nastyValues {
		for _, col := range []int{2, 3, 7, 20} {
			checkScalarText(t, v, col)
		}
	}
}

// TestSecretRoundTrip: a definition whose secrets were written with
// ScalarText comes back byte for byte from encrypting them and putting
// the plaintexts back (and from the view of the encrypted one), in block
// and flow places, LF and CRLF.
func TestSecretRoundTrip(t *testing.T) {
	layouts := []struct {
		name string
		make func(text, flow string) string
	}{
		{"block", func(text, _ string) string {
			return "values:\n  # c\n  a:\n    fn::secret: " + text + "\n  z: 1\n"
		}},
		{"deep", func(text, _ string) string {
			return "values:\n  a:\n    b:\n      - c:\n          # note\n          fn::secret: " + text + "\n      - 2\n"
		}},
		{"list item", func(text, _ string) string {
			return "values:\n  l:\n  - fn::secret: " + text + "\n  - x\n"
		}},
		{"flow", func(_, flow string) string {
			return "values:\n  a: {x: 1, s: {fn::secret: " + flow + "}}\n"
		}},
		{"end of file", func(text, _ string) string {
			if strings.Contains(text, "\n") {
				text += "\n" // a block scalar needs the line break after it
			}
			return "values:\n  a:\n    fn::secret: " + text
		}},
	}
	for _, layout := range layouts {
		for _, lb := range []string{"\n", "\r\n"} {
			for i, v := range nastyValues {
				// The key column: where "fn::secret" starts in the layout.
				probe := layout.make("@", "@")
				line := probe[:strings.Index(probe, "@")]
				line = line[strings.LastIndex(line, "\n")+1:]
				keyCol := strings.Index(line, "fn::secret") + 1
				orig := strings.ReplaceAll(layout.make(ScalarText(v, keyCol), FlowScalarText(v)), "\n", lb)
				t.Run(fmt.Sprintf("%s/%q/%d", layout.name, lb, i), func(t *testing.T) {
					checkSecretRoundTrip(t, orig, v)
				})
			}
		}
	}
}

func checkSecretRoundTrip(t *testing.T, orig, v string) {
	t.Helper()
	secrets, err := Secrets([]byte(orig))
	if err != nil || len(secrets) != 1 || !secrets[0].IsPlaintext || secrets[0].Plaintext != v {
		t.Fatalf("Secrets(%q) = %+v, %v", orig, secrets, err)
	}
	enc, err := Apply([]byte(orig), []Edit{secrets[0].CiphertextEdit("QUJD")})
	if err != nil || enc.Fallback {
		t.Fatalf("encrypt: %v %v", err, enc.Reason)
	}
	after, err := Secrets(enc.Out)
	if err != nil || len(after) != 1 || after[0].Ciphertext != "QUJD" {
		t.Fatalf("encrypted %q: %+v, %v", enc.Out, after, err)
	}
	back, err := Apply(enc.Out, []Edit{after[0].PlaintextEdit(v)})
	if err != nil || back.Fallback {
		t.Fatalf("decrypt: %v %v", err, back.Reason)
	}
	if string(back.Out) != orig {
		t.Fatalf("round trip\n%q\nwant\n%q\n(encrypted %q)", back.Out, orig, enc.Out)
	}
	view, err := NewView(enc.Out, func(string) (string, error) { return v, nil })
	if err != nil || string(view.Text) != orig {
		t.Fatalf("view %q, %v\nwant %q", view.Text, err, orig)
	}
	sealed, err := view.Seal(view.Text, nil)
	if err != nil || string(sealed.Out) != string(enc.Out) {
		t.Fatalf("sealed %q, %v\nwant %q", sealed.Out, err, enc.Out)
	}
}
