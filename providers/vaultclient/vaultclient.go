// Package vaultclient holds what the HashiCorp Vault providers (vault-login,
// vault-secrets) share: a client of github.com/hashicorp/vault/api for an
// address a definition names, refused unless the user configured that
// address, and the translation of Vault's errors.
//
// A definition names its Vault's address, and what vault-login sends there
// is a credential: a JWT (often the user's own, from a token file) or a
// parent token. So the address must be the user's: the origin of VAULT_ADDR,
// or a host the user allowed with escfs --allow-host (ESCFS_ALLOW_HOSTS).
// Plain http:// is refused but for loopback hosts. The client takes TLS
// settings from the environment as Vault's own CLI does (VAULT_CACERT,
// VAULT_CAPATH, VAULT_CLIENT_CERT, VAULT_CLIENT_KEY, VAULT_TLS_SERVER_NAME,
// VAULT_SKIP_VERIFY) but never the user's VAULT_TOKEN or VAULT_NAMESPACE:
// what a provider sends is what its inputs say. Redirects are followed only
// within the address's origin (Vault's client would carry the token to any
// host a 307 names).
package vaultclient

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"

	vault "github.com/hashicorp/vault/api"

	"github.com/escfs/escfs/internal/safehttp"
	"github.com/escfs/escfs/providers"
)

// ErrNotAllowed is the error of an address the user did not configure.
var ErrNotAllowed = errors.New("escfs sends Vault credentials only to the address the user configured")

// CheckAddress refuses an address that is not the user's Vault: its
// origin must be that of VAULT_ADDR, or its host allowed by
// ESCFS_ALLOW_HOSTS; http:// only on loopback.
func CheckAddress(address string) (*url.URL, error) {
	u, err := url.Parse(address)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil {
		return nil, errors.New("address is not an http(s) URL such as https://vault.example.com:8200")
	}
	if err := safehttp.CheckScheme(u); err != nil {
		return nil, err
	}
	if c, err := url.Parse(os.Getenv("VAULT_ADDR")); err == nil && c.Host != "" && safehttp.Origin(c) == safehttp.Origin(u) {
		return u, nil
	}
	if safehttp.Allowed(u) {
		return u, nil
	}
	return nil, fmt.Errorf("address %s: %w (VAULT_ADDR is %q; allow this host with escfs --allow-host %s or %s)",
		safehttp.Origin(u), ErrNotAllowed, os.Getenv("VAULT_ADDR"), u.Host, safehttp.AllowHostsEnv)
}

// New returns a client of the Vault at address (which CheckAddress must
// accept) in namespace, carrying token ("" for none). Clients of one
// address share their connections (see base).
func New(address, namespace, token string) (*vault.Client, error) {
	u, err := CheckAddress(address)
	if err != nil {
		return nil, err
	}
	b, err := base(strings.TrimRight(u.String(), "/"))
	if err != nil {
		return nil, err
	}
	c, err := b.Clone() // the same http.Client; neither token nor headers
	if err != nil {
		return nil, fmt.Errorf("vault client: %w", err)
	}
	c.ClearToken() // never the user's VAULT_TOKEN
	c.ClearNamespace()
	if token != "" {
		c.SetToken(token)
	}
	if namespace != "" {
		c.SetNamespace(namespace)
	}
	return c, nil
}

// bases holds one client an address and TLS configuration, so renewals
// reuse their connections (a new transport each time cost a connection,
// and made a renewal 3x the login call it wraps).
var bases sync.Map // string -> *vault.Client

// tlsEnv are the variables that shape the client's transport.
var tlsEnv = []string{"VAULT_CACERT", "VAULT_CACERT_BYTES", "VAULT_CAPATH", "VAULT_CLIENT_CERT", "VAULT_CLIENT_KEY",
	"VAULT_TLS_SERVER_NAME", "VAULT_SKIP_VERIFY", "VAULT_HTTP_PROXY", "VAULT_PROXY_ADDR", "VAULT_MAX_RETRIES", "VAULT_CLIENT_TIMEOUT"}

// base returns the shared client of address.
func base(address string) (*vault.Client, error) {
	key := address
	for _, k := range tlsEnv {
		key += "\x00" + os.Getenv(k)
	}
	if c, ok := bases.Load(key); ok {
		return c.(*vault.Client), nil
	}
	cfg := vault.DefaultConfig() // reads VAULT_* for TLS and retries
	if cfg.Error != nil {
		return nil, fmt.Errorf("vault configuration: %w", cfg.Error)
	}
	cfg.Address = address
	cfg.Timeout = providers.CallTimeout
	// Vault's client follows a 307 to any host, token and all; Go's
	// client, within the origin only (safehttp.CheckRedirect): a standby
	// behind the same address still works.
	cfg.DisableRedirects = true
	cfg.MaxRetries = 2
	safehttp.Harden(cfg.HttpClient, 0)
	c, err := vault.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault client: %w", err)
	}
	c.ClearToken()
	c.ClearNamespace()
	actual, _ := bases.LoadOrStore(key, c)
	return actual.(*vault.Client), nil
}

// Describe turns an error of a call to Vault into "OP: HTTP STATUS: Vault's
// errors", without the request's URL or anything the request carried.
func Describe(op string, err error) error {
	if err == nil {
		return nil
	}
	var re *vault.ResponseError
	if errors.As(err, &re) {
		msgs := re.Errors
		if re.RawError {
			msgs = []string{"the answer is not Vault's"}
		}
		return fmt.Errorf("%s: %d: %s", op, re.StatusCode, providers.Bound(strings.Join(msgs, "; ")))
	}
	if errors.Is(err, safehttp.ErrCrossOriginRedirect) {
		return fmt.Errorf("%s: Vault answered with a redirect to another address, which escfs does not follow (it would carry the token there): name the active node or the load balancer as address", op)
	}
	if terr := providers.DescribeTransport(op, err); terr != nil {
		return terr
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return fmt.Errorf("%s: %v", op, urlErr.Err)
	}
	return fmt.Errorf("%s: %w", op, err)
}
