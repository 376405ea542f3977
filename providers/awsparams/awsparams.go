// Package awsparams implements the aws-parameter-store provider: parameters
// read from AWS Systems Manager Parameter Store, as the Pulumi ESC provider of
// the same name returns them.
//
//	fn::open::aws-parameter-store:
//	  region: us-west-1         # optional: default the SDK's (AWS_REGION, the profile's)
//	  login: ${aws.login}       # optional: {accessKeyId, secretAccessKey, sessionToken?};
//	                            # default the SDK's default credential chain
//	  get:
//	    myKey:
//	      name: /myNamespace/myKey
//	    myKeyByVersion:
//	      name: /myNamespace/myKey:1       # a version selector
//	    myKeyByLabel:
//	      name: /myNamespace/myKey:stable  # a label selector
//	    secureKey:
//	      name: /myNamespace/secureKey
//	      decrypt: true                    # optional, default true
//
// The output maps each name under get to the parameter's value: a String
// parameter's as a string, a StringList parameter's as an array of strings
// (its value split at the commas), a SecureString parameter's as a secret
// string. decrypt (ssm:GetParameter's WithDecryption) defaults to true, as
// the AWS SDKs' and Pulumi's getParameter do; with decrypt: false a
// SecureString's value is its ciphertext, still secret. (The ESC
// documentation sets decrypt: true in its example and does not state a
// default.)
//
// Each entry is one ssm:GetParameter call, bounded by providers.CallTimeout
// with the SDK's standard retries; the calls run concurrently. Every AWS call
// goes through the SDK's standard configuration (AWS_REGION,
// AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_SSM, shared config files, ...).
//
// Errors name the entry, the AWS operation and the AWS error code and
// message ("aws-parameter-store get.db: ssm:GetParameter: ParameterNotFound:
// ..."); they never carry a parameter value or key.
package awsparams

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/pulumi/esc"
	"github.com/pulumi/esc/schema"

	"github.com/escfs/escfs/providers"
	"github.com/escfs/escfs/providers/awsclient"
)

// Name is the name environments use to open this provider:
// fn::open::aws-parameter-store.
const Name = "aws-parameter-store"

// op names the one AWS operation this provider calls, in error messages.
const op = "ssm:GetParameter"

// maxConcurrent bounds the GetParameter calls in flight for one Open.
const maxConcurrent = 8

// Provider is the aws-parameter-store provider.
type Provider struct{}

var _ esc.Provider = Provider{}

// New returns the aws-parameter-store provider.
func New() Provider { return Provider{} }

var (
	topInputs   = []string{"region", "login", "get"}
	entryInputs = []string{"name", "decrypt"}
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
		"name": schema.String().MinLength(1).Description("The name or ARN of the parameter, optionally with a :version or :label selector."),
	}, schema.BuilderMap{
		"decrypt": schema.Boolean().Description("Whether to decrypt a SecureString parameter; default true."),
	})
	inputs = providers.ObjectSchema(schema.BuilderMap{
		"get": schema.Object().AdditionalProperties(entry).MinProperties(1).
			Description("A map from names to the parameters to read; the outputs map each name to the parameter's value."),
	}, schema.BuilderMap{
		"region": schema.String().Description("The AWS region; default the AWS SDK's (AWS_REGION, the profile's region)."),
		"login":  login,
	}).Schema()
	outputs = schema.Object().AdditionalProperties(schema.OneOf(schema.String(), schema.Array().Items(schema.String()))).
		Description("Each name under get, mapped to its parameter's value: a string, or an array of strings for a StringList.").Schema()
	return inputs, outputs
}

// request is one entry of get.
type request struct {
	name      string
	parameter string
	decrypt   bool
}

// Open reads the parameters that inputs' get names.
func (Provider) Open(ctx context.Context, inputs map[string]esc.Value, _ esc.EnvExecContext) (esc.Value, error) {
	region, login, reqs, err := awsclient.ParseGet(inputs, topInputs, "the parameters to read ({name, decrypt?})", parseEntry)
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
	client := ssm.NewFromConfig(cfg)

	values := make([]esc.Value, len(reqs))
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
		out[r.name] = values[i]
	}
	return esc.NewValue(out), nil
}

// get reads one parameter's value, within its own CallTimeout.
func get(ctx context.Context, client *ssm.Client, r request) (esc.Value, error) {
	ctx, cancel := providers.WithCallTimeout(ctx)
	defer cancel()
	out, err := client.GetParameter(ctx, &ssm.GetParameterInput{
		Name:           aws.String(r.parameter),
		WithDecryption: aws.Bool(r.decrypt),
	})
	if err != nil {
		return esc.Value{}, awsclient.Describe(op, err)
	}
	p := out.Parameter
	if p == nil || p.Value == nil {
		return esc.Value{}, fmt.Errorf("%s: the answer holds no parameter value", op)
	}
	return value(p.Type, *p.Value)
}

// value converts a parameter's value by its type.
func value(typ ssmtypes.ParameterType, v string) (esc.Value, error) {
	switch typ {
	case ssmtypes.ParameterTypeString:
		return esc.NewValue(v), nil
	case ssmtypes.ParameterTypeStringList:
		// AWS returns a StringList as its items joined by commas, no spaces.
		items := strings.Split(v, ",")
		list := make([]esc.Value, len(items))
		for i, item := range items {
			list[i] = esc.NewValue(item)
		}
		return esc.NewValue(list), nil
	case ssmtypes.ParameterTypeSecureString:
		return esc.NewSecret(v), nil
	}
	return esc.Value{}, fmt.Errorf("%s: unknown parameter type %q", op, typ)
}

func parseEntry(name string, v esc.Value) (request, error) {
	in, ok := v.Value.(map[string]esc.Value)
	if !ok {
		return request{}, errors.New("must be an object {name, decrypt?}")
	}
	if err := providers.CheckKnown(in, entryInputs); err != nil {
		return request{}, err
	}
	r := request{name: name, decrypt: true}
	var err error
	if r.parameter, err = providers.String(in, "name"); err != nil {
		return r, err
	}
	if strings.TrimSpace(r.parameter) == "" {
		return r, errors.New("name is required")
	}
	if d, ok := in["decrypt"]; ok && d.Value != nil {
		b, ok := d.Value.(bool)
		if !ok {
			return r, errors.New(`input "decrypt" must be a boolean`)
		}
		r.decrypt = b
	}
	return r, nil
}
