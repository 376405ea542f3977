package eval

import (
	"reflect"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestImportsOf: the imports list is read in both of its forms (a name, a
// map of a name to options), with positions; anything else imports
// nothing; Env leaves a version off.
func TestImportsOf(t *testing.T) {
	for _, c := range []struct {
		name, src string
		want      []Import
	}{
		{"names", "imports:\n  - base\n  - proj/db@3\n", []Import{{"base", 2, 5}, {"proj/db@3", 3, 5}}},
		{"map entries", "imports:\n  - base: {merge: false}\n  - other\n", []Import{{"base", 2, 5}, {"other", 3, 5}}},
		{"flow list", "imports: [a, b]\n", []Import{{"a", 1, 11}, {"b", 1, 14}}},
		{"not a list", "imports: base\n", nil},
		{"no imports", "values: {a: 1}\n", nil},
		{"not a mapping", "- a\n", nil},
	} {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(c.src), &doc); err != nil {
			t.Fatal(err)
		}
		if got := ImportsOf(&doc); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: ImportsOf = %v, want %v", c.name, got, c.want)
		}
		if got := ImportsOf(doc.Content[0]); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: ImportsOf(top mapping) = %v, want %v", c.name, got, c.want)
		}
	}
	n, err := Import{Name: "proj/db@3"}.Env()
	if err != nil || n != (Name{Project: "proj", Env: "db"}) {
		t.Errorf("Env of proj/db@3 = %v, %v", n, err)
	}
}
