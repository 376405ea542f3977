package eval

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"gopkg.in/yaml.v3"
)

// Limits bound the work one evaluation may cause. They are checked before
// the evaluator runs, on the definition and everything it imports, because
// the evaluator's own cost grows much faster than its input: 5,000 nested
// flow maps (25 KB) take it minutes, diamond imports are copied once per
// path (22 levels overflow the Go stack, which no recover can catch), and a
// 50 MB definition needs gigabytes. Each exceeded limit is a diagnostic at
// the place that exceeds it, naming the flag that raises it.
type Limits struct {
	// MaxDefinitionSize is the largest definition file, in bytes; 0 means
	// DefaultMaxDefinitionSize.
	MaxDefinitionSize int64
	// MaxNesting is the deepest nesting of maps and lists in a definition;
	// 0 means DefaultMaxNesting.
	MaxNesting int
	// MaxImportDepth is the longest chain of imports below an environment;
	// 0 means DefaultMaxImportDepth.
	MaxImportDepth int
	// MaxImports is the size of the expanded import graph: every path to
	// an imported environment counts, so a diamond counts twice; 0 means
	// DefaultMaxImports.
	MaxImports int
	// Settle is how long a definition must have been unchanged before it is
	// evaluated; a younger one (an editor saving in place: truncate, then
	// write) is read again once it is that old. 0 means DefaultSettle;
	// negative, no wait.
	Settle time.Duration
}

// The default limits. No real environment comes near them; each was chosen
// so that an evaluation at the limit stays well under a second and a few
// hundred MB (see the README's "Limits").
const (
	DefaultMaxDefinitionSize = 1 << 20
	DefaultMaxNesting        = 64
	DefaultMaxImportDepth    = 32
	DefaultMaxImports        = 1000
	DefaultSettle            = 100 * time.Millisecond
)

// The flags that raise each limit, named in its diagnostics.
const (
	FlagMaxDefinitionSize = "--max-definition-size"
	FlagMaxNesting        = "--max-nesting"
	FlagMaxImportDepth    = "--max-import-depth"
	FlagMaxImports        = "--max-imports"
)

func (l Limits) withDefaults() Limits {
	if l.MaxDefinitionSize <= 0 {
		l.MaxDefinitionSize = DefaultMaxDefinitionSize
	}
	if l.MaxNesting <= 0 {
		l.MaxNesting = DefaultMaxNesting
	}
	if l.MaxImportDepth <= 0 {
		l.MaxImportDepth = DefaultMaxImportDepth
	}
	if l.MaxImports <= 0 {
		l.MaxImports = DefaultMaxImports
	}
	if l.Settle == 0 {
		l.Settle = DefaultSettle
	}
	return l
}

// readDefinition reads a definition file for reader, refusing one over the
// size limit without reading it whole, and one the reader may not trust
// without reading it at all. A refusal is a diagnostic.
func (l Limits) readDefinition(path string, reader Reader) ([]byte, *Diagnostic, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	if why := reader.untrusted(fi); why != "" {
		return nil, &Diagnostic{File: path, Line: 1, Column: 1, Severity: SeverityError, Message: why}, nil
	}
	b, err := io.ReadAll(io.LimitReader(f, l.MaxDefinitionSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	if err := l.settled(path, fi, len(b)); err != nil {
		return nil, nil, err
	}
	if int64(len(b)) > l.MaxDefinitionSize {
		size := int64(len(b))
		if st, err := f.Stat(); err == nil {
			size = st.Size()
		}
		return nil, l.tooBig(path, size), nil
	}
	return b, nil, nil
}

// tooBig is the diagnostic for a definition of size bytes over the limit.
func (l Limits) tooBig(path string, size int64) *Diagnostic {
	return &Diagnostic{File: path, Line: 1, Column: 1, Severity: SeverityError,
		Message: fmt.Sprintf("definition is %s, over the limit of %s (%s raises it)", byteSize(size), byteSize(l.MaxDefinitionSize), FlagMaxDefinitionSize)}
}

// unsettledError says a definition was being written when it was read: an
// editor saving in place (truncate, then write) or a writer that is not
// done. Its content may be empty or cut; Evaluate tries again once the file
// has been quiet for Limits.Settle.
type unsettledError struct {
	path  string
	until time.Time // when the file will have been quiet long enough
}

func (e *unsettledError) Error() string {
	return fmt.Sprintf("%s was being written while it was read; it is read again once it has been quiet for a moment", e.path)
}

// settled checks that the file at path, read through an open file whose
// attributes were opened (fi) and of which n bytes were read, is still the
// same version and has not changed within the last Settle: a file being
// saved in place is empty or cut for a moment, and must not be evaluated.
func (l Limits) settled(path string, opened os.FileInfo, n int) error {
	if l.Settle <= 0 {
		return nil
	}
	now, st := time.Now(), opened
	after, err := os.Stat(path)
	if err == nil {
		st = after
	}
	quietAt := st.ModTime().Add(l.Settle)
	switch {
	case err != nil, !os.SameFile(opened, after), !after.ModTime().Equal(opened.ModTime()),
		after.Size() != opened.Size(), int64(n) < after.Size() && int64(n) <= l.MaxDefinitionSize:
		return &unsettledError{path: path, until: now.Add(l.Settle)}
	case now.Before(quietAt):
		return &unsettledError{path: path, until: quietAt}
	}
	return nil
}

// byteSize formats n bytes for people: 1 MiB, 5.2 MiB, 900 KiB, 12 B.
func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	default:
		return fmt.Sprintf("%d B", n)
	}
}

