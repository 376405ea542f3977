// Package gcplogin implements the gcp-login provider: a Google Cloud
// access token for an environment, as the Pulumi ESC provider of the same
// name returns it.
//
//	fn::open::gcp-login:
//	  project: 123456789          # the project number
//	  accessToken:                # a token as given, or
//	    accessToken: ya29...
//	  oidc:                       # workload identity federation
//	    workloadPoolId: pool
//	    providerId: provider
//	    serviceAccount: deploy@proj.iam.gserviceaccount.com
//	    tokenLifetime: 1h         # optional, 1m to 12h, default 1h
//	    region: us-east1          # optional: exchange at STS's regional endpoint
//	    token: ...                # the subject token (a JWT), or
//	    tokenFile: /path          # a file holding it; default $GOOGLE_OIDC_TOKEN_FILE
//
// The oidc form exchanges the subject token at Google's Security Token
// Service for a federated token of the pool's provider, then has it
// impersonate the service account (IAM Credentials generateAccessToken),
// with golang.org/x/oauth2/google/externalaccount. Unlike Pulumi Cloud,
// escfs has no OIDC issuer of its own: the subject token comes from the
// definition or a file, as on GKE, in CI or from a Kubernetes projected
// service-account token.
//
// Outputs: accessToken (secret), tokenType, project (a number) and, when
// the token expires, expiry (RFC 3339, UTC), which is also reported to the
// evaluation so the environment is renewed before it.
package gcplogin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/pulumi/esc"
	"github.com/pulumi/esc/schema"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google/externalaccount"

	"github.com/escfs/escfs/internal/redact"
	"github.com/escfs/escfs/providers"
	"github.com/escfs/escfs/providers/gcpclient"
)

// Name is the name environments use to open this provider: fn::open::gcp-login.
const Name = "gcp-login"

// TokenFileEnv names the default file of the oidc form's subject token.
const TokenFileEnv = "GOOGLE_OIDC_TOKEN_FILE"

// Scope is the OAuth scope of the tokens gcp-login returns.
const Scope = "https://www.googleapis.com/auth/cloud-platform"

// Lifetimes IAM Credentials grants (12h needs the organization's
// constraints/iam.allowServiceAccountCredentialLifetimeExtension).
const (
	defaultLifetime = time.Hour
	minLifetime     = time.Minute
	maxLifetime     = 12 * time.Hour
)

// Provider is the gcp-login provider.
type Provider struct{}

var _ esc.Provider = Provider{}

// New returns the gcp-login provider.
func New() Provider { return Provider{} }

// Schema returns the provider's inputs and outputs.
func (Provider) Schema() (inputs, outputs *schema.Schema) {
	accessToken := providers.ObjectSchema(schema.BuilderMap{
		"accessToken": schema.String().Description("A Google Cloud access token."),
	}, nil).Description("An access token, returned as given.")
	oidc := providers.ObjectSchema(schema.BuilderMap{
		"workloadPoolId": schema.String().Description("The workload identity pool's ID."),
		"providerId":     schema.String().Description("The pool provider's ID."),
		"serviceAccount": schema.String().Description("The email of the service account to impersonate."),
	}, schema.BuilderMap{
		"tokenLifetime": schema.String().Description("The access token's lifetime, a Go duration; 1m to 12h, default 1h."),
		"region":        schema.String().Description("Exchange at the Security Token Service's endpoint in this region."),
		"token":         schema.String().Description("The subject token (an OIDC JWT)."),
		"tokenFile":     schema.String().Description("A file holding the subject token; default $" + TokenFileEnv + "."),
	}).Description("Workload identity federation: exchange an OIDC token and impersonate a service account.")
	inputs = providers.ObjectSchema(schema.BuilderMap{
		"project": schema.Number().Description("The project number."),
	}, schema.BuilderMap{
		"accessToken": accessToken,
		"oidc":        oidc,
	}).Description("The project and exactly one of accessToken or oidc.").Schema()
	outputs = providers.ObjectSchema(schema.BuilderMap{
		"accessToken": schema.String(),
		"tokenType":   schema.String(),
		"project":     schema.Number(),
	}, schema.BuilderMap{
		"expiry": schema.String().Description("When the token expires (RFC 3339, UTC)."),
	}).Schema()
	return inputs, outputs
}

