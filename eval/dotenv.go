package eval

import (
	"bufio"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The dotenv rendering must be read back byte for byte by the loaders people
// use, which disagree on nearly everything but the forms below (each is
// checked against the real loaders in dotenv_loaders_test.go):
//
//   - python-dotenv (Debian's 0.21) decodes \\ and \' inside single quotes,
//     keeps \$ as two characters inside double quotes, expands ${...} in every
//     value (quoted or not, with no escape), and reads the file as UTF-8 text
//     with universal newlines (a lone CR becomes LF);
//   - godotenv takes single quotes literally, but a closing quote after a
//     backslash is not one; inside double quotes it turns \n and \r into line
//     breaks, drops the backslash of any other escape (\t is t) and expands $;
//   - docker compose (compose-go's dotenv) keeps unknown escapes and expands $
//     outside single quotes;
//   - Node's dotenv decodes only \n and \r inside double quotes: \" and \\
//     stay two characters;
//   - docker run --env-file (docker/cli's kvfile) takes every line literally,
//     quotes included, rejects the whole file if any line is not UTF-8 or
//     longer than 64 KiB, and reads a line break inside a value as a new
//     variable.
//
// So a value is written bare when it can be, else in single quotes, else in
// double quotes with only \n and \r escaped, always on one line; a value no
// form holds is left out with a warning.

// dotenvMaxLine is the longest line (without its newline) docker --env-file
// reads: its bufio.Scanner fails on a longer one, and with it the whole file.
const dotenvMaxLine = bufio.MaxScanTokenSize - 1

// pythonInterpolation is what python-dotenv before 1.0 expands in every value,
// quoted or not, with no way to escape it.
var pythonInterpolation = regexp.MustCompile(`\$\{[^}:]*(?::-[^}]*)?\}`)

// errDotenvInvalidUTF8 is why a value that is not UTF-8 is left out.
var errDotenvInvalidUTF8 = errors.New("its value is not valid UTF-8, and python-dotenv and docker --env-file would reject the whole file")

// errDotenvInterpolation is why a value holding ${...} is left out.
var errDotenvInterpolation = errors.New("its value holds ${...}, which python-dotenv expands in every value, quoted or not")

// DotenvValue renders s for a dotenv file so that python-dotenv, godotenv,
// docker compose (compose-go) and Node's dotenv all read back exactly s:
//   - as is, when it is empty or printable UTF-8 with no # or control
//     character and no $ that a loader expands, does not start with a quote
//     and neither starts nor ends with white space (docker run --env-file
//     reads this form exactly too);
//   - else in single quotes, taken literally, when it holds no ', no line
//     break, no \\ and does not end with \;
//   - else in double quotes, with line feeds and carriage returns written
//     \n and \r, when it holds no ", no \ and no $ that a loader expands.
//
// Every form stays on one line, so docker run --env-file never reads part of
// a value as another variable (it reads quoted forms with their quotes). A
// value none of these forms holds, that is not UTF-8, or that holds ${...}
// returns an error saying why; it never contains the value.
func DotenvValue(s string) (string, error) {
	switch {
	case !utf8.ValidString(s):
		return "", errDotenvInvalidUTF8
	case pythonInterpolation.MatchString(s):
		return "", errDotenvInterpolation
	case dotenvBare(s):
		return s, nil
	case dotenvSingle(s):
		return "'" + s + "'", nil
	case dotenvDouble(s):
		return `"` + dotenvEscaper.Replace(s) + `"`, nil
	}
	return "", dotenvUnquotable(s)
}

// DotenvQuote is DotenvValue for values that are known to have a dotenv form,
// such as timestamps. It panics on a value DotenvValue refuses.
func DotenvQuote(s string) string {
	q, err := DotenvValue(s)
	if err != nil {
		panic(fmt.Sprintf("DotenvQuote: %v", err))
	}
	return q
}

// dotenvLine renders one NAME=value line, newline included, or says why the
// variable cannot be in a dotenv file.
func dotenvLine(name, value string) (string, error) {
	q, err := DotenvValue(value)
	if err != nil {
		return "", err
	}
	line := name + "=" + q
	if len(line) > dotenvMaxLine {
		return "", fmt.Errorf("its line would be %d bytes; docker --env-file rejects a file with a line over %d", len(line), dotenvMaxLine)
	}
	return line + "\n", nil
}

// dotenvBare reports whether every loader reads s written as is.
func dotenvBare(s string) bool {
	if s == "" {
		return true
	}
	first, _ := utf8.DecodeRuneInString(s)
	last, _ := utf8.DecodeLastRuneInString(s)
	if dotenvSpace(first) || dotenvSpace(last) || strings.ContainsRune("'\"`", first) {
		return false
	}
	for _, r := range s {
		switch {
		case r == '\t': // inside the value; the ends were checked above
		case r == '#', dotenvControl(r):
			return false
		}
	}
	return dotenvDollarsLiteral(s)
}

// dotenvSingle reports whether every loader reads s in single quotes.
func dotenvSingle(s string) bool {
	return !strings.ContainsAny(s, "'\n\r") && !strings.Contains(s, `\\`) && !strings.HasSuffix(s, `\`)
}

// dotenvDouble reports whether every loader reads s in double quotes with
// only \n and \r escaped.
func dotenvDouble(s string) bool {
	return !strings.ContainsAny(s, "\"\\") && dotenvDollarsLiteral(s)
}

// dotenvDollarsLiteral reports whether every $ in s stays a $ outside single
// quotes: godotenv expands $NAME, ${NAME}, $(NAME and $1 (NAME in capitals),
// docker compose expands $name, ${name} and $$ (in any case) and fails the
// file on any other ${. A $ followed by anything else, or by nothing, is
// taken literally by both.
func dotenvDollarsLiteral(s string) bool {
	for i := strings.IndexByte(s, '$'); i >= 0; i = strings.IndexByte(s, '$') {
		s = s[i+1:]
		if s == "" {
			return true
		}
		switch c := s[0]; {
		case c == '$', c == '{', c == '_', c >= '0' && c <= '9', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
			return false
		case c == '(' && len(s) > 1 && (s[1] == '{' || s[1] == '_' || s[1] >= '0' && s[1] <= '9' || s[1] >= 'A' && s[1] <= 'Z'):
			return false
		}
	}
	return true
}

// dotenvEscaper writes the only escapes every loader decodes the same way.
var dotenvEscaper = strings.NewReplacer("\n", `\n`, "\r", `\r`)

// dotenvSpace reports white space that some loader trims from the ends of a
// bare value: Go's and Python's (which adds \x1c-\x1f) and JavaScript's (which
// adds the byte order mark).
func dotenvSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) || r == '\ufeff' || r == '\u180e'
}

// dotenvControl reports characters kept out of bare values: C0 and C1
// controls, DEL, and the line and paragraph separators JavaScript's regular
// expressions treat as line ends.
func dotenvControl(r rune) bool {
	return r < 0x20 || (r >= 0x7f && r < 0xa0) || r == '\u2028' || r == '\u2029'
}

// dotenvUnquotable explains, by the kinds of characters s holds (never s
// itself), why no form holds it.
func dotenvUnquotable(s string) error {
	var kinds []string
	if strings.ContainsAny(s, "\n\r") {
		kinds = append(kinds, "a line break")
	}
	for _, c := range []string{"'", `"`, `\`, "$"} {
		if strings.Contains(s, c) {
			kinds = append(kinds, c)
		}
	}
	if first, _ := utf8.DecodeRuneInString(s); dotenvSpace(first) {
		kinds = append(kinds, "leading white space")
	}
	if last, _ := utf8.DecodeLastRuneInString(s); dotenvSpace(last) {
		kinds = append(kinds, "trailing white space")
	}
	return fmt.Errorf("no dotenv quoting keeps a value holding %s the same in python-dotenv, godotenv, docker compose and Node's dotenv", strings.Join(kinds, ", "))
}
