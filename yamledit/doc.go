// Package yamledit makes small, text-preserving edits to ESC environment
// definitions, so that git diffs stay small: everything not edited stays
// byte for byte as it was (comments, order, blank lines, quoting,
// indentation). It serves `escfs secrets encrypt` (Encrypt), `escfs
// secrets rotate` (Rotate), `escfs edit` (NewView, View.Seal), `escfs set`
// (Set) and the plaintext-secret warnings of `escfs check` (Secrets).
//
// yaml.v3 gives where each node starts (line and column); the package
// finds where each ends by scanning the text as yaml.v3's scanner does
// (plain, quoted and block scalars with their indicators, flow and block
// collections, comments, anchors, tags, CRLF). An edit replaces the bytes
// of one value and is then verified: the result is parsed again, and the
// edited values must decode to what was asked and everything else exactly
// as before. A splice that fails that falls back to re-encoding the edited
// node tree with yaml.v3 (comments and order kept, 2-space indentation),
// verified the same way, and the Result says so (Fallback); if that fails
// too, the edit is an error (ErrUnverified) and nothing is written.
//
// Only the first YAML document of a file is edited (it is the one esc
// reads); the others must read back unchanged.
package yamledit
