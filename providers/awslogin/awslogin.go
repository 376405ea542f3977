// Package awslogin implements the aws-login provider: AWS credentials for an
// environment, as the Pulumi ESC provider of the same name returns them.
//
// Exactly one login form is given:
//
//	fn::open::aws-login:
//	  static:                 # fixed credentials, returned as given
//	    accessKeyId: AKIA...
//	    secretAccessKey: ...
//	    sessionToken: ...     # optional
//
//	fn::open::aws-login:
//	  oidc:                   # sts:AssumeRoleWithWebIdentity, unsigned
//	    roleArn: arn:aws:iam::123456789012:role/deploy
//	    sessionName: ci
//	    duration: 1h          # optional, 15m to 12h, default 1h
//	    policyArns: [...]     # optional managed session policies
//	    token: ...            # the web identity token (a JWT), or
//	    tokenFile: /path      # a file holding it; default $AWS_WEB_IDENTITY_TOKEN_FILE
//
//	fn::open::aws-login:
//	  assumeRole:             # sts:AssumeRole with the caller's own credentials
//	    roleArn: arn:aws:iam::123456789012:role/deploy
//	    sessionName: ...      # optional, default "escfs-" + the environment name
//	    duration: 1h          # optional, 15m to 12h, default 1h
//	    externalId: ...       # optional
//	    profile: NAME         # optional shared-config profile for the caller
//
//	fn::open::aws-login:
//	  profile: NAME           # that profile's credentials (keys, SSO, role, process)
//
// Unlike Pulumi Cloud, escfs has no OIDC issuer of its own: the oidc form
// takes its token locally, from a value (say, another provider's output) or
// from a file, as on EKS or in CI systems. The caller's credentials of
// assumeRole and the credentials of profile are resolved by aws-sdk-go-v2's
// default chain and shared configuration, and every AWS call goes through the
// SDK's standard configuration (AWS_REGION, AWS_ENDPOINT_URL,
// AWS_ENDPOINT_URL_STS, ...) with standard retries, bounded by
// providers.CallTimeout. STS calls use us-east-1 when no region is configured.
//
// The outputs are accessKeyId, secretAccessKey and sessionToken, and, when
// the credentials expire, expiration (RFC 3339, UTC), which is also reported
// to the evaluation with providers.ReportExpiry. secretAccessKey and
// sessionToken are secret. Errors name the form, the AWS operation and the
// AWS error code and message; they never carry a token, secret key or
// session token.
package awslogin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/pulumi/esc"
	"github.com/pulumi/esc/schema"

	"github.com/escfs/escfs/providers"
	"github.com/escfs/escfs/providers/awsclient"
)

// Name is the name environments use to open this provider: fn::open::aws-login.
const Name = "aws-login"

// The login forms, in the order error messages list them.
const (
	formStatic     = "static"
	formOIDC       = "oidc"
	formAssumeRole = "assumeRole"
	formProfile    = "profile"
)

var forms = []string{formStatic, formOIDC, formAssumeRole, formProfile}

// Session durations STS accepts for AssumeRole and AssumeRoleWithWebIdentity.
const (
	defaultDuration = time.Hour
	minDuration     = 15 * time.Minute
	maxDuration     = 12 * time.Hour
)

// defaultSTSRegion is the region of STS calls when none is configured.
const defaultSTSRegion = "us-east-1"

// Provider is the aws-login provider.
type Provider struct{}

var _ esc.Provider = Provider{}

// New returns the aws-login provider.
func New() Provider { return Provider{} }

