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
	"github.com/escfs/escfs/providers/gcpclient/gcptest"
)

const gcpPassword = "gsm-db-password-7f3a"

// gcpEnvs are the GKE walkthrough's environments: gcp-login with workload
// identity federation (a Kubernetes service-account token in a file, as
// GKE and CI systems project one), a Secret Manager secret, and a GKE
// kubeconfig whose user is the login's token, in files/KUBECONFIG.
func gcpEnvs(tokenFile string) map[string]string {
	return map[string]string{
		"demos/gcp-access.yaml": `values:
  gcp:
    login:
      fn::open::gcp-login:
        project: 123456789
        oidc:
          workloadPoolId: ci-pool
          providerId: k8s
          serviceAccount: deploy@acme-prod.iam.gserviceaccount.com
          tokenFile: ` + tokenFile + `
  environmentVariables:
    CLOUDSDK_AUTH_ACCESS_TOKEN: ${gcp.login.accessToken}
    GOOGLE_CLOUD_PROJECT: ${gcp.login.project}
`,
		"gke.yaml": `imports:
  - demos/gcp-access
values:
  secrets:
    fn::open::gcp-secrets:
      login: ${gcp.login}
      access:
        db:
          name: db-password
  kubeconfig:
    apiVersion: v1
    kind: Config
    clusters:
      - name: gke
        cluster:
          server: https://34.0.0.1
    users:
      - name: gke
        user:
          token: ${gcp.login.accessToken}
    contexts:
      - name: gke
        context: {cluster: gke, user: gke}
    current-context: gke
  files:
    KUBECONFIG:
      fn::toJSON: ${kubeconfig}
  environmentVariables:
    DB_PASSWORD: ${secrets.db}
`,
	}
}

// gcpWorld starts the Google simulation and writes the subject token.
func gcpWorld(t *testing.T) (*gcptest.Server, []string, string) {
	s := gcptest.New(t)
	s.AddProvider("ci-pool", "k8s")
	s.AllowImpersonation("deploy@acme-prod.iam.gserviceaccount.com")
	s.PutSecret("db-password", gcpPassword)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(s.SubjectToken("ci-pool", "k8s", "system:serviceaccount:ci:deploy", "", time.Hour)), 0o600); err != nil {
		t.Fatal(err)
	}
	env := escfstest.EnvWith("HOME=" + t.TempDir())
	for k, v := range s.Env() {
		env = escfstest.EnvEdit(env, k+"="+v)
	}
	return s, env, tokenFile
}

