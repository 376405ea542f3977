// Package yamlpos finds where a yaml.v3 syntax error really is. yaml.v3
// says "yaml: line N: ..." with N often the line before the fault (for
// parser errors it reports a 0-based context line as if it were 1-based),
// names no line for a fault on the first line, and gives no position at
// all for invalid UTF-8 or a character its reader refuses.
package yamlpos

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// maxParsedBytes bounds the bytes one Locate re-parses in all.
const maxParsedBytes = 16 << 20

// lineRE matches the line yaml.v3 puts in front of a message.
var lineRE = regexp.MustCompile(`^yaml: line (\d+): `)

// charProblems are yaml.v3 problems with one character of a line: their
// column is that of the character, not the line's first non-blank.
var charProblems = []string{
	"yaml: found character that cannot start any token",
	"yaml: found a tab character",
	"yaml: found unknown escape character",
}

// Locate finds where in src the yaml.v3 syntax error whose message is msg
// is, and returns its 1-based line and column (in characters, as yaml.v3
// counts them) and msg without yaml.v3's own, often wrong, "line N: ". It
// returns line and column 0 when it cannot tell.
//
// An error about invalid UTF-8 or a character yaml.v3 refuses is at the
// first such byte of src. Otherwise the line is the first, from the one
// yaml.v3 names, whose prefix of src (every document in it) alone fails
// with the same problem: where the problem becomes certain; failing that,
// the line yaml.v3 names. The column is that of the line's first character
// other than a space or tab, or for a problem with one character (a tab or
// another character that cannot start a token), where the prefix starts to
// fail so. Locate re-parses at most 16 MiB in all.
func Locate(src []byte, msg string) (line, col int, clean string) {
	reported, clean := 0, msg
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		reported, _ = strconv.Atoi(m[1])
		clean = "yaml: " + msg[len(m[0]):]
	}
	t := newText(src)
	if off := badByte(src, clean); off >= 0 {
		line, col = t.position(off)
		return line, col, clean
	}
	if !strings.HasPrefix(clean, "yaml: ") {
		return 0, 0, clean
	}
	line = t.faultLine(max(reported, 1), clean)
	if line == 0 {
		if reported == 0 || reported > len(t.starts)+1 {
			return 0, 0, clean // not a line of src
		}
		line = reported
	}
	for _, p := range charProblems {
		if strings.HasPrefix(clean, p) {
			if col = t.faultColumn(line, clean); col > 0 {
				return line, col, clean
			}
		}
	}
	return line, t.firstNonBlank(line), clean
}

// Allowed reports a character yaml.v3's reader accepts anywhere.
func Allowed(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0x7E || r == 0x85 ||
		r >= 0xA0 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

// badByte returns the offset of the first invalid UTF-8 sequence or
// character yaml.v3 refuses when msg is about one, or -1.
func badByte(src []byte, msg string) int {
	utf := strings.Contains(msg, "UTF-8") || strings.Contains(msg, "invalid Unicode")
	ctl := strings.Contains(msg, "control characters are not allowed")
	if !utf && !ctl {
		return -1
	}
	for i := 0; i < len(src); {
		r, n := utf8.DecodeRune(src[i:])
		if utf && r == utf8.RuneError && n <= 1 || ctl && !Allowed(r) {
			return i
		}
		i += n
	}
	return -1
}

// text is src cut into lines at yaml.v3's line breaks (CR, LF, CRLF, NEL,
// LS, PS), with a budget of bytes to re-parse.
type text struct {
	src    []byte
	starts []int // byte offset of each line's first character (after a BOM)
	budget int
}

func newText(src []byte) *text {
	t := &text{src: src, budget: maxParsedBytes}
	i := 0
	if bytes.HasPrefix(src, []byte("\ufeff")) {
		i = 3
	}
	t.starts = append(t.starts, i)
	for i < len(src) {
		n := 0
		switch c := src[i]; {
		case c == '\r' && i+1 < len(src) && src[i+1] == '\n':
			n = 2
		case c == '\r' || c == '\n':
			n = 1
		case bytes.HasPrefix(src[i:], []byte("\u0085")):
			n = 2
		case bytes.HasPrefix(src[i:], []byte("\u2028")) || bytes.HasPrefix(src[i:], []byte("\u2029")):
			n = 3
		}
		if n == 0 {
			i++
			continue
		}
		i += n
		t.starts = append(t.starts, i)
	}
	return t
}

// end returns the offset just past the 1-based line and its break.
func (t *text) end(line int) int {
	if line < len(t.starts) {
		return t.starts[line]
	}
	return len(t.src)
}

// position converts a byte offset to a 1-based line and character column.
func (t *text) position(off int) (line, col int) {
	l := sort.Search(len(t.starts), func(i int) bool { return t.starts[i] > off })
	if l == 0 {
		return 1, 1 // in the BOM
	}
	return l, utf8.RuneCount(t.src[t.starts[l-1]:off]) + 1
}

// firstNonBlank returns the 1-based column of the first character of the
// 1-based line that is not a space or tab, or 1.
func (t *text) firstNonBlank(line int) int {
	if line < 1 || line > len(t.starts) {
		return 1
	}
	i := t.starts[line-1]
	for i < t.end(line) && (t.src[i] == ' ' || t.src[i] == '\t') {
		i++
	}
	return i - t.starts[line-1] + 1
}

// faultLine returns the first line k at or after from such that the first k
// lines of src alone fail with problem, or 0.
func (t *text) faultLine(from int, problem string) int {
	for k := from; k <= len(t.starts); k++ {
		if t.fails(t.src[:t.end(k)], problem) {
			return k
		}
		if t.budget < 0 {
			return 0
		}
	}
	return 0
}

// faultColumn returns the first 1-based column c of the line such that src
// up to and with its c-th character alone fails with problem, or 0.
func (t *text) faultColumn(line int, problem string) int {
	if line < 1 || line > len(t.starts) {
		return 0
	}
	for i, c := t.starts[line-1], 1; i < t.end(line) && t.budget >= 0; c++ {
		_, n := utf8.DecodeRune(t.src[i:])
		i += n
		if t.fails(t.src[:i], problem) {
			return c
		}
	}
	return 0
}

// fails reports whether p, every document of it, fails to parse with
// problem (the message without its "line N: "), charging p to the budget.
func (t *text) fails(p []byte, problem string) bool {
	if t.budget -= len(p); t.budget < 0 {
		return false
	}
	dec := yaml.NewDecoder(bytes.NewReader(p))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) {
			return false
		}
		msg := err.Error()
		if m := lineRE.FindStringSubmatch(msg); m != nil {
			msg = "yaml: " + msg[len(m[0]):]
		}
		return msg == problem
	}
}
