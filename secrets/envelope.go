package secrets

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"golang.org/x/crypto/chacha20poly1305"
)

// The envelope's constants; see the package documentation for the layout.
const (
	envelopeV1      = 0x01                        // unbound: still read, check warns, rotate upgrades
	envelopeVersion = 0x02                        // bound to its environment and property path
	dataKeySize     = chacha20poly1305.KeySize    // 32
	nonceSize       = chacha20poly1305.NonceSizeX // 24
	tagSize         = chacha20poly1305.Overhead   // 16
	// The bounds on what an envelope may name: it is written by whoever
	// can write a definition, and its recipients reach check, status and
	// the log.
	maxRecipients   = 64
	maxRecipientLen = 256
	maxWrappedLen   = 64 << 10
	maxBindingEnv   = 512  // "project/env"
	maxBindingPath  = 4096 // the property path under values
)

// Binding is what a version-2 envelope is bound to: its environment and
// its property path under values. Both are in the envelope in the clear
// and are part of the sealed value's additional data, so a ciphertext
// moved to another environment or path still says where it belongs, and
// one whose binding was altered does not open.
type Binding struct {
	// Env is the environment's canonical name, "project/env".
	Env string
	// Path is the property path under values, as escfs set takes it
	// (db.password, list[0], a["x.y"]).
	Path string
}

// String is "ENV PATH", as error messages name a binding.
func (b Binding) String() string { return b.Env + " " + b.Path }

// valid checks a binding that is to be sealed.
func (b Binding) valid() error {
	switch {
	case b.Env == "" || len(b.Env) > maxBindingEnv || !utf8.ValidString(b.Env):
		return fmt.Errorf("binding: environment name of %d bytes is not within 1..%d bytes of UTF-8", len(b.Env), maxBindingEnv)
	case b.Path == "" || len(b.Path) > maxBindingPath || !utf8.ValidString(b.Path):
		return fmt.Errorf("binding: property path of %d bytes is not within 1..%d bytes of UTF-8", len(b.Path), maxBindingPath)
	}
	return nil
}

// envelope is a parsed envelope. Its byte slices alias the parsed input.
type envelope struct {
	version    byte
	header     []byte  // everything before the nonce: the additional data
	binding    Binding // version 2 only
	recipients []byte  // the recipient list's entries (after the count)
	count      int     // how many recipients it holds
	wrapped    []byte  // the age file holding the data key
	nonce      []byte
	sealed     []byte // ciphertext and tag
}

// parseEnvelope splits inner into its parts, checking every length and
// nothing cryptographic. It allocates nothing: Decrypt's warm path calls it.
func parseEnvelope(inner []byte) (envelope, error) {
	var env envelope
	if len(inner) == 0 {
		return env, corrupt(PartVersion, "empty")
	}
	if inner[0] != envelopeVersion && inner[0] != envelopeV1 {
		return env, &UnknownVersionError{Version: inner[0]}
	}
	env.version = inner[0]
	rest := inner[1:]
	n, rest, err := readUvarint(rest, PartRecipients, "count")
	if err != nil {
		return env, err
	}
	if n == 0 || n > maxRecipients {
		return env, corrupt(PartRecipients, "count %d is not within 1..%d", n, maxRecipients)
	}
	list := rest
	for i := range n {
		var l uint64
		if l, rest, err = readUvarint(rest, PartRecipients, "length"); err != nil {
			return env, err
		}
		if l == 0 || l > maxRecipientLen {
			return env, corrupt(PartRecipients, "recipient %d: length %d is not within 1..%d", i+1, l, maxRecipientLen)
		}
		if uint64(len(rest)) < l {
			return env, corrupt(PartRecipients, "truncated")
		}
		if !printable(rest[:l]) {
			return env, corrupt(PartRecipients, "recipient %d is not printable ASCII", i+1)
		}
		rest = rest[l:]
	}
	env.recipients = list[:len(list)-len(rest)]
	env.count = int(n)
	w, rest, err := readUvarint(rest, PartWrappedKey, "length")
	if err != nil {
		return env, err
	}
	if w == 0 || w > maxWrappedLen {
		return env, corrupt(PartWrappedKey, "length %d is not within 1..%d", w, maxWrappedLen)
	}
	if uint64(len(rest)) < w {
		return env, corrupt(PartWrappedKey, "truncated")
	}
	env.wrapped, rest = rest[:w], rest[w:]
	if env.version == envelopeVersion {
		var e, p []byte
		if e, rest, err = readField(rest, "environment", 1, maxBindingEnv); err != nil {
			return env, err
		}
		if p, rest, err = readField(rest, "property path", 1, maxBindingPath); err != nil {
			return env, err
		}
		env.binding = Binding{Env: string(e), Path: string(p)}
	}
	env.header = inner[:len(inner)-len(rest)]
	if len(rest) < nonceSize {
		return env, corrupt(PartNonce, "truncated")
	}
	env.nonce, env.sealed = rest[:nonceSize], rest[nonceSize:]
	if len(env.sealed) < tagSize {
		return env, corrupt(PartValue, "truncated")
	}
	return env, nil
}

// readField reads one length-prefixed UTF-8 field of the binding.
func readField(b []byte, what string, minLen, maxLen uint64) ([]byte, []byte, error) {
	l, rest, err := readUvarint(b, PartBinding, what+" length")
	if err != nil {
		return nil, nil, err
	}
	if l < minLen || l > maxLen {
		return nil, nil, corrupt(PartBinding, "%s length %d is not within %d..%d", what, l, minLen, maxLen)
	}
	if uint64(len(rest)) < l {
		return nil, nil, corrupt(PartBinding, "truncated")
	}
	if !utf8.Valid(rest[:l]) {
		return nil, nil, corrupt(PartBinding, "%s is not UTF-8", what)
	}
	return rest[:l], rest[l:], nil
}

// readUvarint reads one minimally encoded uvarint of the named part.
func readUvarint(b []byte, part, what string) (uint64, []byte, error) {
	v, n := binary.Uvarint(b)
	switch {
	case n == 0:
		return 0, nil, corrupt(part, "truncated")
	case n < 0:
		return 0, nil, corrupt(part, "%s overflows", what)
	case n != uvarintLen(v):
		return 0, nil, corrupt(part, "%s is not minimally encoded", what)
	}
	return v, b[n:], nil
}

func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// recipientList returns the envelope's recipients as strings.
func (env envelope) recipientList() []string {
	out := make([]string, 0, env.count)
	rest := env.recipients
	for range env.count {
		l, n := binary.Uvarint(rest) // checked by parseEnvelope
		out = append(out, string(rest[n:n+int(l)]))
		rest = rest[n+int(l):]
	}
	return out
}

// appendHeader appends the header of an envelope (everything before the
// nonce) to dst.
func appendHeader(dst []byte, recipients []string, wrapped []byte) []byte {
	dst = append(dst, envelopeVersion)
	dst = binary.AppendUvarint(dst, uint64(len(recipients)))
	for _, r := range recipients {
		dst = binary.AppendUvarint(dst, uint64(len(r)))
		dst = append(dst, r...)
	}
	dst = binary.AppendUvarint(dst, uint64(len(wrapped)))
	return append(dst, wrapped...)
}

// appendBinding appends a version-2 envelope's binding to dst.
func appendBinding(dst []byte, b Binding) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b.Env)))
	dst = append(dst, b.Env...)
	dst = binary.AppendUvarint(dst, uint64(len(b.Path)))
	return append(dst, b.Path...)
}
