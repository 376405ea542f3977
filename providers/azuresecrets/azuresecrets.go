// Package azuresecrets implements the azure-secrets provider: secrets from
// Azure Key Vault, as the Pulumi ESC provider of the same name reads them.
//
//	fn::open::azure-secrets:
//	  login: ${azure.login}     # an azure-login output
//	  vault: my-vault           # the vault's name (my-vault.vault.azure.net) or URL
//	  get:
//	    db:
//	      name: db-password
//	      version: 0123abcd     # optional, default the current version
//
// Each secret is read with azsecrets, as the login's application (its
// client secret, or its OIDC token as a federated assertion). The token
// goes only to a vault of Azure's clouds (*.vault.azure.net,
// *.vault.azure.cn, *.vault.usgovcloudapi.net) or to a host the user
// allowed with escfs --allow-host, and azsecrets checks that the vault's
// authentication challenge names a resource of the vault's own domain
// (for an allowed host, which need not be in that domain, it does not).
// The outputs are the secrets' values, all secret.
package azuresecrets

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/pulumi/esc"
	"github.com/pulumi/esc/schema"
	"golang.org/x/sync/errgroup"

	"github.com/escfs/escfs/internal/safehttp"
	"github.com/escfs/escfs/providers"
	"github.com/escfs/escfs/providers/azureclient"
)

// Name is the name environments use to open this provider: fn::open::azure-secrets.
const Name = "azure-secrets"

// parallel bounds the secrets read at once.
const parallel = 8

// vaultSuffixes are the DNS suffixes of Key Vault in Azure's clouds.
var vaultSuffixes = []string{".vault.azure.net", ".vault.azure.cn", ".vault.usgovcloudapi.net", ".vault.microsoftazure.de"}

