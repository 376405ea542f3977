// Package vaultlogin implements the vault-login provider: a HashiCorp Vault
// token for an environment, as the Pulumi ESC provider of the same name
// returns it.
//
//	fn::open::vault-login:
//	  address: https://vault.example.com:8200   # VAULT_ADDR's, or an allowed host
//	  namespace: admin/team                     # optional (Vault Enterprise)
//	  token:                                    # a child of a given token, or
//	    token: hvs.parent
//	    ttl: 1h                                 # optional, default the role's
//	    maxTtl: 4h                              # optional
//	    displayName: ci                         # optional
//	    policies: [read-app]                    # optional, a subset of the parent's
//	  jwt:                                      # the JWT auth method
//	    role: deploy
//	    mount: jwt                              # optional, default jwt
//	    token: eyJ...                           # the JWT, or
//	    tokenFile: /var/run/secrets/tokens/vault  # a file holding it
//
// The token form creates a child token (auth/token/create), so the
// environment holds a token that ends on its own; the jwt form logs in at
// auth/MOUNT/login. Unlike Pulumi Cloud, escfs has no OIDC issuer: the JWT
// comes from the definition or a file (a Kubernetes projected
// service-account token, a CI system's ID token).
//
// Outputs: address, namespace (when given), token (secret) and, when the
// token has a TTL, expiry (RFC 3339, UTC), reported to the evaluation so
// the environment is renewed before the token ends. The address must be
// the user's Vault (see package vaultclient).
package vaultlogin

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/pulumi/esc"
	"github.com/pulumi/esc/schema"

	"github.com/escfs/escfs/internal/redact"
	"github.com/escfs/escfs/providers"
	"github.com/escfs/escfs/providers/vaultclient"
)

// Name is the name environments use to open this provider: fn::open::vault-login.
const Name = "vault-login"

// Provider is the vault-login provider.
type Provider struct{}

var _ esc.Provider = Provider{}

// New returns the vault-login provider.
func New() Provider { return Provider{} }

// Schema returns the provider's inputs and outputs.
func (Provider) Schema() (inputs, outputs *schema.Schema) {
	token := providers.ObjectSchema(schema.BuilderMap{
		"token": schema.String().Description("The parent token."),
	}, schema.BuilderMap{
		"ttl":         schema.String().Description("The child token's TTL, a duration such as 1h."),
		"maxTtl":      schema.String().Description("The child token's explicit maximum TTL."),
		"displayName": schema.String().Description("The child token's display name."),
		"policies":    schema.Array().Items(schema.String()).Description("The child token's policies, a subset of the parent's."),
	}).Description("Create a child token of a given token.")
	jwt := providers.ObjectSchema(schema.BuilderMap{
		"role": schema.String().Description("The JWT auth method's role."),
	}, schema.BuilderMap{
		"mount":     schema.String().Description("The JWT auth method's mount path; default jwt."),
		"token":     schema.String().Description("The JWT."),
		"tokenFile": schema.String().Description("A file holding the JWT."),
	}).Description("Log in with the JWT auth method.")
	inputs = providers.ObjectSchema(schema.BuilderMap{
		"address": schema.String().Description("The Vault's address."),
	}, schema.BuilderMap{
		"namespace": schema.String().Description("The Vault Enterprise namespace."),
		"token":     token,
		"jwt":       jwt,
	}).Description("The address and exactly one of token or jwt.").Schema()
	outputs = providers.ObjectSchema(schema.BuilderMap{
		"address": schema.String(),
		"token":   schema.String(),
	}, schema.BuilderMap{
		"namespace": schema.String(),
		"expiry":    schema.String().Description("When the token ends (RFC 3339, UTC)."),
	}).Schema()
	return inputs, outputs
}

var (
	// mountPath is an auth mount's path: no traversal, no query.
	mountPath = regexp.MustCompile(`^[a-zA-Z0-9_-]+(/[a-zA-Z0-9_-]+)*$`)
	// namespacePath is a namespace path.
	namespacePath = regexp.MustCompile(`^[a-zA-Z0-9_-]+(/[a-zA-Z0-9_-]+)*/?$`)
)

// Open logs in and returns the token.
func (Provider) Open(ctx context.Context, inputs map[string]esc.Value, _ esc.EnvExecContext) (esc.Value, error) {
	out, err := open(ctx, inputs)
	if err != nil {
		return esc.Value{}, fmt.Errorf("vault-login: %w", err)
	}
	return out, nil
}

