package yamledit

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// ErrUnverified is returned when neither the text splice nor the yaml.v3
// re-encoding of an edit reads back as the edit asked: the source is left
// as it was.
var ErrUnverified = errors.New("edit could not be verified")

// Edit replaces the bytes [Start, End) of a definition with Text.
//
// Its span must be exactly that of one value, as Secrets and Set find them:
// a whole node (properties such as &anchor and !tag included; for a block
// scalar, up to the end of its last line, before the line break), or a
// mapping value's or block sequence item's slot, which starts just after
// the key's ':' or the '-' (so that Text, e.g. " value", also replaces the
// blanks or line break before the value). Text is YAML for the new value in
// that place; in a CRLF file its LFs are written as CR LF.
type Edit struct {
	// Start and End are the byte offsets of the replaced span.
	Start, End int
	// Text is the YAML written in its place.
	Text string
}

// Result is an edited definition and how it was made.
type Result struct {
	// Out is the edited definition.
	Out []byte
	// Fallback reports that splicing the text into the source did not read
	// back as asked, so Out is the whole definition re-encoded by yaml.v3
	// (comments and order kept, 2-space indentation, quoting and layout
	// of untouched parts may change).
	Fallback bool
	// Reason says why the splice was not used, when Fallback.
	Reason error
}

// Apply applies non-overlapping edits, given in any order, to src and
// returns the result. It verifies the result: re-parsed, every edited
// value must read as its Text reads on its own (in the same place) and
// everything else exactly as before. If the spliced text fails that, the
// definition is re-encoded through yaml.v3 with the edits made on its node
// tree, and that is verified the same way (Result.Fallback says so); if
// that fails too, Apply returns an error wrapping ErrUnverified.
func Apply(src []byte, edits []Edit) (Result, error) {
	x, err := parse(src)
	if err != nil {
		return Result{}, err
	}
	return x.apply(edits)
}

// apply is Apply on the parsed source.
func (x *index) apply(edits []Edit) (Result, error) {
	src := x.src.b
	sorted := append([]Edit(nil), edits...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Start < sorted[j].Start })
	for i, e := range sorted {
		if e.Start < 0 || e.End < e.Start || e.End > len(src) {
			return Result{}, fmt.Errorf("edit [%d,%d) is outside the definition (%d bytes)", e.Start, e.End, len(src))
		}
		if i > 0 && (e.Start < sorted[i-1].End || e.Start == sorted[i-1].Start) {
			return Result{}, fmt.Errorf("edits [%d,%d) and [%d,%d) overlap", sorted[i-1].Start, sorted[i-1].End, e.Start, e.End)
		}
	}
	p := newPlan(x)
	for _, e := range sorted {
		n, slot, err := x.target(e.Start, e.End)
		if err != nil {
			return Result{}, err
		}
		if err := p.replace(n, e.Text, slot, e.Start, e.End); err != nil {
			return Result{}, err
		}
	}
	return p.run()
}

// target finds the value whose node span or slot is [start, end). A
// node and its only child can share a span; the edit is then of the
// outer one.
func (x *index) target(start, end int) (n *yaml.Node, slot bool, err error) {
	if x.spans == nil {
		x.indexSpans()
	}
	if n := x.spans[[2]int{start, end}]; n != nil {
		t := x.texts[n]
		return n, t.start == t.end && t.slot >= 0, nil
	}
	if n := x.slots[[2]int{start, end}]; n != nil {
		return n, true, nil
	}
	return nil, false, fmt.Errorf("edit [%d,%d) is not the span of a value", start, end)
}

// indexSpans maps the spans and slots of the values of the first
// document (keys and the root are not values to edit), outermost first.
func (x *index) indexSpans() {
	x.spans, x.slots = map[[2]int]*yaml.Node{}, map[[2]int]*yaml.Node{}
	if x.doc == nil || len(x.doc.Content) == 0 {
		return
	}
	stack := []*yaml.Node{x.doc.Content[0]}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if t := x.texts[n]; t != nil && t.err == nil && !t.key && t.parent != nil {
			if k := [2]int{t.start, t.end}; x.spans[k] == nil {
				x.spans[k] = n
			}
			if k := [2]int{t.slot, t.end}; t.slot >= 0 && x.slots[k] == nil {
				x.slots[k] = n
			}
		}
		for i := len(n.Content) - 1; i >= 0; i-- {
			stack = append(stack, n.Content[i])
		}
	}
}

