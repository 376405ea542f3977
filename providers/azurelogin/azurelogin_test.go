package azurelogin_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/esc"

	"github.com/escfs/escfs/providers"
	"github.com/escfs/escfs/providers/azureclient/azuretest"
	"github.com/escfs/escfs/providers/azurelogin"
)

func TestMain(m *testing.M) {
	azuretest.TrustCA()
	os.Exit(m.Run())
}

const (
	secretApp  = "00000000-0000-0000-0000-00000000000a"
	oidcApp    = "00000000-0000-0000-0000-00000000000b"
	sub        = "00000000-0000-0000-0000-0000000000c0"
	appSecret  = "app-client-secret-value-1234"
	subjectAKS = "system:serviceaccount:prod:web"
)

func sim(t *testing.T) *azuretest.Server {
	s := azuretest.New(t)
	s.SetEnv(t)
	s.AddApp(secretApp, appSecret, "", true)
	s.AddApp(oidcApp, "", subjectAKS, true)
	return s
}

func inputs(clientID string, extra map[string]esc.Value) map[string]esc.Value {
	in := map[string]esc.Value{
		"clientId":       esc.NewValue(clientID),
		"tenantId":       esc.NewValue(azuretest.Tenant),
		"subscriptionId": esc.NewValue(sub),
	}
	for k, v := range extra {
		in[k] = v
	}
	return in
}

func open(t *testing.T, in map[string]esc.Value) (map[string]esc.Value, time.Time, error) {
	t.Helper()
	ctx, exp := providers.WithExpiry(context.Background())
	v, err := azurelogin.New().Open(ctx, in, nil)
	if err != nil {
		return nil, time.Time{}, err
	}
	return v.Value.(map[string]esc.Value), exp.Earliest(), nil
}

// TestClientSecret logs in with a client secret: the outputs are ESC's
// (clientSecret among them) and an access token whose expiry is reported.
func TestClientSecret(t *testing.T) {
	s := sim(t)
	out, reported, err := open(t, inputs(secretApp, map[string]esc.Value{"clientSecret": esc.NewSecret(appSecret)}))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"clientId": secretApp, "tenantId": azuretest.Tenant, "subscriptionId": sub, "clientSecret": appSecret} {
		if out[k].Value != want {
			t.Errorf("%s = %v, want %s", k, out[k].Value, want)
		}
	}
	if !out["clientSecret"].Secret || !out["accessToken"].Secret {
		t.Errorf("clientSecret or accessToken is not secret")
	}
	if _, ok := out["oidc"]; ok {
		t.Errorf("a client-secret login has oidc")
	}
	exp, _ := time.Parse(time.RFC3339, out["expiry"].Value.(string))
	if d := time.Until(exp); d < 58*time.Minute || d > time.Hour {
		t.Errorf("expiry in %v, want about an hour", d)
	}
	if !reported.Truncate(time.Second).Equal(exp) {
		t.Errorf("reported %v, want %v", reported, exp)
	}
	if g := s.Grants(); len(g) != 1 || g[0] != "secret" {
		t.Errorf("grants %v", g)
	}
}

// TestScope asks for a token of another resource (AKS's server application).
func TestScope(t *testing.T) {
	s := sim(t)
	const aks = "6dae42f8-4368-4678-94ff-3960e28e3630"
	out, _, err := open(t, inputs(secretApp, map[string]esc.Value{"clientSecret": esc.NewValue(appSecret), "scope": esc.NewValue(aks + "/.default")}))
	if err != nil {
		t.Fatal(err)
	}
	if tok := out["accessToken"].Value.(string); !s.TokenValid(tok, aks) || s.TokenValid(tok, azuretest.Management) {
		t.Errorf("the token is not AKS's alone")
	}
	if _, _, err := open(t, inputs(secretApp, map[string]esc.Value{"clientSecret": esc.NewValue(appSecret), "scope": esc.NewValue("https://evil.example/x y/.default")})); err == nil {
		t.Errorf("a malformed scope was asked for")
	}
}

