//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escfs/escfs/internal/escfstest"
	"github.com/escfs/escfs/internal/filetree"
	"github.com/escfs/escfs/providers/pulumistacks/stacktest"
)

// guideCluster is the cluster-access guide's last definition, word for word:
// a kubeconfig from the eks-cluster/demo stack's output, as a file and as
// Pulumi configuration, with the credentials of demos/aws-access imported.
const guideCluster = `imports:
  - demos/aws-access
values:
  stacks:
    fn::open::pulumi-stacks:
      stacks:
        eks-cluster:
          stack: eks-cluster/demo
  kubeconfig: {'fn::toJSON': "${stacks.eks-cluster.kubeconfig}"}
  pulumiConfig:
    kubernetes:kubeconfig: ${kubeconfig}
  files:
    KUBECONFIG: ${kubeconfig}
`

const stackPassphrase = "correct horse battery staple"

// writeStack writes the eks-cluster/demo checkpoint into backend, its
// kubeconfig a passphrase-encrypted secret output authenticating with token.
func writeStack(t *testing.T, backend string, c *Cluster, token string) string {
	t.Helper()
	path, err := stacktest.Write(backend, "eks-cluster", "demo",
		map[string]any{"clusterName": "demo"},
		map[string]any{"kubeconfig": c.KubeconfigObject(token)},
		stackPassphrase, stacktest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// namespaces runs script (which must end in a kubectl call printing names)
// until its output lists default and kube-system, which the apiserver's
// controllers create a moment after /readyz.
func namespaces(t *testing.T, e *escfstest.Escfs, what, script string) string {
	t.Helper()
	var out string
	escfstest.Eventually(t, 30*time.Second, func() string {
		var err error
		out, err = e.Shell(t, script)
		if err == nil && strings.Contains(out, "namespace/default\n") && strings.Contains(out, "namespace/kube-system\n") {
			return ""
		}
		return what + ": " + out
	})
	return out
}

// TestKubernetesClusterAccess walks the Kubernetes cluster-access guide
// through the mount against a real kube-apiserver: the stack's kubeconfig
// output becomes MNT/demos/cluster/files/KUBECONFIG, kubectl lists the
// namespaces with it, directly and after `source env` (which also brings
// demos/aws-access's OIDC credentials), and `escfs run` does what `esc run`
// does in the guide. A new checkpoint (rotated token) shows up on the next
// read.
func TestKubernetesClusterAccess(t *testing.T) {
	c := StartCluster(t)
	w := newAWSWorld(t)
	backend := t.TempDir()
	writeStack(t, backend, c, c.Token)
	passFile := filepath.Join(t.TempDir(), "passphrase")
	if err := os.WriteFile(passFile, []byte(stackPassphrase+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	filetree.WriteByRename(t, dir, map[string]string{"demos/aws-access.yaml": awsAccess, "demos/cluster.yaml": guideCluster})
	env := escfstest.EnvEdit(w.env,
		"PULUMI_BACKEND_URL=file://"+backend, // as after `pulumi login file://...`
		"PULUMI_CONFIG_PASSPHRASE_FILE="+passFile,
		"PULUMI_CONFIG_PASSPHRASE",
		"KUBECONFIG",
		"HOME="+t.TempDir(), // kubectl's cache, not the user's
	)
	e := escfstest.Mount(t, dir, env)
	kubeconfig := e.Path("demos/cluster/files/KUBECONFIG")

	// 1. KUBECONFIG pointing into the mount.
	out := namespaces(t, e, "KUBECONFIG=... kubectl", `KUBECONFIG="$MNT/demos/cluster/files/KUBECONFIG" kubectl --request-timeout=10s get namespaces -o name`)
	t.Logf("kubectl get namespaces:\n%s", out)

	// 2. source env: KUBECONFIG and the imported AWS credentials.
	out = namespaces(t, e, "source env; kubectl", `set -e; source "$MNT/demos/cluster/env"
[ "$KUBECONFIG" = "$MNT/demos/cluster/files/KUBECONFIG" ] || { echo "KUBECONFIG=$KUBECONFIG"; exit 1; }
case "$AWS_ACCESS_KEY_ID" in ASIA*) ;; *) echo "no STS credentials: $AWS_ACCESS_KEY_ID"; exit 1;; esac
[ -n "$AWS_SECRET_ACCESS_KEY" ] && [ -n "$AWS_SESSION_TOKEN" ] || { echo "incomplete AWS credentials"; exit 1; }
kubectl --request-timeout=10s get namespaces -o name`)

	// 3. escfs run, as esc run in the guide (files in a private temp dir).
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run := exec.CommandContext(ctx, escfstest.Binary(t), "--dir", dir, "run", "demos/cluster", "--", "kubectl", "--request-timeout=10s", "get", "namespaces", "-o", "name")
	run.Env = env
	if b, err := run.CombinedOutput(); err != nil || !strings.Contains(string(b), "namespace/kube-system\n") {
		t.Errorf("escfs run demos/cluster -- kubectl get namespaces: %v\n%s", err, b)
	}

	// The kubeconfig is the stack output, JSON-encoded, the same in files
	// and pulumiConfig; it is secret, so only its owner may read it.
	file := e.MustRead(t, "demos/cluster/files/KUBECONFIG")
	var got map[string]any
	if err := json.Unmarshal(file, &got); err != nil {
		t.Fatalf("KUBECONFIG is not JSON: %v", err)
	}
	if got["current-context"] != "e2e" || !strings.Contains(string(file), c.Token) {
		t.Errorf("KUBECONFIG is not the stack's kubeconfig:\n%s", file)
	}
	var values struct {
		PulumiConfig map[string]string `json:"pulumiConfig"`
	}
	if err := json.Unmarshal(e.MustRead(t, "demos/cluster/values.json"), &values); err != nil {
		t.Fatal(err)
	}
	if values.PulumiConfig["kubernetes:kubeconfig"] != string(file) {
		t.Errorf("pulumiConfig.kubernetes:kubeconfig differs from files.KUBECONFIG:\n%s\n%s", values.PulumiConfig["kubernetes:kubeconfig"], file)
	}
	if fi, err := os.Stat(kubeconfig); err != nil || fi.Mode().Perm() != 0o400 || fi.Size() != int64(len(file)) {
		t.Errorf("stat KUBECONFIG: %v %v, want 0400 and its exact size %d", fi, err, len(file))
	}

	// 4. The stack is updated (the token rotated): the next read of the
	// mounted kubeconfig has the new token, and kubectl uses it.
	evaluatedAt := e.Status(t, "demos/cluster").EvaluatedAt
	writeStack(t, backend, c, c.Token2)
	escfstest.Eventually(t, 10*time.Second, func() string {
		b, err := e.Read("demos/cluster/files/KUBECONFIG")
		if err != nil || !strings.Contains(string(b), c.Token2) {
			return "the mounted kubeconfig still lacks the new token"
		}
		return ""
	})
	if st := e.Status(t, "demos/cluster"); st.EvaluatedAt == nil || !st.EvaluatedAt.After(*evaluatedAt) {
		t.Errorf("status %+v: not re-evaluated after the checkpoint changed", st)
	}
	namespaces(t, e, "kubectl after rotation", `KUBECONFIG="$MNT/demos/cluster/files/KUBECONFIG" kubectl --request-timeout=10s get namespaces -o name`)

	// A token the apiserver does not know: kubectl through the same path is
	// refused, so it really reads what the mount serves.
	writeStack(t, backend, c, "revoked-"+c.Token)
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

	noSecrets(t, "the escfs log", e.Log(), c.Token, c.Token2, stackPassphrase)
}

// TestKubernetesStackErrors: a wrong passphrase, a missing stack and a
// corrupt checkpoint are clear diagnostics for the cluster environment
// alone; demos/aws-access keeps working.
func TestKubernetesStackErrors(t *testing.T) {
	// No cluster is needed to read a stack: one that is not running.
	c := &Cluster{Server: "https://127.0.0.1:6443", CAData: []byte("not a CA"), Token: randomHex(t, 16)}
	w := newAWSWorld(t)
	backend := t.TempDir()
	checkpoint := writeStack(t, backend, c, c.Token)
	dir := t.TempDir()
	missing := strings.ReplaceAll(guideCluster, "eks-cluster/demo", "eks-cluster/nope")
	filetree.WriteByRename(t, dir, map[string]string{"demos/aws-access.yaml": awsAccess, "demos/cluster.yaml": guideCluster, "demos/missing.yaml": missing})
	env := escfstest.EnvEdit(w.env, "PULUMI_BACKEND_URL=file://"+backend, "PULUMI_CONFIG_PASSPHRASE=not the passphrase", "PULUMI_CONFIG_PASSPHRASE_FILE", "HOME="+t.TempDir())
	e := escfstest.Mount(t, dir, env)
	checkBroken(t, e, dir, map[string]string{
		"demos/cluster": "pulumi-stacks: stack eks-cluster/demo: " + checkpoint + ": ",
		"demos/missing": "pulumi-stacks: stack eks-cluster/nope: ",
	}, []string{"demos/aws-access"}, []string{c.Token, stackPassphrase})
	for env, want := range map[string]string{"demos/cluster": "incorrect passphrase", "demos/missing": "not found"} {
		st := e.Status(t, env)
		if len(st.Diagnostics) == 0 || !strings.Contains(st.Diagnostics[0].Message, want) {
			t.Errorf("%s: diagnostics %+v do not mention %q", env, st.Diagnostics, want)
		}
		t.Logf("%s: %s", env, st.Diagnostics[0].Message)
	}

	// A corrupt checkpoint (a write cut short) is reported, and a good one
	// written over it recovers the environment.
	e2 := escfstest.Mount(t, dir, escfstest.EnvEdit(env, "PULUMI_CONFIG_PASSPHRASE="+stackPassphrase))
	if _, err := e2.Read("demos/cluster/env"); err != nil {
		t.Fatalf("with the right passphrase: %v", err)
	}
	good, err := os.ReadFile(checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(checkpoint, good[:len(good)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	escfstest.Eventually(t, 10*time.Second, func() string {
		st := e2.Status(t, "demos/cluster")
		if _, err := e2.Read("demos/cluster/env"); err == nil || st.State != "error" {
			return "a corrupt checkpoint still reads"
		}
		if len(st.Diagnostics) == 0 || !strings.Contains(st.Diagnostics[0].Message, checkpoint) {
			return "diagnostics do not name the checkpoint: " + st.Error
		}
		return ""
	})
	t.Logf("corrupt: %s", e2.Status(t, "demos/cluster").Diagnostics[0].Message)
	if err := os.WriteFile(checkpoint, good, 0o600); err != nil {
		t.Fatal(err)
	}
	escfstest.Eventually(t, 10*time.Second, func() string {
		if _, err := e2.Read("demos/cluster/env"); err != nil {
			return "not recovered: " + err.Error()
		}
		return ""
	})
}
