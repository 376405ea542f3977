package awssecrets_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/internal/kumotest"
	"github.com/escfs/escfs/providers/builtin"
)

// TestThroughEvaluatorAgainstKumo evaluates, with the shipped providers,
// definitions whose environment variables take values from aws-secrets (with
// aws-login's credentials) and aws-parameter-store (with the default chain),
// and definitions whose reads fail.
func TestThroughEvaluatorAgainstKumo(t *testing.T) {
	kumo := kumotest.Start(t)
	kumotest.Env(t, kumo)
	seed(t)
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]struct {
		value string
		typ   ssmtypes.ParameterType
	}{
		"/e2e/host":  {"db.internal", ssmtypes.ParameterTypeString},
		"/e2e/ports": {"5432,6432", ssmtypes.ParameterTypeStringList},
		"/e2e/token": {"param-secure-token", ssmtypes.ParameterTypeSecureString},
	} {
		if _, err := ssm.NewFromConfig(cfg).PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String(p.value), Type: p.typ}); err != nil {
			t.Fatalf("seed %s: %v", name, err)
		}
	}
	rec := kumotest.NewRecorder(t, kumotest.ProxyTo(t, kumo))
	t.Setenv("AWS_ENDPOINT_URL", rec.URL)

	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("app", `values:
  creds:
    fn::open::aws-login:
      static:
        accessKeyId: AKIALOGIN
        secretAccessKey: `+loginSecret+`
  secrets:
    fn::open::aws-secrets:
      login: ${creds}
      get:
        db-password:
          secretId: app/plain
        previous:
          secretId: app/rotated
          versionStage: AWSPREVIOUS
        blob:
          secretId: app/binary
  params:
    fn::open::aws-parameter-store:
      region: us-east-1
      get:
        host:
          name: /e2e/host
        ports:
          name: /e2e/ports
        token:
          name: /e2e/token
  environmentVariables:
    DB_PASSWORD: ${secrets.db-password}
    PREVIOUS_PASSWORD: ${secrets.previous}
    DB_HOST: ${params.host}
    DB_PORT: ${params.ports[0]}
    POOLER_PORT: ${params.ports[1]}
    API_TOKEN: ${params.token}
    DSN: postgres://app:${secrets.db-password}@${params.host}:${params.ports[0]}/app
`)
	write("missing", `values:
  secrets:
    fn::open::aws-secrets:
      get:
        db:
          secretId: no/such/secret
  params:
    fn::open::aws-parameter-store:
      get:
        host:
          name: /no/such/param
`)
	write("noget", `values:
  secrets:
    fn::open::aws-secrets:
      region: us-east-1
`)
	tree, err := eval.ScanDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := &eval.Evaluator{Providers: builtin.Registry()}

	snap, err := e.Evaluate(ctx, tree, eval.Request{Name: "app", FilesDir: "/run/escfs/app"})
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]eval.Var{}
	for _, v := range snap.Vars {
		vars[v.Name] = v
	}
	for name, want := range map[string]eval.Var{
		"DB_PASSWORD":       {Value: plainValue, Secret: true},
		"PREVIOUS_PASSWORD": {Value: firstVersion, Secret: true},
		"DB_HOST":           {Value: "db.internal"},
		"DB_PORT":           {Value: "5432"},
		"POOLER_PORT":       {Value: "6432"},
		"API_TOKEN":         {Value: "param-secure-token", Secret: true},
		"DSN":               {Value: "postgres://app:" + plainValue + "@db.internal:5432/app", Secret: true},
	} {
		want.Name = name
		if got := vars[name]; got != want {
			t.Errorf("%s = %+v, want %+v", name, got, want)
		}
	}
	for _, s := range []string{plainValue, firstVersion, "param-secure-token"} {
		if !slices.Contains(snap.Secrets, s) {
			t.Errorf("%q is not among the snapshot's secrets", s)
		}
	}
	if !strings.Contains(string(snap.Env), "export DB_HOST='db.internal'\n") {
		t.Errorf("Env lacks DB_HOST:\n%s", snap.Env)
	}
	signers := map[string][]string{}
	for _, c := range rec.Take() {
		signers[c.Target] = append(signers[c.Target], c.AccessKeyID)
	}
	if got := signers["secretsmanager.GetSecretValue"]; !slices.Equal(got, []string{"AKIALOGIN", "AKIALOGIN", "AKIALOGIN"}) {
		t.Errorf("GetSecretValue calls signed by %q, want three by aws-login's AKIALOGIN", got)
	}
	if got := signers["AmazonSSM.GetParameter"]; !slices.Equal(got, []string{"AKIAKUMOTEST", "AKIAKUMOTEST", "AKIAKUMOTEST"}) {
		t.Errorf("GetParameter calls signed by %q, want three by the default chain's AKIAKUMOTEST", got)
	}

	for env, want := range map[string][]string{
		"missing": {
			"aws-secrets get.db: secretsmanager:GetSecretValue: ResourceNotFoundException: Secrets Manager can't find the specified secret: no/such/secret",
			"aws-parameter-store get.host: ssm:GetParameter: ParameterNotFound: Parameter /no/such/param not found.",
		},
		"noget": {"missing required properties: get"},
	} {
		snap, err := e.Evaluate(ctx, tree, eval.Request{Name: env})
		var de *eval.DiagnosticsError
		if !errors.As(err, &de) || snap == nil {
			t.Fatalf("%s: Evaluate = %v, %v; want diagnostics", env, snap, err)
		}
		var msgs []string
		for _, d := range de.Diagnostics {
			msgs = append(msgs, d.Message)
			if d.File != filepath.Join(dir, env+".yaml") || d.Line == 0 {
				t.Errorf("%s: diagnostic %v is not located in the definition", env, d)
			}
		}
		for _, w := range want {
			if !slices.Contains(msgs, w) {
				t.Errorf("%s: diagnostics %q lack %q", env, msgs, w)
			}
		}
	}
}
