package azuresecrets_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/esc"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/providers/azureclient/azuretest"
	"github.com/escfs/escfs/providers/azuresecrets"
	"github.com/escfs/escfs/providers/builtin"
)

func TestMain(m *testing.M) {
	azuretest.TrustCA()
	os.Exit(m.Run())
}

const (
	reader    = "00000000-0000-0000-0000-00000000000a"
	stranger  = "00000000-0000-0000-0000-00000000000b"
	appSecret = "reader-client-secret-0001"
)

func sim(t *testing.T) *azuretest.Server {
	s := azuretest.New(t)
	s.SetEnv(t)
	s.AddApp(reader, appSecret, "system:serviceaccount:prod:web", true)
	s.AddApp(stranger, appSecret, "", false)
	return s
}

func login(clientID string) esc.Value {
	return esc.NewValue(map[string]esc.Value{
		"clientId":     esc.NewValue(clientID),
		"tenantId":     esc.NewValue(azuretest.Tenant),
		"clientSecret": esc.NewSecret(appSecret),
	})
}

func inputs(s *azuretest.Server, l esc.Value, get map[string][2]string) map[string]esc.Value {
	g := map[string]esc.Value{}
	for out, nv := range get {
		m := map[string]esc.Value{"name": esc.NewValue(nv[0])}
		if nv[1] != "" {
			m["version"] = esc.NewValue(nv[1])
		}
		g[out] = esc.NewValue(m)
	}
	return map[string]esc.Value{"login": l, "vault": esc.NewValue(s.URL), "get": esc.NewValue(g)}
}