// Open returns an access token for the login form in inputs.
func (Provider) Open(ctx context.Context, inputs map[string]esc.Value, _ esc.EnvExecContext) (esc.Value, error) {
	tok, project, err := open(ctx, inputs)
	if err != nil {
		return esc.Value{}, fmt.Errorf("gcp-login: %w", err)
	}
	providers.ReportExpiry(ctx, tok.Expiry)
	out := map[string]esc.Value{
		"accessToken": esc.NewSecret(tok.AccessToken),
		"tokenType":   esc.NewValue(tok.Type()),
		"project":     project,
	}
	if !tok.Expiry.IsZero() {
		out["expiry"] = esc.NewValue(tok.Expiry.UTC().Format(time.RFC3339))
	}
	return esc.NewValue(out), nil
}

func open(ctx context.Context, inputs map[string]esc.Value) (*oauth2.Token, esc.Value, error) {
	if err := providers.CheckKnown(inputs, []string{"project", "accessToken", "oidc"}); err != nil {
		return nil, esc.Value{}, err
	}
	project, number, err := projectInput(inputs)
	if err != nil {
		return nil, esc.Value{}, err
	}
	static, err := providers.KnownObject(inputs, "accessToken", "accessToken")
	if err != nil {
		return nil, esc.Value{}, err
	}
	oidc, err := providers.KnownObject(inputs, "oidc", "workloadPoolId", "providerId", "serviceAccount", "tokenLifetime", "region", "token", "tokenFile")
	if err != nil {
		return nil, esc.Value{}, err
	}
	switch {
	case static != nil && oidc != nil:
		return nil, esc.Value{}, errors.New("give accessToken or oidc, not both")
	case static != nil:
		t, err := providers.RequiredString(static, "accessToken")
		if err != nil {
			return nil, esc.Value{}, fmt.Errorf("accessToken: %w", err)
		}
		return &oauth2.Token{AccessToken: t, TokenType: "Bearer"}, project, nil
	case oidc != nil:
		tok, err := openOIDC(ctx, number, oidc)
		if err != nil {
			return nil, esc.Value{}, fmt.Errorf("oidc: %w", err)
		}
		return tok, project, nil
	}
	return nil, esc.Value{}, errors.New("one login form is required (accessToken, oidc)")
}

// projectInput returns the project number, as given and as text.
func projectInput(inputs map[string]esc.Value) (esc.Value, string, error) {
	v, ok := inputs["project"]
	if !ok || v.Value == nil {
		return esc.Value{}, "", errors.New("project (the project number) is required")
	}
	var text string
	switch n := v.Value.(type) {
	case json.Number: // what YAML numbers evaluate to
		if !digits.MatchString(n.String()) {
			return esc.Value{}, "", errors.New("project is not a project number")
		}
		text = n.String()
	case string:
		if !digits.MatchString(n) {
			return esc.Value{}, "", errors.New("project is not a project number")
		}
		text = n
	default:
		return esc.Value{}, "", errors.New("project must be a project number")
	}
	return esc.Value{Value: v.Value, Secret: v.Secret}, text, nil
}

var (
	digits = regexp.MustCompile(`^[0-9]{1,20}$`)
	// poolID is what IAM accepts as a pool or provider ID.
	poolID = regexp.MustCompile(`^[a-z0-9-]{3,63}$`)
	// serviceAccount is a service account's email (or unique ID).
	serviceAccount = regexp.MustCompile(`^([a-zA-Z0-9._+-]{1,100}@[a-zA-Z0-9.-]{1,200}|[0-9]{1,30})$`)
	region         = regexp.MustCompile(`^[a-z]+-[a-z]+[0-9]{1,2}$`)
)

