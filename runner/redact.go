package runner

import (
	"bytes"
	"io"
	"sort"
	"sync"
)

// Redacted is what a Redactor writes in place of a secret.
const Redacted = "[secret]"

// MinSecretLen is the length below which a secret is not redacted. As in
// esc run, such short strings carry little entropy and redacting them would
// mangle ordinary output (an empty secret would match between every byte).
const MinSecretLen = 3

// Redactor is an io.WriteCloser that replaces every secret in the stream
// written to it with Redacted before passing it on. A secret split across
// any number of writes is still redacted: the Redactor holds back the
// shortest tail of the data that could still become a secret (at most the
// length of the longest secret minus one byte) until the next write shows
// whether it does, or until Close. Output that cannot be part of a secret is
// passed on at once, so prompts without a newline still show.
//
// Matches are found as if the whole stream had been seen at once: the
// leftmost secret wins, and of secrets starting at one position the longest.
// A Redactor is safe for concurrent use; Close flushes what it holds back
// and does not close the underlying writer.
type Redactor struct {
	w       io.Writer
	secrets [][]byte // longest first
	maxLen  int

	mu  sync.Mutex
	buf []byte // GUARDED_BY(mu): held-back tail, never holding a whole secret
}

// NewRedactor returns a Redactor that writes to w with secrets replaced.
// Secrets shorter than MinSecretLen are ignored.
func NewRedactor(w io.Writer, secrets []string) *Redactor {
	r := &Redactor{w: w}
	seen := map[string]bool{}
	for _, s := range secrets {
		if len(s) < MinSecretLen || seen[s] {
			continue
		}
		seen[s] = true
		r.secrets = append(r.secrets, []byte(s))
		r.maxLen = max(r.maxLen, len(s))
	}
	sort.SliceStable(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) })
	return r
}

// Write redacts p and writes what is certain to the underlying writer. It
// reports all of p as consumed; an error is the underlying writer's.
func (r *Redactor) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.secrets) == 0 {
		return r.w.Write(p)
	}
	r.buf = append(r.buf, p...)
	if err := r.flush(false); err != nil {
		return len(p), err
	}
	return len(p), nil
}

// Close writes out the held-back tail, redacted. Further writes are still
// accepted.
func (r *Redactor) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.flush(true)
}

// flush writes out the redacted part of buf that no later data can change,
// or all of it if final, and keeps the rest.
func (r *Redactor) flush(final bool) error {
	var out []byte
	rest := r.buf
	for {
		limit := len(rest)
		if !final {
			limit = r.partialStart(rest)
		}
		i, s := r.firstMatch(rest, limit)
		if s == nil {
			out = append(out, rest[:limit]...)
			rest = rest[limit:]
			break
		}
		out = append(out, rest[:i]...)
		out = append(out, Redacted...)
		rest = rest[i+len(s):]
	}
	r.buf = append(r.buf[:0], rest...)
	if len(out) == 0 {
		return nil
	}
	_, err := r.w.Write(out)
	return err
}

// partialStart returns the first position in b from which the rest of b is
// a proper prefix of some secret (so more data could complete a match), or
// len(b) if there is none.
func (r *Redactor) partialStart(b []byte) int {
	for j := max(0, len(b)-(r.maxLen-1)); j < len(b); j++ {
		tail := b[j:]
		for _, s := range r.secrets {
			if len(s) > len(tail) && bytes.HasPrefix(s, tail) {
				return j
			}
		}
	}
	return len(b)
}

// firstMatch returns the leftmost secret wholly in b that starts before
// limit, the longest one if several start there, and its position.
func (r *Redactor) firstMatch(b []byte, limit int) (int, []byte) {
	best, bestS := -1, []byte(nil)
	for _, s := range r.secrets { // longest first: a tie keeps the longer
		end := min(len(b), limit+len(s)-1)
		if best >= 0 {
			end = min(end, best+len(s)-1) // only an earlier start can win
		}
		if i := bytes.Index(b[:end], s); i >= 0 && (best < 0 || i < best) {
			best, bestS = i, s
		}
	}
	return best, bestS
}
