package eval

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// Import is one entry of a definition's top-level imports list.
type Import struct {
	Name         string // as written: "base", "proj/base" or "base@3"
	Line, Column int    // where the name is
}

// Env returns the environment the import names, any @version left off.
func (i Import) Env() (Name, error) {
	name, _, _ := strings.Cut(i.Name, "@")
	return ParseName(name)
}

// ImportsOf returns the entries of a definition's top-level imports list,
// each a name or a map of one name to its options; doc is the parsed
// definition (its document node or its top mapping). It is the one reader
// of imports lists: the limits, the Cloud source and completion use it.
func ImportsOf(doc *yaml.Node) []Import {
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}
	if doc.Kind != yaml.MappingNode {
		return nil
	}
	var list *yaml.Node
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value == "imports" {
			list = doc.Content[i+1]
		}
	}
	if list == nil || list.Kind != yaml.SequenceNode {
		return nil
	}
	var out []Import
	for _, item := range list.Content {
		switch {
		case item.Kind == yaml.ScalarNode:
			out = append(out, Import{Name: item.Value, Line: item.Line, Column: item.Column})
		case item.Kind == yaml.MappingNode && len(item.Content) >= 2:
			k := item.Content[0]
			out = append(out, Import{Name: k.Value, Line: k.Line, Column: k.Column})
		}
	}
	return out
}