// limitCheck walks an environment's definition and its import graph before
// evaluation. Each file is read and parsed (with yaml.v3, which is linear)
// once.
type limitCheck struct {
	limits Limits
	reader Reader
	tree   *Tree
	parsed map[string]*parsedDef // by path
	names  map[string]Name       // the environment of each path parsed
	paths  map[Name]int          // expanded imports below a name, memoised
	depth  map[Name]int          // longest import chain below a name, memoised
	stack  map[Name]bool         // names on the current walk, for cycles
	seen   []Name                // every name the walk reached, for invalidation
	diags  Diagnostics
	// unsettled is set when an imported definition was being written: the
	// check stops, and the evaluation is tried again.
	unsettled error
}

// parsedDef is one definition file as far as the limits need it.
type parsedDef struct {
	path    string
	imports []Import
	secrets []secretLiteral // fn::secret literals, for scrubbing: parsed once here
	// ciphertexts are the fn::secret ciphertexts, for the check that each
	// is where it belongs: parsed once here too.
	ciphertexts []Ciphertext
}

// checkLimits checks def (whose source is src) and everything it imports
// against the limits, and returns a diagnostic for each limit exceeded and
// the names of the environments it reached (a change to any of them may
// change the verdict).
//
// It also returns what the walk parsed: the fn::secret literals of each
// file, and each file's ciphertexts with its environment's name.
func checkLimits(limits Limits, reader Reader, tree *Tree, def Definition, src []byte) (Diagnostics, []Name, map[string][]secretLiteral, []boundFile, error) {
	c := newLimitCheck(limits, tree)
	c.reader = reader
	c.check(def, src)
	literals := map[string][]secretLiteral{}
	var files []boundFile
	for p, pd := range c.parsed {
		if pd != nil {
			literals[p] = pd.secrets
			files = append(files, boundFile{name: c.names[p], path: p, ciphertexts: pd.ciphertexts})
		}
	}
	return c.diags, c.seen, literals, files, c.unsettled
}

func newLimitCheck(limits Limits, tree *Tree) *limitCheck {
	return &limitCheck{limits: limits, tree: tree, parsed: map[string]*parsedDef{}, names: map[string]Name{}, paths: map[Name]int{}, depth: map[Name]int{}, stack: map[Name]bool{}}
}

func (c *limitCheck) check(def Definition, src []byte) {
	limits := c.limits
	c.seen = append(c.seen, def.Name)
	c.names[def.Path] = def.Name
	root, ok := c.parse(def.Path, src)
	if !ok {
		return
	}
	c.stack[def.Name] = true
	total, depth := 0, 0
	for _, imp := range root.imports {
		p, d, ok := c.walk(imp, 1)
		if !ok {
			return
		}
		total += p
		depth = max(depth, d)
		if total > limits.MaxImports {
			c.report(def.Path, imp, fmt.Sprintf("imports expand to more than %d environments counting from here, every path through the import graph (a diamond counts twice; %s raises the limit)", limits.MaxImports, FlagMaxImports))
			return
		}
		if depth > limits.MaxImportDepth {
			c.report(def.Path, imp, fmt.Sprintf("imports starting with %s nest deeper than %d levels (%s raises the limit)", imp.Name, limits.MaxImportDepth, FlagMaxImportDepth))
			return
		}
	}
}

