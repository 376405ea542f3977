//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escfs/escfs/internal/testutil"
)

// TestCSIManifests: the CSI provider's manifests (deploy/csi) are accepted
// by a real kube-apiserver in a server-side dry run, the SecretProviderClass
// validated against the driver's own CRD (from the driver module escfs
// builds with); a class the CRD refuses is refused, so the dry run checks.
func TestCSIManifests(t *testing.T) {
	c := StartCluster(t)
	kc := c.Kubeconfig(c.Token)
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/secrets-store-csi-driver").Output()
	if err != nil {
		t.Fatalf("go list the driver module: %v", err)
	}
	crds := filepath.Join(strings.TrimSpace(string(out)), "deploy")
	for _, f := range []string{"secrets-store.csi.x-k8s.io_secretproviderclasses.yaml", "secrets-store.csi.x-k8s.io_secretproviderclasspodstatuses.yaml"} {
		if out, err := kubectl(t, kc, "apply", "--server-side", "-f", filepath.Join(crds, f)); err != nil {
			t.Fatalf("apply the driver's CRD %s: %v\n%s", f, err, out)
		}
	}
	if out, err := kubectl(t, kc, "wait", "--for=condition=established", "--timeout=60s", "crd/secretproviderclasses.secrets-store.csi.x-k8s.io"); err != nil {
		t.Fatalf("CRD not established: %v\n%s", err, out)
	}
	// The example's namespace, and its service account (a dry run creates
	// nothing, and the pod's admission looks the account up).
	if out, err := kubectl(t, kc, "create", "namespace", "prod"); err != nil {
		t.Fatalf("create namespace: %v\n%s", err, out)
	}
	if out, err := kubectl(t, kc, "create", "serviceaccount", "web", "-n", "prod"); err != nil {
		t.Fatalf("create service account: %v\n%s", err, out)
	}
	dir, err := testutil.FindUp("deploy/csi")
	if err != nil {
		t.Fatal(err)
	}
	// The apiserver learns the new kind's REST mapping within seconds.
	var last string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
		out, err := kubectl(t, kc, "apply", "--dry-run=server", "-f", dir)
		if err == nil {
			last = out
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubectl apply --dry-run=server -f deploy/csi: %v\n%s", err, out)
		}
	}
	for _, want := range []string{"daemonset.apps/escfs-csi-provider created (server dry run)", "csidriver.storage.k8s.io/secrets-store.csi.k8s.io created (server dry run)",
		"secretproviderclass.secrets-store.csi.x-k8s.io/escfs-app created (server dry run)", "pod/web created (server dry run)"} {
		if !strings.Contains(last, want) {
			t.Errorf("the dry run did not say %q:\n%s", want, last)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata: {name: bad, namespace: prod}\nspec: {provider: 42}\n"), 0o644)
	if out, err := kubectl(t, kc, "apply", "--dry-run=server", "-f", bad); err == nil {
		t.Errorf("a class whose provider is a number was accepted:\n%s", out)
	}
}
