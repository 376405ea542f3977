package csiprovider_test

import (
	"context"
	"fmt"
	"testing"

	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/escfs/escfs/csiprovider"
	"github.com/escfs/escfs/csiprovider/csitest"
	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/internal/testutil"
	"github.com/escfs/escfs/providers/builtin"
)

// BenchmarkMount measures a Mount over the unix socket: warm (the service
// account's evaluation cached) against the Version call's round trip, the
// cost of the gRPC hop alone; and cold (a service account not seen before,
// so an evaluation) against the evaluation alone.
func BenchmarkMount(b *testing.B) {
	w := csitest.Start(b, map[string]string{"prod/app.yaml": appDef}, "allow:\n  - {namespace: prod, serviceAccount: \"*\", environments: [prod/*]}\n")
	params := map[string]string{"environment": "prod/app"}
	ctx := context.Background()
	b.Run("warm", func(b *testing.B) {
		if _, err := w.Mount(b, web, params, nil); err != nil {
			b.Fatal(err)
		}
		testutil.Paired(b, "x-rpc", func() {
			if _, err := w.Client.Version(ctx, &v1alpha1.VersionRequest{Version: "v1alpha1"}); err != nil {
				b.Fatal(err)
			}
		}, func() {
			if _, err := w.Mount(b, web, params, nil); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("cold", func(b *testing.B) {
		tree, err := eval.ScanDir(w.Dir)
		if err != nil {
			b.Fatal(err)
		}
		ev := &eval.Evaluator{Providers: builtin.Registry()}
		n := 0
		testutil.Paired(b, "x-eval", func() {
			if _, err := ev.Evaluate(ctx, tree, eval.Request{Name: "prod/app", FilesDir: csiprovider.DefaultFilesDir}); err != nil {
				b.Fatal(err)
			}
		}, func() {
			n++
			if _, err := w.Mount(b, csitest.Pod{Namespace: "prod", ServiceAccount: fmt.Sprintf("sa-%d", n)}, params, nil); err != nil {
				b.Fatal(err)
			}
		})
	})
}
