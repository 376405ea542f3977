package yamledit

import (
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/escfs/escfs/internal/proppath"
)

// ErrAppend is returned by Set for a list index past the end of its list:
// Set replaces items but does not add them.
var ErrAppend = errors.New("appending to a list is not supported")

// Set sets values.PATH of the definition src to the YAML value valueText
// (a scalar or flow text such as `hunter2`, `"a: b"`, `[1, 2]` or
// `{fn::secret: {ciphertext: ...}}`), changing nothing else. valueText
// means what it means written after `k: ` at the start of a line; a
// multi-line text (ScalarText(value, 1) for a string) is indented to
// where it goes.
//
// An existing value is replaced where it is: its text, or, when it is a
// block collection, empty or not on its key's line, everything after its
// key's ':'. A missing key is added after the last entry of its mapping,
// at that mapping's indentation (after the last line of that entry,
// trailing comment included), together with any missing mappings on the
// way, `values:` itself included; in a flow mapping it is added after the
// last entry as `, key: value`. An empty value on the way (`a:`) becomes
// the mapping. A list index must exist (ErrAppend otherwise), and a path
// cannot pass through a scalar.
//
// The result is verified and falls back to yaml.v3 re-encoding as Apply
// does; Result.Fallback reports it.
func Set(src []byte, path string, valueText string) (Result, error) {
	p, err := proppath.Parse(path)
	if err != nil {
		return Result{}, err
	}
	x, err := parse(src)
	if err != nil {
		return Result{}, err
	}
	pl := newPlan(x)
	if err := pl.set(append(proppath.Path{"values"}, p...), valueText); err != nil {
		return Result{}, err
	}
	return pl.run()
}

// set plans setting path (from the top of the document) to text.
func (p *plan) set(path proppath.Path, text string) error {
	// What is asked is text's value on its own, wherever it goes: the
	// splice must read as that, or the plan falls back to re-encoding.
	v, err := decodeText(text)
	if err != nil {
		return fmt.Errorf("set %s: %w", path[1:], err)
	}
	x := p.x
	if x.doc == nil || len(x.doc.Content) == 0 || isEmpty(x.doc.Content[0]) {
		return p.newDocument(path, v, text)
	}
	cur := x.doc.Content[0]
	for i, elem := range path {
		where := path[:i].String()
		last := i == len(path)-1
		switch cur.Kind {
		case yaml.MappingNode:
			key, ok := elem.(string)
			if !ok {
				return fmt.Errorf("set %s: %s is a mapping, not a list", path[1:], where)
			}
			var next *yaml.Node
			for k := 0; k+1 < len(cur.Content); k += 2 {
				if cur.Content[k].Kind == yaml.ScalarNode && cur.Content[k].Value == key {
					next = cur.Content[k+1]
					break
				}
			}
			if next == nil {
				if isCall(cur) {
					return fmt.Errorf("set %s: %s is a %s call", path[1:], where, cur.Content[0].Value)
				}
				return p.insert(cur, path[i:], v, text)
			}
			if last {
				p.setValue(next, v, text)
				return nil
			}
			if next.Kind == yaml.ScalarNode && next.ShortTag() == "!!null" {
				return p.fillNull(next, path[i+1:], v, text)
			}
			cur = next
		case yaml.SequenceNode:
			idx, ok := elem.(int)
			if !ok {
				return fmt.Errorf("set %s: %s is a list, not a mapping", path[1:], where)
			}
			if idx >= len(cur.Content) {
				return fmt.Errorf("set %s: %s has %d items: %w", path[1:], where, len(cur.Content), ErrAppend)
			}
			if last {
				p.setValue(cur.Content[idx], v, text)
				return nil
			}
			cur = cur.Content[idx]
		case yaml.AliasNode:
			return fmt.Errorf("set %s: %s is an alias", path[1:], where)
		default:
			return fmt.Errorf("set %s: %s is a %s, not a mapping", path[1:], where, cur.ShortTag())
		}
	}
	return nil
}

// isCall reports a builtin function call: a mapping of one key starting
// with fn::.
func isCall(n *yaml.Node) bool {
	return n.Kind == yaml.MappingNode && len(n.Content) == 2 && strings.HasPrefix(n.Content[0].Value, "fn::")
}

// setValue plans replacing the existing value n by v, written as text.
func (p *plan) setValue(n, v *yaml.Node, text string) {
	p.expect(n, v)
	t := p.x.texts[n]
	switch {
	case t == nil || t.err != nil:
		p.noSplice = locateErr(t)
	case p.x.inSlot(n):
		p.addSplice(n, t.slot, t.end, " "+shift(text, t.indent))
	default:
		p.addSplice(n, t.start, t.end, shift(text, t.indent))
	}
}

// shift indents the lines after the first of text, YAML written after a
// key at column 0, by the column of the key it goes after: the text keeps
// its meaning there. Empty lines stay empty.
func shift(text string, by int) string {
	if by <= 0 || !strings.Contains(text, "\n") {
		return text
	}
	lines := strings.Split(text, "\n")
	pad := strings.Repeat(" ", by)
	for i := 1; i < len(lines); i++ {
		if l := lines[i]; l != "" && l != "\r" {
			lines[i] = pad + l
		}
	}
	return strings.Join(lines, "\n")
}