var (
	vaultName  = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$`)
	secretName = regexp.MustCompile(`^[a-zA-Z0-9-]{1,127}$`)
	versionID  = regexp.MustCompile(`^[a-zA-Z0-9]{1,64}$`)
)

// Provider is the azure-secrets provider.
type Provider struct{}

var _ esc.Provider = Provider{}

// New returns the azure-secrets provider.
func New() Provider { return Provider{} }

// Schema returns the provider's inputs and outputs.
func (Provider) Schema() (inputs, outputs *schema.Schema) {
	login := providers.ObjectSchema(schema.BuilderMap{
		"clientId": schema.String(),
		"tenantId": schema.String(),
	}, schema.BuilderMap{
		"subscriptionId": schema.String(),
		"clientSecret":   schema.String(),
		"oidc":           providers.ObjectSchema(schema.BuilderMap{"token": schema.String()}, nil),
		"accessToken":    schema.String(),
		"expiry":         schema.String(),
	}).Description("The output of an azure-login provider.")
	get := providers.ObjectSchema(schema.BuilderMap{
		"name": schema.String().Description("The secret's name."),
	}, schema.BuilderMap{
		"version": schema.String().Description("The secret's version; default the current one."),
	})
	inputs = providers.ObjectSchema(schema.BuilderMap{
		"login": login,
		"vault": schema.String().Description("The vault's name or URL."),
		"get":   schema.Record(schema.BuilderMap{}).AdditionalProperties(get).Description("The secrets to read, by output name."),
	}, nil).Schema()
	outputs = schema.Record(schema.BuilderMap{}).AdditionalProperties(schema.String()).Schema()
	return inputs, outputs
}

type request struct {
	output, name, version string
}

// Open reads every secret of the get input.
func (Provider) Open(ctx context.Context, inputs map[string]esc.Value, _ esc.EnvExecContext) (esc.Value, error) {
	out, err := open(ctx, inputs)
	if err != nil {
		return esc.Value{}, fmt.Errorf("azure-secrets: %w", err)
	}
	return out, nil
}

func open(ctx context.Context, inputs map[string]esc.Value) (esc.Value, error) {
	if err := providers.CheckKnown(inputs, []string{"login", "vault", "get"}); err != nil {
		return esc.Value{}, err
	}
	login, err := loginInput(inputs)
	if err != nil {
		return esc.Value{}, err
	}
	vault, err := providers.RequiredString(inputs, "vault")
	if err != nil {
		return esc.Value{}, err
	}
	vaultURL, allowed, err := resolveVault(vault)
	if err != nil {
		return esc.Value{}, err
	}
	reqs, err := getInput(inputs)
	if err != nil {
		return esc.Value{}, err
	}
	cred, err := login.Credential()
	if err != nil {
		return esc.Value{}, fmt.Errorf("login: %w", err)
	}
	client, err := azsecrets.NewClient(vaultURL, cred, &azsecrets.ClientOptions{
		ClientOptions:                        azureclient.Options(),
		DisableChallengeResourceVerification: allowed,
	})
	if err != nil {
		return esc.Value{}, fmt.Errorf("vault client: %w", err)
	}
	ctx, cancel := providers.WithCallTimeout(ctx)
	defer cancel()
	values := make([]string, len(reqs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for i, r := range reqs {
		g.Go(func() error {
			resp, err := client.GetSecret(gctx, r.name, r.version, nil)
			at := providers.EntryPath("get", r.output)
			if err != nil {
				return fmt.Errorf("%s: %w", at, azureclient.Describe("keyvault get "+r.name, err))
			}
			if resp.Value == nil {
				return fmt.Errorf("%s: keyvault get %s: the secret has no value", at, r.name)
			}
			values[i] = *resp.Value
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return esc.Value{}, err
	}
	m := make(map[string]esc.Value, len(reqs))
	for i, r := range reqs {
		m[r.output] = esc.NewSecret(values[i])
	}
	return esc.NewValue(m), nil
}

// loginInput reads the azure-login output the login input holds.
func loginInput(inputs map[string]esc.Value) (azureclient.Login, error) {
	in, err := providers.Object(inputs, "login")
	if err != nil {
		return azureclient.Login{}, err
	}
	if in == nil {
		return azureclient.Login{}, errors.New("login (an azure-login output) is required")
	}
	var l azureclient.Login
	if l.ClientID, err = providers.RequiredString(in, "clientId"); err != nil {
		return l, fmt.Errorf("login: %w", err)
	}
	if l.TenantID, err = providers.RequiredString(in, "tenantId"); err != nil {
		return l, fmt.Errorf("login: %w", err)
	}
	if l.ClientSecret, err = providers.String(in, "clientSecret"); err != nil {
		return l, fmt.Errorf("login: %w", err)
	}
	oidc, err := providers.Object(in, "oidc")
	if err != nil {
		return l, fmt.Errorf("login: %w", err)
	}
	if l.Assertion, err = providers.String(oidc, "token"); err != nil {
		return l, fmt.Errorf("login: oidc: %w", err)
	}
	if l.ClientSecret == "" && l.Assertion == "" {
		return l, errors.New("login: clientSecret or oidc.token is required")
	}
	return l, nil
}

// resolveVault returns the vault's URL, and whether the user allowed its
// host (rather than it being one of Azure's).
func resolveVault(vault string) (string, bool, error) {
	if vaultName.MatchString(vault) {
		return "https://" + strings.ToLower(vault) + ".vault.azure.net/", false, nil
	}
	u, err := url.Parse(vault)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", false, errors.New("vault is neither a vault name nor a vault URL such as https://my-vault.vault.azure.net/")
	}
	host := strings.ToLower(u.Hostname())
	for _, s := range vaultSuffixes {
		if strings.HasSuffix(host, s) && u.Port() == "" {
			return "https://" + host + "/", false, nil
		}
	}
	if safehttp.Allowed(u) {
		return "https://" + u.Host + "/", true, nil
	}
	return "", false, fmt.Errorf("vault %s is not a Key Vault of Azure's clouds (%s): escfs sends the token there only if you allow the host with escfs --allow-host %s or %s",
		safehttp.Origin(u), strings.Join(vaultSuffixes, ", "), u.Host, safehttp.AllowHostsEnv)
}

// getInput returns the secrets to read, sorted by output name.
func getInput(inputs map[string]esc.Value) ([]request, error) {
	get, err := providers.Object(inputs, "get")
	if err != nil {
		return nil, err
	}
	if len(get) == 0 {
		return nil, errors.New("get must name at least one secret")
	}
	reqs := make([]request, 0, len(get))
	for output, v := range get {
		at := providers.EntryPath("get", output)
		in, ok := v.Value.(map[string]esc.Value)
		if !ok {
			return nil, fmt.Errorf("%s must be an object with name and, optionally, version", at)
		}
		if err := providers.CheckKnown(in, []string{"name", "version"}); err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		r := request{output: output}
		if r.name, err = providers.RequiredString(in, "name"); err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		if !secretName.MatchString(r.name) {
			return nil, fmt.Errorf("%s: name is not a secret name (1 to 127 of letters, digits and -)", at)
		}
		if r.version, err = providers.String(in, "version"); err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		if r.version != "" && !versionID.MatchString(r.version) {
			return nil, fmt.Errorf("%s: version is not a version ID", at)
		}
		reqs = append(reqs, r)
	}
	sort.Slice(reqs, func(i, j int) bool { return reqs[i].output < reqs[j].output })
	return reqs, nil
}
