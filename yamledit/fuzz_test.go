package yamledit

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/escfs/escfs/internal/proppath"
)

// fuzzSeeds are definitions with the constructs the scanners must get
// right, plus every testdata/*.yaml file.
var fuzzSeeds = []string{
	"values:\n  a:\n    fn::secret: x\n",
	"values:\n  a: {fn::secret: {ciphertext: QUJD}}\n",
	"values:\n  a:\n    fn::secret:\n      ciphertext: QUJD # c\n",
	"values:\n  a:\n    fn::secret: |+\n      x\n\n  b: 1\n",
	"values:\n  a:\n    fn::secret: >-\n      folded\n      text\n\n      more\n",
	"values:\n  a:\n    fn::secret: plain\n      continued\n    # c\n",
	"values:\n  l:\n  - fn::secret: 'it''s'\n  - {fn::secret: \"q\\\"\"}\n",
	"values:\r\n  a:\r\n    fn::secret: |\r\n      x\r\n",
	"---\nvalues: &v\n  a: &s !!str\n    fn::secret: x\nb: *v\n...\n",
	"values: {a: {fn::secret: [x]}, b: {fn::secret: {ciphertext: x, y: z}}}\n",
	"values:\n\ta: 1\n",
	"\ufeffvalues:\n  é: {fn::secret: ü}\n",
	"values:\n  a: |2\n     x\n  b: !!binary QUJD\n",
	"values:\n  a:\n  b: ~\n  c: !!str\n  d: &x\n  e: *x\n",
	"values:\n  a: {x: 1,\n    y: 2, # c\n  }\n  b: [1, [2, {c: d}], ]\n",
	"values:\n  k: |-\n    a\n  # not content\n    b\n",
	"values:\n  ? a\n  : {fn::secret: x}\n  ? [b]\n  : 1\n  ? lonely\n",
}

func seedCorpus(f *testing.F, add func(src string)) {
	f.Helper()
	for _, s := range fuzzSeeds {
		add(s)
	}
	files, _ := filepath.Glob("testdata/*/*.yaml")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		add(string(b))
	}
}

// FuzzSecrets: Secrets never panics, its spans are within the source and
// where its positions say, and encrypting each plaintext splices without
// a fallback and reads back as that ciphertext.
func FuzzSecrets(f *testing.F) {
	seedCorpus(f, func(s string) { f.Add([]byte(s)) })
	f.Fuzz(func(t *testing.T, src []byte) {
		secrets, err := Secrets(src)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) && !errors.Is(err, errLocate) {
				t.Fatalf("error %v is neither a *SyntaxError nor errLocate", err)
			}
			return
		}
		s := newSource(src)
		for _, sec := range secrets {
			if sec.Start < 0 || sec.Start > sec.End || sec.End > len(src) || sec.Slot > sec.Start {
				t.Fatalf("%s: span [%d,%d) slot %d outside %d bytes", sec.Path, sec.Start, sec.End, sec.Slot, len(src))
			}
			if !sec.IsPlaintext && (sec.CipherStart < sec.Start || sec.CipherStart > sec.CipherEnd || sec.CipherEnd > sec.End) {
				t.Fatalf("%s: ciphertext span [%d,%d) outside [%d,%d)", sec.Path, sec.CipherStart, sec.CipherEnd, sec.Start, sec.End)
			}
			if off, ok := s.offset(sec.Line, sec.Col); !ok || off != sec.Start {
				t.Fatalf("%s: %d:%d is offset %d, Start %d", sec.Path, sec.Line, sec.Col, off, sec.Start)
			}
			if _, err := proppath.Parse(sec.Path); err != nil && sec.Path != "" {
				t.Fatalf("%s: %v", sec.Path, err)
			}
		}
		var edits []Edit
		want := map[string]string{}
		seen := map[string]int{}
		for _, sec := range secrets {
			seen[sec.Path]++
		}
		for i, sec := range secrets {
			if sec.IsPlaintext && seen[sec.Path] == 1 { // duplicate keys: the check below cannot tell them apart
				b64 := "Q0lQSEVS" + strings.Repeat("A", i)
				edits = append(edits, sec.CiphertextEdit(b64))
				want[sec.Path] = b64
			}
		}
		if len(edits) == 0 {
			return
		}
		r, err := Apply(src, edits)
		if err != nil {
			if errors.Is(err, ErrUnverified) && hasAnchors(src) {
				return // e.g. an alias to the plaintext
			}
			t.Fatalf("encrypt: %v", err)
		}
		if r.Fallback && !hasAnchors(src) {
			t.Fatalf("encrypt fell back: %v\n%s", r.Reason, r.Out)
		}
		after, err := Secrets(r.Out)
		if err != nil {
			t.Fatalf("encrypted: %v\n%s", err, r.Out)
		}
		for _, sec := range after {
			if b64, ok := want[sec.Path]; ok && (sec.IsPlaintext || sec.Ciphertext != b64) {
				t.Fatalf("%s: %+v, want ciphertext %s", sec.Path, sec, b64)
			}
		}
	})
}

func hasAnchors(src []byte) bool { return strings.ContainsAny(string(src), "&*") }