func openOIDC(ctx context.Context, project string, in map[string]esc.Value) (*oauth2.Token, error) {
	var ids [3]string
	for i, k := range []string{"workloadPoolId", "providerId", "serviceAccount"} {
		s, err := providers.RequiredString(in, k)
		if err != nil {
			return nil, err
		}
		re := poolID
		if k == "serviceAccount" {
			re = serviceAccount
		}
		if !re.MatchString(s) {
			return nil, fmt.Errorf("%s is not a valid %s", k, map[bool]string{true: "service account email", false: "ID (3 to 63 of a-z, 0-9, -)"}[k == "serviceAccount"])
		}
		ids[i] = s
	}
	lifetime, err := lifetimeInput(in)
	if err != nil {
		return nil, err
	}
	stsURL, err := gcpclient.STS.URL("v1/token")
	if err != nil {
		return nil, err
	}
	reg, err := providers.String(in, "region")
	if err != nil {
		return nil, err
	}
	if reg != "" {
		if !region.MatchString(reg) {
			return nil, errors.New("region is not a Google Cloud region name (such as us-east1)")
		}
		if !gcpclient.STS.Overridden() {
			stsURL = "https://sts." + reg + ".rep.googleapis.com/v1/token"
		}
	}
	impURL, err := gcpclient.IAMCredentials.URL("v1/projects/-/serviceAccounts/" + ids[2] + ":generateAccessToken")
	if err != nil {
		return nil, err
	}
	audience := fmt.Sprintf("//iam.googleapis.com/projects/%s/locations/global/workloadIdentityPools/%s/providers/%s", project, ids[0], ids[1])
	subject, err := providers.SubjectToken(ctx, in, TokenFileEnv, "https:"+audience, audience)
	if err != nil {
		return nil, err
	}
	redact.Add(subject)

	ctx, cancel := providers.WithCallTimeout(ctx)
	defer cancel()
	calls := &lastCall{base: gcpclient.Client.Transport}
	client := *gcpclient.Client
	client.Transport = calls
	ctx = context.WithValue(ctx, oauth2.HTTPClient, &client)
	ts, err := externalaccount.NewTokenSource(ctx, externalaccount.Config{
		Audience:                       audience,
		SubjectTokenType:               "urn:ietf:params:oauth:token-type:jwt",
		TokenURL:                       stsURL,
		ServiceAccountImpersonationURL: impURL,
		ServiceAccountImpersonationLifetimeSeconds: int(lifetime / time.Second),
		Scopes:               []string{Scope},
		SubjectTokenSupplier: subjectSupplier(subject),
	})
	if err != nil {
		return nil, err
	}
	tok, err := ts.Token()
	if err != nil {
		op := "iamcredentials generateAccessToken"
		last, transportErr := calls.last()
		if last == stsURL {
			op = "sts token exchange"
		}
		if transportErr != nil {
			// x/oauth2 quotes the transport's error as text (and the URL
			// with it): describe the error itself.
			err = transportErr
		}
		return nil, gcpclient.Describe(op, err)
	}
	if tok.AccessToken == "" {
		return nil, errors.New("iamcredentials generateAccessToken: the answer holds no token")
	}
	redact.Add(tok.AccessToken)
	return tok, nil
}

// lifetimeInput returns tokenLifetime, a whole number of seconds between
// minLifetime and maxLifetime, by default defaultLifetime.
func lifetimeInput(in map[string]esc.Value) (time.Duration, error) {
	s, err := providers.String(in, "tokenLifetime")
	if err != nil || s == "" {
		return defaultLifetime, err
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, errors.New("tokenLifetime is not a duration such as 1h or 30m")
	case d < minLifetime || d > maxLifetime:
		return 0, fmt.Errorf("tokenLifetime is outside what IAM grants (%v to %v)", minLifetime, maxLifetime)
	case d%time.Second != 0:
		return 0, errors.New("tokenLifetime is not a whole number of seconds")
	}
	return d, nil
}

// subjectSupplier hands externalaccount the subject token.
type subjectSupplier string

func (s subjectSupplier) SubjectToken(context.Context, externalaccount.SupplierOptions) (string, error) {
	return string(s), nil
}

// lastCall is a transport that remembers the URL of the last request, so
// an error names the call that failed.
type lastCall struct {
	base http.RoundTripper
	mu   sync.Mutex
	url  string // GUARDED_BY(mu)
	err  error  // GUARDED_BY(mu); the transport's error of that request
}

func (l *lastCall) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(req)
	l.mu.Lock()
	l.url, l.err = req.URL.String(), err
	l.mu.Unlock()
	return resp, err
}

func (l *lastCall) last() (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.url, l.err
}
