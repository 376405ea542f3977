//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/escfs/escfs/cloud/cloudtest"
	"github.com/escfs/escfs/internal/escfstest"
)

// cloudCluster is the cluster-access guide's cluster environment as a team
// keeps it in Pulumi Cloud: the kubeconfig (here a literal in place of the
// stack output, its token a secret) rendered with fn::toJSON into
// files.KUBECONFIG and pulumiConfig, with demos/aws-access imported.
func cloudCluster(t *testing.T, c *Cluster, token string) string {
	t.Helper()
	obj := c.KubeconfigObject(token)
	obj["users"] = []any{map[string]any{"name": "e2e", "user": map[string]any{"token": map[string]any{"fn::secret": token}}}}
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return `imports:
  - demos/aws-access
values:
  stack:
    kubeconfig: ` + string(b) + `
  kubeconfig: {'fn::toJSON': "${stack.kubeconfig}"}
  pulumiConfig:
    kubernetes:kubeconfig: ${kubeconfig}
  files:
    KUBECONFIG: ${kubeconfig}
`
}

// cloudAWSAccess stands in for the guide's aws-access environment in
// Pulumi Cloud: the service's credential provider (test-login in the
// simulation) exported for AWS tools.
const cloudAWSAccess = `values:
  aws:
    region: us-east-1
    creds:
      fn::open::test-login:
        ttl: 1h
  environmentVariables:
    AWS_ACCESS_KEY_ID: ${aws.creds.accessKeyId}
    AWS_SECRET_ACCESS_KEY: ${aws.creds.secretAccessKey}
    AWS_SESSION_TOKEN: ${aws.creds.sessionToken}
    AWS_REGION: ${aws.region}
`

