package gcplogin_test

import (
	"context"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google/externalaccount"

	"github.com/escfs/escfs/internal/testutil"
	"github.com/escfs/escfs/providers/gcpclient"
	"github.com/escfs/escfs/providers/gcplogin"
)

// BenchmarkRenewal compares a warm renewal (an Open after the first, the
// connection pooled) of gcp-login's oidc form against the simulation with
// the SDK calls alone: externalaccount's STS exchange and impersonation
// with the same configuration and client. "x-sdk" is the ratio.
func BenchmarkRenewal(b *testing.B) {
	s := gcptestSim(b)
	subject := s.SubjectToken(pool, prov, "bench", "", time.Hour)
	in := oidcInputs(subject)
	ctx := context.Background()
	sdk := func() {
		sctx := context.WithValue(ctx, oauth2.HTTPClient, gcpclient.Client)
		ts, err := externalaccount.NewTokenSource(sctx, externalaccount.Config{
			Audience:                       s.Audience(pool, prov),
			SubjectTokenType:               "urn:ietf:params:oauth:token-type:jwt",
			TokenURL:                       s.URL + "/v1/token",
			ServiceAccountImpersonationURL: s.URL + "/v1/projects/-/serviceAccounts/" + account + ":generateAccessToken",
			ServiceAccountImpersonationLifetimeSeconds: 3600,
			Scopes:               []string{gcplogin.Scope},
			SubjectTokenSupplier: supplier(subject),
		})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ts.Token(); err != nil {
			b.Fatal(err)
		}
	}
	open := func() {
		if _, err := gcplogin.New().Open(ctx, in, nil); err != nil {
			b.Fatal(err)
		}
	}
	open()
	sdk()
	testutil.Paired(b, "x-sdk", sdk, open)
}

type supplier string

func (s supplier) SubjectToken(context.Context, externalaccount.SupplierOptions) (string, error) {
	return string(s), nil
}
