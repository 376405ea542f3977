package pulumistacks_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/internal/testutil"
	"github.com/escfs/escfs/providers/builtin"
	"github.com/escfs/escfs/providers/pulumistacks/stacktest"
)

// BenchmarkEvaluateStack evaluates the guide's environment over a file://
// stack whose kubeconfig output is plain, then over the same stack with it
// passphrase-encrypted (as pulumi-eks leaves it). The secret sub-benchmark
// reports its time as a multiple of the plain one's, timed in the same loop
// (testutil.Paired), as "x-plain": what
// decrypting costs an evaluation once the passphrase's key is derived
// (1,000,000 rounds of PBKDF2, done once per salt and passphrase in a
// process, not once per evaluation).
func BenchmarkEvaluateStack(b *testing.B) {
	ctx := context.Background()
	// setup writes the stack and the definition, evaluates once, and returns
	// one evaluation.
	setup := func(b *testing.B, secret bool) func() {
		backend := b.TempDir()
		outputs := map[string]any{"clusterName": "demo"}
		var secrets map[string]any
		if secret {
			secrets = map[string]any{"kubeconfig": kubeconfig}
		} else {
			outputs["kubeconfig"] = kubeconfig
		}
		if _, err := stacktest.Write(backend, "eks-cluster", "demo", outputs, secrets, passphrase, stacktest.Options{}); err != nil {
			b.Fatal(err)
		}
		b.Setenv("PULUMI_CONFIG_PASSPHRASE", passphrase)
		dir := b.TempDir()
		def := strings.ReplaceAll(guideDefinition, "BACKEND", "file://"+backend)
		if err := os.WriteFile(filepath.Join(dir, "k8s.yaml"), []byte(def), 0o644); err != nil {
			b.Fatal(err)
		}
		tree, err := eval.ScanDir(dir)
		if err != nil {
			b.Fatal(err)
		}
		e := &eval.Evaluator{Providers: builtin.Registry()}
		// The first evaluation derives the passphrase's key (~0.2 s here);
		// it is cached for the life of the process, so leave it out.
		if _, err := e.Evaluate(ctx, tree, eval.Request{Name: "k8s", FilesDir: "/run/escfs/k8s"}); err != nil {
			b.Fatal(err)
		}
		return func() {
			snap, err := e.Evaluate(ctx, tree, eval.Request{Name: "k8s", FilesDir: "/run/escfs/k8s"})
			if err != nil {
				b.Fatal(err)
			}
			if f, ok := snap.File("KUBECONFIG"); !ok || f.Secret != secret {
				b.Fatalf("KUBECONFIG %v secret %v, want secret %v", ok, f.Secret, secret)
			}
		}
	}
	b.Run("plain", func(b *testing.B) {
		plain := setup(b, false)
		b.ReportAllocs()
		for b.Loop() {
			plain()
		}
	})
	b.Run("secret", func(b *testing.B) {
		plain, secret := setup(b, false), setup(b, true)
		testutil.Paired(b, "x-plain", plain, secret)
	})
}
