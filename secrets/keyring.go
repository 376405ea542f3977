package secrets

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"filippo.io/age"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	esceval "github.com/pulumi/esc/eval"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/sync/singleflight"
)

// Defaults of KeyringOptions.
const (
	DefaultCacheTTL      = 5 * time.Minute
	DefaultMaxCachedKeys = 1024
	DefaultFailureTTL    = 10 * time.Second
)

// KeyringOptions configure a Keyring. The zero value is the default: age
// identities from DefaultIdentitiesPath, AWS KMS through the SDK's default
// chain, unwrapped data keys kept 5 minutes.
type KeyringOptions struct {
	// IdentitiesFile is the age identities file (age-keygen format); ""
	// means DefaultIdentitiesPath. It need not exist when KMS decrypts.
	IdentitiesFile string
	// Identities are more age identities (a plugin, a key held elsewhere),
	// tried after those of IdentitiesFile and before AWS KMS.
	Identities []age.Identity
	// CacheTTL is how long an unwrapped data key is kept, counted from its
	// unwrap (a hit does not extend it, so that revoking a key takes effect
	// within it); 0 or less means DefaultCacheTTL.
	CacheTTL time.Duration
	// MaxCachedKeys bounds how many data keys are kept at once (the oldest
	// goes first); 0 means DefaultMaxCachedKeys.
	MaxCachedKeys int
	// FailureTTL is how long a failed unwrap is remembered: the other
	// values of the same file then fail at once instead of asking KMS
	// again, each time with its retries. A change of the identities file
	// forgets it. 0 means DefaultFailureTTL, negative remembers none.
	FailureTTL time.Duration
	// AWSConfig returns the AWS configuration for KMS calls in region; nil
	// means the SDK's default chain (awsclient.Load), where
	// AWS_ENDPOINT_URL_KMS and AWS_ENDPOINT_URL apply. For tests and
	// embedders.
	AWSConfig func(ctx context.Context, region string) (aws.Config, error)
	// Now is the clock of the cache; nil means time.Now.
	Now func() time.Time
}

// Keyring decrypts escfs envelopes with the age identities and AWS KMS keys
// at hand, and makes Sealers. It is esc's eval.Decrypter and is safe for
// concurrent use. Call Close when done with it to zero the data keys it
// holds at once rather than at their expiry.
//
// Lock order: flights, then mu; idMu and kmsMu are taken alone.
type Keyring struct {
	idPath    string // where age identities are looked for
	idPathErr error  // why there is no idPath
	extra     []age.Identity
	ttl       time.Duration
	failTTL   time.Duration
	maxKeys   int
	now       func() time.Time
	awsConfig func(ctx context.Context, region string) (aws.Config, error)

	// flights makes concurrent misses of one data key one unwrap.
	flights singleflight.Group

	mu       sync.Mutex
	keys     map[[sha256.Size]byte]*keyEntry // GUARDED_BY(mu)
	fifo     []*keyEntry                     // GUARDED_BY(mu); INVARIANT: the entries of keys, oldest (first to expire) first
	failures map[[sha256.Size]byte]failure   // GUARDED_BY(mu)
	sweep    *time.Timer                     // GUARDED_BY(mu); drops keys at expiry when nobody asks

	idMu sync.Mutex
	ids  *identitySet // GUARDED_BY(idMu); the identities file as last read

	kmsMu      sync.Mutex
	kmsClients map[string]*kms.Client // GUARDED_BY(kmsMu); by region
}

var _ esceval.Decrypter = (*Keyring)(nil)

// keyEntry is one unwrapped data key.
type keyEntry struct {
	hash    [sha256.Size]byte // of the wrapped data key
	key     [dataKeySize]byte // zeroed when dropped
	expires time.Time
	dropped bool
}

// failure is a remembered failed unwrap.
type failure struct {
	err   error
	until time.Time
	ids   *identitySet // the identities it was tried with
}

