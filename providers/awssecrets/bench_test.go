package awssecrets_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/internal/kumotest"
	"github.com/escfs/escfs/internal/testutil"
	"github.com/escfs/escfs/providers/awsclient"
	"github.com/escfs/escfs/providers/builtin"
)

// benchSecrets is how many secrets one evaluation reads.
const benchSecrets = 4

// BenchmarkReadSecrets compares evaluating an environment that reads
// benchSecrets secrets from kumo (over real HTTP on loopback) with a bare
// SDK program doing the same calls: load the configuration, then one
// GetSecretValue a secret. The escfs sub-benchmark reports its time as a
// multiple of the SDK's as "x-sdk": what the evaluator, the provider and
// rendering add to the network calls.
func BenchmarkReadSecrets(b *testing.B) {
	endpoint := kumotest.Start(b)
	kumotest.Env(b, endpoint)
	b.Setenv("AWS_CA_BUNDLE", "")
	ctx := context.Background()
	login := &awsclient.Login{AccessKeyID: "AKIABENCH", SecretAccessKey: "bench-secret"}
	cfg, err := awsclient.Load(ctx, awsclient.Options{Region: "us-east-1", Login: login})
	if err != nil {
		b.Fatal(err)
	}
	var def strings.Builder
	def.WriteString(`values:
  secrets:
    fn::open::aws-secrets:
      region: us-east-1
      login: {accessKeyId: AKIABENCH, secretAccessKey: bench-secret}
      get:
`)
	for i := range benchSecrets {
		id := fmt.Sprintf("bench/secret-%d", i)
		if _, err := secretsmanager.NewFromConfig(cfg).CreateSecret(ctx, &secretsmanager.CreateSecretInput{
			Name: aws.String(id), SecretString: aws.String(fmt.Sprintf("value-%d", i))}); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(&def, "        s%d: {secretId: %s}\n", i, id)
	}
	def.WriteString("  environmentVariables:\n")
	for i := range benchSecrets {
		fmt.Fprintf(&def, "    S%d: ${secrets.s%d}\n", i, i)
	}
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app.yaml"), []byte(def.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	tree, err := eval.ScanDir(dir)
	if err != nil {
		b.Fatal(err)
	}

	sdk := func() {
		cfg, err := awsclient.Load(ctx, awsclient.Options{Region: "us-east-1", Login: login})
		if err != nil {
			b.Fatal(err)
		}
		client := secretsmanager.NewFromConfig(cfg)
		for i := range benchSecrets {
			out, err := client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(fmt.Sprintf("bench/secret-%d", i))})
			if err != nil || aws.ToString(out.SecretString) != fmt.Sprintf("value-%d", i) {
				b.Fatal(err)
			}
		}
	}
	b.Run("sdk", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sdk()
		}
	})
	b.Run("escfs", func(b *testing.B) {
		e := &eval.Evaluator{Providers: builtin.Registry()}
		testutil.Paired(b, "x-sdk", sdk, func() {
			snap, err := e.Evaluate(ctx, tree, eval.Request{Name: "app", FilesDir: "/run/escfs/app"})
			if err != nil || len(snap.Vars) != benchSecrets {
				b.Fatal(err)
			}
		})
	})
}