// gcpWorks reports whether Secret Manager takes token.
func gcpWorks(t *testing.T, s *gcptest.Server, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/v1/projects/123456789/secrets/db-password/versions/latest:access", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestGCPThroughTheMount: the GKE walkthrough through a real mount; the
// shell gets the token and the secret, kubectl reads the kubeconfig with
// the token as its user, and the token works at Secret Manager.
func TestGCPThroughTheMount(t *testing.T) {
	s, env, tokenFile := gcpWorld(t)
	dir := t.TempDir()
	filetree.WriteByRename(t, dir, gcpEnvs(tokenFile))
	e := escfstest.Mount(t, dir, env)
	vars := sourced(t, e, "gke", "CLOUDSDK_AUTH_ACCESS_TOKEN", "GOOGLE_CLOUD_PROJECT", "DB_PASSWORD")
	if vars["DB_PASSWORD"] != gcpPassword || vars["GOOGLE_CLOUD_PROJECT"] != "123456789" {
		t.Errorf("sourced %q", vars)
	}
	token := vars["CLOUDSDK_AUTH_ACCESS_TOKEN"]
	if code := gcpWorks(t, s, token); code != http.StatusOK {
		t.Errorf("the mounted token gets %d from Secret Manager", code)
	}
	out, err := exec.Command("kubectl", "--kubeconfig", e.Path("gke/files/KUBECONFIG"), "config", "view", "--raw", "-o", "jsonpath={.users[0].user.token}").CombinedOutput()
	if err != nil || string(out) != token {
		t.Errorf("kubectl config view: %v, the user's token is the login's: %v", err, string(out) == token)
	}
	log := e.Log()
	noSecrets(t, "the escfs log", log, token, gcpPassword)
	if st := e.Status(t, "gke"); st.State != "ok" || st.ExpiresAt == nil {
		t.Errorf("status %+v, want ok with an expiry", st)
	}
}

// TestGCPRenewal: service-account tokens that live 6 s are renewed by the
// mount before they expire: 0 expired reads over 3 lifetimes, the first
// token refused by Secret Manager after its expiry, the last one taken.
func TestGCPRenewal(t *testing.T) {
	s, env, tokenFile := gcpWorld(t)
	const lifetime = 6 * time.Second
	s.SetTokenTTL(lifetime)
	dir := t.TempDir()
	filetree.WriteByRename(t, dir, gcpEnvs(tokenFile))
	e := escfstest.Mount(t, dir, env)
	first, last, tokens := Renewals(t, e, "gke", "CLOUDSDK_AUTH_ACCESS_TOKEN", lifetime, 3, "DB_PASSWORD")
	if tokens < 3 {
		t.Errorf("%d tokens over 3 lifetimes, want a renewal each", tokens)
	}
	if last["DB_PASSWORD"] != gcpPassword {
		t.Errorf("DB_PASSWORD lost in a renewal")
	}
	if code := gcpWorks(t, s, first["CLOUDSDK_AUTH_ACCESS_TOKEN"]); code != http.StatusUnauthorized {
		t.Errorf("the first token after its expiry: %d, want 401", code)
	}
	if code := gcpWorks(t, s, last["CLOUDSDK_AUTH_ACCESS_TOKEN"]); code != http.StatusOK {
		t.Errorf("the last token: %d, want 200", code)
	}
}

// TestGCPErrors: a refused impersonation, a missing secret and a forged
// subject token each fail their environment with a located diagnostic
// carrying Google's code and message, in status and in escfs check;
// the others read.
func TestGCPErrors(t *testing.T) {
	s, env, tokenFile := gcpWorld(t)
	forged := filepath.Join(t.TempDir(), "forged")
	good, _ := os.ReadFile(tokenFile)
	if err := os.WriteFile(forged, []byte(string(good[:len(good)-4])+"AAAA"), 0o600); err != nil {
		t.Fatal(err)
	}
	files := gcpEnvs(tokenFile)
	files["denied.yaml"] = strings.Replace(files["demos/gcp-access.yaml"], "deploy@acme-prod", "admin@acme-prod", 1)
	files["forged.yaml"] = strings.Replace(files["demos/gcp-access.yaml"], tokenFile, forged, 1)
	files["missing.yaml"] = strings.Replace(files["gke.yaml"], "name: db-password", "name: no-such", 1)
	dir := t.TempDir()
	filetree.WriteByRename(t, dir, files)
	want := map[string]string{
		"denied":  "gcp-login: oidc: iamcredentials generateAccessToken: PERMISSION_DENIED: Permission 'iam.serviceAccounts.getAccessToken' denied",
		"forged":  "gcp-login: oidc: sts token exchange: invalid_grant: Invalid ID Token signature.",
		"missing": "gcp-secrets: access.db: secretmanager access projects/123456789/secrets/no-such/versions/latest: NOT_FOUND",
	}
	healthy := []string{"demos/gcp-access", "gke"}
	secrets := []string{gcpPassword, strings.TrimSpace(string(good))}
	e := escfstest.Mount(t, dir, env)
	checkBroken(t, e, dir, want, healthy, secrets)
	stdout, stderr, code := escfstest.Run(t, 2*time.Minute, escfstest.Options{Env: env}, "--dir", dir, "check").Parts()
	checkReport(t, dir, stdout, stderr, code, want, healthy, secrets)
	_ = s
}