// plan is an edit in the making: the text splices, and the node trees they
// must read back as.
type plan struct {
	x       *index
	want    []*yaml.Node              // the documents the result must decode to
	copies  map[*yaml.Node]*yaml.Node // each node of x to its copy in want
	splices []splice
	// noSplice, when set, says why no text splice can make the edit: the
	// plan goes straight to the yaml.v3 re-encoding.
	noSplice error
	// finalBreak records that a line break is added at the end.
	finalBreak bool
}

// splice replaces the bytes [start, end) with text.
type splice struct {
	start, end int
	text       string
}

func newPlan(x *index) *plan {
	want, copies := cloneTrees(x.docs)
	return &plan{x: x, want: want, copies: copies}
}

// replace plans the replacement of the value n by text, written over
// [start, end): n's span, or its slot if slot. text must read as the value
// it makes in n's place.
func (p *plan) replace(n *yaml.Node, text string, slot bool, start, end int) error {
	v, err := decodeValue(text, p.x.texts[n], p.x.src.column(start), slot)
	if err != nil {
		return err
	}
	p.expect(n, v)
	p.addSplice(n, start, end, text)
	return nil
}

// expect plans n to read as v, keeping n's comments for the re-encoding.
func (p *plan) expect(n, v *yaml.Node) {
	c := p.copies[n]
	if v.HeadComment == "" {
		v.HeadComment = c.HeadComment
	}
	if v.LineComment == "" {
		v.LineComment = c.LineComment
	}
	if v.FootComment == "" {
		v.FootComment = c.FootComment
	}
	*c = *v
}

// decodeText reads text as a value on its own: as `k: TEXT` at the top of
// a document.
func decodeText(text string) (*yaml.Node, error) {
	return decodeValue(" "+text, &nodeText{indent: 0, parent: &yaml.Node{}}, 0, true)
}

// decodeValue reads text as the value it makes at t's place: the value of
// a block mapping entry (or a block sequence item) at t's indentation,
// written at 0-based column col, or after the ':' or '-' if slot. Inside a
// flow collection it is read as a block mapping value there, so that
// "what was asked" does not depend on the flow syntax around it.
func decodeValue(text string, t *nodeText, col int, slot bool) (*yaml.Node, error) {
	if t == nil || t.err != nil {
		return nil, fmt.Errorf("the value's text was not found: %w", locateErr(t))
	}
	if t.parent == nil {
		return nil, errors.New("edits of a whole document are not supported")
	}
	q := max(t.indent, 0)
	var doc strings.Builder
	doc.WriteString(strings.Repeat(" ", q))
	lead := "k:"
	if t.seqItem {
		lead = "-"
	}
	doc.WriteString(lead)
	switch {
	case slot:
	case col >= q+len(lead)+1:
		doc.WriteString(strings.Repeat(" ", col-q-len(lead)))
	default:
		doc.WriteString("\n" + strings.Repeat(" ", max(col, q+1)))
	}
	doc.WriteString(text)
	doc.WriteString("\n")
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(doc.String()), &root); err != nil {
		return nil, fmt.Errorf("text %q is not a YAML value here: %w", text, err)
	}
	var data any // also checks what only decoding does, such as duplicate keys
	if err := root.Decode(&data); err != nil {
		return nil, fmt.Errorf("text %q is not a YAML value here: %w", text, err)
	}
	if len(root.Content) != 1 {
		return nil, fmt.Errorf("text %q is not a YAML value here", text)
	}
	r := root.Content[0]
	switch {
	case t.seqItem && r.Kind == yaml.SequenceNode && len(r.Content) == 1:
		return r.Content[0], nil
	case !t.seqItem && r.Kind == yaml.MappingNode && len(r.Content) == 2:
		return r.Content[1], nil
	}
	return nil, fmt.Errorf("text %q is not one YAML value", text)
}

// addSplice plans writing text over [start, end), the span or slot of n,
// and keeps the file well-formed around it: a comment after the old value
// stays with it (moved into or out of a block scalar's header, as a block
// scalar can have nothing after it on its last line), LFs become CR LF in
// a CRLF file, and a block scalar that ends the file gets a final line
// break (without one, yaml.v3 drops the value's own last one).
func (p *plan) addSplice(n *yaml.Node, start, end int, text string) {
	s := p.x.src
	comment := p.x.blockHeaderComment(n)
	newBlock, headerEnd, headerComment := blockHeader(text)
	if comment == "" && newBlock {
		if comment = s.trailingComment(end); comment != "" {
			end += len(comment)
		}
	}
	switch {
	case comment == "" && s.at(end) == '#':
		text = spaceForComment(text)
	case comment == "":
	case newBlock && !headerComment:
		text = text[:headerEnd] + comment + text[headerEnd:]
	case !newBlock && comment[0] == '#':
		text = spaceForComment(text) + comment
	case !newBlock:
		text += comment
	}
	if lb := s.lineBreak(); lb != "\n" {
		text = strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\n", lb)
	}
	p.splices = append(p.splices, splice{start, end, text})
	if newBlock && s.isBlankRun(end, len(s.b)) && !p.finalBreak {
		p.splices = append(p.splices, splice{len(s.b), len(s.b), s.lineBreak()})
		p.finalBreak = true
	}
}

