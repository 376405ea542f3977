package secrets

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"filippo.io/age"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"

	"github.com/escfs/escfs/providers"
	"github.com/escfs/escfs/providers/awsclient"
)

// kmsStanzaType is the type of the age stanza of a KMS recipient; its one
// argument is the key ARN and its body the KMS ciphertext of age's file key.
const kmsStanzaType = "escfs-awskms"

// kmsEncryptionContext is sent with every KMS Encrypt and Decrypt: it says
// what the ciphertext is for (CloudTrail shows it), and a KMS ciphertext made
// for anything else does not decrypt as an escfs file key.
var kmsEncryptionContext = map[string]string{"escfs": "age-file-key"}

// kmsARN matches a KMS key ARN or alias ARN; the second group is the region.
var kmsARN = regexp.MustCompile(`^arn:aws[a-z-]*:kms:([a-z0-9-]+):[0-9]{12}:(key/[A-Za-z0-9-]+|alias/[A-Za-z0-9/_-]+)$`)

// kmsRegion returns the region of a KMS key ARN, or false if s is no KMS key
// or alias ARN.
func kmsRegion(s string) (string, bool) {
	m := kmsARN.FindStringSubmatch(s)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// KMSError is a failed AWS KMS call for one key. Its message names the key
// ARN, the operation, and AWS's error code and message (or that the endpoint
// could not be reached); AWS error messages carry no request parameters, so
// it holds no key material.
type KMSError struct {
	KeyARN string // the key the call was for
	Op     string // "kms:Encrypt" or "kms:Decrypt"
	Code   string // AWS's error code ("AccessDeniedException"), "" if AWS did not answer
	Err    error  // the SDK's error
}

// Error says which key, which call and what AWS answered.
func (e *KMSError) Error() string {
	return fmt.Sprintf("AWS KMS key %s: %v", e.KeyARN, awsclient.Describe(e.Op, e.Err))
}

// Unwrap returns the SDK's error.
func (e *KMSError) Unwrap() error { return e.Err }

func newKMSError(op, arn string, err error) *KMSError {
	e := &KMSError{KeyARN: arn, Op: op, Err: err}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		e.Code = apiErr.ErrorCode()
	}
	return e
}

// kmsClient returns the KMS client of region, building it once.
func (k *Keyring) kmsClient(ctx context.Context, region string) (*kms.Client, error) {
	k.kmsMu.Lock()
	defer k.kmsMu.Unlock()
	if c, ok := k.kmsClients[region]; ok {
		return c, nil
	}
	cfg, err := k.awsConfig(ctx, region)
	if err != nil {
		return nil, err
	}
	c := kms.NewFromConfig(cfg)
	k.kmsClients[region] = c
	return c, nil
}

// defaultAWSConfig is the SDK's default configuration chain in region.
func defaultAWSConfig(ctx context.Context, region string) (aws.Config, error) {
	return awsclient.Load(ctx, awsclient.Options{Region: region})
}

// kmsCall runs one KMS call for arn, bounded by providers.CallTimeout.
func kmsCall[T any](ctx context.Context, k *Keyring, op, arn string, call func(context.Context, *kms.Client) (T, error)) (T, error) {
	var zero T
	region, ok := kmsRegion(arn)
	if !ok {
		return zero, &KMSError{KeyARN: arn, Op: op, Err: errors.New("not a KMS key ARN")}
	}
	ctx, cancel := providers.WithCallTimeout(ctx)
	defer cancel()
	client, err := k.kmsClient(ctx, region)
	if err != nil {
		return zero, &KMSError{KeyARN: arn, Op: op, Err: err}
	}
	out, err := call(ctx, client)
	if err != nil {
		return zero, newKMSError(op, arn, err)
	}
	return out, nil
}

// kmsRecipient is an age recipient that wraps the file key with KMS Encrypt.
// It lives for one NewSealer call, whose context it carries (age's Wrap has
// none).
type kmsRecipient struct {
	ctx context.Context
	k   *Keyring
	arn string
}

var _ age.Recipient = (*kmsRecipient)(nil)

// Wrap encrypts age's file key with KMS Encrypt into one stanza.
func (r *kmsRecipient) Wrap(fileKey []byte) ([]*age.Stanza, error) {
	out, err := kmsCall(r.ctx, r.k, "kms:Encrypt", r.arn, func(ctx context.Context, c *kms.Client) (*kms.EncryptOutput, error) {
		return c.Encrypt(ctx, &kms.EncryptInput{KeyId: &r.arn, Plaintext: fileKey, EncryptionContext: kmsEncryptionContext})
	})
	if err != nil {
		return nil, err
	}
	return []*age.Stanza{{Type: kmsStanzaType, Args: []string{r.arn}, Body: out.CiphertextBlob}}, nil
}

// kmsIdentity is an age identity that unwraps escfs-awskms stanzas with KMS
// Decrypt, trying each KMS key of the file until one succeeds. It lives for
// one unwrap, whose context it carries.
type kmsIdentity struct {
	ctx     context.Context
	k       *Keyring
	allowed func(arn string) bool // the keys that may be tried; nil: any
}