// NewKeyring returns a Keyring. It reads nothing yet: the identities file is
// read, and AWS configured, when a value first needs them.
func NewKeyring(opts KeyringOptions) *Keyring {
	k := &Keyring{
		idPath:     opts.IdentitiesFile,
		extra:      slices.Clone(opts.Identities),
		ttl:        opts.CacheTTL,
		failTTL:    opts.FailureTTL,
		maxKeys:    opts.MaxCachedKeys,
		now:        opts.Now,
		awsConfig:  opts.AWSConfig,
		keys:       map[[sha256.Size]byte]*keyEntry{},
		failures:   map[[sha256.Size]byte]failure{},
		kmsClients: map[string]*kms.Client{},
	}
	if k.idPath == "" {
		k.idPath, k.idPathErr = DefaultIdentitiesPath()
	}
	if k.ttl <= 0 {
		k.ttl = DefaultCacheTTL
	}
	if k.failTTL == 0 {
		k.failTTL = DefaultFailureTTL
	}
	if k.maxKeys <= 0 {
		k.maxKeys = DefaultMaxCachedKeys
	}
	if k.now == nil {
		k.now = time.Now
	}
	if k.awsConfig == nil {
		k.awsConfig = defaultAWSConfig
	}
	return k
}

// IdentitiesFile returns where the Keyring looks for age identities.
func (k *Keyring) IdentitiesFile() (string, error) { return k.idPath, k.idPathErr }

// Decrypt returns the plaintext of an escfs envelope (esc's
// eval.Decrypter). Errors are *CorruptError, *UnknownVersionError or
// *NoMatchingKeyError (which holds a *KMSError per failed KMS key).
func (k *Keyring) Decrypt(ctx context.Context, inner []byte) ([]byte, error) {
	env, err := parseEnvelope(inner)
	if err != nil {
		return nil, err
	}
	key, err := k.dataKey(ctx, env)
	if err != nil {
		return nil, err
	}
	defer clear(key[:])
	return openValue(&key, env)
}

// DecryptAt returns the plaintext of an envelope found at want: a
// version-2 envelope bound elsewhere is a *MisplacedError and is not
// decrypted (its binding is authenticated by the decryption, so one altered
// to match want does not open). A version-1 envelope, bound to nothing,
// decrypts wherever it is; bound reports which it was.
func (k *Keyring) DecryptAt(ctx context.Context, inner []byte, want Binding) (plaintext []byte, bound bool, err error) {
	env, err := parseEnvelope(inner)
	if err != nil {
		return nil, false, err
	}
	bound = env.version == envelopeVersion
	if bound && env.binding != want {
		return nil, true, &MisplacedError{Got: env.binding, Want: want}
	}
	key, err := k.dataKey(ctx, env)
	if err != nil {
		return nil, bound, err
	}
	defer clear(key[:])
	plaintext, err = openValue(&key, env)
	return plaintext, bound, err
}

// openValue opens the sealed value of env under key.
func openValue(key *[dataKeySize]byte, env envelope) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		return nil, err // only for a key of the wrong size: not here
	}
	plaintext, err := aead.Open(nil, env.nonce, env.sealed, env.header)
	if err != nil {
		return nil, corrupt(PartValue, "does not authenticate under its data key (the nonce, the sealed value, or the header it is bound to was altered)")
	}
	return plaintext, nil
}

// dataKey returns the data key of env: from the cache, or unwrapped once
// however many callers want it at the same moment.
func (k *Keyring) dataKey(ctx context.Context, env envelope) ([dataKeySize]byte, error) {
	h := sha256.Sum256(env.wrapped)
	// An entry can be dropped between the flight that stored it and this
	// caller's look (a full or expiring cache): then it is unwrapped again.
	for range 3 {
		if key, ok := k.lookup(h); ok {
			return key, nil
		}
		ch := k.flights.DoChan(string(h[:]), func() (any, error) {
			// Not canceled with this caller (others may wait on the
			// flight), but bounded by its deadline: what KMS cannot
			// answer by then, no reader is waiting for.
			fctx := context.WithoutCancel(ctx)
			if d, ok := ctx.Deadline(); ok {
				var cancel context.CancelFunc
				fctx, cancel = context.WithDeadline(fctx, d)
				defer cancel()
			}
			return k.fill(fctx, h, env)
		})
		var r singleflight.Result
		select {
		case <-ctx.Done():
			return [dataKeySize]byte{}, ctx.Err()
		case r = <-ch:
		}
		if r.Err != nil {
			return [dataKeySize]byte{}, r.Err
		}
		if key, ok := k.entryKey(r.Val.(*keyEntry)); ok {
			return key, nil
		}
	}
	return [dataKeySize]byte{}, errors.New("the data key cache drops keys as fast as they are unwrapped (CacheTTL or MaxCachedKeys too small)")
}

