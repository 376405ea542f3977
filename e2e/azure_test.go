//go:build e2e

package e2e

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escfs/escfs/internal/escfstest"
	"github.com/escfs/escfs/internal/filetree"
	"github.com/escfs/escfs/providers/azureclient/azuretest"
)

const (
	azureApp      = "00000000-0000-0000-0000-00000000000a"
	azurePassword = "kv-db-password-91c2"
	aksServerApp  = "6dae42f8-4368-4678-94ff-3960e28e3630"
	aksSubject    = "system:serviceaccount:prod:deploy"
)

// azureEnvs are the AKS walkthrough's environments: azure-login with
// workload identity (oidc: true, the token in $AZURE_FEDERATED_TOKEN_FILE
// as AKS projects it), a Key Vault secret, and an AKS kubeconfig whose user
// is a token for AKS's server application, in files/KUBECONFIG.
func azureEnvs(vault string) map[string]string {
	return map[string]string{
		"demos/azure-access.yaml": `values:
  azure:
    login:
      fn::open::azure-login:
        clientId: ` + azureApp + `
        tenantId: ` + azuretest.Tenant + `
        subscriptionId: 00000000-0000-0000-0000-0000000000c0
        oidc: true
  environmentVariables:
    ARM_CLIENT_ID: ${azure.login.clientId}
    ARM_TENANT_ID: ${azure.login.tenantId}
    ARM_SUBSCRIPTION_ID: ${azure.login.subscriptionId}
    ARM_OIDC_TOKEN: ${azure.login.oidc.token}
    ARM_USE_OIDC: "true"
`,
		"aks.yaml": `imports:
  - demos/azure-access
values:
  aks:
    fn::open::azure-login:
      clientId: ${azure.login.clientId}
      tenantId: ${azure.login.tenantId}
      subscriptionId: ${azure.login.subscriptionId}
      oidc: true
      scope: ` + aksServerApp + `/.default
  secrets:
    fn::open::azure-secrets:
      login: ${azure.login}
      vault: ` + vault + `
      get:
        db:
          name: db-password
  kubeconfig:
    apiVersion: v1
    kind: Config
    clusters:
      - name: aks
        cluster:
          server: https://aks-prod.hcp.eastus.azmk8s.io:443
    users:
      - name: aks
        user:
          token: ${aks.accessToken}
    contexts:
      - name: aks
        context: {cluster: aks, user: aks}
    current-context: aks
  files:
    KUBECONFIG:
      fn::toJSON: ${kubeconfig}
  environmentVariables:
    AKS_TOKEN: ${aks.accessToken}
    DB_PASSWORD: ${secrets.db}
`,
	}
}

// azureWorld starts the Azure simulation and writes the projected token.
func azureWorld(t *testing.T) (*azuretest.Server, []string) {
	s := azuretest.New(t)
	s.AddApp(azureApp, "", aksSubject, true)
	s.PutSecret("db-password", azurePassword)
	tokenFile := filepath.Join(t.TempDir(), "azure-identity-token")
	if err := os.WriteFile(tokenFile, []byte(s.Assertion(aksSubject, "", time.Hour)), 0o600); err != nil {
		t.Fatal(err)
	}
	env := escfstest.EnvWith("HOME="+t.TempDir(), "AZURE_FEDERATED_TOKEN_FILE="+tokenFile)
	for k, v := range s.Env() {
		env = escfstest.EnvEdit(env, k+"="+v)
	}
	return s, env
}

