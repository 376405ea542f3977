package vaultlogin_test

import (
	"context"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/pulumi/esc"

	"github.com/escfs/escfs/internal/testutil"
	"github.com/escfs/escfs/providers/vaultclient/vaulttest"
	"github.com/escfs/escfs/providers/vaultlogin"
)

// BenchmarkRenewal compares a warm renewal of vault-login's jwt form (an
// Open after the first) against the simulation with the SDK call alone:
// one auth/jwt/login write on a client made once. "x-sdk" is the ratio.
func BenchmarkRenewal(b *testing.B) {
	s := vaulttest.New(b)
	b.Setenv("VAULT_ADDR", s.URL)
	b.Setenv("VAULT_TOKEN", "")
	s.AddRole("", "jwt", "ci", vaulttest.Role{Policies: []string{"default"}, TTL: time.Hour})
	jwt := s.JWT("bench", "vault", time.Hour)
	ctx := context.Background()
	cfg := vault.DefaultConfig()
	cfg.Address = s.URL
	client, err := vault.NewClient(cfg)
	if err != nil {
		b.Fatal(err)
	}
	client.ClearToken()
	sdk := func() {
		secret, err := client.Logical().WriteWithContext(ctx, "auth/jwt/login", map[string]any{"role": "ci", "jwt": jwt})
		if err != nil || secret.Auth == nil {
			b.Fatal(err)
		}
	}
	in := map[string]esc.Value{
		"address": esc.NewValue(s.URL),
		"jwt":     esc.NewValue(map[string]esc.Value{"role": esc.NewValue("ci"), "token": esc.NewSecret(jwt)}),
	}
	open := func() {
		if _, err := vaultlogin.New().Open(ctx, in, nil); err != nil {
			b.Fatal(err)
		}
	}
	open()
	sdk()
	testutil.Paired(b, "x-sdk", sdk, open)
}
