package pulumistacks_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/providers/builtin"
)

// guideDefinition is the environment of the Kubernetes cluster access guide,
// with the backend given and a Pulumi config entry.
const guideDefinition = `values:
  stacks:
    fn::open::pulumi-stacks:
      backend: BACKEND
      stacks:
        eks-cluster:
          stack: eks-cluster/demo
  kubeconfig: {'fn::toJSON': "${stacks.eks-cluster.kubeconfig}"}
  pulumiConfig:
    kubernetes:kubeconfig: ${kubeconfig}
  files:
    KUBECONFIG: ${kubeconfig}
  environmentVariables:
    CLUSTER: ${stacks.eks-cluster.clusterName}
`

// evaluate evaluates the environment "k8s" defined by def in a fresh
// definitions directory, with the shipped providers.
func evaluate(t *testing.T, def string) (*eval.Snapshot, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "k8s.yaml"), []byte(def), 0o644); err != nil {
		t.Fatal(err)
	}
	tree, err := eval.ScanDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := &eval.Evaluator{Providers: builtin.Registry()}
	return e.Evaluate(context.Background(), tree, eval.Request{Name: "k8s", FilesDir: "/run/escfs/k8s"})
}

func TestEvaluateGuideEnvironment(t *testing.T) {
	backend, err := secretBackend()
	if err != nil {
		t.Fatal(err)
	}
	isolate(t)
	t.Setenv("PULUMI_CONFIG_PASSPHRASE", passphrase)
	snap, err := evaluate(t, strings.ReplaceAll(guideDefinition, "BACKEND", "file://"+backend))
	if err != nil {
		t.Fatal(err)
	}
	checkGuideSnapshot(t, snap)
	checkpoint := filepath.Join(backend, ".pulumi", "stacks", "eks-cluster", "demo.json")
	if !reflect.DeepEqual(snap.Watched, []string{checkpoint}) {
		t.Errorf("watched %v, want [%s]", snap.Watched, checkpoint)
	}
}

// checkGuideSnapshot checks the evaluation of guideDefinition over a stack
// with kubeconfig as a secret output and clusterName "demo": a secret
// KUBECONFIG file, a plain CLUSTER variable, and no expiry.
func checkGuideSnapshot(t *testing.T, snap *eval.Snapshot) {
	t.Helper()
	f, ok := snap.File("KUBECONFIG")
	if !ok {
		t.Fatal("no KUBECONFIG file")
	}
	if !f.Secret {
		t.Error("KUBECONFIG is not secret")
	}
	var got any
	if err := json.Unmarshal(f.Content, &got); err != nil {
		t.Fatalf("KUBECONFIG is not JSON: %v\n%s", err, f.Content)
	}
	var want any
	b, _ := json.Marshal(kubeconfig)
	json.Unmarshal(b, &want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("KUBECONFIG:\n got %s\nwant %s", f.Content, b)
	}
	if !slices.Contains(snap.Secrets, "kube-secret-token") && !containsIn(snap.Secrets, "kube-secret-token") {
		t.Errorf("the kubeconfig is not among the snapshot's secrets for redaction")
	}
	var cluster *eval.Var
	for i := range snap.Vars {
		if snap.Vars[i].Name == "CLUSTER" {
			cluster = &snap.Vars[i]
		}
	}
	if cluster == nil || cluster.Value != "demo" || cluster.Secret {
		t.Errorf("CLUSTER = %+v, want plain demo", cluster)
	}
	if !snap.ExpiresAt.IsZero() {
		t.Errorf("expires at %v, want never", snap.ExpiresAt)
	}
}

// containsIn reports whether any of ss contains sub.
func containsIn(ss []string, sub string) bool {
	for _, s := range ss {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func TestEvaluateDiagnostics(t *testing.T) {
	backend, err := secretBackend()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		def    string
		phrase string
		want   []string // substrings of one error diagnostic
	}{
		{
			name:   "missing output",
			def:    strings.ReplaceAll(guideDefinition, "${stacks.eks-cluster.clusterName}", "${stacks.eks-cluster.nope}"),
			phrase: passphrase,
			want:   []string{`unknown property "nope"`},
		},
		{
			name:   "missing stack",
			def:    strings.ReplaceAll(guideDefinition, "eks-cluster/demo", "eks-cluster/prod"),
			phrase: passphrase,
			want:   []string{"pulumi-stacks: stack eks-cluster/prod: stack not found in backend file://", "prod.json[.gz]"},
		},
		{
			name:   "wrong passphrase",
			def:    guideDefinition,
			phrase: "not the passphrase",
			want:   []string{"stack eks-cluster/demo", "demo.json", "incorrect passphrase"},
		},
		{
			name: "missing passphrase",
			def:  guideDefinition,
			want: []string{"stack eks-cluster/demo", "no passphrase"},
		},
		{
			name:   "corrupt checkpoint",
			def:    strings.ReplaceAll(guideDefinition, "BACKEND", "BROKEN"),
			phrase: passphrase,
			want:   []string{"stack eks-cluster/demo", "demo.json: corrupt checkpoint"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolate(t)
			if tc.phrase != "" {
				t.Setenv("PULUMI_CONFIG_PASSPHRASE", tc.phrase)
			}
			broken := t.TempDir()
			writeFile(t, filepath.Join(broken, ".pulumi/stacks/eks-cluster/demo.json"), "{not json")
			def := strings.ReplaceAll(tc.def, "BROKEN", "file://"+broken)
			def = strings.ReplaceAll(def, "BACKEND", "file://"+backend)
			snap, err := evaluate(t, def)
			checkDiagnostic(t, snap, err, tc.want, "hunter2", passphrase)
		})
	}
}

// checkDiagnostic checks that an evaluation failed with a located error
// diagnostic holding every one of want, and that no diagnostic holds any of
// secrets.
func checkDiagnostic(t *testing.T, snap *eval.Snapshot, err error, want []string, secrets ...string) {
	t.Helper()
	var derr *eval.DiagnosticsError
	if !errors.As(err, &derr) {
		t.Fatalf("error %v, want diagnostics", err)
	}
	t.Log(err)
	found := false
	for _, d := range snap.Diagnostics {
		ok := d.Severity == eval.SeverityError && d.Line > 0
		for _, w := range want {
			ok = ok && strings.Contains(d.Message, w)
		}
		found = found || ok
		for _, s := range secrets {
			if strings.Contains(d.Message, s) {
				t.Errorf("diagnostic reveals a secret: %s", d)
			}
		}
	}
	if !found {
		t.Errorf("no located error diagnostic with %q in:\n%v", want, err)
	}
}
