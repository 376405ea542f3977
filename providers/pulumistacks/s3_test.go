package pulumistacks_test

import (
	"bytes"
	"context"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/escfs/escfs/internal/kumotest"
	"github.com/escfs/escfs/providers/pulumistacks"
	"github.com/escfs/escfs/providers/pulumistacks/stacktest"
)

// s3Client returns a path-style S3 client for the emulator at endpoint.
func s3Client(t *testing.T, endpoint string) *s3.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion("us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
		o.DisableLogOutputChecksumValidationSkipped = true
	})
}

// put uploads data to bucket/key.
func put(t *testing.T, c *s3.Client, bucket, key string, data []byte) {
	t.Helper()
	if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data),
	}); err != nil {
		t.Fatalf("put s3://%s/%s: %v", bucket, key, err)
	}
}

// putStack uploads a stack checkpoint, and the project layout's metadata,
// under prefix in bucket, as the CLI would have written them.
func putStack(t *testing.T, c *s3.Client, bucket, prefix, project, stack string, outputs, secrets map[string]any, phrase string, opts stacktest.Options) {
	t.Helper()
	data, err := stacktest.Checkpoint(project, stack, outputs, secrets, phrase, opts)
	if err != nil {
		t.Fatal(err)
	}
	put(t, c, bucket, prefix+stacktest.Key(project, stack, opts), data)
	if !opts.OldLayout {
		put(t, c, bucket, prefix+stacktest.MetaKey, stacktest.MetaData)
	}
}

// noCABundle unsets AWS_CA_BUNDLE: awsclient.Load's plain *http.Client
// cannot take a custom CA bundle, and the emulator speaks plain HTTP.
func noCABundle(t *testing.T) {
	t.Setenv("AWS_CA_BUNDLE", "")
	os.Unsetenv("AWS_CA_BUNDLE")
}

func TestS3Backend(t *testing.T) {
	isolate(t)
	noCABundle(t)
	endpoint := kumotest.Start(t)
	kumotest.Env(t, endpoint) // AWS_ENDPOINT_URL, dummy credentials, us-east-1
	c := s3Client(t, endpoint)
	ctx := context.Background()
	for _, b := range []string{"state", "legacy-state"} {
		if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatalf("create bucket %s: %v", b, err)
		}
	}
	putStack(t, c, "state", "", "eks-cluster", "demo", map[string]any{"clusterName": "demo"},
		map[string]any{"kubeconfig": kubeconfig, "adminPassword": "hunter2-admin", "replicas": 5}, passphrase, stacktest.Options{})
	putStack(t, c, "state", "teams/platform/", "net", "prod", plainOutputs, nil, "", stacktest.Options{Gzip: true})
	putStack(t, c, "legacy-state", "", "net", "prod", plainOutputs, nil, "", stacktest.Options{OldLayout: true})
	t.Setenv("PULUMI_CONFIG_PASSPHRASE", passphrase)

	p := &pulumistacks.Provider{}
	for _, tc := range []struct {
		name, backend, stack string
		secrets              bool
	}{
		{name: "endpoint parameter", backend: "s3://state?region=us-east-1&endpoint=" + endpoint, stack: "eks-cluster/demo", secrets: true},
		{name: "endpoint parameter with s3ForcePathStyle", backend: "s3://state?region=us-east-1&s3ForcePathStyle=true&endpoint=" + endpoint, stack: "eks-cluster/demo", secrets: true},
		{name: "endpoint host with disableSSL", backend: "s3://state?disableSSL=true&s3ForcePathStyle=true&endpoint=" + strings.TrimPrefix(endpoint, "http://"), stack: "eks-cluster/demo", secrets: true},
		{name: "AWS_ENDPOINT_URL, prefix, gzip", backend: "s3://state/teams/platform", stack: "net/prod"},
		{name: "old layout", backend: "s3://legacy-state?region=us-east-1", stack: "net/prod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, files, err := open(t, p, tc.backend, tc.stack)
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != 0 {
				t.Errorf("s3 backend reported local files %v", files)
			}
			if tc.secrets {
				checkSecretOutputs(t, got)
				return
			}
			if js, _, _ := plain(got); !reflect.DeepEqual(js, jsonOf(t, plainOutputs)) {
				t.Errorf("outputs %v", js)
			}
		})
	}

	t.Run("AWS_ENDPOINT_URL_S3", func(t *testing.T) {
		t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1") // nothing listens there
		t.Setenv("AWS_ENDPOINT_URL_S3", endpoint)
		if _, _, err := open(t, p, "s3://state/teams/platform", "net/prod"); err != nil {
			t.Fatal(err)
		}
	})

	for _, tc := range []struct {
		name, backend, stack string
		want                 []string
	}{
		{name: "missing stack", backend: "s3://state", stack: "eks-cluster/prod",
			want: []string{"stack eks-cluster/prod: stack not found in backend s3://state", "s3://state/.pulumi/stacks/eks-cluster/prod.json[.gz]"}},
		{name: "missing bucket", backend: "s3://no-such-bucket", stack: "eks-cluster/demo",
			want: []string{"stack eks-cluster/demo", "s3://no-such-bucket/.pulumi/meta.yaml", "NoSuchBucket"}},
		{name: "wrong passphrase", backend: "s3://state", stack: "eks-cluster/demo",
			want: []string{"stack eks-cluster/demo", "s3://state/.pulumi/stacks/eks-cluster/demo.json", "incorrect passphrase"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "wrong passphrase" {
				t.Setenv("PULUMI_CONFIG_PASSPHRASE", "wrong")
			}
			_, _, err := open(t, &pulumistacks.Provider{}, tc.backend, tc.stack)
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestS3CorruptCheckpoint checks that a checkpoint that is not JSON is an
// error naming its s3:// location.
func TestS3CorruptCheckpoint(t *testing.T) {
	isolate(t)
	noCABundle(t)
	endpoint := kumotest.Start(t)
	kumotest.Env(t, endpoint)
	c := s3Client(t, endpoint)
	if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("state")}); err != nil {
		t.Fatal(err)
	}
	put(t, c, "state", ".pulumi/stacks/app/dev.json", []byte("not json"))
	_, _, err := open(t, &pulumistacks.Provider{}, "s3://state", "app/dev")
	if err == nil || !strings.Contains(err.Error(), "s3://state/.pulumi/stacks/app/dev.json: corrupt checkpoint") {
		t.Fatalf("error %v, want a corrupt checkpoint at s3://state/.pulumi/stacks/app/dev.json", err)
	}
}
