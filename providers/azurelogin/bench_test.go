package azurelogin_test

import (
	"context"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/pulumi/esc"

	"github.com/escfs/escfs/internal/testutil"
	"github.com/escfs/escfs/providers/azureclient"
	"github.com/escfs/escfs/providers/azureclient/azuretest"
	"github.com/escfs/escfs/providers/azurelogin"
)

// BenchmarkRenewal compares a warm renewal (an Open after the first, TLS
// connections pooled) of azure-login with a client secret against the
// simulation with the SDK call alone: a new azidentity credential's
// GetToken (each Open is a new credential, so MSAL's cache never answers),
// with the same client options. "x-sdk" is the ratio.
func BenchmarkRenewal(b *testing.B) {
	s := azuretest.New(b)
	for k, v := range s.Env() {
		if k != "SSL_CERT_FILE" {
			b.Setenv(k, v)
		}
	}
	s.AddApp(secretApp, appSecret, "", true)
	ctx := context.Background()
	in := inputs(secretApp, map[string]esc.Value{"clientSecret": esc.NewSecret(appSecret)})
	sdk := func() {
		cred, err := azidentity.NewClientSecretCredential(azuretest.Tenant, secretApp, appSecret, &azidentity.ClientSecretCredentialOptions{
			ClientOptions: azureclient.Options(), DisableInstanceDiscovery: true})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{azureclient.ManagementScope}}); err != nil {
			b.Fatal(err)
		}
	}
	open := func() {
		if _, err := azurelogin.New().Open(ctx, in, nil); err != nil {
			b.Fatal(err)
		}
	}
	open()
	sdk()
	testutil.Paired(b, "x-sdk", sdk, open)
}
