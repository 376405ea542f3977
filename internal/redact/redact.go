// Package redact keeps the credentials escfs holds (access tokens, AWS
// secret keys and session tokens, passphrases) out of what it prints: every
// credential a package obtains is registered with Add, and every message,
// status and log line goes through String (or a Writer) on its way out, so
// that a service that echoes a token in an error body, or an error that
// quotes a request, shows "[REDACTED]" instead.
package redact

import (
	"io"
	"os"
	"slices"
	"strings"
	"sync"
)

// Mark replaces a credential in output.
const Mark = "[REDACTED]"

// MinLen is the length below which a value is not registered: shorter
// values (a "true", a port) would blank out ordinary words, and no
// credential escfs holds is that short.
const MinLen = 8

// EnvCredentials are the variables whose values are credentials of the
// user: registered by FromEnv.
var EnvCredentials = []string{
	"PULUMI_ACCESS_TOKEN",
	"PULUMI_CONFIG_PASSPHRASE",
	"AWS_SECRET_ACCESS_KEY",
	"AWS_SESSION_TOKEN",
	"AWS_SECURITY_TOKEN",
}

var (
	mu       sync.RWMutex
	secrets  []string
	replacer *strings.Replacer // nil when nothing is registered
)

// Add registers credentials to scrub from output; values shorter than
// MinLen are ignored.
func Add(values ...string) {
	mu.Lock()
	defer mu.Unlock()
	changed := false
	for _, v := range values {
		if len(v) < MinLen || slices.Contains(secrets, v) {
			continue
		}
		secrets = append(secrets, v)
		changed = true
	}
	if !changed {
		return
	}
	// Longest first: a token that contains another is replaced whole.
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(secrets))
	for _, s := range secrets {
		pairs = append(pairs, s, Mark)
	}
	replacer = strings.NewReplacer(pairs...)
}

// FromEnv registers the values of EnvCredentials in the environment.
func FromEnv() {
	for _, k := range EnvCredentials {
		Add(os.Getenv(k))
	}
}

// String returns s with every registered credential replaced by Mark.
func String(s string) string {
	mu.RLock()
	r := replacer
	mu.RUnlock()
	if r == nil {
		return s
	}
	return r.Replace(s)
}

// Error returns err with its message scrubbed, or err itself when its
// message holds no credential (so errors.Is and As keep working).
func Error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if clean := String(msg); clean != msg {
		return &scrubbed{msg: clean, err: err}
	}
	return err
}

// scrubbed is an error whose message was scrubbed; it unwraps to the
// original, whose message callers must not print.
type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }

// Writer returns a writer that scrubs each write before passing it to w.
// Each write must hold whole lines (as slog handlers and fmt.Fprintln
// write them) for a credential to be caught.
func Writer(w io.Writer) io.Writer { return &writer{w: w} }

type writer struct{ w io.Writer }

func (w *writer) Write(p []byte) (int, error) {
	clean := String(string(p))
	if _, err := io.WriteString(w.w, clean); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Unwrap returns the writer beneath a Writer, or w itself: what a child
// process gets as its stderr (its output is its own, and it may need the
// terminal itself).
func Unwrap(w io.Writer) io.Writer {
	if r, ok := w.(*writer); ok {
		return r.w
	}
	return w
}
