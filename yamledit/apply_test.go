package yamledit

import (
	"errors"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// edit names an edit by the text it replaces: the n-th (0-based)
// occurrence of old in the source.
type edit struct {
	old   string
	nth   int
	text  string
	after bool // insert text right after old instead
}

func (e edit) resolve(t *testing.T, src string) Edit {
	t.Helper()
	at, from := -1, 0
	for i := 0; i <= e.nth; i++ {
		j := strings.Index(src[from:], e.old)
		if j < 0 {
			t.Fatalf("%q: occurrence %d of %q not found", src, e.nth, e.old)
		}
		at, from = from+j, from+j+1
	}
	if e.after {
		return Edit{Start: at + len(e.old), End: at + len(e.old), Text: e.text}
	}
	return Edit{Start: at, End: at + len(e.old), Text: e.text}
}

// TestApply: edits of every form of value splice exactly: the result is
// the source with those bytes replaced (comments, blank lines, quoting
// and indentation elsewhere untouched), plus only the adjustments that
// keep it well-formed (a comment moved into or out of a block scalar
// header, CR LF line breaks, a final line break after a block scalar).
func TestApply(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		edits []edit
		want  string
	}{
		{"plain to ciphertext, comment kept",
			"# head\nvalues:\n\n  a:\n    fn::secret: hunter2   # c\n  b: 'q'\n",
			[]edit{{"hunter2", 0, "{ciphertext: QUJD}", false}},
			"# head\nvalues:\n\n  a:\n    fn::secret: {ciphertext: QUJD}   # c\n  b: 'q'\n"},
		{"several edits in any order",
			"values:\n  a: {fn::secret: x}\n  b: {fn::secret: \"y\"}\n  c: [1, 2]\n",
			[]edit{{"\"y\"", 0, "{ciphertext: WQ==}", false}, {"x", 0, "{ciphertext: eA==}", false}},
			"values:\n  a: {fn::secret: {ciphertext: eA==}}\n  b: {fn::secret: {ciphertext: WQ==}}\n  c: [1, 2]\n"},
		{"block scalar to ciphertext, trailing blank line kept",
			"values:\n  k:\n    fn::secret: |\n      l1\n      l2\n\n  z: 1\n",
			[]edit{{"|\n      l1\n      l2", 0, "{ciphertext: QUJD}", false}},
			"values:\n  k:\n    fn::secret: {ciphertext: QUJD}\n\n  z: 1\n"},
		{"block scalar header comment moves after the new value",
			"values:\n  k:\n    fn::secret: |-  # pem\n      l1\n  z: 1\n",
			[]edit{{"|-  # pem\n      l1", 0, "{ciphertext: QUJD}", false}},
			"values:\n  k:\n    fn::secret: {ciphertext: QUJD}  # pem\n  z: 1\n"},
		{"trailing comment moves into a new block scalar's header",
			"values:\n  k:\n    fn::secret: {ciphertext: QUJD}  # pem\n  z: 1\n",
			[]edit{{" {ciphertext: QUJD}", 0, " |-\n      l1\n      l2", false}},
			"values:\n  k:\n    fn::secret: |-  # pem\n      l1\n      l2\n  z: 1\n"},
		{"block ciphertext mapping, in its slot",
			"values:\n  k:\n    fn::secret:\n      ciphertext: QUJD # c\n  z: 1\n",
			[]edit{{"\n      ciphertext: QUJD", 0, " plain", false}},
			"values:\n  k:\n    fn::secret: plain # c\n  z: 1\n"},
		{"ciphertext rotated inside both forms",
			"values:\n  a: {fn::secret: {ciphertext: QUJD}}\n  b:\n    fn::secret:\n      ciphertext: \"QUJD\"\n",
			[]edit{{"QUJD", 0, "RUZH", false}, {`"QUJD"`, 0, "RUZH", false}},
			"values:\n  a: {fn::secret: {ciphertext: RUZH}}\n  b:\n    fn::secret:\n      ciphertext: RUZH\n"},
		{"multi-line plain and quoted scalars",
			"values:\n  a: one\n    two\n  b: \"x\n    y\"  # c\n  c: 1\n",
			[]edit{{"one\n    two", 0, "1", false}, {"\"x\n    y\"", 0, "'z'", false}},
			"values:\n  a: 1\n  b: 'z'  # c\n  c: 1\n"},
		{"flow mapping nested, spanning lines",
			"values: {a: {fn::secret: x},\n  b: {c: [1, {d: e}]}  # c\n}\n",
			[]edit{{"{d: e}", 0, "{d: f}", false}},
			"values: {a: {fn::secret: x},\n  b: {c: [1, {d: f}]}  # c\n}\n"},
		{"a comment right after a bracket stays a comment",
			"values:\n  a: {b: 1}#c\n",
			[]edit{{"{b: 1}", 0, "plain", false}},
			"values:\n  a: plain #c\n"},
		{"anchors and tags are part of the value",
			"values:\n  a: !!str &x hello\n  b: &y\n    c: 1\n",
			[]edit{{"!!str &x hello", 0, "bye", false}},
			"values:\n  a: bye\n  b: &y\n    c: 1\n"},
		{"empty value gets one",
			"values:\n  a:\n  b: 1\n",
			[]edit{{"a:", 0, " x", true}},
			"values:\n  a: x\n  b: 1\n"},
		{"CRLF file gets CRLF",
			"values:\r\n  a: x\r\n  b: 1\r\n",
			[]edit{{"x", 0, "|-\n    l1\n    l2", false}},
			"values:\r\n  a: |-\r\n    l1\r\n    l2\r\n  b: 1\r\n"},
		{"block scalar at the end of a file gets a final line break",
			"values:\n  a: x",
			[]edit{{"x", 0, "|\n    l1", false}},
			"values:\n  a: |\n    l1\n"},
		{"tabs as separators",
			"values:\n  a:\tx\t# c\n",
			[]edit{{"x", 0, "y", false}},
			"values:\n  a:\ty\t# c\n"},
		{"unicode columns",
			"values:\n  ä: {ö: x}\n",
			[]edit{{"x", 0, "ü", false}},
			"values:\n  ä: {ö: ü}\n"},
		{"documents: only the first is edited, all are checked",
			"---\nvalues:\n  a: x\n...\n---\nvalues:\n  a: x\n",
			[]edit{{"x", 0, "y", false}},
			"---\nvalues:\n  a: y\n...\n---\nvalues:\n  a: x\n"},
		{"a bare ! tag is a value, not nothing",
			"values:\n  a: !\n  b: 1\n",
			[]edit{{"!", 0, "x", false}},
			"values:\n  a: x\n  b: 1\n"},
		{"explicit key; '::' starts a key, not a value",
			"values:\n  ? a\n  : x\n  ::b: 1\n",
			[]edit{{"x", 0, "y", false}},
			"values:\n  ? a\n  : y\n  ::b: 1\n"},
		{"list item in its slot",
			"values:\n  l:\n  -\n    a: 1\n  - b\n",
			[]edit{{"\n    a: 1", 0, " c", false}},
			"values:\n  l:\n  - c\n  - b\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var edits []Edit
			for _, e := range tc.edits {
				edits = append(edits, e.resolve(t, tc.src))
			}
			r, err := Apply([]byte(tc.src), edits)
			if err != nil {
				t.Fatal(err)
			}
			if r.Fallback {
				t.Fatalf("fell back: %v", r.Reason)
			}
			if string(r.Out) != tc.want {
				t.Errorf("got\n%q\nwant\n%q", r.Out, tc.want)
			}
		})
	}
}

