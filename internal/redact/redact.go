// Package redact keeps the credentials escfs holds (access tokens, AWS
// secret keys and session tokens, passphrases) out of what it prints: every
// credential a package obtains is registered with Add, and every message,
// status and log line goes through String (or a Writer) on its way out, so
// that a service that echoes a token in an error body, or an error that
// quotes a request, shows "[REDACTED]" instead.
package redact

import (
	"cmp"
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
	"VAULT_TOKEN",
	"AZURE_CLIENT_SECRET",
	"CLOUDSDK_AUTH_ACCESS_TOKEN",
	"GOOGLE_OAUTH_ACCESS_TOKEN",
}

var (
	mu      sync.Mutex
	secrets = map[string]uint64{} // GUARDED_BY(mu); credential -> when added (a counter)
	added   uint64                // GUARDED_BY(mu)
	// replacer scrubs the current secrets; nil when it must be rebuilt
	// (after an Add) or when nothing is registered.
	replacer *strings.Replacer // GUARDED_BY(mu)
)

// MaxSecrets bounds the credentials held: renewals register a new token
// each time, and a mount that runs for months must not grow without end.
// Past it, the oldest go first: long expired by then.
const MaxSecrets = 4096

// Add registers credentials to scrub from output; values shorter than
// MinLen are ignored. It is cheap: the scrubber is rebuilt at the next
// String, once however many were added.
func Add(values ...string) {
	mu.Lock()
	defer mu.Unlock()
	for _, v := range values {
		if len(v) < MinLen {
			continue
		}
		if _, ok := secrets[v]; ok {
			continue
		}
		added++
		secrets[v] = added
		replacer = nil
	}
	if len(secrets) > MaxSecrets {
		evictLocked()
	}
}

// evictLocked drops the oldest credentials down to three quarters of
// MaxSecrets, so that eviction is rare.
func evictLocked() {
	order := make([]string, 0, len(secrets))
	for s := range secrets {
		order = append(order, s)
	}
	slices.SortFunc(order, func(a, b string) int { return cmp.Compare(secrets[a], secrets[b]) })
	for _, s := range order[:len(order)-MaxSecrets*3/4] {
		delete(secrets, s)
	}
}

// scrubber returns the replacer of the current secrets, building it if an
// Add made it stale; nil when nothing is registered.
func scrubber() *strings.Replacer {
	mu.Lock()
	defer mu.Unlock()
	if replacer != nil || len(secrets) == 0 {
		return replacer
	}
	// Longest first: a token that contains another is replaced whole.
	order := make([]string, 0, len(secrets))
	for s := range secrets {
		order = append(order, s)
	}
	slices.SortFunc(order, func(a, b string) int { return cmp.Or(len(b)-len(a), strings.Compare(a, b)) })
	pairs := make([]string, 0, 2*len(order))
	for _, s := range order {
		pairs = append(pairs, s, Mark)
	}
	replacer = strings.NewReplacer(pairs...)
	return replacer
}

// FromEnv registers the values of EnvCredentials in the environment.
func FromEnv() {
	for _, k := range EnvCredentials {
		Add(os.Getenv(k))
	}
}

// String returns s with every registered credential replaced by Mark.
func String(s string) string {
	r := scrubber()
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