// Schema returns the provider's inputs (one of the login forms) and outputs.
func (Provider) Schema() (inputs, outputs *schema.Schema) {
	duration := schema.String().Description("The session duration, a Go duration such as 1h or 15m; 15m to 12h, default 1h.")
	static := providers.ObjectSchema(schema.BuilderMap{
		"accessKeyId":     schema.String().Description("The AWS access key ID."),
		"secretAccessKey": schema.String().Description("The AWS secret access key."),
	}, schema.BuilderMap{
		"sessionToken": schema.String().Description("The AWS session token, if any."),
	}).Description("A static set of credentials, returned as given.")
	oidc := providers.ObjectSchema(schema.BuilderMap{
		"roleArn":     schema.String().Description("The ARN of the role to assume."),
		"sessionName": schema.String().Description("The name of the role session."),
	}, schema.BuilderMap{
		"duration":   duration,
		"policyArns": schema.Array().Items(schema.String()).Description("ARNs of managed policies that further restrict the session."),
		"token":      schema.String().Description("The web identity (OIDC) token."),
		"tokenFile":  schema.String().Description("A file holding the web identity token; default $AWS_WEB_IDENTITY_TOKEN_FILE."),
	}).Description("Assume a role with a web identity token (sts:AssumeRoleWithWebIdentity).")
	assumeRole := providers.ObjectSchema(schema.BuilderMap{
		"roleArn": schema.String().Description("The ARN of the role to assume."),
	}, schema.BuilderMap{
		"sessionName": schema.String().Description("The name of the role session; default escfs- and the environment name."),
		"duration":    duration,
		"externalId":  schema.String().Description("The external ID the role's trust policy requires, if any."),
		"profile":     schema.String().Description("The shared-config profile whose credentials assume the role; default the SDK's default chain."),
	}).Description("Assume a role with the caller's own AWS credentials (sts:AssumeRole).")
	profile := schema.String().Description("A shared-config profile whose credentials, as the AWS SDK resolves them (SSO included), are returned.")
	inputs = schema.Object().Properties(schema.BuilderMap{
		formStatic:     static,
		formOIDC:       oidc,
		formAssumeRole: assumeRole,
		formProfile:    profile,
	}).Description("Exactly one login form: static, oidc, assumeRole or profile.").Schema()
	outputs = providers.ObjectSchema(schema.BuilderMap{
		"accessKeyId":     schema.String(),
		"secretAccessKey": schema.String(),
		"sessionToken":    schema.String(),
	}, schema.BuilderMap{
		"expiration": schema.String().Description("When the credentials expire (RFC 3339, UTC); absent if they do not."),
	}).Schema()
	return inputs, outputs
}

// Open returns the credentials that the one login form in inputs describes.
func (Provider) Open(ctx context.Context, inputs map[string]esc.Value, execCtx esc.EnvExecContext) (esc.Value, error) {
	form, err := pickForm(inputs)
	if err != nil {
		return esc.Value{}, fmt.Errorf("aws-login: %w", err)
	}
	var creds credentials
	switch form {
	case formStatic:
		creds, err = openStatic(inputs)
	case formOIDC:
		creds, err = openOIDC(ctx, inputs)
	case formAssumeRole:
		creds, err = openAssumeRole(ctx, inputs, execCtx)
	case formProfile:
		creds, err = openProfile(ctx, inputs)
	}
	if err != nil {
		return esc.Value{}, fmt.Errorf("aws-login %s: %w", form, err)
	}
	providers.ReportExpiry(ctx, creds.expiration)
	return creds.value(), nil
}

// pickForm returns the one login form present (non-null) in inputs.
func pickForm(inputs map[string]esc.Value) (string, error) {
	var given, unknown []string
	for k, v := range inputs {
		switch {
		case !slices.Contains(forms, k):
			unknown = append(unknown, k)
		case v.Value != nil:
			given = append(given, k)
		}
	}
	slices.Sort(unknown)
	slices.SortFunc(given, func(a, b string) int { return slices.Index(forms, a) - slices.Index(forms, b) })
	switch {
	case len(unknown) > 0:
		return "", fmt.Errorf("unknown input %s: the login forms are %s", quoteList(unknown), strings.Join(forms, ", "))
	case len(given) == 0:
		return "", fmt.Errorf("one login form is required (%s)", strings.Join(forms, ", "))
	case len(given) > 1:
		return "", fmt.Errorf("only one login form may be given, not %s", strings.Join(given, " and "))
	}
	return given[0], nil
}

// credentials are one set of AWS credentials.
type credentials struct {
	accessKeyID, secretAccessKey, sessionToken string
	expiration                                 time.Time // zero: they do not expire
}

func (c credentials) value() esc.Value {
	m := map[string]esc.Value{
		"accessKeyId":     esc.NewValue(c.accessKeyID),
		"secretAccessKey": esc.NewSecret(c.secretAccessKey),
		"sessionToken":    esc.NewSecret(c.sessionToken),
	}
	if !c.expiration.IsZero() {
		m["expiration"] = esc.NewValue(c.expiration.UTC().Format(time.RFC3339))
	}
	return esc.NewValue(m)
}