// TestOIDC logs in with a federated assertion, from AZURE_FEDERATED_TOKEN_FILE
// (oidc: true, as on AKS) and from token; the reported expiry is the
// assertion's when it ends before the access token.
func TestOIDC(t *testing.T) {
	s := sim(t)
	assertion := s.Assertion(subjectAKS, "", 10*time.Minute)
	file := filepath.Join(t.TempDir(), "azure-identity-token")
	if err := os.WriteFile(file, []byte(assertion), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(azurelogin.TokenFileEnv, file)
	for name, oidc := range map[string]esc.Value{
		"oidc: true":     esc.NewValue(true),
		"oidc.token":     esc.NewValue(map[string]esc.Value{"token": esc.NewSecret(assertion)}),
		"oidc.tokenFile": esc.NewValue(map[string]esc.Value{"tokenFile": esc.NewValue(file)}),
	} {
		t.Run(name, func(t *testing.T) {
			out, reported, err := open(t, inputs(oidcApp, map[string]esc.Value{"oidc": oidc}))
			if err != nil {
				t.Fatal(err)
			}
			tok := out["oidc"].Value.(map[string]esc.Value)["token"]
			if tok.Value != assertion || !tok.Secret {
				t.Errorf("oidc.token is not the assertion, or not secret")
			}
			if _, ok := out["clientSecret"]; ok {
				t.Errorf("an oidc login has clientSecret")
			}
			if d := time.Until(reported); d < 9*time.Minute || d > 10*time.Minute {
				t.Errorf("reported expiry in %v, want the assertion's 10 minutes", d)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	s := sim(t)
	expired := s.Assertion(subjectAKS, "", -time.Minute)
	for _, tc := range []struct {
		name  string
		in    map[string]esc.Value
		setup func(t *testing.T)
		want  string
	}{
		{name: "wrong secret", in: inputs(secretApp, map[string]esc.Value{"clientSecret": esc.NewValue("wrong-secret-value")}),
			want: "azure-login: token for https://management.azure.com/.default: invalid_client: AADSTS7000215: Invalid client secret provided."},
		{name: "unknown app", in: inputs("00000000-0000-0000-0000-0000000000ff", map[string]esc.Value{"clientSecret": esc.NewValue("x-secret")}),
			want: "unauthorized_client: AADSTS700016: Application with identifier '00000000-0000-0000-0000-0000000000ff' was not found"},
		{name: "wrong subject", in: inputs(oidcApp, map[string]esc.Value{"oidc": esc.NewValue(map[string]esc.Value{"token": esc.NewValue(s.Assertion("system:serviceaccount:dev:web", "", time.Minute))})}),
			want: "invalid_client: AADSTS700213: No matching federated identity record found for presented assertion subject 'system:serviceaccount:dev:web'."},
		{name: "wrong audience", in: inputs(oidcApp, map[string]esc.Value{"oidc": esc.NewValue(map[string]esc.Value{"token": esc.NewValue(s.Assertion(subjectAKS, "api://other", time.Minute))})}),
			want: "invalid_client: AADSTS700212"},
		{name: "forged assertion", in: inputs(oidcApp, map[string]esc.Value{"oidc": esc.NewValue(map[string]esc.Value{"token": esc.NewValue(func() string { a := s.Assertion(subjectAKS, "", time.Minute); return a[:len(a)-4] + "AAAA" }())})}),
			want: "invalid_client: AADSTS5002738: Invalid JWT token. Signature validation failed."},
		{name: "expired assertion", in: inputs(oidcApp, map[string]esc.Value{"oidc": esc.NewValue(map[string]esc.Value{"token": esc.NewValue(expired)})}),
			want: "azure-login: oidc: the OIDC token expired at"},
		{name: "unknown tenant", in: func() map[string]esc.Value {
			in := inputs(secretApp, map[string]esc.Value{"clientSecret": esc.NewValue(appSecret)})
			in["tenantId"] = esc.NewValue("00000000-0000-0000-0000-000000000bad")
			return in
		}(), want: "invalid_tenant: AADSTS90002: Tenant '00000000-0000-0000-0000-000000000bad' not found."},
		{name: "down", setup: func(t *testing.T) { s.SetDown(true); t.Cleanup(func() { s.SetDown(false) }) },
			in: inputs(secretApp, map[string]esc.Value{"clientSecret": esc.NewValue(appSecret)}), want: "azure-login: token for https://management.azure.com/.default: HTTP 503 Service Unavailable"},
		{name: "unreachable", setup: func(t *testing.T) { t.Setenv("AZURE_AUTHORITY_HOST", "https://127.0.0.1:1/") },
			in: inputs(secretApp, map[string]esc.Value{"clientSecret": esc.NewValue(appSecret)}), want: "unable to resolve an endpoint: server response error: Get \"https://127.0.0.1:1/"},
		{name: "both", in: inputs(secretApp, map[string]esc.Value{"clientSecret": esc.NewValue(appSecret), "oidc": esc.NewValue(true)}),
			want: "azure-login: give clientSecret or oidc, not both"},
		{name: "neither", in: inputs(secretApp, nil), want: "azure-login: clientSecret or oidc is required"},
		{name: "not a guid", in: inputs("my-app", map[string]esc.Value{"clientSecret": esc.NewValue(appSecret)}), want: "azure-login: clientId is not a GUID"},
		{name: "no token file", setup: func(t *testing.T) { t.Setenv(azurelogin.TokenFileEnv, "") },
			in: inputs(oidcApp, map[string]esc.Value{"oidc": esc.NewValue(true)}), want: "azure-login: oidc: no token: set token or tokenFile, or AZURE_FEDERATED_TOKEN_FILE"},
		{name: "unknown input", in: inputs(secretApp, map[string]esc.Value{"authority": esc.NewValue("https://evil")}), want: `azure-login: unknown input "authority"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup(t)
			}
			_, _, err := open(t, tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want an error containing %q", err, tc.want)
			}
			for _, secret := range []string{appSecret, expired, "wrong-secret-value"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error quotes a secret")
				}
			}
			if strings.Count(err.Error(), "\n") > 0 {
				t.Errorf("the error spans lines: %q", err)
			}
		})
	}
}
