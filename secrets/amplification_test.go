package secrets

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"

	"filippo.io/age"
)

// forgedKMSEnvelope is ForgeKMSEnvelope for the tests of this package.
func forgedKMSEnvelope(t *testing.T, b Binding, n, repeat int) []byte {
	t.Helper()
	inner, err := ForgeKMSEnvelope(b, n, repeat)
	if err != nil {
		t.Fatal(err)
	}
	return inner
}

// TestKMSAmplification: an envelope of many KMS stanzas for keys the rules
// do not name costs no KMS call at all; with no rules in the context, at
// most maxKMSTries, each key once; and a key the rule names is tried once
// however often it is repeated.
func TestKMSAmplification(t *testing.T) {
	proxy, admin := kmsEnv(t)
	ruled := createKey(t, admin, "alias/ruled")
	ctx := context.Background()
	b := Binding{Env: "app/prod", Path: "db.password"}
	rules := &Rules{Rules: []Rule{{Environments: "app/*", AWSKMS: []string{ruled}}}}

	forged := forgedKMSEnvelope(t, b, 590, 1)
	k := newKeyring(t, KeyringOptions{IdentitiesFile: t.TempDir() + "/none.txt", FailureTTL: -1})

	_, err := k.Decrypt(WithRules(ctx, rules), forged)
	var skipped *SkippedKMSError
	if !errors.Is(err, ErrNoMatchingKey) || !errors.As(err, &skipped) || skipped.Stanzas != 590 {
		t.Fatalf("err = %v, want no key with 590 stanzas skipped", err)
	}
	if n := proxy.count("Decrypt", ""); n != 0 {
		t.Fatalf("590 stanzas for keys no rule names: %d KMS Decrypt calls, want 0", n)
	}
	if len(err.Error()) > 4096 {
		t.Errorf("the error is %d bytes: what the attacker listed reaches the message", len(err.Error()))
	}

	// Without rules: at most maxKMSTries calls, however many stanzas.
	k.Decrypt(ctx, forged)
	if n := proxy.count("Decrypt", ""); n != maxKMSTries {
		t.Fatalf("no rules: %d KMS Decrypt calls, want %d", n, maxKMSTries)
	}

	// The rule's key, repeated 50 times (the stanzas are garbage): tried once.
	proxy.reset()
	var stanzas []*age.Stanza
	for range 50 {
		body := make([]byte, 8)
		rand.Read(body)
		stanzas = append(stanzas, &age.Stanza{Type: kmsStanzaType, Args: []string{ruled}, Body: body})
	}
	var wrapped bytes.Buffer
	w, _ := age.Encrypt(&wrapped, stanzaRecipient{stanzas})
	w.Write(make([]byte, dataKeySize))
	w.Close()
	repeated := append(appendBinding(appendHeader(nil, []string{ruled}, wrapped.Bytes()), b), make([]byte, nonceSize+tagSize)...)
	k.Decrypt(WithRules(ctx, rules), repeated)
	if n := proxy.count("Decrypt", ""); n != 1 {
		t.Fatalf("one ruled key in 50 stanzas: %d KMS Decrypt calls, want 1", n)
	}

	// The control: a real value under the ruled key decrypts with the rules.
	s, err := k.NewSealer(ctx, []string{ruled})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := s.For(b).Encrypt(ctx, []byte("ok"))
	k.Close()
	if p, err := k.Decrypt(WithRules(ctx, rules), v); err != nil || string(p) != "ok" {
		t.Fatalf("control: %q, %v", p, err)
	}
	// A value bound to an environment the rule does not cover: its KMS
	// key is not tried, though the envelope names it.
	other, _ := s.For(Binding{Env: "other/prod", Path: "x"}).Encrypt(ctx, []byte("no"))
	k.Close()
	proxy.reset()
	if _, err := k.Decrypt(WithRules(ctx, rules), other); !errors.Is(err, ErrNoMatchingKey) || proxy.count("Decrypt", "") != 0 {
		t.Fatalf("a key the environment's rule does not name: %v, %d calls", err, proxy.count("Decrypt", ""))
	}
}