// fromSTS converts the credentials of an STS answer.
func fromSTS(op string, c *ststypes.Credentials) (credentials, error) {
	if c == nil || aws.ToString(c.AccessKeyId) == "" || aws.ToString(c.SecretAccessKey) == "" {
		return credentials{}, fmt.Errorf("%s: the answer holds no credentials", op)
	}
	return credentials{
		accessKeyID:     aws.ToString(c.AccessKeyId),
		secretAccessKey: aws.ToString(c.SecretAccessKey),
		sessionToken:    aws.ToString(c.SessionToken),
		expiration:      aws.ToTime(c.Expiration),
	}, nil
}

func openStatic(inputs map[string]esc.Value) (credentials, error) {
	in, err := formObject(inputs, formStatic, "accessKeyId", "secretAccessKey", "sessionToken")
	if err != nil {
		return credentials{}, err
	}
	var c credentials
	if c.accessKeyID, err = providers.String(in, "accessKeyId"); err != nil {
		return c, err
	}
	if c.secretAccessKey, err = providers.String(in, "secretAccessKey"); err != nil {
		return c, err
	}
	if c.sessionToken, err = providers.String(in, "sessionToken"); err != nil {
		return c, err
	}
	if c.accessKeyID == "" || c.secretAccessKey == "" {
		return c, errors.New("accessKeyId and secretAccessKey are required")
	}
	return c, nil
}

func openOIDC(ctx context.Context, inputs map[string]esc.Value) (credentials, error) {
	in, err := formObject(inputs, formOIDC, "roleArn", "sessionName", "duration", "policyArns", "token", "tokenFile")
	if err != nil {
		return credentials{}, err
	}
	roleArn, err := providers.RequiredString(in, "roleArn")
	if err != nil {
		return credentials{}, err
	}
	sessionName, err := providers.RequiredString(in, "sessionName")
	if err != nil {
		return credentials{}, err
	}
	duration, err := durationInput(in)
	if err != nil {
		return credentials{}, err
	}
	policyArns, err := providers.StringList(in, "policyArns")
	if err != nil {
		return credentials{}, err
	}
	token, err := providers.SubjectToken(ctx, in, "AWS_WEB_IDENTITY_TOKEN_FILE", "sts.amazonaws.com")
	if err != nil {
		return credentials{}, err
	}

	ctx, cancel := providers.WithCallTimeout(ctx)
	defer cancel()
	// The token is the proof of identity: the call is not signed (the SDK
	// models it so), and anonymous credentials keep the SDK from looking for
	// credentials of the caller at all, so AWS_WEB_IDENTITY_TOKEN_FILE
	// without AWS_ROLE_ARN (the role is this form's input) does not fail.
	cfg, err := stsConfig(ctx, awsclient.Options{Anonymous: true})
	if err != nil {
		return credentials{}, err
	}
	client := sts.NewFromConfig(cfg)
	input := &sts.AssumeRoleWithWebIdentityInput{
		RoleArn:          aws.String(roleArn),
		RoleSessionName:  aws.String(sessionName),
		WebIdentityToken: aws.String(token),
		DurationSeconds:  aws.Int32(int32(duration / time.Second)),
	}
	for _, arn := range policyArns {
		input.PolicyArns = append(input.PolicyArns, ststypes.PolicyDescriptorType{Arn: aws.String(arn)})
	}
	const op = "sts:AssumeRoleWithWebIdentity"
	out, err := client.AssumeRoleWithWebIdentity(ctx, input)
	if err != nil {
		return credentials{}, awsclient.Describe(op, err)
	}
	return fromSTS(op, out.Credentials)
}