// fill unwraps env's data key into the cache, unless it is there by now (a
// flight for h ended between the caller's look and its own) or a failure to
// unwrap it with the same identities is remembered. It runs alone for h.
func (k *Keyring) fill(ctx context.Context, h [sha256.Size]byte, env envelope) (*keyEntry, error) {
	k.mu.Lock()
	e := k.keys[h]
	k.mu.Unlock()
	if e != nil {
		return e, nil
	}
	ids := k.identities()
	if err := k.failedBefore(h, ids); err != nil {
		return nil, err
	}
	key, err := k.unwrap(ctx, env, ids)
	if err != nil {
		k.rememberFailure(h, ids, err)
		return nil, err
	}
	defer clear(key[:])
	return k.store(h, &key), nil
}

// unwrap decrypts env's wrapped data key with the identities of the file,
// the extra ones, then AWS KMS. Every identity is tolerant (see
// notUnwrapped), so the first that unwraps wins whatever the others do; age
// identities come first so that no KMS call is made when one matches (age
// keeps the order of identities that are not its own types).
func (k *Keyring) unwrap(ctx context.Context, env envelope, ids *identitySet) ([dataKeySize]byte, error) {
	var key [dataKeySize]byte
	idents := make([]age.Identity, 0, len(ids.ids)+len(k.extra)+1)
	for _, id := range ids.ids {
		idents = append(idents, tolerant{id, true})
	}
	for _, id := range k.extra {
		idents = append(idents, tolerant{id, false})
	}
	idents = append(idents, &kmsIdentity{ctx: ctx, k: k, allowed: allowedKMS(ctx, env)})
	r, err := age.Decrypt(bytes.NewReader(env.wrapped), idents...)
	if err != nil {
		return key, k.unwrapError(err, env, ids)
	}
	if _, err := io.ReadFull(r, key[:]); err != nil {
		return key, &CorruptError{Part: PartWrappedKey, Reason: "payload", Err: err}
	}
	if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		clear(key[:])
		return key, &CorruptError{Part: PartWrappedKey, Reason: "payload is not one data key", Err: err}
	}
	return key, nil
}

// unwrapError explains why age.Decrypt failed.
func (k *Keyring) unwrapError(err error, env envelope, ids *identitySet) error {
	var noMatch *age.NoIdentityMatchError
	if !errors.As(err, &noMatch) {
		return &CorruptError{Part: PartWrappedKey, Reason: "not a valid age file", Err: err}
	}
	var failures []error
	for _, e := range noMatch.Errors {
		var nu *notUnwrapped
		if errors.As(e, &nu) {
			failures = append(failures, nu.failures...)
		}
	}
	for _, f := range failures {
		var c *CorruptError
		if errors.As(f, &c) {
			return c
		}
	}
	listed := env.recipientList()
	for _, r := range listed {
		if slices.Contains(ids.recipients, r) {
			// Age stanzas do not name their recipient, so only the list
			// can tell a damaged stanza of ours from a foreign one.
			return corrupt(PartWrappedKey, "it lists %s, whose identity is in %s, but no stanza unwraps with it", r, displayPath(k.idPath))
		}
	}
	idErr := ids.err
	if k.idPathErr != nil {
		idErr = k.idPathErr
	}
	return &NoMatchingKeyError{Recipients: listed, IdentitiesFile: k.idPath, IdentitiesErr: idErr, Failures: failures}
}

// lookup returns the cached data key for h.
func (k *Keyring) lookup(h [sha256.Size]byte) ([dataKeySize]byte, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.sweepLocked()
	if e := k.keys[h]; e != nil {
		return e.key, true
	}
	return [dataKeySize]byte{}, false
}

// entryKey returns e's key unless e was dropped.
func (k *Keyring) entryKey(e *keyEntry) ([dataKeySize]byte, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if e.dropped {
		return [dataKeySize]byte{}, false
	}
	return e.key, true
}