// spaceForComment returns text with a blank added if a comment right
// after it needs one: yaml.v3 takes a '#' straight after a quote or bracket
// for a comment, but after a plain scalar as part of it.
func spaceForComment(text string) string {
	if text == "" || strings.ContainsRune(" \t\"'}]", rune(text[len(text)-1])) {
		return text
	}
	return text + " "
}

// isBlankRun reports whether [from, to) holds only blanks.
func (s *source) isBlankRun(from, to int) bool {
	for i := from; i < to; i++ {
		if !s.isBlank(i) {
			return false
		}
	}
	return true
}

// blockHeaderComment returns the comment on the header line of n if n is a
// block scalar ("  # note" of `|-  # note`), or "".
func (x *index) blockHeaderComment(n *yaml.Node) string {
	t := x.texts[n]
	if n == nil || n.Kind != yaml.ScalarNode || n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) == 0 || t == nil || t.err != nil {
		return ""
	}
	i, err := x.skipProperties(t.start, n)
	if err != nil {
		return ""
	}
	return x.src.trailingComment(skipIndicators(x.src, i+1))
}

// skipIndicators returns the offset after the chomping and indentation
// indicators of a block scalar header that start at i.
func skipIndicators(s *source, i int) int {
	for s.at(i) != 0 && strings.IndexByte("+-123456789", s.at(i)) >= 0 {
		i++
	}
	return i
}

// blockHeader reports whether text is a block scalar (after blanks, line
// breaks and properties), the offset where its header's indicators end,
// and whether the header has a comment.
func blockHeader(text string) (block bool, headerEnd int, comment bool) {
	s := newSource([]byte(text))
	i := s.skipSpace(0)
	for c := s.at(i); c == '&' || c == '!'; c = s.at(i) {
		for !s.isBlankZ(i) {
			i++
		}
		i = s.skipSpace(i)
	}
	if c := s.at(i); c != '|' && c != '>' {
		return false, 0, false
	}
	i = skipIndicators(s, i+1)
	return true, i, s.trailingComment(i) != ""
}

// run splices the text, verifies it, and falls back to re-encoding the
// expected trees through yaml.v3 if the splice does not verify.
func (p *plan) run() (Result, error) {
	reason := p.noSplice
	if reason == nil {
		out := spliceAll(p.x.src.b, p.splices)
		if reason = p.verify(out); reason == nil {
			return Result{Out: out}, nil
		}
	}
	out, err := p.encode()
	if err == nil {
		err = p.verify(out)
	}
	if err != nil {
		return Result{}, fmt.Errorf("%w: splicing the text: %v; re-encoding with yaml.v3: %v", ErrUnverified, reason, err)
	}
	return Result{Out: out, Fallback: true, Reason: reason}, nil
}

// spliceAll applies splices, which do not overlap, to src.
func spliceAll(src []byte, splices []splice) []byte {
	sorted := append([]splice(nil), splices...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].start < sorted[j].start })
	var out bytes.Buffer
	at := 0
	for _, s := range sorted {
		out.Write(src[at:s.start])
		out.WriteString(s.text)
		at = s.end
	}
	out.Write(src[at:])
	return out.Bytes()
}

// verify checks that out decodes to the planned trees.
func (p *plan) verify(out []byte) error {
	docs, err := decodeAll(out)
	if err != nil {
		return fmt.Errorf("the result does not parse: %w", syntaxError(out, err))
	}
	if len(docs) != len(p.want) {
		return fmt.Errorf("the result has %d documents, want %d", len(docs), len(p.want))
	}
	for i := range docs {
		if err := sameTree(docs[i], p.want[i], "document "+fmt.Sprint(i+1)); err != nil {
			return err
		}
	}
	return nil
}

// encode writes the planned trees with yaml.v3, in the source's line
// breaks.
func (p *plan) encode() (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml.v3 cannot encode the result: %v", r)
		}
	}()
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	for _, d := range p.want {
		if err := enc.Encode(d); err != nil {
			return nil, err
		}
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	out = buf.Bytes()
	if lb := p.x.src.lineBreak(); lb != "\n" {
		out = bytes.ReplaceAll(out, []byte("\n"), []byte(lb))
	}
	return out, nil
}
