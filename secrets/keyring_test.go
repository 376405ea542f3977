package secrets

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	esceval "github.com/pulumi/esc/eval"
	"golang.org/x/crypto/chacha20poly1305"
)

// TestAgeRoundTrip: keygen, seal, then a fresh Keyring with the identity
// decrypts, also through esc's own outer envelope.
func TestAgeRoundTrip(t *testing.T) {
	ctx := context.Background()
	idPath, rec := newIdentity(t)
	big := bytes.Repeat([]byte{0, 1, 0xff, '\n'}, 1<<14)
	tests := []struct {
		name      string
		plaintext []byte
	}{
		{"empty", nil},
		{"short", []byte("hunter2")},
		{"unicode and newlines", []byte("päss\nwörd\x00")},
		{"64 KiB binary", big},
	}
	sealer, err := newKeyring(t, KeyringOptions{}).NewSealer(ctx, []string{rec})
	if err != nil {
		t.Fatal(err)
	}
	k := newKeyring(t, KeyringOptions{IdentitiesFile: idPath})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inner, err := sealer.For(testBinding).Encrypt(ctx, tt.plaintext)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(inner, tt.plaintext) && len(tt.plaintext) > 4 {
				t.Fatal("the envelope holds the plaintext")
			}
			got, err := k.Decrypt(ctx, inner)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.plaintext) {
				t.Fatalf("got %q, want %q", got, tt.plaintext)
			}

			// The same through esc's outer envelope, as the YAML holds it.
			outer, err := esceval.EncryptSecret(ctx, sealer.For(testBinding), tt.plaintext)
			if err != nil {
				t.Fatal(err)
			}
			encoded := base64.StdEncoding.EncodeToString(outer)
			got, err = esceval.DecryptSecret(ctx, k, encoded)
			if err != nil || !bytes.Equal(got, tt.plaintext) {
				t.Fatalf("through esc: %q, %v", got, err)
			}
			in, err := Inner(encoded)
			if err != nil {
				t.Fatal(err)
			}
			if recs, err := EnvelopeRecipients(in); err != nil || !slices.Equal(recs, []string{rec}) {
				t.Fatalf("EnvelopeRecipients(Inner(...)) = %v, %v", recs, err)
			}
		})
	}
}

// TestEitherRecipientDecrypts: a value sealed to two recipients opens with
// either identity alone; a third fails and says to whom it was encrypted and
// where identities were looked for.
func TestEitherRecipientDecrypts(t *testing.T) {
	ctx := context.Background()
	pathA, recA := newIdentity(t)
	pathB, recB := newIdentity(t)
	pathC, recC := newIdentity(t)
	inner := seal(t, []string{recA, recB}, "s3cret")[0]

	for _, tt := range []struct {
		name    string
		idPath  string
		wantErr bool
	}{
		{"first recipient", pathA, false},
		{"second recipient", pathB, false},
		{"identity not among the recipients", pathC, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newKeyring(t, KeyringOptions{IdentitiesFile: tt.idPath}).Decrypt(ctx, inner)
			if !tt.wantErr {
				if err != nil || string(got) != "s3cret" {
					t.Fatalf("got %q, %v", got, err)
				}
				return
			}
			if !errors.Is(err, ErrNoMatchingKey) {
				t.Fatalf("err = %v, want ErrNoMatchingKey", err)
			}
			msg := err.Error()
			for _, want := range []string{recA, recB, displayPath(tt.idPath), "no age identity in"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not name %q", msg, want)
				}
			}
			if strings.Contains(msg, recC) || strings.Contains(msg, "s3cret") {
				t.Errorf("error %q names the foreign recipient or the plaintext", msg)
			}
		})
	}
}

// TestNoIdentitiesFile: a missing identities file says so, and where.
func TestNoIdentitiesFile(t *testing.T) {
	_, rec := newIdentity(t)
	inner := seal(t, []string{rec}, "v")[0]
	missing := filepath.Join(t.TempDir(), "nope", "identities.txt")
	k := newKeyring(t, KeyringOptions{IdentitiesFile: missing, AWSConfig: noAWS})
	_, err := k.Decrypt(context.Background(), inner)
	if !errors.Is(err, ErrNoMatchingKey) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNoMatchingKey and ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), missing+" does not exist") || !strings.Contains(err.Error(), rec) {
		t.Fatalf("error %q does not say that %s does not exist", err, missing)
	}
}