// TestCloudClusterAccess walks the Kubernetes cluster-access guide with the
// environments in Pulumi Cloud (the simulation of its API, on 127.0.0.1)
// and a real kube-apiserver: kubectl through MNT/demos/cluster/files/KUBECONFIG,
// after `source env`, and through `escfs --cloud run`; a new revision with a
// rotated token shows on the next read after a poll, and a revoked one is
// refused by the apiserver.
func TestCloudClusterAccess(t *testing.T) {
	c := StartCluster(t)
	sim := cloudtest.Start(t, cloudtest.Options{})
	sim.Put("acme", "demos/aws-access", cloudAWSAccess)
	sim.Put("acme", "demos/cluster", cloudCluster(t, c, c.Token))
	env := escfstest.EnvEdit(os.Environ(),
		"PULUMI_BACKEND_URL="+sim.URL,
		"PULUMI_ACCESS_TOKEN="+sim.Token(),
		"PULUMI_HOME="+t.TempDir(),
		"PULUMI_API", "PULUMI_CREDENTIALS_PATH", "PULUMI_CONSOLE_DOMAIN", "ESCFS_DIR",
		"KUBECONFIG",
		"HOME="+t.TempDir(), // kubectl's cache, not the user's
	)
	e := escfstest.MountCloud(t, env, "--cloud", "acme", "--poll", "500ms")
	if n := sim.Requests(cloudtest.Open); n != 0 {
		t.Errorf("%d opens before anything was read", n)
	}

	// 1. KUBECONFIG pointing into the mount.
	out := namespaces(t, e, "KUBECONFIG=... kubectl", `KUBECONFIG="$MNT/demos/cluster/files/KUBECONFIG" kubectl --request-timeout=10s get namespaces -o name`)
	t.Logf("kubectl get namespaces:\n%s", out)

	// 2. source env: KUBECONFIG and the imported credentials.
	namespaces(t, e, "source env; kubectl", `set -e; source "$MNT/demos/cluster/env"
[ "$KUBECONFIG" = "$MNT/demos/cluster/files/KUBECONFIG" ] || { echo "KUBECONFIG=$KUBECONFIG"; exit 1; }
case "$AWS_ACCESS_KEY_ID" in ASIATEST*) ;; *) echo "no credentials: $AWS_ACCESS_KEY_ID"; exit 1;; esac
[ -n "$AWS_SECRET_ACCESS_KEY" ] && [ -n "$AWS_SESSION_TOKEN" ] && [ -n "$ESCFS_EXPIRES_AT" ] || { echo "incomplete"; exit 1; }
kubectl --request-timeout=10s get namespaces -o name`)

	// 3. escfs --cloud run, as esc run.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run := exec.CommandContext(ctx, escfstest.Binary(t), "--cloud", "acme", "run", "demos/cluster", "--", "kubectl", "--request-timeout=10s", "get", "namespaces", "-o", "name")
	run.Env = env
	if b, err := run.CombinedOutput(); err != nil || !strings.Contains(string(b), "namespace/kube-system\n") {
		t.Errorf("escfs --cloud run demos/cluster -- kubectl get namespaces: %v\n%s", err, b)
	}

	// The kubeconfig is the same in files and pulumiConfig, 0400.
	file := e.MustRead(t, "demos/cluster/files/KUBECONFIG")
	var values struct {
		PulumiConfig map[string]string `json:"pulumiConfig"`
	}
	if err := json.Unmarshal(e.MustRead(t, "demos/cluster/values.json"), &values); err != nil {
		t.Fatal(err)
	}
	if values.PulumiConfig["kubernetes:kubeconfig"] != string(file) || !strings.Contains(string(file), c.Token) {
		t.Errorf("pulumiConfig.kubernetes:kubeconfig and files.KUBECONFIG differ or lack the token:\n%s", file)
	}
	if fi, err := os.Stat(e.Path("demos/cluster/files/KUBECONFIG")); err != nil || fi.Mode().Perm() != 0o400 || fi.Size() != int64(len(file)) {
		t.Errorf("stat KUBECONFIG: %v %v", fi, err)
	}
	st := e.Status(t, "demos/cluster")
	if st.State != "ok" || st.ExpiresAt == nil || st.EvaluatedAt == nil {
		t.Errorf("status %+v", st)
	}

	// 4. A new revision (the token rotated) shows after the next poll.
	sim.Put("acme", "demos/cluster", cloudCluster(t, c, c.Token2))
	escfstest.Eventually(t, 10*time.Second, func() string {
		b, err := e.Read("demos/cluster/files/KUBECONFIG")
		if err != nil || !strings.Contains(string(b), c.Token2) {
			return "the mounted kubeconfig still lacks the new token"
		}
		return ""
	})
	namespaces(t, e, "kubectl after rotation", `KUBECONFIG="$MNT/demos/cluster/files/KUBECONFIG" kubectl --request-timeout=10s get namespaces -o name`)
	sim.Put("acme", "demos/cluster", cloudCluster(t, c, "revoked-"+c.Token))
	escfstest.Eventually(t, 10*time.Second, func() string {
		b, err := e.Read("demos/cluster/files/KUBECONFIG")
		if err != nil || !strings.Contains(string(b), "revoked-") {
			return "the mounted kubeconfig still lacks the revoked token"
		}
		return ""
	})
	out, err := e.Shell(t, `KUBECONFIG="$MNT/demos/cluster/files/KUBECONFIG" kubectl --request-timeout=10s get namespaces`)
	if err == nil || !strings.Contains(out, "You must be logged in to the server") {
		t.Errorf("kubectl with a revoked token: %v, want a refusal:\n%s", err, out)
	}

	// 5. An outage: the last snapshot is served (status stale) while the
	// service answers 503.
	sim.Fail(503)
	before := e.MustRead(t, "demos/cluster/files/KUBECONFIG")
	time.Sleep(time.Second) // a poll or two fail
	if b, err := e.Read("demos/cluster/files/KUBECONFIG"); err != nil || string(b) != string(before) {
		t.Errorf("read during an outage: %v", err)
	}
	sim.Heal()

	noSecrets(t, "the escfs log", e.Log(), sim.Token(), c.Token, c.Token2)
}
