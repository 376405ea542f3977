// Package azurelogin implements the azure-login provider: Azure credentials
// for an environment, as the Pulumi ESC provider of the same name returns
// them, plus an access token for Azure Resource Manager.
//
//	fn::open::azure-login:
//	  clientId: 00000000-0000-0000-0000-000000000001
//	  tenantId: 00000000-0000-0000-0000-000000000002
//	  subscriptionId: 00000000-0000-0000-0000-000000000003
//	  clientSecret: ...          # a client secret, or
//	  oidc: true                 # workload identity federation, the token from
//	                             # $AZURE_FEDERATED_TOKEN_FILE (as on AKS), or
//	  oidc:
//	    token: eyJ...            # the OIDC token, or
//	    tokenFile: /path         # a file holding it
//
// ESC mints the OIDC token itself; escfs, which has no issuer, takes it
// from the definition or a file: AKS's workload identity writes one to
// $AZURE_FEDERATED_TOKEN_FILE, CI systems hand one out.
//
// Outputs as ESC names them: clientId, tenantId, subscriptionId,
// clientSecret (secret, with clientSecret) and oidc.token (secret, with
// oidc); and accessToken (secret, for https://management.azure.com) with
// its expiry (RFC 3339, UTC). The evaluation is told the earlier of the
// access token's and the OIDC token's expiry, so the environment is renewed
// before either ends (the ESC CLI hands out assertions that lapse after an
// hour: pulumi/pulumi#20801).
package azurelogin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/pulumi/esc"
	"github.com/pulumi/esc/schema"

	"github.com/escfs/escfs/internal/redact"
	"github.com/escfs/escfs/providers"
	"github.com/escfs/escfs/providers/azureclient"
)

// Name is the name environments use to open this provider: fn::open::azure-login.
const Name = "azure-login"

// TokenFileEnv names the default file of the OIDC token (AKS workload identity).
const TokenFileEnv = "AZURE_FEDERATED_TOKEN_FILE"

// Provider is the azure-login provider.
type Provider struct{}

var _ esc.Provider = Provider{}

// New returns the azure-login provider.
func New() Provider { return Provider{} }

// Schema returns the provider's inputs and outputs.
func (Provider) Schema() (inputs, outputs *schema.Schema) {
	oidc := schema.OneOf(
		schema.Boolean().Description("true: the OIDC token from $"+TokenFileEnv+"."),
		providers.ObjectSchema(nil, schema.BuilderMap{
			"token":     schema.String().Description("The OIDC token."),
			"tokenFile": schema.String().Description("A file holding the OIDC token; default $" + TokenFileEnv + "."),
		}),
	) // workload identity federation with an OIDC token
	inputs = providers.ObjectSchema(schema.BuilderMap{
		"clientId":       schema.String().Description("The application (client) ID."),
		"tenantId":       schema.String().Description("The directory (tenant) ID."),
		"subscriptionId": schema.String().Description("The subscription ID."),
	}, schema.BuilderMap{
		"clientSecret": schema.String().Description("The application's client secret."),
		"oidc":         oidc,
		"scope":        schema.String().Description("The access token's scope (escfs); default " + azureclient.ManagementScope + "."),
	}).Description("The application, and clientSecret or oidc.").Schema()
	outputs = providers.ObjectSchema(schema.BuilderMap{
		"clientId":       schema.String(),
		"tenantId":       schema.String(),
		"subscriptionId": schema.String(),
		"accessToken":    schema.String(),
		"expiry":         schema.String(),
	}, schema.BuilderMap{
		"clientSecret": schema.String(),
		"oidc":         providers.ObjectSchema(schema.BuilderMap{"token": schema.String()}, nil),
	}).Schema()
	return inputs, outputs
}

// guid is what Azure accepts as a client, tenant or subscription ID; a
// tenant may also be named by a domain.
var (
	guid   = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	domain = regexp.MustCompile(`^[a-zA-Z0-9-]{1,63}(\.[a-zA-Z0-9-]{1,63})+$`)
	// scopeRE is a resource's .default scope: an application ID URI or GUID.
	scopeRE = regexp.MustCompile(`^(https://[a-zA-Z0-9.-]+(/[a-zA-Z0-9._-]+)*|api://[a-zA-Z0-9._-]+|[0-9a-fA-F-]{36})/\.default$`)
)

// Open logs in and returns the credentials and an access token.
func (Provider) Open(ctx context.Context, inputs map[string]esc.Value, _ esc.EnvExecContext) (esc.Value, error) {
	out, err := open(ctx, inputs)
	if err != nil {
		return esc.Value{}, fmt.Errorf("azure-login: %w", err)
	}
	return out, nil
}

