package yamledit

import (
	"bytes"
	"sort"
	"unicode/utf8"
)

// source is a definition's bytes with the start of every line, counted as
// yaml.v3 counts them: a line ends at LF, CR LF, a lone CR, NEL (U+0085),
// LS (U+2028) or PS (U+2029), and columns count characters, not bytes (a
// tab is one column). yaml.v3 skips a UTF-8 byte order mark without
// counting it, so line 1 starts after one.
type source struct {
	b     []byte
	lines []int // byte offset at which each line starts; lines[0] is line 1
}

func newSource(b []byte) *source {
	s := &source{b: b}
	start := 0
	if bytes.HasPrefix(b, []byte("\ufeff")) {
		start = 3
	}
	s.lines = append(s.lines, start)
	for i := start; i < len(b); {
		if n := s.breakLen(i); n > 0 {
			i += n
			s.lines = append(s.lines, i)
			continue
		}
		i++
	}
	return s
}

// offset returns the byte offset of the 1-based line and character column
// yaml.v3 gives a node, or false if the position is not in the source.
func (s *source) offset(line, col int) (int, bool) {
	if line < 1 || line > len(s.lines) || col < 1 {
		return 0, false
	}
	i := s.lines[line-1]
	for c := 1; c < col; c++ {
		if i >= len(s.b) || s.breakLen(i) > 0 {
			return 0, false
		}
		_, n := utf8.DecodeRune(s.b[i:])
		i += n
	}
	return i, true
}

// column returns the 0-based character column of byte offset off.
func (s *source) column(off int) int {
	l := sort.Search(len(s.lines), func(i int) bool { return s.lines[i] > off }) - 1
	if l < 0 {
		return 0
	}
	return utf8.RuneCount(s.b[s.lines[l]:off])
}

// position returns the 1-based line and character column of byte offset off.
func (s *source) position(off int) (line, col int) {
	l := sort.Search(len(s.lines), func(i int) bool { return s.lines[i] > off }) - 1
	if l < 0 {
		return 1, 1
	}
	return l + 1, utf8.RuneCount(s.b[s.lines[l]:off]) + 1
}

// lineEnd returns the offset of the line break that ends the line holding
// off, or len(b) if that line is the last and has none.
func (s *source) lineEnd(off int) int {
	for i := off; i < len(s.b); i++ {
		if s.breakLen(i) > 0 {
			return i
		}
	}
	return len(s.b)
}

// sameLine reports whether [from, to) holds no line break.
func (s *source) sameLine(from, to int) bool {
	for i := from; i < to; i++ {
		if s.breakLen(i) > 0 {
			return false
		}
	}
	return true
}

// lineBreak returns the line break the source uses: that of its first line,
// or LF.
func (s *source) lineBreak() string {
	if len(s.lines) > 1 {
		end := s.lines[1]
		for i := s.lines[0]; i < end; i++ {
			if n := s.breakLen(i); n > 0 {
				return string(s.b[i : i+n])
			}
		}
	}
	return "\n"
}

// at returns the byte at i, or 0 past the end (yaml.v3's input ends in NUL).
func (s *source) at(i int) byte {
	if i < 0 || i >= len(s.b) {
		return 0
	}
	return s.b[i]
}

// breakLen returns the length of the line break at i, or 0.
func (s *source) breakLen(i int) int {
	switch c := s.at(i); {
	case c == '\r' && s.at(i+1) == '\n':
		return 2
	case c == '\r' || c == '\n':
		return 1
	case c == 0xC2 && s.at(i+1) == 0x85:
		return 2
	case c == 0xE2 && s.at(i+1) == 0x80 && (s.at(i+2) == 0xA8 || s.at(i+2) == 0xA9):
		return 3
	}
	return 0
}

func (s *source) isBlank(i int) bool { c := s.at(i); return c == ' ' || c == '\t' }

// isBlankZ reports a blank, a line break or the end at i (yaml.v3's
// is_blankz).
func (s *source) isBlankZ(i int) bool {
	return i >= len(s.b) || s.isBlank(i) || s.breakLen(i) > 0 || s.b[i] == 0
}

// isBreakZ reports a line break or the end at i.
func (s *source) isBreakZ(i int) bool { return i >= len(s.b) || s.breakLen(i) > 0 || s.b[i] == 0 }

// runeLen returns the length of the character at i.
func (s *source) runeLen(i int) int {
	_, n := utf8.DecodeRune(s.b[i:])
	return n
}

// readBreak appends the line break at i to v as yaml.v3 folds it (LF for
// all but LS and PS, which stay) and returns the offset after it.
func (s *source) readBreak(i int, v []byte) (int, []byte) {
	n := s.breakLen(i)
	if n == 0 {
		return i, v
	}
	if n == 3 {
		return i + 3, append(v, s.b[i:i+3]...)
	}
	return i + n, append(v, '\n')
}

// skipSpace returns the first offset at or after i that is not a blank, a
// line break or part of a comment.
func (s *source) skipSpace(i int) int {
	for i < len(s.b) {
		switch {
		case s.isBlank(i):
			i++
		case s.breakLen(i) > 0:
			i += s.breakLen(i)
		case s.b[i] == '#': // yaml.v3 takes a '#' between tokens for a comment, blank before it or not
			for !s.isBreakZ(i) {
				i++
			}
		default:
			return i
		}
	}
	return i
}

// trailingComment returns the blanks and comment that follow off, the end
// of a token, up to the end of its line ("  # note"), or "" if anything
// else or nothing follows.
func (s *source) trailingComment(off int) string {
	i := off
	for s.isBlank(i) {
		i++
	}
	if s.at(i) != '#' {
		return ""
	}
	return string(s.b[off:s.lineEnd(i)])
}
