package secrets

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"

	"filippo.io/age"
	esceval "github.com/pulumi/esc/eval"
	"golang.org/x/crypto/chacha20poly1305"
)

// Sealer encrypts values under one data key, wrapped once: every envelope it
// makes starts with the same header (version, recipients, wrapped data key),
// followed by the value's own binding. Use one Sealer per file write: a data
// key is only ever one this process generated (never one unwrapped from a
// file, which anyone can forge from the public recipients with a data key of
// their own). For(binding) is esc's eval.Encrypter; a Sealer is safe for
// concurrent use, and Close zeroes its data key.
type Sealer struct {
	header     []byte // version, recipient list, wrapped data key
	recipients []string

	mu  sync.Mutex
	key [dataKeySize]byte // GUARDED_BY(mu); zero once closed
	ok  bool              // GUARDED_BY(mu); false once closed
}

var _ esceval.Encrypter = boundSealer{}

// NewSealer makes a fresh data key and wraps it to recipients (age
// recipients "age1..." and AWS KMS key ARNs; repetitions are dropped): one
// KMS Encrypt per KMS recipient, now, and none later. The data key is also
// cached in k, so that what the Sealer writes reads back without an unwrap.
func (k *Keyring) NewSealer(ctx context.Context, recipients []string) (*Sealer, error) {
	rs, err := parseRecipients(recipients)
	if err != nil {
		return nil, err
	}
	ageRecipients := slices.Clone(rs.age)
	for _, arn := range rs.kms {
		ageRecipients = append(ageRecipients, &kmsRecipient{ctx: ctx, k: k, arn: arn})
	}
	s := &Sealer{recipients: rs.list, ok: true}
	if _, err := rand.Read(s.key[:]); err != nil {
		return nil, err
	}
	var wrapped bytes.Buffer
	w, err := age.Encrypt(&wrapped, ageRecipients...)
	if err != nil {
		clear(s.key[:])
		var kmsErr *KMSError
		if errors.As(err, &kmsErr) {
			return nil, fmt.Errorf("wrap the data key: %w", kmsErr)
		}
		return nil, fmt.Errorf("wrap the data key: %w", err)
	}
	if _, err := w.Write(s.key[:]); err != nil {
		clear(s.key[:])
		return nil, err
	}
	if err := w.Close(); err != nil {
		clear(s.key[:])
		return nil, err
	}
	if wrapped.Len() > maxWrappedLen {
		clear(s.key[:])
		return nil, fmt.Errorf("the wrapped data key is %d bytes, over the %d an envelope holds", wrapped.Len(), maxWrappedLen)
	}
	s.header = appendHeader(nil, rs.list, wrapped.Bytes())
	k.store(sha256.Sum256(wrapped.Bytes()), &s.key)
	return s, nil
}

// For returns the Sealer as esc's eval.Encrypter for values bound to b:
// every envelope it makes names b and is sealed with it in its additional
// data. There is no unbound encryption.
func (s *Sealer) For(b Binding) esceval.Encrypter { return boundSealer{s, b} }

// boundSealer is a Sealer's Encrypter for one binding.
type boundSealer struct {
	s *Sealer
	b Binding
}

// Encrypt seals plaintext into a version-2 envelope bound to the binding.
func (bs boundSealer) Encrypt(_ context.Context, plaintext []byte) ([]byte, error) {
	return bs.s.seal(bs.b, plaintext)
}

// seal makes the envelope of plaintext bound to b.
func (s *Sealer) seal(b Binding, plaintext []byte) ([]byte, error) {
	if err := b.valid(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ok {
		return nil, errors.New("encrypt with a closed Sealer")
	}
	aead, err := chacha20poly1305.NewX(s.key[:])
	if err != nil {
		return nil, err
	}
	ad := appendBinding(slices.Clip(s.header), b)
	out := make([]byte, len(ad)+nonceSize, len(ad)+nonceSize+len(plaintext)+tagSize)
	copy(out, ad)
	nonce := out[len(ad):]
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(out, nonce, plaintext, ad), nil
}

// Recipients returns the recipients the Sealer's data key is wrapped to.
func (s *Sealer) Recipients() []string { return slices.Clone(s.recipients) }

// Close zeroes the data key; Encrypt fails afterwards.
func (s *Sealer) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.key[:])
	s.ok = false
}

// EnvelopeBinding returns what a version-2 envelope is bound to; bound is
// false for a version-1 envelope, which is bound to nothing.
func EnvelopeBinding(inner []byte) (b Binding, bound bool, err error) {
	env, err := parseEnvelope(inner)
	if err != nil {
		return Binding{}, false, err
	}
	return env.binding, env.version == envelopeVersion, nil
}

// DataKeyID names the data key an envelope's value is sealed under (a hash
// of its wrapped form), without decrypting anything: values with equal IDs
// cost one unwrap between them.
func DataKeyID(inner []byte) (string, error) {
	env, err := parseEnvelope(inner)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(env.wrapped)
	return fmt.Sprintf("%x", h[:8]), nil
}

// EnvelopeRecipients returns the recipients an envelope lists (who can
// decrypt it), without decrypting anything.
func EnvelopeRecipients(inner []byte) ([]string, error) {
	env, err := parseEnvelope(inner)
	if err != nil {
		return nil, err
	}
	return env.recipientList(), nil
}

// Inner returns the escfs envelope inside the value of a
// `fn::secret: {ciphertext: ...}` (esc's base64 outer envelope, decoded by
// esc itself), for EnvelopeRecipients and Reuse.
func Inner(ciphertext string) ([]byte, error) {
	var c capture
	if _, err := esceval.DecryptSecret(context.Background(), &c, ciphertext); err != nil {
		return nil, err
	}
	return c.inner, nil
}

// capture is an esc Decrypter that keeps what it is given.
type capture struct{ inner []byte }

func (c *capture) Decrypt(_ context.Context, inner []byte) ([]byte, error) {
	c.inner = inner
	return nil, nil
}