// maxKMSTries bounds the KMS Decrypt calls of one unwrap, whatever the
// envelope lists and the rules allow.
const maxKMSTries = 8

var _ age.Identity = (*kmsIdentity)(nil)

// Unwrap tries KMS Decrypt on each escfs-awskms stanza in turn.
func (id *kmsIdentity) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	var failures []error
	tried := map[string]bool{}
	skipped := 0
	for _, s := range stanzas {
		if s.Type != kmsStanzaType {
			continue
		}
		if len(s.Args) != 1 {
			failures = append(failures, corrupt(PartWrappedKey, "%s stanza with %d arguments", kmsStanzaType, len(s.Args)))
			continue
		}
		arn := s.Args[0]
		// Only a key the rule names, once, and a few at most: the stanzas
		// are whoever wrote the file's to choose, and each try is a call
		// to KMS with the reader's credentials.
		if tried[arn] || (id.allowed != nil && !id.allowed(arn)) || len(tried) >= maxKMSTries {
			skipped++
			continue
		}
		tried[arn] = true
		out, err := kmsCall(id.ctx, id.k, "kms:Decrypt", arn, func(ctx context.Context, c *kms.Client) (*kms.DecryptOutput, error) {
			return c.Decrypt(ctx, &kms.DecryptInput{KeyId: &arn, CiphertextBlob: s.Body, EncryptionContext: kmsEncryptionContext})
		})
		if err != nil {
			failures = append(failures, err)
			continue
		}
		return out.Plaintext, nil
	}
	if skipped > 0 {
		failures = append(failures, &SkippedKMSError{Stanzas: skipped})
	}
	if len(failures) == 0 {
		return nil, age.ErrIncorrectIdentity
	}
	return nil, &notUnwrapped{failures}
}

// notUnwrapped is what an identity of a Keyring returns when it tried and
// failed. It wraps age.ErrIncorrectIdentity, so that age.Decrypt goes on to
// the next identity instead of stopping (a denied KMS key must not hide a
// matching age identity, nor the reverse), and the failures, which
// age.Decrypt hands back in its NoIdentityMatchError.
type notUnwrapped struct {
	failures []error
}

func (e *notUnwrapped) Error() string {
	msgs := make([]string, len(e.failures))
	for i, f := range e.failures {
		msgs[i] = f.Error()
	}
	return strings.Join(msgs, "; ")
}

func (e *notUnwrapped) Unwrap() []error {
	return append([]error{age.ErrIncorrectIdentity}, e.failures...)
}

// tolerant makes an identity's errors other than age.ErrIncorrectIdentity
// non-fatal for age.Decrypt, keeping them; see notUnwrapped. asCorrupt says
// such an error means the stanza is malformed (age's own identities fail
// only so).
type tolerant struct {
	age.Identity
	asCorrupt bool
}

func (t tolerant) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	key, err := t.Identity.Unwrap(stanzas)
	if err == nil || errors.Is(err, age.ErrIncorrectIdentity) {
		return key, err
	}
	if t.asCorrupt {
		err = &CorruptError{Part: PartWrappedKey, Reason: "malformed stanza", Err: err}
	}
	return nil, &notUnwrapped{[]error{err}}
}

// SkippedKMSError counts the KMS stanzas of an envelope that were not tried:
// for a key the rules do not name for the value's environment, for a key
// already tried, or past the bound on calls per unwrap.
type SkippedKMSError struct {
	Stanzas int
}

func (e *SkippedKMSError) Error() string {
	return fmt.Sprintf("%d KMS stanzas not tried (a key no rule of .escfs.yaml names for this environment, a repeated key, or more than %d keys)", e.Stanzas, maxKMSTries)
}

// rulesKey is the context key of WithRules.
type rulesKey struct{}

// WithRules returns ctx carrying the secrets rules that decide which AWS KMS
// keys a decryption under it may call: for a version-2 value, the KMS keys
// of the rule for the environment it is bound to; for a version-1 value,
// those of any rule. Without rules in the context every KMS stanza may be
// tried (at most 8 distinct keys per data key either way).
func WithRules(ctx context.Context, r *Rules) context.Context {
	return context.WithValue(ctx, rulesKey{}, r)
}

// allowedKMS returns which KMS keys may be tried for env, by the rules of
// ctx; nil means any.
func allowedKMS(ctx context.Context, env envelope) func(string) bool {
	r, ok := ctx.Value(rulesKey{}).(*Rules)
	if !ok {
		return nil
	}
	keys := map[string]bool{}
	if env.version == envelopeVersion {
		project, name, _ := strings.Cut(env.binding.Env, "/")
		if rule, ok := r.For(project, name); ok {
			for _, k := range rule.AWSKMS {
				keys[k] = true
			}
		}
	} else if r != nil {
		for _, rule := range r.Rules {
			for _, k := range rule.AWSKMS {
				keys[k] = true
			}
		}
	}
	return func(arn string) bool { return keys[arn] }
}