// inSlot reports whether a new value for n is best written in n's slot,
// after the ':' or '-' (as " "+text): when n is a block collection, empty,
// or not on the line of its key or dash. A scalar on the key's line is
// replaced where it is, keeping the spacing before it.
func (x *index) inSlot(n *yaml.Node) bool {
	t := x.texts[n]
	if t.flow || t.slot < 0 {
		return false
	}
	block := (n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode) && n.Style&yaml.FlowStyle == 0
	return block || t.start == t.end || strings.ContainsAny(string(x.src.b[t.slot:t.start]), "\r\n\u0085\u2028\u2029")
}

// fillNull plans replacing the null value n by mappings down path, whose
// innermost key gets v, written as text.
func (p *plan) fillNull(n *yaml.Node, path proppath.Path, v *yaml.Node, text string) error {
	if err := keysOnly(path); err != nil {
		return err
	}
	key, value := pair(path, v)
	p.expect(n, &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{key, value}})
	t := p.x.texts[n]
	switch {
	case t == nil || t.err != nil:
		p.noSplice = locateErr(t)
	case t.flow:
		p.addSplice(n, t.start, t.end, "{"+nested(path, shift(text, t.indent), 0, true, false)+"}")
	case t.slot < 0:
		p.noSplice = errors.New("no place for the keys")
	default:
		// As a block: each key on its own line, 2 deeper than the key
		// (or '-') the null belongs to.
		p.addSplice(n, t.slot, t.end, nested(path, shift(text, t.indent+2*len(path)), t.indent+2, false, false))
	}
	return nil
}

// keysOnly rejects list indexes in a path to be created.
func keysOnly(path proppath.Path) error {
	for _, e := range path {
		if _, ok := e.(int); ok {
			return fmt.Errorf("set: cannot create list item [%d]: %w", e, ErrAppend)
		}
	}
	return nil
}

// pair returns the key path[0] and its value: v under the keys of the
// rest of path.
func pair(path proppath.Path, v *yaml.Node) (key, value *yaml.Node) {
	for j := len(path) - 1; j > 0; j-- {
		v = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{strNode(path[j].(string)), v}}
	}
	return strNode(path[0].(string)), v
}

func strNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

// nested returns the text of mappings down path ending in text: in flow
// style ({a: {b: text}}, keys quoted if quoted), or as block lines, each
// starting with a line break, the first key at column indent.
func nested(path proppath.Path, text string, indent int, flow, quoted bool) string {
	var b strings.Builder
	for j, e := range path {
		k := keyText(e.(string), quoted)
		switch {
		case flow && j == 0:
			b.WriteString(k + ": ")
		case flow:
			b.WriteString("{" + k + ": ")
		default:
			b.WriteString("\n" + strings.Repeat(" ", indent+2*j) + k + ":")
		}
	}
	if !flow {
		b.WriteString(" ")
	}
	b.WriteString(text)
	if flow {
		b.WriteString(strings.Repeat("}", len(path)-1))
	}
	return b.String()
}

// insert plans adding the missing key path[0] (and the mappings down the
// rest of path, the innermost key getting v, written as text) to mapping
// m.
func (p *plan) insert(m *yaml.Node, path proppath.Path, v *yaml.Node, text string) error {
	if err := keysOnly(path); err != nil {
		return err
	}
	key, value := pair(path, v)
	c := p.copies[m]
	c.Content = append(c.Content, key, value)
	x := p.x
	t := x.texts[m]
	if t == nil || t.err != nil {
		p.noSplice = locateErr(t)
		return nil
	}
	content, err := x.skipProperties(t.start, m)
	switch {
	case err == nil && x.src.at(content) == '{':
		quoted := len(m.Content) > 0 && m.Content[0].Style&yaml.DoubleQuotedStyle != 0
		at := content + 1
		sep := ""
		if len(m.Content) > 0 {
			at = max(x.texts[m.Content[len(m.Content)-2]].end, x.texts[m.Content[len(m.Content)-1]].end)
			sep = ", "
		}
		p.addSplice(nil, at, at, sep+nested(path, shift(text, t.indent), 0, true, quoted))
	case m.Style&yaml.FlowStyle != 0 || len(m.Content) == 0:
		p.noSplice = errors.New("the mapping is neither a block mapping nor a {...} flow mapping")
	default:
		at := x.src.lineEnd(x.texts[m.Content[len(m.Content)-1]].end)
		indent := x.src.column(x.texts[m.Content[0]].start)
		p.addSplice(nil, at, at, nested(path, shift(text, indent+2*(len(path)-1)), indent, false, false))
	}
	return nil
}

// newDocument plans a definition that is empty (nothing, comments, or a
// null document) becoming one holding path set to v, written as text.
func (p *plan) newDocument(path proppath.Path, v *yaml.Node, text string) error {
	if err := keysOnly(path); err != nil {
		return err
	}
	key, value := pair(path, v)
	root := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{key, value}}
	if len(p.want) == 0 {
		p.want = []*yaml.Node{{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}}}
	} else {
		p.want[0].Content = []*yaml.Node{root}
	}
	at := len(p.x.src.b)
	lead := ""
	if at > 0 && p.x.src.lines[len(p.x.src.lines)-1] != at {
		lead = p.x.src.lineBreak() // end the last line first
	}
	p.addSplice(nil, at, at, lead+nested(path, shift(text, 2*(len(path)-1)), 0, false, false)[1:]+"\n")
	return nil
}
