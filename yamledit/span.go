package yamledit

import (
	"bytes"
	"errors"
	"fmt"

	"gopkg.in/yaml.v3"
)

// errLocate marks a node whose text could not be located; edits of it go
// through the yaml.v3 fallback or fail.
var errLocate = errors.New("cannot locate the text of the node")

// nodeText is where one node of the first document is written.
type nodeText struct {
	start, end int        // byte span of the whole node, properties (&anchor, !tag) included; empty for an empty node
	flow       bool       // the node sits inside a flow collection, where block scalars cannot go
	indent     int        // yaml.v3's block indentation around the node: the enclosing block collection's 0-based column, -1 at the top
	slot       int        // for a mapping value: the offset just after the key's ':'; for a block sequence item: just after its '-'; else -1
	seqItem    bool       // the node is an item of a block sequence
	key        bool       // the node is a mapping key
	parent     *yaml.Node // the collection holding the node; nil for the root
	err        error      // set when the text was not found; start and end are then meaningless
}

// index maps every node of a definition's first document to its text.
type index struct {
	src   *source
	docs  []*yaml.Node // every document of the stream, as yaml.v3 parsed them
	doc   *yaml.Node   // docs[0], or nil for an empty stream
	texts map[*yaml.Node]*nodeText
	// spans and slots map the span and the slot of each value to it, for
	// target; built on first use.
	spans, slots map[[2]int]*yaml.Node
}

// parse parses src (every document, as the verification compares them all)
// and locates the text of every node of the first.
func parse(src []byte) (*index, error) {
	docs, err := decodeAll(src)
	if err != nil {
		return nil, syntaxError(src, err)
	}
	x := &index{src: newSource(src), docs: docs, texts: map[*yaml.Node]*nodeText{}}
	if len(docs) > 0 {
		x.doc = docs[0]
		if len(x.doc.Content) == 1 {
			x.node(x.doc.Content[0], nil, false, -1, -1, -1)
		}
	}
	return x, nil
}

// node locates n and, within it, its children. empty is where n's text
// would be if n is an empty node (an absent value); -1 if unknown. It
// returns n's text.
func (x *index) node(n, parent *yaml.Node, flow bool, indent, slot, empty int) *nodeText {
	t := &nodeText{flow: flow, indent: indent, slot: slot, parent: parent}
	x.texts[n] = t
	if isEmpty(n) && !x.bareTag(n, empty, indent) {
		if empty < 0 {
			t.err = fmt.Errorf("%w: empty node at %d:%d", errLocate, n.Line, n.Column)
			return t
		}
		t.start, t.end = empty, empty
		return t
	}
	start, ok := x.src.offset(n.Line, n.Column)
	if !ok {
		t.err = fmt.Errorf("%w: position %d:%d is outside the file", errLocate, n.Line, n.Column)
		return t
	}
	t.start = start
	content, err := x.skipProperties(start, n)
	if err == nil {
		switch n.Kind {
		case yaml.ScalarNode:
			t.end, err = x.scalarEnd(n, content, flow, indent)
		case yaml.AliasNode:
			t.end, err = x.aliasEnd(n, content)
		case yaml.MappingNode:
			t.end, err = x.mappingEnd(n, content, flow, indent)
		case yaml.SequenceNode:
			t.end, err = x.sequenceEnd(n, content, flow, indent)
		default:
			err = fmt.Errorf("%w: unexpected node kind %v", errLocate, n.Kind)
		}
	}
	if err != nil {
		t.err = fmt.Errorf("%d:%d: %w", n.Line, n.Column, err)
	}
	return t
}

// bareTag reports whether the seemingly empty node n is in fact the
// non-specific tag `!` alone, which yaml.v3 resolves to an untagged null:
// n's position is then that '!'. For a value (empty >= 0), whose reported
// position may also be the next token's, the '!' must be the first thing
// after where its text would be (empty), on the same line or indented more
// than indent.
func (x *index) bareTag(n *yaml.Node, empty, indent int) bool {
	off, ok := x.src.offset(n.Line, n.Column)
	if !ok || x.src.at(off) != '!' || !x.src.isBlankZ(off+1) {
		return false
	}
	if empty < 0 {
		return true
	}
	if x.src.skipSpace(empty) != off {
		return false
	}
	return x.src.column(off) > indent || !bytes.ContainsAny(x.src.b[empty:off], "\r\n\u0085\u2028\u2029")
}

// isEmpty reports a node with no text at all: an absent value, with
// neither content nor properties.
func isEmpty(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Value == "" && n.Style == 0 && n.Anchor == "" && n.Tag == "!!null"
}

