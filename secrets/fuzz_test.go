package secrets

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// FuzzDecodeEnvelope feeds arbitrary bytes to the envelope parser and to
// Keyring.Decrypt (with an identity of the seeds' recipient, and KMS failing
// at once): neither panics, every error is one of the package's kinds, what
// parses encodes back to the same bytes, and nothing that does not parse
// decrypts.
func FuzzDecodeEnvelope(f *testing.F) {
	ctx := context.Background()
	idPath, rec := newIdentity(f)
	_, other := newIdentity(f)
	for _, v := range seal(f, []string{rec}, "", "value") {
		f.Add(v)
		f.Add(v[:len(v)/2])
	}
	for _, v := range seal(f, []string{other, rec}, "two") {
		f.Add(v)
		bad := bytes.Clone(v)
		bad[0] = 3
		f.Add(bad)
	}
	f.Add([]byte{})
	f.Add([]byte{1, 1, 4, 'a', 'g', 'e', '1', 1, 'x'})
	f.Add([]byte{1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Add([]byte{2, 1, 4, 'a', 'g', 'e', '1', 1, 'x', 0, 1, 'p'})
	// A whole envelope but for its non-minimal recipient count (0x81 0x00).
	f.Add(append([]byte{1, 0x81, 0x00, 4, 'a', 'g', 'e', '1', 1, 'x'}, make([]byte, nonceSize+tagSize)...))
	k := newKeyring(f, KeyringOptions{IdentitiesFile: idPath, AWSConfig: noAWS})

	f.Fuzz(func(t *testing.T, b []byte) {
		env, perr := parseEnvelope(b)
		if perr == nil {
			again := appendHeader(nil, env.recipientList(), env.wrapped)
			again[0] = env.version
			if env.version == envelopeVersion {
				again = appendBinding(again, env.binding)
			}
			again = append(append(again, env.nonce...), env.sealed...)
			if !bytes.Equal(again, b) {
				t.Fatalf("parsed and encoded again: %x, was %x", again, b)
			}
		} else if !errors.Is(perr, ErrCorrupt) && !errors.Is(perr, ErrUnknownVersion) {
			t.Fatalf("parse error of no known kind: %v", perr)
		}
		if _, err := EnvelopeRecipients(b); (err == nil) != (perr == nil) {
			t.Fatalf("EnvelopeRecipients: %v, parse: %v", err, perr)
		}
		_, err := k.Decrypt(ctx, b)
		switch {
		case err == nil && perr != nil:
			t.Fatalf("decrypted what does not parse (%v)", perr)
		case err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnknownVersion) && !errors.Is(err, ErrNoMatchingKey):
			t.Fatalf("Decrypt error of no known kind: %v", err)
		}
		if _, bound, err := k.DecryptAt(ctx, b, testBinding); err == nil && bound {
			if env.binding != testBinding {
				t.Fatalf("DecryptAt opened a value bound to %v at %v", env.binding, testBinding)
			}
		}
	})
}