func open(ctx context.Context, inputs map[string]esc.Value) (esc.Value, error) {
	if err := providers.CheckKnown(inputs, []string{"clientId", "tenantId", "subscriptionId", "clientSecret", "oidc", "scope"}); err != nil {
		return esc.Value{}, err
	}
	var ids [3]string
	for i, k := range []string{"clientId", "tenantId", "subscriptionId"} {
		s, err := providers.RequiredString(inputs, k)
		if err != nil {
			return esc.Value{}, err
		}
		if !guid.MatchString(s) && !(k == "tenantId" && domain.MatchString(s)) {
			return esc.Value{}, fmt.Errorf("%s is not a GUID", k)
		}
		ids[i] = s
	}
	login := azureclient.Login{ClientID: ids[0], TenantID: ids[1]}
	secret, err := providers.String(inputs, "clientSecret")
	if err != nil {
		return esc.Value{}, err
	}
	login.ClientSecret = secret
	oidc, useOIDC, err := oidcInput(inputs)
	if err != nil {
		return esc.Value{}, err
	}
	switch {
	case secret != "" && useOIDC:
		return esc.Value{}, errors.New("give clientSecret or oidc, not both")
	case secret == "" && !useOIDC:
		return esc.Value{}, errors.New("clientSecret or oidc is required")
	}
	var assertionExpiry time.Time
	if useOIDC {
		token, err := providers.SubjectToken(ctx, oidc, TokenFileEnv, "api://AzureADTokenExchange")
		if err != nil {
			return esc.Value{}, fmt.Errorf("oidc: %w", err)
		}
		redact.Add(token)
		login.Assertion = token
		if assertionExpiry = jwtExpiry(token); !assertionExpiry.IsZero() && !assertionExpiry.After(time.Now()) {
			return esc.Value{}, fmt.Errorf("oidc: the OIDC token expired at %s", assertionExpiry.UTC().Format(time.RFC3339))
		}
	} else {
		redact.Add(secret)
	}
	scope, err := providers.String(inputs, "scope")
	if err != nil {
		return esc.Value{}, err
	}
	if scope == "" {
		scope = azureclient.ManagementScope
	} else if !scopeRE.MatchString(scope) {
		return esc.Value{}, errors.New("scope is not a resource's /.default scope, such as https://management.azure.com/.default")
	}
	cred, err := login.Credential()
	if err != nil {
		return esc.Value{}, err
	}
	ctx, cancel := providers.WithCallTimeout(ctx)
	defer cancel()
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
	if err != nil {
		return esc.Value{}, azureclient.Describe("token for "+scope, err)
	}
	redact.Add(tok.Token)
	expiry := tok.ExpiresOn
	if !assertionExpiry.IsZero() && assertionExpiry.Before(expiry) {
		expiry = assertionExpiry
	}
	providers.ReportExpiry(ctx, expiry)
	out := map[string]esc.Value{
		"clientId":       esc.NewValue(ids[0]),
		"tenantId":       esc.NewValue(ids[1]),
		"subscriptionId": esc.NewValue(ids[2]),
		"accessToken":    esc.NewSecret(tok.Token),
		"expiry":         esc.NewValue(expiry.UTC().Format(time.RFC3339)),
	}
	if secret != "" {
		out["clientSecret"] = esc.NewSecret(secret)
	} else {
		out["oidc"] = esc.NewValue(map[string]esc.Value{"token": esc.NewSecret(login.Assertion)})
	}
	return esc.NewValue(out), nil
}

// oidcInput reads oidc: true, false, or {token?, tokenFile?}.
func oidcInput(inputs map[string]esc.Value) (map[string]esc.Value, bool, error) {
	v, ok := inputs["oidc"]
	if !ok || v.Value == nil {
		return nil, false, nil
	}
	switch o := v.Value.(type) {
	case bool:
		return map[string]esc.Value{}, o, nil
	case map[string]esc.Value:
		if err := providers.CheckKnown(o, []string{"token", "tokenFile"}); err != nil {
			return nil, false, fmt.Errorf("oidc: %w", err)
		}
		return o, true, nil
	}
	return nil, false, errors.New("oidc must be true or an object with token or tokenFile")
}

// jwtExpiry returns the exp claim of a JWT, or zero if it has none (the
// token is not read for anything else, nor trusted: Entra ID checks it).
func jwtExpiry(token string) time.Time {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}
	}
	var claims struct {
		Exp json.Number `json:"exp"`
	}
	if json.Unmarshal(raw, &claims) != nil {
		return time.Time{}
	}
	exp, err := claims.Exp.Int64()
	if err != nil || exp <= 0 {
		return time.Time{}
	}
	return time.Unix(exp, 0)
}