// skipProperties returns the offset of n's content after its anchor and
// tag and the blanks, line breaks and comments that follow them; for a
// scalar that is nothing but properties (`a: !!str`), the offset after the
// last property.
func (x *index) skipProperties(i int, n *yaml.Node) (int, error) {
	s := x.src
	for {
		j := i
		switch s.at(i) {
		case '&':
			for j++; isAnchorChar(s.at(j)); j++ {
			}
			if j == i+1 {
				return 0, fmt.Errorf("%w: bad anchor", errLocate)
			}
		case '!':
			for !s.isBlankZ(j) {
				j++
			}
		default:
			return i, nil
		}
		i = s.skipSpace(j)
		if c := s.at(i); isEmptyWithProperties(n) && c != '&' && c != '!' {
			return j, nil
		}
	}
}

// isEmptyWithProperties reports a plain scalar with no characters, such as
// the value of `a: !!str` or `a: &x`.
func isEmptyWithProperties(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Value == "" && n.Style&^yaml.TaggedStyle == 0
}

func isAnchorChar(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_' || c == '-'
}

// aliasEnd returns the end of the alias *name at i.
func (x *index) aliasEnd(n *yaml.Node, i int) (int, error) {
	if x.src.at(i) != '*' {
		return 0, fmt.Errorf("%w: alias without '*'", errLocate)
	}
	j := i + 1
	for isAnchorChar(x.src.at(j)) {
		j++
	}
	if string(x.src.b[i+1:j]) != n.Value {
		return 0, fmt.Errorf("%w: alias name differs", errLocate)
	}
	return j, nil
}

// scalarEnd returns the end of scalar n, whose content starts at i.
func (x *index) scalarEnd(n *yaml.Node, i int, flow bool, indent int) (int, error) {
	s := x.src
	switch {
	case n.Style&yaml.DoubleQuotedStyle != 0:
		return s.doubleQuotedEnd(i)
	case n.Style&yaml.SingleQuotedStyle != 0:
		return s.singleQuotedEnd(i)
	case n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		end, v, err := s.blockScalar(i, indent)
		if err == nil && v != n.Value {
			err = fmt.Errorf("%w: block scalar reads %q, yaml.v3 %q", errLocate, v, n.Value)
		}
		return end, err
	case isEmptyWithProperties(n):
		// Only properties: the content scan stopped right after them.
		return i, nil
	default:
		end, v, err := s.plainScalar(i, flow, indent)
		if err == nil && v != n.Value {
			err = fmt.Errorf("%w: plain scalar reads %q, yaml.v3 %q", errLocate, v, n.Value)
		}
		return end, err
	}
}

// doubleQuotedEnd returns the offset after the closing quote of the
// double-quoted scalar at i.
func (s *source) doubleQuotedEnd(i int) (int, error) {
	if s.at(i) != '"' {
		return 0, fmt.Errorf("%w: expected '\"'", errLocate)
	}
	for i++; i < len(s.b); i++ {
		switch s.b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, nil
		}
	}
	return 0, fmt.Errorf("%w: unterminated double-quoted scalar", errLocate)
}

// singleQuotedEnd returns the offset after the closing quote of the
// single-quoted scalar at i (two quotes inside stand for one).
func (s *source) singleQuotedEnd(i int) (int, error) {
	if s.at(i) != '\'' {
		return 0, fmt.Errorf("%w: expected \"'\"", errLocate)
	}
	for i++; i < len(s.b); i++ {
		if s.b[i] == '\'' {
			if s.at(i+1) == '\'' {
				i++
				continue
			}
			return i + 1, nil
		}
	}
	return 0, fmt.Errorf("%w: unterminated single-quoted scalar", errLocate)
}