// TestApplyFallback: when the splice cannot be right, the result is the
// yaml.v3 re-encoding with the edit made, verified, and reported; when
// that cannot be right either, an error.
func TestApplyFallback(t *testing.T) {
	t.Run("block scalar into a flow mapping", func(t *testing.T) {
		src := "# keep\nvalues:\n  a: {fn::secret: x, }  # c\n  b: 'q'\n"
		e := edit{"x", 0, ScalarText("l1\nl2", 3), false}.resolve(t, src)
		r, err := Apply([]byte(src), []Edit{e})
		if err != nil {
			t.Fatal(err)
		}
		if !r.Fallback || r.Reason == nil {
			t.Fatalf("no fallback reported: %q", r.Out)
		}
		// yaml.v3 quotes the fn::secret key and drops the trailing comma.
		want := "# keep\nvalues:\n  a: {'fn::secret': \"l1\\nl2\"} # c\n  b: 'q'\n"
		if string(r.Out) != want {
			t.Errorf("got\n%q\nwant\n%q", r.Out, want)
		}
	})
	t.Run("nothing can keep an alias valid", func(t *testing.T) {
		src := "values:\n  a: &x 1\n  b: *x\n"
		e := edit{"&x 1", 0, "2", false}.resolve(t, src)
		_, err := Apply([]byte(src), []Edit{e})
		if !errors.Is(err, ErrUnverified) {
			t.Fatalf("err %v, want ErrUnverified", err)
		}
	})
}

