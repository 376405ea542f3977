package secrets

import (
	"context"
	"crypto/sha256"
	"strings"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// BenchmarkDecryptWarm measures Keyring.Decrypt of a value whose data key is
// cached (every value of a file after its first) against a baseline
// measured in the same run: XChaCha20-Poly1305 Open of the same value with
// the data key at hand, the least any envelope could cost. "cold" is a
// Decrypt whose data key is unwrapped each time (X25519 and age, the
// identities file stat'ed), as the first value of a file costs. Warm and
// cold report their time as a multiple of the baseline ("x-baseline").
func BenchmarkDecryptWarm(b *testing.B) {
	ctx := context.Background()
	idPath, rec := newIdentity(b)
	plaintext := strings.Repeat("p", 64)
	inner := seal(b, []string{rec}, plaintext)[0]
	env, err := parseEnvelope(inner)
	if err != nil {
		b.Fatal(err)
	}
	k := newKeyring(b, KeyringOptions{IdentitiesFile: idPath})
	if _, err := k.Decrypt(ctx, inner); err != nil {
		b.Fatal(err)
	}
	key, ok := k.lookup(sha256.Sum256(env.wrapped))
	if !ok {
		b.Fatal("not cached")
	}
	nsPerOp := func(b *testing.B) float64 { return float64(b.Elapsed().Nanoseconds()) / float64(b.N) }

	var baseline float64
	b.Run("baseline", func(b *testing.B) {
		for b.Loop() {
			aead, _ := chacha20poly1305.NewX(key[:])
			if _, err := aead.Open(nil, env.nonce, env.sealed, env.header); err != nil {
				b.Fatal(err)
			}
		}
		baseline = nsPerOp(b)
	})
	b.Run("warm", func(b *testing.B) {
		for b.Loop() {
			if _, err := k.Decrypt(ctx, inner); err != nil {
				b.Fatal(err)
			}
		}
		if baseline > 0 {
			b.ReportMetric(nsPerOp(b)/baseline, "x-baseline")
		}
	})
	b.Run("cold", func(b *testing.B) {
		clock := newFakeClock()
		cold := newKeyring(b, KeyringOptions{IdentitiesFile: idPath, Now: clock.Now})
		for b.Loop() {
			clock.Advance(DefaultCacheTTL)
			if _, err := cold.Decrypt(ctx, inner); err != nil {
				b.Fatal(err)
			}
		}
		if baseline > 0 {
			b.ReportMetric(nsPerOp(b)/baseline, "x-baseline")
		}
	})
}
