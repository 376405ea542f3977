package secrets

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/escfs/escfs/internal/testutil"
)

// newIdentity makes an identities file with one new identity (by Keygen)
// and returns its path and recipient.
func newIdentity(t testing.TB) (path, recipient string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "age", "identities.txt")
	recipient, err := Keygen(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, recipient
}

// parseIdentity reads the one identity of an identities file.
func parseIdentity(t testing.TB, path string) age.Identity {
	t.Helper()
	ids, err := readIdentities(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 {
		t.Fatalf("%s: %d identities, want 1", path, len(ids))
	}
	return ids[0]
}

// newKeyring returns a Keyring closed when the test ends. An empty
// IdentitiesFile becomes one that does not exist, so that no test reads the
// user's own.
func newKeyring(t testing.TB, opts KeyringOptions) *Keyring {
	t.Helper()
	if opts.IdentitiesFile == "" {
		opts.IdentitiesFile = filepath.Join(t.TempDir(), "no-identities.txt")
	}
	k := NewKeyring(opts)
	t.Cleanup(k.Close)
	return k
}

// seal encrypts each plaintext with one new Sealer of a keyring of its own
// (so that no other keyring has the data key cached).
func seal(t testing.TB, recipients []string, plaintexts ...string) [][]byte {
	t.Helper()
	s, err := newKeyring(t, KeyringOptions{}).NewSealer(context.Background(), recipients)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out := make([][]byte, len(plaintexts))
	for i, p := range plaintexts {
		if out[i], err = s.For(testBinding).Encrypt(context.Background(), []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// countingIdentity counts the unwraps it is asked for; each takes at least
// delay, as a KMS call would, so that concurrent callers overlap.
type countingIdentity struct {
	age.Identity
	delay time.Duration
	calls atomic.Int64
}

func (c *countingIdentity) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	c.calls.Add(1)
	time.Sleep(c.delay)
	return c.Identity.Unwrap(stanzas)
}

// failingIdentity fails every unwrap with a fatal (not "incorrect identity")
// error, as a broken plugin would.
type failingIdentity struct{ calls atomic.Int64 }

func (f *failingIdentity) Unwrap([]*age.Stanza) ([]byte, error) {
	f.calls.Add(1)
	return nil, errFailingIdentity
}

var errFailingIdentity = &os.PathError{Op: "unwrap", Path: "plugin", Err: os.ErrDeadlineExceeded}

// newFakeClock returns a clock that moves only when told, at a fixed date.
func newFakeClock() *testutil.Clock {
	return testutil.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
}

// noAWS is an AWSConfig for tests that must not reach AWS: every KMS call
// fails at once.
func noAWS(context.Context, string) (aws.Config, error) {
	return aws.Config{}, errors.New("no AWS in this test")
}
