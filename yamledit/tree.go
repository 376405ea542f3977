package yamledit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/escfs/escfs/internal/yamlpos"
)

// SyntaxError is a definition yaml.v3 cannot parse.
type SyntaxError struct {
	Line, Col int    // 1-based position of the fault (without a better clue, the line's first non-blank)
	Msg       string // yaml.v3's message without its own, often wrong, "line N:" prefix
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg) }

// syntaxError turns a yaml.v3 parse error into a *SyntaxError, at line 1
// when yamlpos cannot tell where it is.
func syntaxError(src []byte, err error) error {
	line, col, msg := yamlpos.Locate(src, err.Error())
	if line == 0 {
		line, col = 1, 1
	}
	return &SyntaxError{Line: line, Col: col, Msg: msg}
}

// allowedInYAML reports a character yaml.v3's reader accepts anywhere.
func allowedInYAML(r rune) bool { return yamlpos.Allowed(r) }

// decodeAll parses every document of src.
func decodeAll(src []byte) ([]*yaml.Node, error) {
	if bytes.HasPrefix(src, []byte{0xFE, 0xFF}) || bytes.HasPrefix(src, []byte{0xFF, 0xFE}) {
		return nil, errors.New("yaml: UTF-16 definitions are not supported")
	}
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		docs = append(docs, &n)
	}
}

// sameTree reports how got differs from want as data: kinds, resolved tags,
// scalar values, anchors and alias names, mapping order. Styles, comments
// and positions do not count. where names the place for the message.
func sameTree(got, want *yaml.Node, where string) error {
	switch {
	case got == nil || want == nil:
		if got != want {
			return fmt.Errorf("%s: node missing", where)
		}
		return nil
	case got.Kind != want.Kind:
		return fmt.Errorf("%s: %s, want %s", where, kindName(got), kindName(want))
	case got.Anchor != want.Anchor:
		return fmt.Errorf("%s: anchor %q, want %q", where, got.Anchor, want.Anchor)
	case got.Kind == yaml.ScalarNode && got.ShortTag() == "!!null" && want.ShortTag() == "!!null":
		// null, ~ and nothing are one value.
	case got.Kind == yaml.ScalarNode && (got.ShortTag() != want.ShortTag() || got.Value != want.Value):
		return fmt.Errorf("%s: %s %q, want %s %q", where, got.ShortTag(), got.Value, want.ShortTag(), want.Value)
	case got.Kind == yaml.AliasNode && got.Value != want.Value:
		return fmt.Errorf("%s: alias *%s, want *%s", where, got.Value, want.Value)
	case got.Kind != yaml.ScalarNode && got.Kind != yaml.AliasNode && got.ShortTag() != want.ShortTag():
		return fmt.Errorf("%s: tag %s, want %s", where, got.ShortTag(), want.ShortTag())
	case len(got.Content) != len(want.Content):
		return fmt.Errorf("%s: %d children, want %d", where, len(got.Content), len(want.Content))
	}
	for i := range got.Content {
		w := where
		switch {
		case got.Kind == yaml.MappingNode && i%2 == 1:
			w += "." + want.Content[i-1].Value
		case got.Kind == yaml.MappingNode:
			w += " key " + strconv.Quote(want.Content[i].Value)
		case got.Kind == yaml.SequenceNode:
			w += "[" + strconv.Itoa(i) + "]"
		}
		if err := sameTree(got.Content[i], want.Content[i], w); err != nil {
			return err
		}
	}
	return nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.DocumentNode:
		return "document"
	case yaml.SequenceNode:
		return "sequence"
	case yaml.MappingNode:
		return "mapping"
	case yaml.ScalarNode:
		return "scalar"
	case yaml.AliasNode:
		return "alias"
	}
	return "nothing"
}

// cloneTrees deep-copies docs, aliases pointing into the copy, and returns
// the copies and the map from each original node to its copy.
func cloneTrees(docs []*yaml.Node) ([]*yaml.Node, map[*yaml.Node]*yaml.Node) {
	copies := map[*yaml.Node]*yaml.Node{}
	var clone func(n *yaml.Node) *yaml.Node
	clone = func(n *yaml.Node) *yaml.Node {
		c := *n
		copies[n] = &c
		c.Content = make([]*yaml.Node, len(n.Content))
		for i, ch := range n.Content {
			c.Content[i] = clone(ch)
		}
		return &c
	}
	out := make([]*yaml.Node, len(docs))
	for i, d := range docs {
		out[i] = clone(d)
	}
	for _, c := range copies {
		if c.Alias != nil {
			if a, ok := copies[c.Alias]; ok {
				c.Alias = a
			}
		}
	}
	return out, copies
}
