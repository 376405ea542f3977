package eval

import (
	"bytes"
	"hash/maphash"
	"sync"

	"github.com/pulumi/esc/ast"
	esceval "github.com/pulumi/esc/eval"
	"github.com/pulumi/esc/syntax"
)

// Parses of definition files are memoised by content: a renewal, an
// importer's evaluation or a re-evaluation after another file changed parses
// nothing that did not change. yaml.v3 is most of an evaluation's cost when
// values are long, as encrypted secrets are (50 ciphertexts make a file 8x
// its plaintext form; see BenchmarkEvaluateSecrets). The results are pure
// functions of (path, content, nesting limit) and are never modified by
// their users, so a hit is exactly what a parse would give. They hold the
// definition's own text (ciphertexts, never anything decrypted).
const (
	// parseCacheMaxFile is the largest definition whose parses are kept.
	parseCacheMaxFile = 64 << 10
	// parseCacheMaxBytes bounds the definition bytes whose parses are kept
	// at once: 320 KiB of text, whose parses take at most about 32 MiB
	// (measured for a 200 KiB definition: 14x its size when ciphertexts
	// make up most of it, 91x for dense flow maps of short values).
	parseCacheMaxBytes = 320 << 10
)

// parses is the process's parse cache, shared by every Evaluator: entries
// are keyed by content, so they cannot be stale.
var parses = newParseCache(parseCacheMaxBytes)

// parseKind says which parse an entry holds.
type parseKind uint8

const (
	parseLimits parseKind = iota // limitCheck.parse: a limitParse
	parseDecl                    // esc's LoadYAMLBytes: a declParse
)

// parseSeed seeds the content hashes of parseKey.
var parseSeed = maphash.MakeSeed()

// parseKey identifies one parse of one content. The content's hash only
// finds the entry: a hit also compares the content itself.
type parseKey struct {
	kind    parseKind
	path    string // diagnostics name it
	sum     uint64 // maphash of the content
	nesting int    // the nesting limit the limits parse checked
}

// keyOf returns the key of a parse of src.
func keyOf(kind parseKind, path string, src []byte, nesting int) parseKey {
	return parseKey{kind: kind, path: path, sum: maphash.Bytes(parseSeed, src), nesting: nesting}
}

// limitParse is what limitCheck.parse found: the parsed definition, or the
// nesting diagnostic that stopped it.
type limitParse struct {
	pd   *parsedDef
	diag *Diagnostic
}

// declParse is esc's parse of a definition.
type declParse struct {
	decl  *ast.EnvironmentDecl
	diags syntax.Diagnostics
}

// parseCache is a bounded map of parses, the oldest dropped first.
type parseCache struct {
	max int

	mu      sync.Mutex
	entries map[parseKey]parseEntry // GUARDED_BY(mu)
	fifo    []parseKey              // GUARDED_BY(mu); INVARIANT: the keys of entries, oldest first
	size    int                     // GUARDED_BY(mu); the sum of the entries' sizes
}

type parseEntry struct {
	src   []byte // the content parsed (a copy)
	value any
	hits  *int // how many gets it answered, for tests
}

func newParseCache(max int) *parseCache {
	return &parseCache{max: max, entries: map[parseKey]parseEntry{}}
}

// get returns the parse of src under k, if kept.
func (c *parseCache) get(k parseKey, src []byte) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok || !bytes.Equal(e.src, src) {
		return nil, false
	}
	*e.hits++
	return e.value, true
}

// hitsOf returns how many gets the entry under k answered, or -1 if there
// is none.
func (c *parseCache) hitsOf(k parseKey) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[k]; ok {
		return *e.hits
	}
	return -1
}

// put keeps value, the parse of src under k, unless src is too big to
// keep.
func (c *parseCache) put(k parseKey, src []byte, value any) {
	size := len(src)
	if size > parseCacheMaxFile || size > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; ok {
		return
	}
	for c.size+size > c.max && len(c.fifo) > 0 {
		old := c.fifo[0]
		c.fifo = c.fifo[1:]
		c.size -= len(c.entries[old].src)
		delete(c.entries, old)
	}
	c.entries[k] = parseEntry{src: bytes.Clone(src), value: value, hits: new(int)}
	c.fifo = append(c.fifo, k)
	c.size += size
}

// loadDecl is esc's LoadYAMLBytes, memoised by content.
func loadDecl(path string, src []byte) (*ast.EnvironmentDecl, syntax.Diagnostics, error) {
	k := keyOf(parseDecl, path, src, 0)
	if v, ok := parses.get(k, src); ok {
		p := v.(declParse)
		return p.decl, p.diags, nil
	}
	decl, diags, err := esceval.LoadYAMLBytes(path, src)
	if err == nil {
		parses.put(k, src, declParse{decl: decl, diags: diags})
	}
	return decl, diags, err
}