// TestVerifyRejectsWrongSplices: a splice that reads back as anything
// but what was asked is never returned: the verification sees a value that
// took extra text, a sibling that vanished or changed, a key added.
func TestVerifyRejectsWrongSplices(t *testing.T) {
	src := "values:\n  a: x # c\n  b: y\n"
	x0 := strings.Index(src, "x #")
	tests := []struct {
		name string
		s    splice // applied instead of the right one, {x0, x0+1, "z"}
	}{
		{"value took more text", splice{x0, x0 + 1, "z w"}},
		{"sibling swallowed", splice{x0, len(src) - 1, "z"}},
		{"sibling changed", splice{x0, len(src) - 1, "z # c\n  b: w"}},
		{"key added", splice{x0, x0 + 1, "z\n  n: 1"}},
		{"type changed", splice{x0, x0 + 1, "1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x, err := parse([]byte(src))
			if err != nil {
				t.Fatal(err)
			}
			n, slot, err := x.target(x0, x0+1)
			if err != nil || slot {
				t.Fatalf("target: %v %v", err, slot)
			}
			p := newPlan(x)
			if err := p.replace(n, "z", false, x0, x0+1); err != nil {
				t.Fatal(err)
			}
			p.splices = []splice{tc.s}
			r, err := p.run()
			if err != nil {
				t.Fatal(err)
			}
			if !r.Fallback {
				t.Fatalf("wrong splice accepted: %q", r.Out)
			}
			var got struct{ Values map[string]string }
			if err := yaml.Unmarshal(r.Out, &got); err != nil || got.Values["a"] != "z" || got.Values["b"] != "y" || len(got.Values) != 2 {
				t.Errorf("fallback %q reads %v, %v", r.Out, got, err)
			}
		})
	}
}

// TestApplyErrors: edits that are not of one value, or overlap, or whose
// text is not one value, are refused.
func TestApplyErrors(t *testing.T) {
	src := "values:\n  a: x\n  b: [1, 2]\n"
	tests := []struct {
		name  string
		edits []Edit
	}{
		{"out of range", []Edit{{Start: 20, End: 40, Text: "y"}}},
		{"backwards", []Edit{{Start: 14, End: 13, Text: "y"}}},
		{"overlap", []Edit{{Start: 13, End: 14, Text: "y"}, {Start: 13, End: 14, Text: "z"}}},
		{"not a value", []Edit{{Start: 12, End: 14, Text: "y"}}},
		{"a key", []Edit{{Start: 10, End: 11, Text: "y"}}},
		{"two values", []Edit{{Start: 13, End: 14, Text: "y\n  c: 1"}}},
		{"not YAML", []Edit{{Start: 13, End: 14, Text: "[y"}}},
		{"duplicate keys", []Edit{{Start: 13, End: 14, Text: "{a: 1, a: 2}"}}},
	}
	for _, tc := range tests {
		if _, err := Apply([]byte(src), tc.edits); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if _, err := Apply([]byte("values: [\n"), nil); err == nil {
		t.Error("bad YAML: no error")
	}
}

// TestSetErrors: paths Set cannot follow.
func TestSetErrors(t *testing.T) {
	src := []byte("values:\n  s: x\n  l: [a]\n  c:\n    fn::open::aws-login: {}\n")
	tests := []struct {
		path    string
		wantErr error
	}{
		{"l[1]", ErrAppend},
		{"l[5].x", ErrAppend},
		{"new[0]", ErrAppend},
		{"s.x", nil},
		{"l.x", nil},
		{"c.x", nil},
		{"a..b", nil},
		{`a["b`, nil},
	}
	for _, tc := range tests {
		_, err := Set(src, tc.path, "v")
		if err == nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
			t.Errorf("Set %s: %v, want %v", tc.path, err, tc.wantErr)
		}
	}
	if _, err := Set([]byte("- a\n"), "x", "v"); err == nil {
		t.Error("a list document: no error")
	}
}