// TestAzureThroughTheMount: the AKS walkthrough through a real mount.
func TestAzureThroughTheMount(t *testing.T) {
	s, env := azureWorld(t)
	dir := t.TempDir()
	filetree.WriteByRename(t, dir, azureEnvs(s.URL))
	e := escfstest.Mount(t, dir, env)
	vars := sourced(t, e, "aks", "AKS_TOKEN", "DB_PASSWORD", "ARM_CLIENT_ID", "ARM_OIDC_TOKEN", "ARM_USE_OIDC")
	if vars["DB_PASSWORD"] != azurePassword || vars["ARM_CLIENT_ID"] != azureApp || vars["ARM_USE_OIDC"] != "true" || vars["ARM_OIDC_TOKEN"] == "" {
		t.Errorf("sourced %d variables, DB_PASSWORD right: %v, ARM_CLIENT_ID %q", len(vars), vars["DB_PASSWORD"] == azurePassword, vars["ARM_CLIENT_ID"])
	}
	token := vars["AKS_TOKEN"]
	if !s.TokenValid(token, aksServerApp) {
		t.Errorf("AKS_TOKEN is not a valid token for AKS's server application")
	}
	out, err := exec.Command("kubectl", "--kubeconfig", e.Path("aks/files/KUBECONFIG"), "config", "view", "--raw", "-o", "jsonpath={.users[0].user.token}").CombinedOutput()
	if err != nil || string(out) != token {
		t.Errorf("kubectl config view: %v; the user's token is the login's: %v", err, string(out) == token)
	}
	noSecrets(t, "the escfs log", e.Log(), token, azurePassword, vars["ARM_OIDC_TOKEN"])
}

// TestAzureRenewal: Entra ID tokens that live 6 s are renewed by the mount
// before they expire: 0 expired reads over 3 lifetimes, and the first
// token is invalid after its expiry while the last is valid.
func TestAzureRenewal(t *testing.T) {
	s, env := azureWorld(t)
	const lifetime = 6 * time.Second
	s.SetTokenTTL(lifetime)
	dir := t.TempDir()
	filetree.WriteByRename(t, dir, azureEnvs(s.URL))
	e := escfstest.Mount(t, dir, env)
	first, last, tokens := Renewals(t, e, "aks", "AKS_TOKEN", lifetime, 3, "DB_PASSWORD")
	if tokens < 3 {
		t.Errorf("%d tokens over 3 lifetimes, want a renewal each", tokens)
	}
	if last["DB_PASSWORD"] != azurePassword {
		t.Errorf("DB_PASSWORD lost in a renewal")
	}
	if s.TokenValid(first["AKS_TOKEN"], aksServerApp) || !s.TokenValid(last["AKS_TOKEN"], aksServerApp) {
		t.Errorf("the first token is valid after its expiry, or the last is not")
	}
}

// TestAzureErrors: an unknown federated subject, a missing secret and a
// vault the user did not allow each fail their environment with a located
// diagnostic, in status and escfs check; the others read.
func TestAzureErrors(t *testing.T) {
	s, env := azureWorld(t)
	files := azureEnvs(s.URL)
	files["subject.yaml"] = strings.Replace(files["demos/azure-access.yaml"], azureApp, "00000000-0000-0000-0000-00000000000f", 1)
	files["missing.yaml"] = strings.Replace(files["aks.yaml"], "name: db-password", "name: no-such", 1)
	files["elsewhere.yaml"] = strings.Replace(files["aks.yaml"], "vault: "+s.URL, "vault: https://attacker.example:8443", 1)
	s.AddApp("00000000-0000-0000-0000-00000000000f", "", "system:serviceaccount:other:x", true)
	dir := t.TempDir()
	filetree.WriteByRename(t, dir, files)
	want := map[string]string{
		"subject":   "azure-login: token for https://management.azure.com/.default: invalid_client: AADSTS700213: No matching federated identity record found for presented assertion subject '" + aksSubject + "'.",
		"missing":   "azure-secrets: get.db: keyvault get no-such: SecretNotFound: A secret with (name/id) no-such was not found",
		"elsewhere": "azure-secrets: vault https://attacker.example:8443 is not a Key Vault of Azure's clouds",
	}
	healthy := []string{"demos/azure-access", "aks"}
	e := escfstest.Mount(t, dir, env)
	checkBroken(t, e, dir, want, healthy, []string{azurePassword})
	stdout, stderr, code := escfstest.Run(t, 2*time.Minute, escfstest.Options{Env: env}, "--dir", dir, "check").Parts()
	checkReport(t, dir, stdout, stderr, code, want, healthy, []string{azurePassword})
	if code := s.Works("not-a-token", "db-password"); code != http.StatusUnauthorized {
		t.Errorf("the vault takes any token: %d", code)
	}
}