// plainScalar scans the plain scalar at i as yaml.v3's
// yaml_parser_scan_plain_scalar does, in a flow collection or not, with
// block indentation indent around it. It returns the offset after its last
// character and its value (to check against yaml.v3's).
func (s *source) plainScalar(i int, flow bool, indent int) (int, string, error) {
	var v, leadingBreak, trailingBreaks, whitespaces []byte
	leadingBlanks := false
	minCol := indent + 1
	end := i
	col := s.column(i)
	for {
		if col == 0 && s.isDocumentIndicator(i) {
			break
		}
		if s.at(i) == '#' {
			break
		}
		for !s.isBlankZ(i) {
			c := s.b[i]
			if c == ':' && s.isBlankZ(i+1) || flow && (c == ',' || c == '?' || c == '[' || c == ']' || c == '{' || c == '}') {
				break
			}
			if leadingBlanks || len(whitespaces) > 0 {
				if leadingBlanks {
					if leadingBreak[0] == '\n' {
						if len(trailingBreaks) == 0 {
							v = append(v, ' ')
						} else {
							v = append(v, trailingBreaks...)
						}
					} else {
						v = append(v, leadingBreak...)
						v = append(v, trailingBreaks...)
					}
					trailingBreaks, leadingBreak, leadingBlanks = trailingBreaks[:0], leadingBreak[:0], false
				} else {
					v = append(v, whitespaces...)
					whitespaces = whitespaces[:0]
				}
			}
			n := s.runeLen(i)
			v = append(v, s.b[i:i+n]...)
			i += n
			col++
			end = i
		}
		if !s.isBlank(i) && s.breakLen(i) == 0 {
			break
		}
		for s.isBlank(i) || s.breakLen(i) > 0 {
			if s.isBlank(i) {
				if leadingBlanks && col < minCol && s.b[i] == '\t' {
					return 0, "", fmt.Errorf("%w: tab in indentation", errLocate)
				}
				if !leadingBlanks {
					whitespaces = append(whitespaces, s.b[i])
				}
				i++
				col++
				continue
			}
			if !leadingBlanks {
				whitespaces = whitespaces[:0]
				i, leadingBreak = s.readBreak(i, leadingBreak)
				leadingBlanks = true
			} else {
				i, trailingBreaks = s.readBreak(i, trailingBreaks)
			}
			col = 0
		}
		if !flow && col < minCol {
			break
		}
	}
	return end, string(v), nil
}

// isDocumentIndicator reports "---" or "..." followed by a blank or the end
// at i.
func (s *source) isDocumentIndicator(i int) bool {
	if i+3 > len(s.b) {
		return false
	}
	w := string(s.b[i : i+3])
	return (w == "---" || w == "...") && s.isBlankZ(i+3)
}

// blockScalar scans the literal or folded block scalar whose indicator is
// at i as yaml.v3's yaml_parser_scan_block_scalar does, with block
// indentation indent around it. It returns where the scalar's text ends
// (see below) and its value (to check against yaml.v3's).
//
// The text ends after the last content line, before its line break: the
// break belongs to the line, as after any other value. With keep chomping
// (|+) the trailing empty lines are part of the value, so the text runs up
// to the last line break that belongs to the scalar.
func (s *source) blockScalar(i, indent int) (int, string, error) {
	literal := s.at(i) == '|'
	i++
	chomping, increment := 0, 0
	readChomp := func() {
		switch s.at(i) {
		case '+':
			chomping = 1
			i++
		case '-':
			chomping = -1
			i++
		}
	}
	readIncrement := func() error {
		if c := s.at(i); c >= '0' && c <= '9' {
			if c == '0' {
				return fmt.Errorf("%w: indentation indicator 0", errLocate)
			}
			increment = int(c - '0')
			i++
		}
		return nil
	}
	if c := s.at(i); c == '+' || c == '-' {
		readChomp()
		if err := readIncrement(); err != nil {
			return 0, "", err
		}
	} else {
		if err := readIncrement(); err != nil {
			return 0, "", err
		}
		readChomp()
	}
	for s.isBlank(i) {
		i++
	}
	if s.at(i) == '#' {
		for !s.isBreakZ(i) {
			i++
		}
	}
	if !s.isBreakZ(i) {
		return 0, "", fmt.Errorf("%w: text after a block scalar indicator", errLocate)
	}
	headerEnd := i
	if n := s.breakLen(i); n > 0 {
		i += n
	}
	ind := 0
	if increment > 0 {
		ind = increment
		if indent >= 0 {
			ind = indent + increment
		}
	}
	col := 0
	lastBreak := -1 // start of the last line break that belongs to the scalar
	var v, leadingBreak, trailingBreaks []byte
	// breaks eats indentation and empty lines, and settles the indentation.
	breaks := func() error {
		maxIndent := 0
		for {
			for (ind == 0 || col < ind) && s.at(i) == ' ' {
				i++
				col++
			}
			maxIndent = max(maxIndent, col)
			if (ind == 0 || col < ind) && s.at(i) == '\t' {
				return fmt.Errorf("%w: tab in block scalar indentation", errLocate)
			}
			if s.breakLen(i) == 0 {
				break
			}
			lastBreak = i
			i, trailingBreaks = s.readBreak(i, trailingBreaks)
			col = 0
		}
		if ind == 0 {
			ind = max(maxIndent, indent+1, 1)
		}
		return nil
	}
	if err := breaks(); err != nil {
		return 0, "", err
	}
	contentEnd := headerEnd
	leadingBlank := false
	for col == ind && !s.isZ(i) {
		trailingBlank := s.isBlank(i)
		if !literal && !leadingBlank && !trailingBlank && len(leadingBreak) > 0 && leadingBreak[0] == '\n' {
			if len(trailingBreaks) == 0 {
				v = append(v, ' ')
			}
		} else {
			v = append(v, leadingBreak...)
		}
		leadingBreak = leadingBreak[:0]
		v = append(v, trailingBreaks...)
		trailingBreaks = trailingBreaks[:0]
		leadingBlank = s.isBlank(i)
		for !s.isBreakZ(i) {
			n := s.runeLen(i)
			v = append(v, s.b[i:i+n]...)
			i += n
		}
		contentEnd, lastBreak = i, -1
		if s.breakLen(i) > 0 {
			lastBreak = i
		}
		i, leadingBreak = s.readBreak(i, leadingBreak)
		col = 0
		if err := breaks(); err != nil {
			return 0, "", err
		}
	}
	if chomping != -1 {
		v = append(v, leadingBreak...)
	}
	end := contentEnd
	if chomping == 1 {
		v = append(v, trailingBreaks...)
		if lastBreak > end {
			end = lastBreak
		}
	}
	return end, string(v), nil
}