func TestGet(t *testing.T) {
	s := sim(t)
	first := s.PutSecret("db-password", "first-value")
	s.PutSecret("db-password", "current-value")
	for name, l := range map[string]esc.Value{
		"client secret": login(reader),
		"assertion": esc.NewValue(map[string]esc.Value{
			"clientId": esc.NewValue(reader), "tenantId": esc.NewValue(azuretest.Tenant),
			"oidc": esc.NewValue(map[string]esc.Value{"token": esc.NewSecret(s.Assertion("system:serviceaccount:prod:web", "", time.Hour))}),
		}),
	} {
		t.Run(name, func(t *testing.T) {
			v, err := azuresecrets.New().Open(context.Background(), inputs(s, l, map[string][2]string{"now": {"db-password", ""}, "then": {"db-password", first}}), nil)
			if err != nil {
				t.Fatal(err)
			}
			got := v.Value.(map[string]esc.Value)
			if got["now"].Value != "current-value" || got["then"].Value != "first-value" || !got["now"].Secret || !got["then"].Secret {
				t.Errorf("outputs %+v", got)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	s := sim(t)
	s.PutSecret("ok", "v")
	s.PutSecret("off", "v")
	s.DisableSecret("off")
	for _, tc := range []struct {
		name  string
		in    map[string]esc.Value
		setup func(t *testing.T)
		want  string
	}{
		{name: "missing", in: inputs(s, login(reader), map[string][2]string{"a": {"nope", ""}}),
			want: "azure-secrets: get.a: keyvault get nope: SecretNotFound: A secret with (name/id) nope was not found in this key vault."},
		{name: "disabled", in: inputs(s, login(reader), map[string][2]string{"a": {"off", ""}}),
			want: "azure-secrets: get.a: keyvault get off: Forbidden/SecretDisabled: Operation get is not allowed on a disabled secret."},
		{name: "no access", in: inputs(s, login(stranger), map[string][2]string{"a": {"ok", ""}}),
			want: "Forbidden/AccessDenied: The user, group or application 'appid=" + stranger + "' does not have secrets get permission"},
		{name: "vault not allowed", setup: func(t *testing.T) { t.Setenv("ESCFS_ALLOW_HOSTS", "") },
			in: inputs(s, login(reader), map[string][2]string{"a": {"ok", ""}}), want: "is not a Key Vault of Azure's clouds"},
		{name: "vault elsewhere", in: func() map[string]esc.Value {
			in := inputs(s, login(reader), map[string][2]string{"a": {"ok", ""}})
			in["vault"] = esc.NewValue("https://attacker.example/")
			return in
		}(), want: "vault https://attacker.example:443 is not a Key Vault of Azure's clouds"},
		{name: "vault over http", in: func() map[string]esc.Value {
			in := inputs(s, login(reader), map[string][2]string{"a": {"ok", ""}})
			in["vault"] = esc.NewValue("http://my-vault.vault.azure.net/")
			return in
		}(), want: "vault is neither a vault name nor a vault URL"},
		{name: "bad name", in: inputs(s, login(reader), map[string][2]string{"a": {"../x", ""}}), want: "get.a: name is not a secret name"},
		{name: "no login", in: map[string]esc.Value{"vault": esc.NewValue("v"), "get": esc.NewValue(map[string]esc.Value{})}, want: "login (an azure-login output) is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup(t)
			}
			_, err := azuresecrets.New().Open(context.Background(), tc.in, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), appSecret) {
				t.Errorf("the error quotes the client secret")
			}
		})
	}
}

// TestRefusedVaultGetsNothing: for a vault the user did not allow, no
// token is asked for and nothing is sent.
func TestRefusedVaultGetsNothing(t *testing.T) {
	s := sim(t)
	s.PutSecret("ok", "v")
	t.Setenv("ESCFS_ALLOW_HOSTS", "")
	if _, err := azuresecrets.New().Open(context.Background(), inputs(s, login(reader), map[string][2]string{"a": {"ok", ""}}), nil); err == nil {
		t.Fatal("a vault the user did not allow was read")
	}
	if n, m := s.Calls("token"), s.Calls("secrets"); n+m != 0 {
		t.Errorf("%d token and %d vault requests for a refused vault", n, m)
	}
}

// TestThroughEvaluator: the AKS walkthrough's definitions, with the OIDC
// token in $AZURE_FEDERATED_TOKEN_FILE (oidc: true, as ESC writes it).
func TestThroughEvaluator(t *testing.T) {
	s := sim(t)
	s.PutSecret("db-password", "kv-db-password")
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "azure-identity-token")
	if err := os.WriteFile(tokenFile, []byte(s.Assertion("system:serviceaccount:prod:web", "", time.Hour)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AZURE_FEDERATED_TOKEN_FILE", tokenFile)
	def := `values:
  azure:
    login:
      fn::open::azure-login:
        clientId: ` + reader + `
        tenantId: ` + azuretest.Tenant + `
        subscriptionId: 00000000-0000-0000-0000-0000000000c0
        oidc: true
    secrets:
      fn::open::azure-secrets:
        login: ${azure.login}
        vault: ` + s.URL + `
        get:
          db:
            name: NAME
  environmentVariables:
    ARM_CLIENT_ID: ${azure.login.clientId}
    ARM_TENANT_ID: ${azure.login.tenantId}
    ARM_SUBSCRIPTION_ID: ${azure.login.subscriptionId}
    ARM_OIDC_TOKEN: ${azure.login.oidc.token}
    ARM_ACCESS_TOKEN: ${azure.login.accessToken}
    DB_PASSWORD: ${azure.secrets.db}
`
	for name, content := range map[string]string{"app": strings.Replace(def, "NAME", "db-password", 1), "missing": strings.Replace(def, "NAME", "no-such", 1)} {
		if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tree, err := eval.ScanDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := &eval.Evaluator{Providers: builtin.Registry()}
	snap, err := e.Evaluate(context.Background(), tree, eval.Request{Name: "app"})
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]eval.Var{}
	for _, v := range snap.Vars {
		vars[v.Name] = v
	}
	if v := vars["DB_PASSWORD"]; v.Value != "kv-db-password" || !v.Secret {
		t.Errorf("DB_PASSWORD = %+v", v)
	}
	if v := vars["ARM_OIDC_TOKEN"]; !v.Secret || v.Value == "" {
		t.Errorf("ARM_OIDC_TOKEN is not a secret token")
	}
	if v := vars["ARM_CLIENT_ID"]; v.Value != reader || v.Secret {
		t.Errorf("ARM_CLIENT_ID = %+v", v)
	}
	if d := time.Until(snap.ExpiresAt); d < 58*time.Minute || d > time.Hour {
		t.Errorf("the snapshot expires in %v, want the tokens' hour", d)
	}
	_, err = e.Evaluate(context.Background(), tree, eval.Request{Name: "missing"})
	var de *eval.DiagnosticsError
	if !errors.As(err, &de) {
		t.Fatalf("missing: %v, want diagnostics", err)
	}
	found := false
	for _, d := range de.Diagnostics {
		found = found || d.File == filepath.Join(dir, "missing.yaml") && d.Line > 0 && strings.Contains(d.Message, "SecretNotFound")
	}
	if !found {
		t.Errorf("no located SecretNotFound in %v", de.Diagnostics)
	}
}