// FuzzSpans: every value the index locates can be replaced by a plain
// marker without a fallback: the span is exactly the value's text.
func FuzzSpans(f *testing.F) {
	seedCorpus(f, func(s string) { f.Add([]byte(s)) })
	f.Fuzz(func(t *testing.T, src []byte) {
		x, err := parse(src)
		if err != nil || x.doc == nil {
			return
		}
		for n, nt := range x.texts {
			if nt.err != nil || nt.key || nt.parent == nil || n.Anchor != "" || hasAnchors(src) {
				continue
			}
			e := Edit{Start: nt.start, End: nt.end, Text: "MARK"}
			if x.inSlot(n) {
				e = Edit{Start: nt.slot, End: nt.end, Text: " MARK"}
			} else if nt.start == nt.end {
				continue // {a, b}: no ':' to write after
			}
			r, err := Apply(src, []Edit{e})
			if err != nil || r.Fallback {
				t.Fatalf("replacing %q [%d,%d) at %d:%d: %v %v\n%s", src[nt.start:nt.end], nt.start, nt.end, n.Line, n.Column, err, r.Reason, r.Out)
			}
		}
	})
}

// FuzzScalarText: ScalarText and FlowScalarText read back as exactly the
// value, in LF and CRLF files, and take nothing after them along.
func FuzzScalarText(f *testing.F) {
	for _, v := range nastyValues {
		f.Add(v, 3)
	}
	f.Fuzz(func(t *testing.T, value string, col int) {
		// YAML holds only UTF-8 text: an invalid byte is U+FFFD, as documented.
		value = strings.ToValidUTF8(value, "\uFFFD")
		col = 2 + abs(col)%30
		checkScalarText(t, value, col)
	})
}

func abs(n int) int {
	if n < 0 {
		if -n < 0 {
			return 0
		}
		return -n
	}
	return n
}

// checkScalarText checks value round-trips through ScalarText at key
// column col (>= 2) and FlowScalarText: as a mapping value, a list item
// and in a flow mapping, with LF and CRLF line breaks, taking nothing that
// follows along.
func checkScalarText(t *testing.T, value string, col int) {
	t.Helper()
	pad := strings.Repeat(" ", col-1)
	text := ScalarText(value, col)
	flow := FlowScalarText(value)
	type entry struct {
		V any `yaml:"v"`
		N int `yaml:"n"`
	}
	for _, lb := range []string{"\n", "\r\n"} {
		var m struct {
			A entry `yaml:"a"`
			F entry `yaml:"f"`
			L []any `yaml:"l"`
			Z int   `yaml:"z"`
		}
		doc := "a:\n" + pad + "v: " + text + "\n" + pad + "n: 1\n" +
			"f: {v: " + flow + ", n: 1}\n" +
			"l:\n" + pad + "- " + text + "\n" + pad + "- 1\n" +
			"z: 2\n"
		doc = strings.ReplaceAll(doc, "\n", lb)
		err := yaml.Unmarshal([]byte(doc), &m)
		if err != nil || m.A.V != value || m.F.V != value || len(m.L) != 2 || m.L[0] != value || m.A.N != 1 || m.F.N != 1 || m.L[1] != 1 || m.Z != 2 {
			t.Fatalf("value %q at column %d:\n%s\nreads %+v, err %v", value, col, doc, m, err)
		}
	}
}

// FuzzSet: Set's result parses and holds the value at the path with
// everything else as it was (checked against yaml.v3's plain decoding, not
// the package's own tree comparison), or Set returns an error.
func FuzzSet(f *testing.F) {
	seedCorpus(f, func(s string) {
		f.Add([]byte(s), "a", "v")
		f.Add([]byte(s), "a.b", "{x: 1}")
	})
	f.Add([]byte(""), "x[0]", "1")
	f.Add([]byte("values: {a: [1, 2]}\n"), "a[1]", `"two"`)
	f.Fuzz(func(t *testing.T, src []byte, path, valueText string) {
		r, err := Set(src, path, valueText)
		if err != nil {
			return
		}
		out := r.Out
		p, perr := proppath.Parse(path)
		if perr != nil {
			t.Fatalf("Set accepted the bad path %q", path)
		}
		if _, err := decodeAll(out); err != nil {
			t.Fatalf("result does not parse: %v\n%s", err, out)
		}
		var value map[string]any
		var before, after any
		if hasAnchors(src) || yaml.Unmarshal(src, &before) != nil || yaml.Unmarshal([]byte("k: "+valueText), &value) != nil {
			return // the oracle cannot read it
		}
		if err := yaml.Unmarshal(out, &after); err != nil {
			t.Fatalf("result does not decode: %v\n%s", err, out)
		}
		want := value["k"]
		expected, ok := setAny(before, append(proppath.Path{"values"}, p...), want)
		if !ok {
			return
		}
		if !reflect.DeepEqual(after, expected) {
			t.Fatalf("Set(%q, %q): got\n%#v\nwant\n%#v\n%s", path, valueText, after, expected, out)
		}
	})
}

// setAny sets path in the decoded YAML v to value, creating maps on the
// way; false when v is not something the oracle understands.
func setAny(v any, path proppath.Path, value any) (any, bool) {
	if len(path) == 0 {
		return value, true
	}
	switch e := path[0].(type) {
	case string:
		m, ok := v.(map[string]any)
		if v == nil {
			m, ok = map[string]any{}, true
		}
		if !ok {
			return nil, false
		}
		child, ok := setAny(m[e], path[1:], value)
		if !ok {
			return nil, false
		}
		m[e] = child
		return m, true
	case int:
		l, ok := v.([]any)
		if !ok || e >= len(l) {
			return nil, false
		}
		child, ok := setAny(l[e], path[1:], value)
		if !ok {
			return nil, false
		}
		l[e] = child
		return l, true
	}
	return nil, false
}