// isZ reports the end of the input (or a NUL, which yaml.v3 reads as one).
func (s *source) isZ(i int) bool { return i >= len(s.b) || s.b[i] == 0 }

// mappingEnd locates the entries of mapping n, whose content starts at i,
// and returns the mapping's end.
func (x *index) mappingEnd(n *yaml.Node, i int, flow bool, indent int) (int, error) {
	s := x.src
	braced := s.at(i) == '{'
	if n.Style&yaml.FlowStyle == 0 && braced {
		return 0, fmt.Errorf("%w: block mapping at '{'", errLocate)
	}
	inner, childIndent := flow || braced, indent
	if !inner {
		childIndent = s.column(i) // yaml.v3 indents a block mapping at its first entry ('?' or key)
	}
	last := i
	if braced {
		last = i + 1
	}
	// An entry that cannot be located makes the mapping's end unknown, but
	// the other entries are still located: they do not depend on it.
	var failed error
	for k := 0; k+1 < len(n.Content); k += 2 {
		key, value := n.Content[k], n.Content[k+1]
		kt := x.node(key, n, inner, childIndent, -1, -1)
		kt.key = true
		colon := -1
		if kt.err == nil {
			// The value indicator. In a block mapping, ':' must be followed
			// by a blank ("::" starts a plain key) and be on the key's line
			// or, after an explicit ('?') key, at the mapping's indentation
			// (else it is an outer mapping's); in a flow one, neither.
			j := s.skipSpace(kt.end)
			if s.at(j) == ':' && (inner || s.isBlankZ(j+1) && (s.sameLine(kt.end, j) || s.column(j) == childIndent)) {
				colon = j + 1
			}
		} else if failed == nil {
			failed = kt.err
		}
		empty := colon
		if empty < 0 && inner && kt.err == nil {
			empty = kt.end // {a, b}: a key without a value
		}
		vt := x.node(value, n, inner, childIndent, colon, empty)
		if vt.err != nil && failed == nil {
			failed = vt.err
		}
		if failed == nil {
			last = max(last, kt.end, vt.end)
		}
	}
	if failed != nil {
		return 0, failed
	}
	if !braced {
		return last, nil
	}
	return x.closing(last, '}')
}

// sequenceEnd locates the items of sequence n, whose content starts at i,
// and returns the sequence's end.
func (x *index) sequenceEnd(n *yaml.Node, i int, flow bool, indent int) (int, error) {
	s := x.src
	if s.at(i) == '[' {
		last := i + 1
		for _, item := range n.Content {
			t := x.node(item, n, true, indent, -1, -1)
			if t.err != nil {
				return 0, t.err
			}
			last = max(last, t.end)
		}
		return x.closing(last, ']')
	}
	if flow {
		return 0, fmt.Errorf("%w: block sequence in a flow collection", errLocate)
	}
	childIndent := s.column(i) // at the first '-'
	end := i
	for _, item := range n.Content {
		dash := s.skipSpace(end)
		if s.at(dash) != '-' || !s.isBlankZ(dash+1) {
			return 0, fmt.Errorf("%w: expected '-'", errLocate)
		}
		t := x.node(item, n, false, childIndent, dash+1, dash+1)
		if t.err != nil {
			return 0, t.err
		}
		t.seqItem = true
		end = max(dash+1, t.end)
	}
	return end, nil
}

// closing returns the offset after the bracket that closes a flow
// collection whose last non-empty child ends at i: only blanks, comments,
// line breaks and the punctuation of empty entries may come between.
func (x *index) closing(i int, bracket byte) (int, error) {
	s := x.src
	for {
		i = s.skipSpace(i)
		switch s.at(i) {
		case bracket:
			return i + 1, nil
		case ',', ':', '?':
			i++
		default:
			return 0, fmt.Errorf("%w: expected %q", errLocate, bracket)
		}
	}
}