// TestIdentitiesFileReread: a Keyring made before its identities file
// exists, and before it holds the right identity, sees each change at the
// next miss, although the failure before it is remembered.
func TestIdentitiesFileReread(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "age", "identities.txt")
	k := newKeyring(t, KeyringOptions{IdentitiesFile: path, AWSConfig: noAWS})
	otherPath, otherRec := newIdentity(t) // the value's recipient
	inner := seal(t, []string{otherRec}, "late")[0]

	if _, err := k.Decrypt(ctx, inner); !errors.Is(err, ErrNoMatchingKey) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("no file: err = %v", err)
	}
	if _, err := Keygen(path); err != nil { // a file, but the wrong identity
		t.Fatal(err)
	}
	if _, err := k.Decrypt(ctx, inner); !errors.Is(err, ErrNoMatchingKey) || errors.Is(err, os.ErrNotExist) {
		t.Fatalf("wrong identity: err = %v", err)
	}
	other, err := os.ReadFile(otherPath)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(other); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got, err := k.Decrypt(ctx, inner)
	if err != nil || string(got) != "late" {
		t.Fatalf("after the identity was added: %q, %v", got, err)
	}
}

// TestCorruptEnvelope truncates an envelope at every length and flips every
// byte: each is refused as corrupt, naming the part at fault, and never
// decrypts. A flip of the version byte is an unknown version.
func TestCorruptEnvelope(t *testing.T) {
	ctx := context.Background()
	idPath, rec := newIdentity(t)
	_, rec2 := newIdentity(t)
	inner := seal(t, []string{rec, rec2}, "the plaintext")[0]
	env, err := parseEnvelope(inner)
	if err != nil {
		t.Fatal(err)
	}
	// The parts' boundaries.
	recEnd := 1 + len(env.recipients) + uvarintLen(uint64(env.count))
	bindStart := len(env.header) - len(appendBinding(nil, env.binding))
	wrapStart := bindStart - len(env.wrapped)
	nonceStart := len(env.header)
	sealedStart := nonceStart + nonceSize
	k := newKeyring(t, KeyringOptions{IdentitiesFile: idPath, AWSConfig: noAWS})
	if _, err := k.Decrypt(ctx, inner); err != nil {
		t.Fatal(err)
	}

	t.Run("truncated", func(t *testing.T) {
		for n := 0; n < len(inner); n++ {
			want := ""
			switch {
			case n == 0:
				want = PartVersion
			case n < recEnd:
				want = PartRecipients
			case n < wrapStart:
				want = PartWrappedKey // its length
			case n < bindStart:
				want = PartWrappedKey
			case n < nonceStart:
				want = PartBinding
			case n < sealedStart:
				want = PartNonce
			default:
				want = PartValue
			}
			_, err := k.Decrypt(ctx, inner[:n])
			var c *CorruptError
			if !errors.As(err, &c) || !errors.Is(err, ErrCorrupt) || c.Part != want {
				t.Fatalf("truncated to %d of %d bytes: err = %v, want a corrupt %s", n, len(inner), err, want)
			}
		}
	})

	t.Run("flipped", func(t *testing.T) {
		for i := range inner {
			for _, mask := range []byte{0x01, 0x80} {
				bad := bytes.Clone(inner)
				bad[i] ^= mask
				got, err := k.Decrypt(ctx, bad)
				if err == nil {
					t.Fatalf("byte %d ^ %#x: decrypted to %q", i, mask, got)
				}
				if i == 0 {
					if !errors.Is(err, ErrUnknownVersion) {
						t.Fatalf("version byte ^ %#x: err = %v", mask, err)
					}
					continue
				}
				var c *CorruptError
				if !errors.As(err, &c) {
					t.Fatalf("byte %d ^ %#x: err = %v, want ErrCorrupt", i, mask, err)
				}
				want := "" // any part where a length is hit
				switch {
				case i >= nonceStart:
					want = PartValue
				case i >= bindStart:
					// a flipped binding byte either breaks its framing or
					// fails to authenticate
					if c.Part != PartBinding && c.Part != PartValue {
						t.Fatalf("byte %d ^ %#x: %v, want a corrupt binding or value", i, mask, err)
					}
				case i >= wrapStart:
					want = PartWrappedKey
				}
				if want != "" && c.Part != want {
					t.Fatalf("byte %d ^ %#x: %v, want a corrupt %s", i, mask, err, want)
				}
				if strings.Contains(err.Error(), "the plaintext") {
					t.Fatalf("error holds the plaintext: %v", err)
				}
			}
		}
	})
}

