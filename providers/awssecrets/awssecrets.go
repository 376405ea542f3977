// Package awssecrets implements the aws-secrets provider: secrets read from
// AWS Secrets Manager, as the Pulumi ESC provider of the same name returns
// them.
//
//	fn::open::aws-secrets:
//	  region: us-west-1         # optional: default the SDK's (AWS_REGION, the profile's)
//	  login: ${aws.login}       # optional: {accessKeyId, secretAccessKey, sessionToken?};
//	                            # default the SDK's default credential chain
//	  get:
//	    api-key:
//	      secretId: api-key     # a secret name or ARN
//	    db:
//	      secretId: prod-db
//	      versionStage: AWSPREVIOUS   # optional staging label
//	      versionId: ...              # optional version ID
//
// The output maps each name under get to the secret's value, a string, always
// secret: a SecretString as stored, a SecretBinary base64-encoded (standard
// encoding, with padding). Each entry is one secretsmanager:GetSecretValue
// call, bounded by providers.CallTimeout with the SDK's standard retries; the
// calls run concurrently. Every AWS call goes through the SDK's standard
// configuration (AWS_REGION, AWS_ENDPOINT_URL,
// AWS_ENDPOINT_URL_SECRETS_MANAGER, shared config files, ...).
//
// Errors name the entry, the AWS operation and the AWS error code and
// message ("aws-secrets get.db: secretsmanager:GetSecretValue:
// ResourceNotFoundException: ..."); they never carry a secret value or key.
package awssecrets

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/pulumi/esc"
	"github.com/pulumi/esc/schema"

	"github.com/escfs/escfs/providers"
	"github.com/escfs/escfs/providers/awsclient"
)

// Name is the name environments use to open this provider: fn::open::aws-secrets.
const Name = "aws-secrets"

// op names the one AWS operation this provider calls, in error messages.
const op = "secretsmanager:GetSecretValue"

// maxConcurrent bounds the GetSecretValue calls in flight for one Open.
const maxConcurrent = 8

// Provider is the aws-secrets provider.
type Provider struct{}

var _ esc.Provider = Provider{}

// New returns the aws-secrets provider.
func New() Provider { return Provider{} }

var (
	topInputs   = []string{"region", "login", "get"}
	entryInputs = []string{"secretId", "versionId", "versionStage"}
)

// Schema returns the provider's inputs and outputs.
func (Provider) Schema() (inputs, outputs *schema.Schema) {
	login := providers.ObjectSchema(schema.BuilderMap{
		"accessKeyId":     schema.String().Description("The AWS access key ID."),
		"secretAccessKey": schema.String().Description("The AWS secret access key."),
	}, schema.BuilderMap{
		"sessionToken": schema.String().Description("The AWS session token, if any."),
	}).Description("Credentials to use to log in to AWS, such as the outputs of aws-login; default the AWS SDK's default credential chain.")
	entry := providers.ObjectSchema(schema.BuilderMap{
		"secretId": schema.String().MinLength(1).Description("The name or ARN of the secret."),
	}, schema.BuilderMap{
		"versionId":    schema.String().Description("The unique identifier of the version to read."),
		"versionStage": schema.String().Description("The staging label of the version to read; default AWSCURRENT."),
	})
	inputs = providers.ObjectSchema(schema.BuilderMap{
		"get": schema.Object().AdditionalProperties(entry).MinProperties(1).
			Description("A map from names to the secrets to read; the outputs map each name to the secret's value."),
	}, schema.BuilderMap{
		"region": schema.String().Description("The AWS region; default the AWS SDK's (AWS_REGION, the profile's region)."),
		"login":  login,
	}).Schema()
	outputs = schema.Object().AdditionalProperties(schema.String()).
		Description("Each name under get, mapped to its secret's value (binary secrets base64-encoded).").Schema()
	return inputs, outputs
}

// request is one entry of get.
type request struct {
	name                              string
	secretID, versionID, versionStage string
}

// Open reads the secrets that inputs' get names.
func (Provider) Open(ctx context.Context, inputs map[string]esc.Value, _ esc.EnvExecContext) (esc.Value, error) {
	region, login, reqs, err := awsclient.ParseGet(inputs, topInputs, "the secrets to read ({secretId, versionId?, versionStage?})", parseEntry)
	if err != nil {
		return esc.Value{}, fmt.Errorf("%s%w", Name, err)
	}
	loadCtx, cancel := providers.WithCallTimeout(ctx)
	cfg, err := awsclient.Load(loadCtx, awsclient.Options{Region: region, Login: login})
	cancel()
	if err != nil {
		return esc.Value{}, fmt.Errorf("%s: %w", Name, err)
	}
	if cfg.Region == "" {
		return esc.Value{}, fmt.Errorf("%s: no AWS region: set the region input, AWS_REGION, or the region of the AWS profile", Name)
	}
	client := secretsmanager.NewFromConfig(cfg)

	values := make([]string, len(reqs))
	errs := make([]error, len(reqs))
	sem := make(chan struct{}, maxConcurrent)
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			values[i], errs[i] = get(ctx, client, r)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("%s %s: %w", Name, providers.EntryPath("get", r.name), errs[i])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return esc.Value{}, err
	}
	out := make(map[string]esc.Value, len(reqs))
	for i, r := range reqs {
		out[r.name] = esc.NewSecret(values[i])
	}
	return esc.NewValue(out), nil
}

// get reads one secret's value, within its own CallTimeout.
func get(ctx context.Context, client *secretsmanager.Client, r request) (string, error) {
	ctx, cancel := providers.WithCallTimeout(ctx)
	defer cancel()
	in := &secretsmanager.GetSecretValueInput{SecretId: aws.String(r.secretID)}
	if r.versionID != "" {
		in.VersionId = aws.String(r.versionID)
	}
	if r.versionStage != "" {
		in.VersionStage = aws.String(r.versionStage)
	}
	out, err := client.GetSecretValue(ctx, in)
	if err != nil {
		return "", awsclient.Describe(op, err)
	}
	switch {
	case out.SecretString != nil:
		return *out.SecretString, nil
	case out.SecretBinary != nil:
		return base64.StdEncoding.EncodeToString(out.SecretBinary), nil
	}
	return "", fmt.Errorf("%s: the secret version holds neither SecretString nor SecretBinary", op)
}

func parseEntry(name string, v esc.Value) (request, error) {
	in, ok := v.Value.(map[string]esc.Value)
	if !ok {
		return request{}, errors.New("must be an object {secretId, versionId?, versionStage?}")
	}
	if err := providers.CheckKnown(in, entryInputs); err != nil {
		return request{}, err
	}
	r := request{name: name}
	var err error
	if r.secretID, err = providers.String(in, "secretId"); err != nil {
		return r, err
	}
	if strings.TrimSpace(r.secretID) == "" {
		return r, errors.New("secretId is required")
	}
	if r.versionID, err = providers.String(in, "versionId"); err != nil {
		return r, err
	}
	if r.versionStage, err = providers.String(in, "versionStage"); err != nil {
		return r, err
	}
	return r, nil
}