// store caches key as the data key of h and returns its entry.
func (k *Keyring) store(h [sha256.Size]byte, key *[dataKeySize]byte) *keyEntry {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.sweepLocked()
	e := &keyEntry{hash: h, key: *key, expires: k.now().Add(k.ttl)}
	if old := k.keys[h]; old != nil {
		k.dropLocked(old)
	}
	for len(k.keys) >= k.maxKeys {
		k.dropLocked(k.fifo[0])
	}
	k.keys[h] = e
	k.fifo = append(k.fifo, e)
	k.scheduleSweepLocked()
	return e
}

// dropLocked zeroes e and removes it from the cache.
func (k *Keyring) dropLocked(e *keyEntry) {
	clear(e.key[:])
	e.dropped = true
	delete(k.keys, e.hash)
	if i := slices.Index(k.fifo, e); i >= 0 {
		k.fifo[i] = nil // no reference left in the array's spare room
		k.fifo = slices.Delete(k.fifo, i, i+1)
	}
}

// sweepLocked drops the expired keys and failures.
func (k *Keyring) sweepLocked() {
	now := k.now()
	for len(k.fifo) > 0 && !now.Before(k.fifo[0].expires) {
		k.dropLocked(k.fifo[0])
	}
	for h, f := range k.failures {
		if !now.Before(f.until) {
			delete(k.failures, h)
		}
	}
}

// scheduleSweepLocked arms the timer that drops keys when they expire,
// should nobody look them up by then.
func (k *Keyring) scheduleSweepLocked() {
	if k.sweep != nil || len(k.fifo) == 0 {
		return
	}
	// Now may be a test's clock: keep the real wait sane.
	d := min(max(k.fifo[0].expires.Sub(k.now()), 10*time.Millisecond), k.ttl)
	k.sweep = time.AfterFunc(d, func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		k.sweep = nil
		k.sweepLocked()
		k.scheduleSweepLocked()
	})
}

// failedBefore returns the remembered error of an unwrap of h with ids.
func (k *Keyring) failedBefore(h [sha256.Size]byte, ids *identitySet) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	f, ok := k.failures[h]
	if !ok || f.ids != ids || !k.now().Before(f.until) {
		return nil
	}
	return f.err
}

// rememberFailure remembers a failed unwrap of h with ids.
func (k *Keyring) rememberFailure(h [sha256.Size]byte, ids *identitySet, err error) {
	if k.failTTL < 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.failures) >= k.maxKeys {
		clear(k.failures)
	}
	k.failures[h] = failure{err: err, until: k.now().Add(k.failTTL), ids: ids}
}

// Close zeroes and forgets every data key the Keyring holds now, and stops
// its timer. The Keyring still works afterwards (and caches again).
func (k *Keyring) Close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.sweep != nil {
		k.sweep.Stop()
		k.sweep = nil
	}
	for len(k.fifo) > 0 {
		k.dropLocked(k.fifo[0])
	}
	clear(k.failures)
}

// identitySet is the identities file as read once.
type identitySet struct {
	info       os.FileInfo // nil if it could not be stat'ed
	ids        []age.Identity
	recipients []string // the public keys of ids
	err        error    // why it gave no identities
}

// identities returns the identities of the file, read again if it changed
// (another inode, size or modification time) since the last call.
func (k *Keyring) identities() *identitySet {
	if k.idPathErr != nil {
		return &identitySet{err: k.idPathErr}
	}
	info, statErr := os.Stat(k.idPath)
	k.idMu.Lock()
	defer k.idMu.Unlock()
	if old := k.ids; old != nil && sameFileVersion(old.info, info) {
		return old
	}
	set := &identitySet{info: info, err: statErr}
	if statErr == nil {
		set.ids, set.err = readIdentities(k.idPath)
	}
	for _, id := range set.ids {
		switch id := id.(type) {
		case *age.X25519Identity:
			set.recipients = append(set.recipients, id.Recipient().String())
		case *age.HybridIdentity:
			set.recipients = append(set.recipients, id.Recipient().String())
		}
	}
	k.ids = set
	return set
}

func sameFileVersion(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// readIdentities parses an age identities file. age's errors name a line,
// never a key.
func readIdentities(path string) ([]age.Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return age.ParseIdentities(f)
}