// TestUnknownVersion: any version byte but 1 and 2 is refused as unknown, saying
// which.
func TestUnknownVersion(t *testing.T) {
	_, rec := newIdentity(t)
	inner := seal(t, []string{rec}, "v")[0]
	k := newKeyring(t, KeyringOptions{})
	for _, v := range []byte{0, 3, 0x7f, 0xff} {
		bad := bytes.Clone(inner)
		bad[0] = v
		_, err := k.Decrypt(context.Background(), bad)
		want := fmt.Sprintf("unknown escfs envelope version %d; a newer escfs wrote it", v)
		var u *UnknownVersionError
		if !errors.Is(err, ErrUnknownVersion) || !errors.As(err, &u) || u.Version != v || err.Error() != want {
			t.Errorf("version %d: err = %v, want %q", v, err, want)
		}
		if _, err := EnvelopeRecipients(bad); !errors.Is(err, ErrUnknownVersion) {
			t.Errorf("EnvelopeRecipients, version %d: err = %v", v, err)
		}
	}
}

// TestAADBindsHeader: a value moved under another Sealer's header (another
// wrapped data key), or under a changed recipient list, no longer decrypts,
// although that keyring holds both data keys.
func TestAADBindsHeader(t *testing.T) {
	ctx := context.Background()
	idPath, rec := newIdentity(t)
	_, rec2 := newIdentity(t)
	k := newKeyring(t, KeyringOptions{IdentitiesFile: idPath})
	s1, err := k.NewSealer(ctx, []string{rec})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := k.NewSealer(ctx, []string{rec})
	if err != nil {
		t.Fatal(err)
	}
	v1, _ := s1.For(testBinding).Encrypt(ctx, []byte("one"))
	v2, _ := s2.For(testBinding).Encrypt(ctx, []byte("two"))
	e1, _ := parseEnvelope(v1)
	e2, _ := parseEnvelope(v2)

	// The same data key under another recipient list, or wrapped again (as
	// re-keying a file to new recipients would): only the additional data
	// tells these from the header the value was sealed under.
	relisted := appendBinding(appendHeader(nil, []string{rec2}, e1.wrapped), testBinding)
	key1, err := k.dataKey(ctx, e1)
	if err != nil {
		t.Fatal(err)
	}
	var rewrapped bytes.Buffer
	w, err := age.Encrypt(&rewrapped, ageRecipient(t, rec))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(key1[:])
	w.Close()
	rewrappedHeader := appendHeader(nil, []string{rec}, rewrapped.Bytes())
	rewrappedAD := appendBinding(slices.Clone(rewrappedHeader), testBinding)
	for _, tt := range []struct {
		name   string
		header []byte
		body   []byte
	}{
		{"value of the first under the second's wrapped key", e2.header, v1[len(e1.header):]},
		{"value of the second under the first's wrapped key", e1.header, v2[len(e2.header):]},
		{"value under another recipient list", relisted, v1[len(e1.header):]},
		{"value under its data key wrapped again", rewrappedAD, v1[len(e1.header):]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			moved := append(bytes.Clone(tt.header), tt.body...)
			got, err := k.Decrypt(ctx, moved)
			var c *CorruptError
			if !errors.As(err, &c) || c.Part != PartValue {
				t.Fatalf("got %q, %v; want a corrupt sealed value", got, err)
			}
		})
	}
	// Controls: in place, both decrypt with this keyring, and so does a
	// value sealed under the re-wrapped header.
	resealed, err := (&Sealer{header: rewrappedHeader, key: key1, ok: true}).For(testBinding).Encrypt(ctx, []byte("three"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range [][]byte{v1, v2, resealed} {
		if _, err := k.Decrypt(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCacheOneUnwrap: the values of one Sealer cost one unwrap however many
// are decrypted, concurrently or not; each Sealer's data key one more.
func TestCacheOneUnwrap(t *testing.T) {
	ctx := context.Background()
	idPath, rec := newIdentity(t)
	id := &countingIdentity{Identity: parseIdentity(t, idPath), delay: 50 * time.Millisecond}
	k := newKeyring(t, KeyringOptions{Identities: []age.Identity{id}})

	const n = 50
	plaintexts := make([]string, n)
	for i := range plaintexts {
		plaintexts[i] = fmt.Sprintf("value-%d", i)
	}
	first := seal(t, []string{rec}, plaintexts...)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, inner := range first {
		wg.Go(func() {
			got, err := k.Decrypt(ctx, inner)
			if err == nil && string(got) != plaintexts[i] {
				err = fmt.Errorf("value %d: got %q", i, got)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := id.calls.Load(); got != 1 {
		t.Fatalf("%d values of one Sealer: %d unwraps, want 1", n, got)
	}
	for _, inner := range seal(t, []string{rec}, plaintexts...) {
		if _, err := k.Decrypt(ctx, inner); err != nil {
			t.Fatal(err)
		}
	}
	if got := id.calls.Load(); got != 2 {
		t.Fatalf("two Sealers: %d unwraps, want 2", got)
	}
}

// TestFillFindsCachedKey: a flight that starts just after another stored
// the key (its caller missed before that) takes the stored key instead of
// unwrapping again. The interleaving is too narrow to provoke from outside,
// so the flight's function is called directly.
func TestFillFindsCachedKey(t *testing.T) {
	ctx := context.Background()
	idPath, rec := newIdentity(t)
	id := &countingIdentity{Identity: parseIdentity(t, idPath)}
	k := newKeyring(t, KeyringOptions{Identities: []age.Identity{id}})
	inner := seal(t, []string{rec}, "v")[0]
	if _, err := k.Decrypt(ctx, inner); err != nil {
		t.Fatal(err)
	}
	env, _ := parseEnvelope(inner)
	e, err := k.fill(ctx, sha256.Sum256(env.wrapped), env)
	if err != nil || e.dropped {
		t.Fatalf("fill: %+v, %v", e, err)
	}
	if got := id.calls.Load(); got != 1 {
		t.Fatalf("%d unwraps, want 1", got)
	}
}

// TestCacheTTL: a data key is unwrapped again once its time is up, not
// before, and the dropped key's bytes are zeroed.
func TestCacheTTL(t *testing.T) {
	ctx := context.Background()
	idPath, rec := newIdentity(t)
	id := &countingIdentity{Identity: parseIdentity(t, idPath)}
	clock := newFakeClock()
	const ttl = time.Minute
	k := newKeyring(t, KeyringOptions{Identities: []age.Identity{id}, CacheTTL: ttl, Now: clock.Now})
	inner := seal(t, []string{rec}, "v")[0]

	steps := []struct {
		advance time.Duration
		want    int64 // unwraps so far
	}{
		{0, 1},
		{ttl - time.Nanosecond, 1},
		{time.Nanosecond, 2}, // exactly ttl after the unwrap
		{ttl / 2, 2},
		{ttl, 3},
	}
	var last *keyEntry // the entry cached at the previous step
	for i, s := range steps {
		clock.Advance(s.advance)
		if _, err := k.Decrypt(ctx, inner); err != nil {
			t.Fatal(err)
		}
		if got := id.calls.Load(); got != s.want {
			t.Fatalf("step %d (+%v): %d unwraps, want %d", i, s.advance, got, s.want)
		}
		k.mu.Lock()
		if last != nil && i > 0 && s.want != steps[i-1].want && (!last.dropped || last.key != [dataKeySize]byte{}) {
			t.Errorf("step %d: the expired data key was not dropped and zeroed", i)
		}
		if len(k.keys) != 1 {
			t.Errorf("step %d: %d keys cached, want 1", i, len(k.keys))
		}
		for _, e := range k.keys {
			last = e
		}
		k.mu.Unlock()
	}
}

// TestCacheBound: no more than MaxCachedKeys data keys are kept; the oldest
// goes first.
func TestCacheBound(t *testing.T) {
	ctx := context.Background()
	idPath, rec := newIdentity(t)
	id := &countingIdentity{Identity: parseIdentity(t, idPath)}
	k := newKeyring(t, KeyringOptions{Identities: []age.Identity{id}, MaxCachedKeys: 2})
	var values [][]byte
	for i := range 3 {
		values = append(values, seal(t, []string{rec}, fmt.Sprint(i))[0])
	}
	for _, step := range []struct {
		value int
		want  int64
	}{{0, 1}, {1, 2}, {0, 2}, {2, 3}, {1, 3}, {0, 4}} {
		if _, err := k.Decrypt(ctx, values[step.value]); err != nil {
			t.Fatal(err)
		}
		if got := id.calls.Load(); got != step.want {
			t.Fatalf("after value %d: %d unwraps, want %d", step.value, got, step.want)
		}
		k.mu.Lock()
		n := len(k.keys)
		k.mu.Unlock()
		if n > 2 {
			t.Fatalf("%d keys cached, bound 2", n)
		}
	}
}

// TestFailureRemembered: the values of a file no key opens cost one unwrap
// attempt, not one each, until FailureTTL passes.
func TestFailureRemembered(t *testing.T) {
	ctx := context.Background()
	_, rec := newIdentity(t)
	otherPath, _ := newIdentity(t)
	id := &countingIdentity{Identity: parseIdentity(t, otherPath)}
	clock := newFakeClock()
	k := newKeyring(t, KeyringOptions{Identities: []age.Identity{id}, Now: clock.Now, AWSConfig: noAWS})
	values := seal(t, []string{rec}, "a", "b", "c", "d")
	for _, v := range values {
		if _, err := k.Decrypt(ctx, v); !errors.Is(err, ErrNoMatchingKey) {
			t.Fatalf("err = %v", err)
		}
	}
	if got := id.calls.Load(); got != 1 {
		t.Fatalf("%d values: %d unwrap attempts, want 1", len(values), got)
	}
	clock.Advance(DefaultFailureTTL)
	if _, err := k.Decrypt(ctx, values[0]); !errors.Is(err, ErrNoMatchingKey) {
		t.Fatalf("err = %v", err)
	}
	if got := id.calls.Load(); got != 2 {
		t.Fatalf("after FailureTTL: %d unwrap attempts, want 2", got)
	}
}

// TestIdentitiesTolerated: an identity that fails (a broken plugin) hides
// neither the age identity of the file, which is tried first, nor KMS; and
// the identities file's are tried before the extra ones.
func TestIdentitiesTolerated(t *testing.T) {
	ctx := context.Background()
	idPath, rec := newIdentity(t)
	broken := &failingIdentity{}
	k := newKeyring(t, KeyringOptions{IdentitiesFile: idPath, Identities: []age.Identity{broken}})
	inner := seal(t, []string{rec}, "v")[0]
	if got, err := k.Decrypt(ctx, inner); err != nil || string(got) != "v" {
		t.Fatalf("got %q, %v", got, err)
	}
	if n := broken.calls.Load(); n != 0 {
		t.Fatalf("the extra identity was asked %d times before the file's", n)
	}

	// With no identity of its own, the broken one's error is reported.
	_, foreign := newIdentity(t)
	other := seal(t, []string{foreign}, "v")[0]
	_, err := k.Decrypt(ctx, other)
	if !errors.Is(err, ErrNoMatchingKey) || !errors.Is(err, errFailingIdentity) {
		t.Fatalf("err = %v, want ErrNoMatchingKey carrying the identity's error", err)
	}
}

// TestBinding: a version-2 value opens only at the binding it was sealed
// with; moved, it is a *MisplacedError naming where it belongs, and a
// binding rewritten to match where it was moved no longer opens. A
// version-1 value, bound to nothing, still decrypts.
func TestBinding(t *testing.T) {
	ctx := context.Background()
	path, rec := newIdentity(t)
	k := newKeyring(t, KeyringOptions{IdentitiesFile: path, AWSConfig: noAWS})
	s, err := k.NewSealer(ctx, []string{rec})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	prod := Binding{Env: "app/prod", Path: "db.password"}
	dev := Binding{Env: "app/dev", Path: "db.password"}
	v, err := s.For(prod).Encrypt(ctx, []byte("hunter2"))
	if err != nil {
		t.Fatal(err)
	}
	if got, bound, err := k.DecryptAt(ctx, v, prod); err != nil || !bound || string(got) != "hunter2" {
		t.Fatalf("at its place: %q, %v, %v", got, bound, err)
	}
	for _, at := range []Binding{dev, {Env: "app/prod", Path: "db.user"}} {
		_, _, err := k.DecryptAt(ctx, v, at)
		var mis *MisplacedError
		if !errors.As(err, &mis) || mis.Got != prod || mis.Want != at {
			t.Fatalf("at %v: err = %v, want a MisplacedError naming %v", at, err, prod)
		}
		if !strings.Contains(err.Error(), "belongs to app/prod db.password") {
			t.Fatalf("message %q does not say where it belongs", err)
		}
	}
	if b, bound, err := EnvelopeBinding(v); err != nil || !bound || b != prod {
		t.Fatalf("EnvelopeBinding = %v, %v, %v", b, bound, err)
	}

	// The attacker rewrites the clear binding to dev's (same lengths here,
	// so only the bytes change): the additional data no longer matches.
	forged := bytes.Replace(v, []byte("app/prod"), []byte("app/dev_"), 1)
	if _, _, err := k.DecryptAt(ctx, forged, Binding{Env: "app/dev_", Path: "db.password"}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("forged binding: err = %v, want ErrCorrupt", err)
	}

	// Version 1: the same data key, no binding, sealed as escfs 0.x did.
	v1 := sealV1(t, s, "old")
	if got, bound, err := k.DecryptAt(ctx, v1, dev); err != nil || bound || string(got) != "old" {
		t.Fatalf("version 1: %q, %v, %v", got, bound, err)
	}
	if _, bound, err := EnvelopeBinding(v1); err != nil || bound {
		t.Fatalf("EnvelopeBinding(v1): bound %v, %v", bound, err)
	}
	// A version-2 value cannot be passed off as version 1 (to shed its
	// binding): its additional data held the binding.
	down := append([]byte{envelopeV1}, v[1:len(s.header)]...)
	down = append(down, v[len(s.header)+len(appendBinding(nil, prod)):]...)
	if _, _, err := k.DecryptAt(ctx, down, dev); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("downgraded to version 1: err = %v, want ErrCorrupt", err)
	}
	// Sealing needs a binding.
	if _, err := s.For(Binding{Env: "app/prod"}).Encrypt(ctx, []byte("x")); err == nil {
		t.Fatal("sealed with an empty path")
	}
}

// sealV1 seals plaintext under s's data key in a version-1 envelope (bound
// to nothing), as escfs wrote before bindings.
func sealV1(t testing.TB, s *Sealer, plaintext string) []byte {
	t.Helper()
	aead, err := chacha20poly1305.NewX(s.key[:])
	if err != nil {
		t.Fatal(err)
	}
	header := slices.Clone(s.header)
	header[0] = envelopeV1
	nonce := make([]byte, nonceSize)
	return aead.Seal(append(header, nonce...), nonce, []byte(plaintext), header)
}

// TestSealerErrors: bad recipient lists are refused before anything is
// wrapped, and a closed Sealer encrypts nothing.
func TestSealerErrors(t *testing.T) {
	ctx := context.Background()
	_, rec := newIdentity(t)
	k := newKeyring(t, KeyringOptions{AWSConfig: noAWS})
	for _, tt := range []struct {
		name       string
		recipients []string
		want       string
	}{
		{"none", nil, "no recipients"},
		{"not a recipient", []string{"bob"}, "neither an age recipient"},
		{"a bad age recipient", []string{"age1xyz"}, "age recipient"},
		{"a secret key", []string{"AGE-SECRET-KEY-1QQQQ"}, "an age secret key is no recipient"},
		{"a bad ARN", []string{"arn:aws:s3:::bucket"}, "not an AWS KMS key ARN"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := k.NewSealer(ctx, tt.recipients)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "QQQQ") {
				t.Fatalf("error repeats the secret key: %v", err)
			}
		})
	}
	s, err := k.NewSealer(ctx, []string{rec, rec})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Recipients(), []string{rec}) {
		t.Fatalf("Recipients() = %v, want one", s.Recipients())
	}
	s.Close()
	if _, err := s.For(testBinding).Encrypt(ctx, []byte("x")); err == nil {
		t.Fatal("a closed Sealer encrypted")
	}
}

// TestParseEnvelope: hand-made envelopes that break one rule each are
// refused, naming the part at fault.
func TestParseEnvelope(t *testing.T) {
	rec := []byte("age1xyz")
	wrapped := []byte("w")
	tail := make([]byte, nonceSize+tagSize)
	build := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	uv := func(v uint64) []byte { return binary.AppendUvarint(nil, v) }
	long := bytes.Repeat([]byte("a"), maxRecipientLen+1)
	tests := []struct {
		name  string
		inner []byte
		part  string // "" for no error
		want  string
	}{
		{"valid", build([]byte{1}, uv(1), uv(7), rec, uv(1), wrapped, tail), "", ""},
		{"empty", nil, PartVersion, "empty"},
		{"no recipients", build([]byte{1}, uv(0), uv(1), wrapped, tail), PartRecipients, "count 0"},
		{"too many recipients", build([]byte{1}, uv(maxRecipients+1)), PartRecipients, "count 65"},
		{"count overflows", build([]byte{1}, bytes.Repeat([]byte{0xff}, 10), []byte{1}), PartRecipients, "overflows"},
		{"count not minimal", build([]byte{1}, []byte{0x81, 0x00}, uv(7), rec, uv(1), wrapped, tail), PartRecipients, "not minimally encoded"},
		{"empty recipient", build([]byte{1}, uv(1), uv(0), uv(1), wrapped, tail), PartRecipients, "length 0"},
		{"recipient too long", build([]byte{1}, uv(1), uv(uint64(len(long))), long, uv(1), wrapped, tail), PartRecipients, "length 257"},
		{"version 2 valid", build([]byte{2}, uv(1), uv(7), rec, uv(1), wrapped, uv(5), []byte("p/env"), uv(1), []byte("x"), tail), "", ""},
		{"version 2 without binding", build([]byte{2}, uv(1), uv(7), rec, uv(1), wrapped, tail), PartBinding, ""},
		{"version 2 empty environment", build([]byte{2}, uv(1), uv(7), rec, uv(1), wrapped, uv(0), uv(1), []byte("x"), tail), PartBinding, "environment length 0"},
		{"version 2 path too long", build([]byte{2}, uv(1), uv(7), rec, uv(1), wrapped, uv(5), []byte("p/env"), uv(maxBindingPath+1), tail), PartBinding, "property path length 4097"},
		{"version 2 environment not UTF-8", build([]byte{2}, uv(1), uv(7), rec, uv(1), wrapped, uv(2), []byte{0xff, 0xfe}, uv(1), []byte("x"), tail), PartBinding, "not UTF-8"},
		{"recipient with a newline", build([]byte{1}, uv(1), uv(7), []byte("age1\nxy"), uv(1), wrapped, tail), PartRecipients, "not printable"},
		{"recipient with an escape", build([]byte{1}, uv(1), uv(7), []byte("age1\x1b[m"), uv(1), wrapped, tail), PartRecipients, "not printable"},
		{"recipient cut", build([]byte{1}, uv(1), uv(7), rec[:3]), PartRecipients, "truncated"},
		{"no wrapped key", build([]byte{1}, uv(1), uv(7), rec, uv(0), tail), PartWrappedKey, "length 0"},
		{"wrapped key too long", build([]byte{1}, uv(1), uv(7), rec, uv(maxWrappedLen+1), tail), PartWrappedKey, "length 65537"},
		{"wrapped key cut", build([]byte{1}, uv(1), uv(7), rec, uv(100), wrapped), PartWrappedKey, "truncated"},
		{"nonce cut", build([]byte{1}, uv(1), uv(7), rec, uv(1), wrapped, tail[:nonceSize-1]), PartNonce, "truncated"},
		{"no tag", build([]byte{1}, uv(1), uv(7), rec, uv(1), wrapped, tail[:nonceSize+tagSize-1]), PartValue, "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := EnvelopeRecipients(tt.inner)
			if tt.part == "" {
				if err != nil || !slices.Equal(recs, []string{string(rec)}) {
					t.Fatalf("got %q, %v", recs, err)
				}
				return
			}
			var c *CorruptError
			if !errors.As(err, &c) || c.Part != tt.part || !strings.Contains(c.Reason, tt.want) {
				t.Fatalf("err = %v, want a corrupt %s: %s", err, tt.part, tt.want)
			}
		})
	}
}

// ageRecipient parses an age recipient.
func ageRecipient(t *testing.T, s string) *age.X25519Recipient {
	t.Helper()
	r, err := age.ParseX25519Recipient(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
