// Package awsclient builds aws-sdk-go-v2 configurations for the AWS
// providers and turns AWS errors into messages that name the error code and
// never a secret.
//
// Everything goes through the SDK's standard configuration, so the usual
// variables apply: AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL and the
// per-service AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL_SECRETS_MANAGER,
// AWS_ENDPOINT_URL_SSM, and the shared config and credentials files.
package awsclient

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go"
	"github.com/pulumi/esc"

	"github.com/escfs/escfs/internal/redact"
	"github.com/escfs/escfs/providers"
)

// Login is a set of explicit AWS credentials, as the login input of the
// AWS providers gives them.
type Login struct {
	AccessKeyID, SecretAccessKey, SessionToken string
}

// LoginInput reads an optional login object ({accessKeyId, secretAccessKey,
// sessionToken?}) from inputs[key]; nil means "use the default chain".
func LoginInput(inputs map[string]esc.Value, key string) (*Login, error) {
	obj, err := providers.Object(inputs, key)
	if err != nil || obj == nil {
		return nil, err
	}
	var l Login
	if l.AccessKeyID, err = providers.String(obj, "accessKeyId"); err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	if l.SecretAccessKey, err = providers.String(obj, "secretAccessKey"); err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	if l.SessionToken, err = providers.String(obj, "sessionToken"); err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	if l.AccessKeyID == "" || l.SecretAccessKey == "" {
		return nil, fmt.Errorf("%s: accessKeyId and secretAccessKey are required", key)
	}
	return &l, nil
}

// Options select how Load finds credentials.
type Options struct {
	Region  string // "" for the SDK's default (AWS_REGION, the profile's region)
	Profile string // a shared-config profile, "" for the default chain
	Login   *Login // explicit credentials; overrides Profile and the chain
	// Anonymous: the calls are not signed and no credentials are looked
	// for, so a half-set web identity (AWS_WEB_IDENTITY_TOKEN_FILE without
	// AWS_ROLE_ARN) or a broken profile cannot fail the load.
	Anonymous bool
}

// Load returns an SDK configuration with the standard retryer and an HTTP
// client bounded by providers.CallTimeout.
func Load(ctx context.Context, o Options) (aws.Config, error) {
	if o.Region != "" && !ValidRegion(o.Region) {
		// The SDK builds hosts from the region (s3.REGION.amazonaws.com):
		// "evil.example#" would send the signed request, session token
		// and all, to evil.example.
		return aws.Config{}, fmt.Errorf("region %q is not an AWS region name (lowercase letters, digits and '-', such as us-east-1)", o.Region)
	}
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(providers.CallTimeout)), // buildable: AWS_CA_BUNDLE needs it
		config.WithRetryer(func() aws.Retryer { return retry.NewStandard() }),
	}
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	if o.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(o.Profile))
	}
	switch {
	case o.Anonymous:
		opts = append(opts, config.WithCredentialsProvider(aws.AnonymousCredentials{}))
	case o.Login != nil:
		redact.Add(o.Login.SecretAccessKey, o.Login.SessionToken)
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(
			o.Login.AccessKeyID, o.Login.SecretAccessKey, o.Login.SessionToken)))
	}
	redact.FromEnv() // the user's own AWS credentials, if any
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w", err)
	}
	return cfg, nil
}

// ValidRegion reports whether region has the form of an AWS region name:
// lowercase letters and digits in groups joined by '-', at most 63 bytes
// (one host label), so that no region can move a request to another host.
func ValidRegion(region string) bool {
	if region == "" || len(region) > 63 || region[0] == '-' || region[len(region)-1] == '-' || strings.Contains(region, "--") {
		return false
	}
	for _, r := range region {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// Describe turns an error of an AWS call into one line that names the
// operation, the AWS error code and its message ("sts:AssumeRole:
// AccessDenied: ..."), or says the endpoint could not be reached, and how
// many attempts the retryer made when it gave up. AWS error
// messages carry no request parameters, so no secret ends up in it.
func Describe(op string, err error) error {
	if err == nil {
		return nil
	}
	var maxErr *retry.MaxAttemptsError
	if errors.As(err, &maxErr) {
		return fmt.Errorf("%w (gave up after %d attempts)", describe(op, err), maxErr.Attempt)
	}
	return describe(op, err)
}

func describe(op string, err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return fmt.Errorf("%s: %s: %s", op, apiErr.ErrorCode(), apiErr.ErrorMessage())
	}
	if terr := providers.DescribeTransport(op, err); terr != nil {
		return terr
	}
	return fmt.Errorf("%s: %w", op, err)
}

// ErrorCode returns the AWS error code of err (AccessDeniedException,
// NoSuchKey...), "" if it carries none.
func ErrorCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

// ParseGet reads the inputs the AWS reading providers share: region,
// login, and get, a map from output names to entries, each parsed by
// entry in the order of the names. known lists every top-level input the
// provider takes; what describes an entry for the error of an empty get.
// Errors start as the provider's own do after its name (": ..." or
// " get.NAME: ...").
func ParseGet[R any](inputs map[string]esc.Value, known []string, what string, entry func(name string, v esc.Value) (R, error)) (region string, login *Login, reqs []R, err error) {
	if err := providers.CheckKnown(inputs, known); err != nil {
		return "", nil, nil, fmt.Errorf(": %w", err)
	}
	if region, err = providers.String(inputs, "region"); err != nil {
		return "", nil, nil, fmt.Errorf(": %w", err)
	}
	if login, err = LoginInput(inputs, "login"); err != nil {
		return "", nil, nil, fmt.Errorf(": %w", err)
	}
	get, err := providers.Object(inputs, "get")
	if err != nil {
		return "", nil, nil, fmt.Errorf(": %w", err)
	}
	if len(get) == 0 {
		return "", nil, nil, fmt.Errorf(`: input "get" is required: it maps names to %s`, what)
	}
	for _, name := range slices.Sorted(maps.Keys(get)) {
		r, err := entry(name, get[name])
		if err != nil {
			return "", nil, nil, fmt.Errorf(" %s: %w", providers.EntryPath("get", name), err)
		}
		reqs = append(reqs, r)
	}
	return region, login, reqs, nil
}
