//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escfs/escfs/internal/escfstest"
	"github.com/escfs/escfs/internal/filetree"
	"github.com/escfs/escfs/providers/vaultclient/vaulttest"
)

const vaultPassword = "vault-db-password-5e1d"

// vaultEnvs log in to Vault with a Kubernetes service-account token (the
// JWT auth method) and read a KV v2 secret; the login's token is exported
// for the vault CLI.
func vaultEnvs(address, jwtFile string) map[string]string {
	return map[string]string{
		"demos/vault-access.yaml": `values:
  vault:
    login:
      fn::open::vault-login:
        address: ` + address + `
        jwt:
          mount: kubernetes-jwt
          role: deploy
          tokenFile: ` + jwtFile + `
  environmentVariables:
    VAULT_ADDR: ${vault.login.address}
    VAULT_TOKEN: ${vault.login.token}
`,
		"app.yaml": `imports:
  - demos/vault-access
values:
  secrets:
    fn::open::vault-secrets:
      login: ${vault.login}
      read:
        db: {path: secret/app/db, field: password}
  environmentVariables:
    DB_PASSWORD: ${secrets.db}
`,
	}
}

func vaultWorld(t *testing.T) (*vaulttest.Server, []string, string) {
	s := vaulttest.New(t)
	s.Policy("", "app", "secret/data/app/")
	s.AddRole("", "kubernetes-jwt", "deploy", vaulttest.Role{BoundAudience: "vault", BoundSubject: "system:serviceaccount:prod:deploy", Policies: []string{"app"}, TTL: time.Hour})
	s.Put("", "secret/app/db", map[string]any{"password": vaultPassword})
	jwtFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(jwtFile, []byte(s.JWT("system:serviceaccount:prod:deploy", "vault", time.Hour)), 0o600); err != nil {
		t.Fatal(err)
	}
	return s, escfstest.EnvWith("HOME="+t.TempDir(), "VAULT_ADDR="+s.URL, "VAULT_TOKEN", "VAULT_NAMESPACE"), jwtFile
}

// TestVaultRenewal: Vault tokens that live 6 s are renewed by the mount
// before they end: 0 expired reads over 3 lifetimes, the first token dead
// after its TTL, the last alive, the secret read with each.
func TestVaultRenewal(t *testing.T) {
	s, env, jwtFile := vaultWorld(t)
	const lifetime = 6 * time.Second
	s.SetMaxTTL(lifetime)
	dir := t.TempDir()
	filetree.WriteByRename(t, dir, vaultEnvs(s.URL, jwtFile))
	e := escfstest.Mount(t, dir, env)
	first, last, tokens := Renewals(t, e, "app", "VAULT_TOKEN", lifetime, 3, "DB_PASSWORD", "VAULT_ADDR")
	if tokens < 3 {
		t.Errorf("%d tokens over 3 lifetimes, want a renewal each", tokens)
	}
	if last["DB_PASSWORD"] != vaultPassword || last["VAULT_ADDR"] != s.URL {
		t.Errorf("DB_PASSWORD or VAULT_ADDR lost in a renewal")
	}
	if s.Valid(first["VAULT_TOKEN"]) || !s.Valid(last["VAULT_TOKEN"]) {
		t.Errorf("the first token is alive after its TTL, or the last is dead")
	}
	noSecrets(t, "the escfs log", e.Log(), vaultPassword, last["VAULT_TOKEN"])
}

// TestVaultErrors: a denied path, a JWT for another subject and an address
// that is not the user's Vault each fail their environment with a located
// diagnostic; the others read.
func TestVaultErrors(t *testing.T) {
	s, env, jwtFile := vaultWorld(t)
	other := filepath.Join(t.TempDir(), "other-token")
	if err := os.WriteFile(other, []byte(s.JWT("system:serviceaccount:dev:x", "vault", time.Hour)), 0o600); err != nil {
		t.Fatal(err)
	}
	files := vaultEnvs(s.URL, jwtFile)
	files["denied.yaml"] = strings.Replace(files["app.yaml"], "secret/app/db", "secret/admin/root", 1)
	files["subject.yaml"] = strings.Replace(files["demos/vault-access.yaml"], jwtFile, other, 1)
	files["elsewhere.yaml"] = strings.Replace(files["demos/vault-access.yaml"], s.URL, "https://vault.attacker.example:8200", 1)
	dir := t.TempDir()
	filetree.WriteByRename(t, dir, files)
	want := map[string]string{
		"denied":    "vault-secrets: read.db: read secret/data/admin/root: 403: permission denied",
		"subject":   "vault-login: jwt: auth/kubernetes-jwt/login: 400: error validating claims: sub claim does not match bound subject",
		"elsewhere": "vault-login: address https://vault.attacker.example:8200: escfs sends Vault credentials only to the address the user configured",
	}
	healthy := []string{"demos/vault-access", "app"}
	e := escfstest.Mount(t, dir, env)
	checkBroken(t, e, dir, want, healthy, []string{vaultPassword})
	stdout, stderr, code := escfstest.Run(t, 2*time.Minute, escfstest.Options{Env: env}, "--dir", dir, "check").Parts()
	checkReport(t, dir, stdout, stderr, code, want, healthy, []string{vaultPassword})
}
