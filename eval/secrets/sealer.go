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
// makes starts with the same header (version, recipients, wrapped data key).
// Use one Sealer per file write. It is esc's eval.Encrypter and is safe for
// concurrent use; Close zeroes its data key.
type Sealer struct {
	header     []byte // version, recipient list, wrapped data key
	recipients []string

	mu  sync.Mutex
	key [dataKeySize]byte // GUARDED_BY(mu); zero once closed
	ok  bool              // GUARDED_BY(mu); false once closed
}

var _ esceval.Encrypter = (*Sealer)(nil)

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

// Reuse returns a Sealer with the data key of an existing envelope, so that
// `set` or `edit` can add values to a file without a new data key (and KMS
// Encrypt), if the envelope was encrypted to exactly recipients (as a set)
// and k can unwrap it and open its value; false otherwise.
//
// Besides the recipient list, it checks what it can of the wrapped key
// itself: as many X25519 stanzas as age recipients, and a KMS stanza for
// each KMS key and no other. Age stanzas do not say whom they are for, so an
// envelope crafted to list the team while being wrapped to someone else in
// place of one member (who then could not decrypt it) is beyond this check.
func (k *Keyring) Reuse(ctx context.Context, inner []byte, recipients []string) (*Sealer, bool) {
	env, err := parseEnvelope(inner)
	if err != nil {
		return nil, false
	}
	rs, err := parseRecipients(recipients)
	if err != nil {
		return nil, false
	}
	listed := env.recipientList()
	if !sameSet(listed, rs.list) || !stanzasMatch(env.wrapped, rs) {
		return nil, false
	}
	key, err := k.dataKey(ctx, env)
	if err != nil {
		return nil, false
	}
	// The value must open too: its additional data checks the recipient
	// list against the one it was sealed with.
	plaintext, err := openValue(&key, env)
	clear(plaintext)
	if err != nil {
		clear(key[:])
		return nil, false
	}
	return &Sealer{header: slices.Clone(env.header), recipients: listed, key: key, ok: true}, true
}

// stanzasMatch reports whether the age file wrapped holds one X25519 stanza
// per age recipient of rs and one KMS stanza per KMS key of rs, and nothing
// else.
func stanzasMatch(wrapped []byte, rs recipients) bool {
	var rec stanzaRecorder
	_, err := age.Decrypt(bytes.NewReader(wrapped), &rec)
	var noMatch *age.NoIdentityMatchError
	if !errors.As(err, &noMatch) {
		return false
	}
	x25519 := 0
	var arns []string
	for _, s := range rec.stanzas {
		switch {
		case s.Type == "X25519":
			x25519++
		case s.Type == kmsStanzaType && len(s.Args) == 1:
			arns = append(arns, s.Args[0])
		default:
			return false
		}
	}
	return x25519 == len(rs.age) && len(arns) == len(rs.kms) && sameSet(arns, rs.kms)
}

// stanzaRecorder is an age identity that matches nothing and keeps the
// stanzas it was shown.
type stanzaRecorder struct {
	stanzas []*age.Stanza
}

func (r *stanzaRecorder) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	r.stanzas = stanzas
	return nil, age.ErrIncorrectIdentity
}

// Encrypt seals plaintext into an envelope (esc's eval.Encrypter).
func (s *Sealer) Encrypt(_ context.Context, plaintext []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ok {
		return nil, errors.New("encrypt with a closed Sealer")
	}
	aead, err := chacha20poly1305.NewX(s.key[:])
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(s.header)+nonceSize, len(s.header)+nonceSize+len(plaintext)+tagSize)
	copy(out, s.header)
	nonce := out[len(s.header):]
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(out, nonce, plaintext, s.header), nil
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
