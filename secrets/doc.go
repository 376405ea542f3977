// Package secrets encrypts fn::secret values at rest, as sops does: a team
// keeps its definitions in git with every secret encrypted to the team's age
// keys and AWS KMS keys, and escfs decrypts them in memory with whichever of
// those keys the reader holds.
//
// It implements pulumi/esc's eval.Encrypter (Sealer) and eval.Decrypter
// (Keyring). esc wraps what Sealer.Encrypt returns in its own outer envelope
// ("escx", a uint32 version, the bytes below, a crc32; base64 in the YAML as
// `fn::secret: {ciphertext: ...}`) and hands the bytes below back to
// Keyring.Decrypt during evaluation.
//
// # Envelope
//
// Every encrypted value is one self-contained envelope:
//
//	offset  size  field
//	0       1     version: 0x01. Any other value is refused with
//	              ErrUnknownVersion ("a newer escfs wrote it").
//	1       v     recipient count n, uvarint (minimal encoding; at most 256)
//	        n ×   one recipient: uvarint length (1..1024), then that many
//	              bytes of printable ASCII: an age X25519 recipient
//	              ("age1...") or an AWS KMS key ARN ("arn:aws:kms:...").
//	              Public and informative: it names who can decrypt (error
//	              messages, EnvelopeRecipients, Keyring.Reuse); keys are
//	              not chosen by it, but it is authenticated (see below).
//	        v     wrapped data key length w, uvarint (1..65536)
//	        w     wrapped data key: a binary (not armored) age file
//	              (age-encryption.org/v1) whose plaintext is the 32-byte
//	              data key, encrypted to every recipient: one "X25519"
//	              stanza per age recipient, one "escfs-awskms" stanza per
//	              KMS key (args: [key ARN]; body: the CiphertextBlob of
//	              KMS Encrypt of age's 16-byte file key, with encryption
//	              context {"escfs": "age-file-key"}).
//	        24    nonce: random, for XChaCha20-Poly1305
//	        rest  sealed value: XChaCha20-Poly1305 under the data key of the
//	              plaintext, with its 16-byte tag; the additional data is
//	              every byte before the nonce (version, recipient list and
//	              wrapped data key), so a value cannot be moved under
//	              another wrapped key or recipient list.
//
// One data key serves one file write: a Sealer holds one data key and its
// wrapped form, and every value it seals starts with the same header bytes
// (everything before the nonce). Decrypting a file therefore costs one unwrap
// (at most one KMS Decrypt) per distinct data key: the Keyring keeps
// unwrapped data keys in memory only, keyed by the SHA-256 of the wrapped
// bytes, for a bounded time (KeyringOptions.CacheTTL, 5 minutes by default,
// counted from the unwrap so that a revoked key stops working within it) and
// a bounded count, and zeroes them when it drops them. A failed unwrap is
// remembered briefly too (KeyringOptions.FailureTTL), so that the other values
// of a file whose key is denied or unreachable fail at once rather than each
// asking KMS again.
//
// The cryptography is age's and x/crypto's chacha20poly1305, composed; this
// package adds only the framing above and the AWS KMS recipient and identity
// for age.
//
// # Keys
//
// Age identities come from an identities file in age-keygen format
// (KeyringOptions.IdentitiesFile, else $ESCFS_AGE_IDENTITIES, else
// os.UserConfigDir()/escfs/age/identities.txt), re-read when it changes, so
// that a Keygen after a mount started is seen. KMS keys are used with the
// AWS SDK's default credential chain, in the region named by each key ARN;
// AWS_ENDPOINT_URL_KMS and AWS_ENDPOINT_URL apply. Age identities are tried
// before KMS (no KMS call when an age identity matches), and a failing key
// never hides another: any one key of the recipients decrypts.
//
// # Rules
//
// LoadRules reads DIR/.escfs.yaml, whose `secrets:` list says, like
// .sops.yaml's creation_rules, which recipients the values of which
// environments are encrypted to (first match wins).
//
// Nothing here logs, and no error holds a plaintext or key byte.
package secrets