// walk returns the number of expanded imports and the import depth that
// the import imp, level imports below the environment checked, brings,
// counting imp itself. It stops as soon as a count is over its limit, so its
// cost is bounded by the limits whatever the graph. ok is false once a
// diagnostic stopped the check. Cycles and unknown names count once and are
// left to the evaluator to report.
func (c *limitCheck) walk(imp Import, level int) (paths, depth int, ok bool) {
	if level > c.limits.MaxImportDepth {
		return 1, 1, true // too deep already: the caller's depth is over the limit
	}
	def, err := c.tree.Lookup(imp.Name)
	if err != nil {
		return 1, 1, true
	}
	if c.stack[def.Name] {
		return 1, 1, true
	}
	if p, seen := c.paths[def.Name]; seen {
		return p, c.depth[def.Name], true
	}
	c.seen = append(c.seen, def.Name)
	c.names[def.Path] = def.Name
	pd, ok := c.parsedFile(def.Path)
	if !ok {
		return 0, 0, false
	}
	c.stack[def.Name] = true
	defer delete(c.stack, def.Name)
	paths, depth = 1, 1
	for _, child := range pd.imports {
		p, d, ok := c.walk(child, level+1)
		if !ok {
			return 0, 0, false
		}
		paths += p
		depth = max(depth, d+1)
		if paths > c.limits.MaxImports || depth > c.limits.MaxImportDepth {
			return paths, depth, true // over a limit: the importer at the top reports it
		}
	}
	c.paths[def.Name], c.depth[def.Name] = paths, depth
	return paths, depth, true
}

func (c *limitCheck) report(file string, imp Import, msg string) {
	c.diags = append(c.diags, Diagnostic{File: file, Line: imp.Line, Column: imp.Column, Severity: SeverityError, Message: msg})
}

// parsedFile reads and parses an imported definition once.
func (c *limitCheck) parsedFile(path string) (*parsedDef, bool) {
	if pd, ok := c.parsed[path]; ok {
		return pd, pd != nil
	}
	src, diag, err := c.limits.readDefinition(path, c.reader)
	switch {
	case diag != nil:
		c.diags = append(c.diags, *diag)
		c.parsed[path] = nil
		return nil, false
	case errors.As(err, new(*unsettledError)):
		c.unsettled = err
		c.parsed[path] = nil
		return nil, false
	case err != nil:
		// Unreadable: the evaluator's loader says so at the import.
		pd := &parsedDef{path: path}
		c.parsed[path] = pd
		return pd, true
	}
	return c.parse(path, src)
}

// parse parses one definition with yaml.v3, checks its nesting, and
// collects its imports. A file yaml.v3 cannot parse passes: the evaluator
// reports its syntax errors, and they cost it little.
func (c *limitCheck) parse(path string, src []byte) (*parsedDef, bool) {
	k := keyOf(parseLimits, path, src, c.limits.MaxNesting)
	v, ok := parses.get(k, src)
	if !ok {
		v = parseForLimits(path, src, c.limits.MaxNesting)
		parses.put(k, src, v)
	}
	p := v.(limitParse)
	if p.diag != nil {
		c.diags = append(c.diags, *p.diag)
		c.parsed[path] = nil
		return nil, false
	}
	c.parsed[path] = p.pd
	return p.pd, true
}

// parseForLimits is limitCheck.parse's work, a function of its arguments
// alone (so that it can be memoised).
func parseForLimits(path string, src []byte, maxNesting int) limitParse {
	pd := &parsedDef{path: path}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return limitParse{pd: pd}
	}
	if n := tooDeep(&doc, maxNesting); n != nil {
		return limitParse{diag: &Diagnostic{File: path, Line: n.Line, Column: n.Column, Severity: SeverityError,
			Message: fmt.Sprintf("values nest deeper than %d levels (%s raises the limit)", maxNesting, FlagMaxNesting)}}
	}
	pd.imports = ImportsOf(&doc)
	pd.secrets = literalSecrets(&doc)
	pd.ciphertexts = ciphertextsOf(&doc)
	return limitParse{pd: pd}
}

// tooDeep returns the first node nested deeper than limit maps and lists
// (aliases are not followed), or nil. It walks without recursion.
func tooDeep(doc *yaml.Node, limit int) *yaml.Node {
	type item struct {
		n     *yaml.Node
		depth int
	}
	stack := []item{{doc, 0}}
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		d := it.depth
		if it.n.Kind == yaml.MappingNode || it.n.Kind == yaml.SequenceNode {
			d++
			if d > limit {
				return it.n
			}
		}
		for _, ch := range it.n.Content {
			stack = append(stack, item{ch, d})
		}
	}
	return nil
}