func open(ctx context.Context, inputs map[string]esc.Value) (esc.Value, error) {
	if err := providers.CheckKnown(inputs, []string{"address", "namespace", "token", "jwt"}); err != nil {
		return esc.Value{}, err
	}
	address, err := providers.RequiredString(inputs, "address")
	if err != nil {
		return esc.Value{}, err
	}
	namespace, err := providers.String(inputs, "namespace")
	if err != nil {
		return esc.Value{}, err
	}
	if namespace != "" && !namespacePath.MatchString(namespace) {
		return esc.Value{}, errors.New("namespace is not a namespace path such as admin/team")
	}
	tokenForm, err := providers.KnownObject(inputs, "token", "token", "ttl", "maxTtl", "displayName", "policies")
	if err != nil {
		return esc.Value{}, err
	}
	jwtForm, err := providers.KnownObject(inputs, "jwt", "role", "mount", "token", "tokenFile")
	if err != nil {
		return esc.Value{}, err
	}
	if (tokenForm == nil) == (jwtForm == nil) {
		return esc.Value{}, errors.New("give exactly one of token or jwt")
	}
	// The address is checked before anything is read or sent.
	if _, err := vaultclient.CheckAddress(address); err != nil {
		return esc.Value{}, err
	}
	ctx, cancel := providers.WithCallTimeout(ctx)
	defer cancel()
	var token string
	var ttl time.Duration
	if tokenForm != nil {
		token, ttl, err = childToken(ctx, address, namespace, tokenForm)
	} else {
		token, ttl, err = jwtLogin(ctx, address, namespace, jwtForm)
	}
	if err != nil {
		return esc.Value{}, err
	}
	redact.Add(token)
	out := map[string]esc.Value{
		"address": esc.NewValue(address),
		"token":   esc.NewSecret(token),
	}
	if namespace != "" {
		out["namespace"] = esc.NewValue(namespace)
	}
	if ttl > 0 {
		expiry := time.Now().Add(ttl)
		providers.ReportExpiry(ctx, expiry)
		out["expiry"] = esc.NewValue(expiry.UTC().Format(time.RFC3339))
	}
	return esc.NewValue(out), nil
}

// childToken creates a child of the given token.
func childToken(ctx context.Context, address, namespace string, in map[string]esc.Value) (string, time.Duration, error) {
	parent, err := providers.RequiredString(in, "token")
	if err != nil {
		return "", 0, fmt.Errorf("token: %w", err)
	}
	body := map[string]any{"display_name": "escfs"}
	for key, field := range map[string]string{"ttl": "ttl", "maxTtl": "explicit_max_ttl"} {
		s, err := providers.String(in, key)
		if err != nil {
			return "", 0, fmt.Errorf("token: %w", err)
		}
		if s == "" {
			continue
		}
		if d, err := time.ParseDuration(s); err != nil || d <= 0 {
			return "", 0, fmt.Errorf("token: %s is not a duration such as 1h or 30m", key)
		}
		body[field] = s
	}
	if name, err := providers.String(in, "displayName"); err != nil {
		return "", 0, fmt.Errorf("token: %w", err)
	} else if name != "" {
		body["display_name"] = name
	}
	if policies, err := providers.StringList(in, "policies"); err != nil {
		return "", 0, fmt.Errorf("token: %w", err)
	} else if policies != nil {
		body["policies"] = policies
	}
	c, err := vaultclient.New(address, namespace, parent)
	if err != nil {
		return "", 0, err
	}
	const op = "token: auth/token/create"
	secret, err := c.Logical().WriteWithContext(ctx, "auth/token/create", body)
	if err != nil {
		return "", 0, vaultclient.Describe(op, err)
	}
	return fromAuth(op, secret)
}

// jwtLogin logs in with the JWT auth method.
func jwtLogin(ctx context.Context, address, namespace string, in map[string]esc.Value) (string, time.Duration, error) {
	role, err := providers.RequiredString(in, "role")
	if err != nil {
		return "", 0, fmt.Errorf("jwt: %w", err)
	}
	mount, err := providers.String(in, "mount")
	if err != nil {
		return "", 0, fmt.Errorf("jwt: %w", err)
	}
	if mount == "" {
		mount = "jwt"
	}
	if !mountPath.MatchString(mount) {
		return "", 0, errors.New("jwt: mount is not a mount path such as jwt or k8s/jwt")
	}
	jwt, err := providers.SubjectToken(ctx, in, "", "vault")
	if err != nil {
		return "", 0, fmt.Errorf("jwt: %w", err)
	}
	redact.Add(jwt)
	c, err := vaultclient.New(address, namespace, "")
	if err != nil {
		return "", 0, err
	}
	op := "jwt: auth/" + mount + "/login"
	secret, err := c.Logical().WriteWithContext(ctx, "auth/"+mount+"/login", map[string]any{"role": role, "jwt": jwt})
	if err != nil {
		return "", 0, vaultclient.Describe(op, err)
	}
	return fromAuth(op, secret)
}

// fromAuth returns the token of a login's answer and its TTL.
func fromAuth(op string, secret *vault.Secret) (string, time.Duration, error) {
	if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
		return "", 0, fmt.Errorf("%s: the answer holds no token", op)
	}
	return secret.Auth.ClientToken, time.Duration(secret.Auth.LeaseDuration) * time.Second, nil
}
