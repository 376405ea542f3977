package secrets

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Sentinel errors, for errors.Is. The errors returned carry more (see the
// error types below); none holds a plaintext or key byte.
var (
	// ErrNoMatchingKey: no key this Keyring holds or can use decrypts the
	// value (see *NoMatchingKeyError for the details).
	ErrNoMatchingKey = errors.New("no key can decrypt this value")
	// ErrCorrupt: the envelope is truncated or altered (see *CorruptError).
	ErrCorrupt = errors.New("corrupt escfs envelope")
	// ErrUnknownVersion: the envelope's version byte is not one this escfs
	// reads (see *UnknownVersionError).
	ErrUnknownVersion = errors.New("unknown escfs envelope version")
)

// Envelope parts, as CorruptError.Part names them.
const (
	PartVersion    = "version"
	PartRecipients = "recipient list"
	PartWrappedKey = "wrapped data key"
	PartBinding    = "binding"
	PartNonce      = "nonce"
	PartValue      = "sealed value"
)

// CorruptError says which part of an envelope is truncated or altered.
type CorruptError struct {
	Part   string // one of the Part* constants
	Reason string // what is wrong with it
	Err    error  // the underlying error, if any (age's, for the wrapped key)
}

// Error names the part and what is wrong with it.
func (e *CorruptError) Error() string {
	msg := fmt.Sprintf("corrupt escfs envelope: %s: %s", e.Part, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap returns the underlying error.
func (e *CorruptError) Unwrap() error { return e.Err }

func corrupt(part, format string, args ...any) *CorruptError {
	return &CorruptError{Part: part, Reason: fmt.Sprintf(format, args...)}
}

// ErrMisplaced: a version-2 ciphertext is not where its binding says it
// belongs (see *MisplacedError).
var ErrMisplaced = errors.New("ciphertext is not where it belongs")

// MisplacedError is a version-2 ciphertext found at another environment or
// property path than the one it is bound to: copied from another
// environment, or swapped with another value. It is never decrypted.
type MisplacedError struct {
	Got  Binding // where the ciphertext says it belongs
	Want Binding // where it was found
}

// Error says where the ciphertext belongs.
func (e *MisplacedError) Error() string {
	return fmt.Sprintf("ciphertext belongs to %s %s, not to %s %s: it was moved or copied here, and is not decrypted (escfs secrets rotate --rebind re-binds values you moved on purpose)",
		shown(e.Got.Env), shown(e.Got.Path), shown(e.Want.Env), shown(e.Want.Path))
}

// shown is text an envelope names (whoever wrote the file chose it) as a
// message may quote it: at most 128 bytes, quoted if it holds anything but
// printable ASCII.
func shown(s string) string {
	const limit = 128
	cut := ""
	if len(s) > limit {
		s, cut = strings.ToValidUTF8(s[:limit], ""), fmt.Sprintf("... (%d bytes)", len(s))
	}
	for _, c := range []byte(s) {
		if c < 0x21 || c > 0x7e {
			return strconv.Quote(s) + cut
		}
	}
	return s + cut
}

// Is makes errors.Is(err, ErrMisplaced) true.
func (e *MisplacedError) Is(target error) bool { return target == ErrMisplaced }

// UnknownVersionError is an envelope whose version byte this escfs does not
// know.
type UnknownVersionError struct {
	Version byte
}

// Error names the version.
func (e *UnknownVersionError) Error() string {
	return fmt.Sprintf("unknown escfs envelope version %d; a newer escfs wrote it", e.Version)
}

// Is makes errors.Is(err, ErrUnknownVersion) true.
func (e *UnknownVersionError) Is(target error) bool { return target == ErrUnknownVersion }

// NoMatchingKeyError says that no key of the value's recipients could be
// used: which recipients the value was encrypted to, where age identities
// were looked for and why each KMS key failed.
type NoMatchingKeyError struct {
	// Recipients are the age recipients and KMS key ARNs the value was
	// encrypted to, as its envelope lists them.
	Recipients []string
	// IdentitiesFile is where age identities were looked for ("" if no
	// path could be determined).
	IdentitiesFile string
	// IdentitiesErr says why that file gave no identity: it does not exist
	// (fs.ErrNotExist), cannot be read, or does not parse; nil if it gave
	// identities and none matched.
	IdentitiesErr error
	// Failures are the errors of the keys that were tried and failed: one
	// *KMSError per KMS key of the recipients, and the errors of identities
	// given in KeyringOptions.Identities.
	Failures []error
}

// Error says where age identities were looked for, why each KMS key
// failed, and whom the value is encrypted to.
func (e *NoMatchingKeyError) Error() string {
	var b strings.Builder
	b.WriteString(ErrNoMatchingKey.Error())
	b.WriteString(": ")
	file := displayPath(e.IdentitiesFile)
	switch {
	case e.IdentitiesFile == "" && e.IdentitiesErr != nil:
		fmt.Fprintf(&b, "no age identities (%v)", e.IdentitiesErr)
	case errors.Is(e.IdentitiesErr, os.ErrNotExist):
		fmt.Fprintf(&b, "no age identities: %s does not exist (escfs keygen creates it)", file)
	case e.IdentitiesErr != nil:
		fmt.Fprintf(&b, "no age identities from %s: %v", file, e.IdentitiesErr)
	default:
		fmt.Fprintf(&b, "no age identity in %s matches", file)
	}
	for _, f := range e.Failures {
		b.WriteString("; ")
		b.WriteString(f.Error())
	}
	b.WriteString("; encrypted to ")
	if len(e.Recipients) == 0 {
		b.WriteString("no recipient it names")
	}
	// The list is the envelope's, which whoever wrote the file chose: at
	// most 8 are named.
	const named = 8
	for i, r := range e.Recipients[:min(len(e.Recipients), named)] {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(shown(r))
	}
	if n := len(e.Recipients) - named; n > 0 {
		fmt.Fprintf(&b, " and %d more", n)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrNoMatchingKey) true.
func (e *NoMatchingKeyError) Is(target error) bool { return target == ErrNoMatchingKey }

// Unwrap returns IdentitiesErr and the failures, so that errors.As finds a
// *KMSError and errors.Is(err, fs.ErrNotExist) a missing identities file.
func (e *NoMatchingKeyError) Unwrap() []error {
	if e.IdentitiesErr == nil {
		return e.Failures
	}
	return append([]error{e.IdentitiesErr}, e.Failures...)
}

// displayPath abbreviates the home directory to ~, as people write it.
func displayPath(p string) string {
	home, err := os.UserHomeDir()
	if err != nil || home == "" || home == "/" {
		return p
	}
	if rel, err := filepath.Rel(home, p); err == nil && filepath.IsLocal(rel) {
		return "~/" + rel
	}
	return p
}