func openAssumeRole(ctx context.Context, inputs map[string]esc.Value, execCtx esc.EnvExecContext) (credentials, error) {
	in, err := formObject(inputs, formAssumeRole, "roleArn", "sessionName", "duration", "externalId", "profile")
	if err != nil {
		return credentials{}, err
	}
	roleArn, err := providers.RequiredString(in, "roleArn")
	if err != nil {
		return credentials{}, err
	}
	sessionName, err := providers.String(in, "sessionName")
	if err != nil {
		return credentials{}, err
	}
	if sessionName == "" {
		sessionName = defaultSessionName(execCtx)
	}
	duration, err := durationInput(in)
	if err != nil {
		return credentials{}, err
	}
	externalID, err := providers.String(in, "externalId")
	if err != nil {
		return credentials{}, err
	}
	profile, err := providers.String(in, "profile")
	if err != nil {
		return credentials{}, err
	}

	ctx, cancel := providers.WithCallTimeout(ctx)
	defer cancel()
	cfg, err := stsConfig(ctx, awsclient.Options{Profile: profile})
	if err != nil {
		return credentials{}, err
	}
	input := &sts.AssumeRoleInput{
		RoleArn:         aws.String(roleArn),
		RoleSessionName: aws.String(sessionName),
		DurationSeconds: aws.Int32(int32(duration / time.Second)),
	}
	if externalID != "" {
		input.ExternalId = aws.String(externalID)
	}
	const op = "sts:AssumeRole"
	out, err := sts.NewFromConfig(cfg).AssumeRole(ctx, input)
	if err != nil {
		return credentials{}, awsclient.Describe(op, err)
	}
	return fromSTS(op, out.Credentials)
}

func openProfile(ctx context.Context, inputs map[string]esc.Value) (credentials, error) {
	name, err := providers.String(inputs, formProfile)
	if err != nil {
		return credentials{}, err
	}
	if name == "" {
		return credentials{}, errors.New("the profile name is empty")
	}
	ctx, cancel := providers.WithCallTimeout(ctx)
	defer cancel()
	cfg, err := awsclient.Load(ctx, awsclient.Options{Profile: name})
	if err != nil {
		return credentials{}, err
	}
	if cfg.Credentials == nil {
		return credentials{}, fmt.Errorf("profile %q has no credentials", name)
	}
	c, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return credentials{}, awsclient.Describe(fmt.Sprintf("credentials of profile %q", name), err)
	}
	if c.AccessKeyID == "" || c.SecretAccessKey == "" {
		return credentials{}, fmt.Errorf("profile %q has no credentials", name)
	}
	creds := credentials{accessKeyID: c.AccessKeyID, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken}
	if c.CanExpire {
		creds.expiration = c.Expires
	}
	return creds, nil
}

// stsConfig loads the SDK configuration for STS calls, with o's
// credentials and us-east-1 if no region is set.
func stsConfig(ctx context.Context, o awsclient.Options) (aws.Config, error) {
	cfg, err := awsclient.Load(ctx, o)
	if err != nil {
		return aws.Config{}, err
	}
	if cfg.Region == "" {
		cfg.Region = defaultSTSRegion
	}
	return cfg, nil
}

// defaultSessionName is the session name of assumeRole when none is given:
// "escfs-" and the name of the environment being evaluated, with the
// characters STS rejects replaced, at most 64 characters.
func defaultSessionName(execCtx esc.EnvExecContext) string {
	name := "escfs"
	if execCtx != nil {
		if env := execCtx.GetCurrentEnvironmentName(); env != "" {
			name += "-" + env
		}
	}
	return sanitizeSessionName(name)
}

// sanitizeSessionName maps s into what STS accepts as a role session name:
// 2 to 64 characters of [A-Za-z0-9+=,.@_-].
func sanitizeSessionName(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("+=,.@_-", r):
			return r
		}
		return '-'
	}, s)
	if len(s) > 64 { // all ASCII by now
		s = s[:64]
	}
	for len(s) < 2 {
		s += "-"
	}
	return s
}

// formObject returns the object of the login form named form, failing on
// inputs it does not know.
func formObject(inputs map[string]esc.Value, form string, known ...string) (map[string]esc.Value, error) {
	in, err := providers.Object(inputs, form)
	if err != nil {
		return nil, err
	}
	var unknown []string
	for k := range in {
		if !slices.Contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, fmt.Errorf("unknown input %s (%s takes %s)", quoteList(unknown), form, strings.Join(known, ", "))
	}
	return in, nil
}

// durationInput returns the session duration input: a Go duration string
// of whole seconds between minDuration and maxDuration, by default
// defaultDuration.
func durationInput(in map[string]esc.Value) (time.Duration, error) {
	s, err := providers.String(in, "duration")
	if err != nil || s == "" {
		return defaultDuration, err
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q is not a duration such as 1h or 15m", s)
	}
	if d < minDuration || d > maxDuration {
		return 0, fmt.Errorf("duration %s is outside what STS accepts (%v to %v)", s, minDuration, maxDuration)
	}
	if d%time.Second != 0 {
		return 0, fmt.Errorf("duration %s is not a whole number of seconds", s)
	}
	return d, nil
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
