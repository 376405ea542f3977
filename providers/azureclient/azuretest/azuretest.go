// Package azuretest simulates the Azure services the Azure providers call,
// over real HTTPS on 127.0.0.1 (azcore sends bearer tokens over TLS only):
// Microsoft Entra ID's OpenID configuration and v2.0 token endpoint (client
// credentials with a client secret or a federated client assertion), and
// Key Vault's secrets API with its authentication challenge. It checks
// what the services check (the client and its secret, the assertion's
// type, signature, issuer, audience, subject and lifetime, scopes ending
// in /.default, the token's audience and expiry at the vault, the
// application's access) and answers errors in their formats (AADSTS codes,
// Key Vault's error document). It can shorten token lifetimes, refuse and
// go down.
//
// The certificate is signed by a test CA: TrustCA points this process's
// TLS roots at it (call it in TestMain, before any TLS connection), and
// CAFile gives its PEM for child processes (SSL_CERT_FILE).
package azuretest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/escfs/escfs/internal/jwttest"
)

// Tenant is the simulated directory's ID.
const Tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"

// Issuer is the iss claim of the federated assertions the simulation accepts.
const Issuer = jwttest.IssuerURL

// AssertionAudience is the audience Entra ID requires of federated assertions.
const AssertionAudience = "api://AzureADTokenExchange"

// Resources whose tokens the simulation issues.
const (
	Management = "https://management.azure.com"
	KeyVault   = "https://vault.azure.net"
	// AKS is the Azure Kubernetes Service AAD server application.
	AKS = "6dae42f8-4368-4678-94ff-3960e28e3630"
)

var resources = []string{Management, KeyVault, AKS}

var (
	caOnce sync.Once
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caPEM  []byte
	caFile string
)

func initCA() {
	caOnce.Do(func() {
		var err error
		caKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "escfs azuretest CA"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(24 * time.Hour),
			IsCA:                  true,
			KeyUsage:              x509.KeyUsageCertSign,
			BasicConstraintsValid: true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
		if err != nil {
			panic(err)
		}
		ca, _ = x509.ParseCertificate(der)
		caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		dir, err := os.MkdirTemp("", "azuretest-ca-")
		if err != nil {
			panic(err)
		}
		caFile = filepath.Join(dir, "ca.pem")
		if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
			panic(err)
		}
	})
}

// CAFile returns the path of the test CA's PEM.
func CAFile() string {
	initCA()
	return caFile
}

// TrustCA makes this process trust the test CA (and only it) by setting
// SSL_CERT_FILE, which Go reads once, at the first TLS connection: call it
// from TestMain.
func TrustCA() {
	os.Setenv("SSL_CERT_FILE", CAFile())
	os.Setenv("SSL_CERT_DIR", filepath.Dir(CAFile()))
}

// Server is a running simulation. Its methods are safe for concurrent use.
type Server struct {
	// URL is https://127.0.0.1:PORT: the authority host and the vault's URL.
	URL string

	issuer *jwttest.Issuer // signs federated assertions

	mu      sync.Mutex
	apps    map[string]*app      // GUARDED_BY(mu); by client ID
	tokens  map[string]issued    // GUARDED_BY(mu)
	secrets map[string][]version // GUARDED_BY(mu)
	ttl     time.Duration        // GUARDED_BY(mu); 0: an hour
	down    bool                 // GUARDED_BY(mu)
	calls   map[string]int       // GUARDED_BY(mu)
	grants  []string             // GUARDED_BY(mu); grant types seen
}

type app struct {
	secret    string // "" for none
	subject   string // federated credential's subject; "" for none
	vaultRead bool
}

type issued struct {
	clientID, audience string
	expires            time.Time
}

type version struct {
	id, value string
	enabled   bool
}

// New starts a simulation, closed when t ends.
func New(t testing.TB) *Server {
	initCA()
	s := &Server{
		issuer:  jwttest.New(),
		apps:    map[string]*app{},
		tokens:  map[string]issued{},
		secrets: map[string][]version{},
		calls:   map[string]int{},
	}
	srv := httptest.NewUnstartedServer(s)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serving()}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// serving returns a certificate for 127.0.0.1 and localhost signed by the CA.
func serving() tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		panic(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// Env returns the variables that point the Azure providers here: the
// authority, the CA, and the vault's host allowed.
func (s *Server) Env() map[string]string {
	return map[string]string{
		"AZURE_AUTHORITY_HOST": s.URL + "/",
		"SSL_CERT_FILE":        CAFile(),
		"ESCFS_ALLOW_HOSTS":    strings.TrimPrefix(s.URL, "https://"),
	}
}

// SetEnv sets AZURE_AUTHORITY_HOST and ESCFS_ALLOW_HOSTS for the rest of t
// (SSL_CERT_FILE is TrustCA's).
func (s *Server) SetEnv(t *testing.T) {
	for k, v := range s.Env() {
		if k != "SSL_CERT_FILE" {
			t.Setenv(k, v)
		}
	}
}

// AddApp registers an application with a client secret ("" for none) and
// a federated credential for subject ("" for none); vaultRead grants it
// secrets get on the vault.
func (s *Server) AddApp(clientID, secret, subject string, vaultRead bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apps[clientID] = &app{secret: secret, subject: subject, vaultRead: vaultRead}
}

// PutSecret adds a new current version of a secret and returns its ID.
func (s *Server) PutSecret(name, value string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := jwttest.Opaque("")
	s.secrets[name] = append(s.secrets[name], version{id: id, value: value, enabled: true})
	return id
}

// DisableSecret disables a secret's current version.
func (s *Server) DisableSecret(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.secrets[name]
	v[len(v)-1].enabled = false
}

// SetTokenTTL makes every token issued from now on live d (0: an hour).
func (s *Server) SetTokenTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ttl = d
}

// SetDown makes every endpoint answer 503 (or stop doing so).
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// Calls returns how many requests an endpoint ("token", "secrets") answered.
func (s *Server) Calls(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[endpoint]
}

// Grants returns the kinds of client credentials presented ("secret",
// "assertion"), in order.
func (s *Server) Grants() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.grants...)
}

// Assertion returns a federated assertion (an OIDC token) for sub, signed by
// the simulation's issuer, with audience aud ("" for AssertionAudience),
// expiring after ttl.
func (s *Server) Assertion(sub, aud string, ttl time.Duration) string {
	if aud == "" {
		aud = AssertionAudience
	}
	return s.issuer.Token(sub, aud, ttl)
}

// TokenValid reports whether token is one the simulation issued for
// audience and has not expired.
func (s *Server) TokenValid(token, audience string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[token]
	return ok && t.audience == audience && time.Now().Before(t.expires)
}

// Works reports the status Key Vault answers a read of name with token.
func (s *Server) Works(token, name string) int {
	req := httptest.NewRequest(http.MethodGet, "/secrets/"+name+"/?api-version=7.6", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	return w.Code
}

// ServeHTTP answers Entra ID's and Key Vault's endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	path := r.URL.Path
	endpoint := "secrets"
	switch {
	case strings.HasSuffix(path, "/v2.0/.well-known/openid-configuration"):
		endpoint = "discovery"
	case strings.HasSuffix(path, "/oauth2/v2.0/token"):
		endpoint = "token"
	}
	s.calls[endpoint]++
	if s.down {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	switch endpoint {
	case "discovery":
		tenant := strings.Split(strings.TrimPrefix(path, "/"), "/")[0]
		if tenant != Tenant {
			entraError(w, http.StatusBadRequest, "invalid_tenant", 90002, "Tenant '"+tenant+"' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.")
			return
		}
		base := s.URL + "/" + Tenant
		writeJSON(w, http.StatusOK, map[string]any{
			"token_endpoint":         base + "/oauth2/v2.0/token",
			"authorization_endpoint": base + "/oauth2/v2.0/authorize",
			"issuer":                 base + "/v2.0",
			"jwks_uri":               base + "/discovery/v2.0/keys",
		})
	case "token":
		s.token(w, r)
	default:
		s.secret(w, r)
	}
}

// token is Entra ID's v2.0 token endpoint, client credentials grant.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		entraError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
		return
	}
	f := r.PostForm
	// MSAL adds OpenID Connect's reserved scopes, which Entra ID ignores
	// in a client credentials grant.
	var scopes []string
	for _, sc := range strings.Fields(f.Get("scope")) {
		if sc != "openid" && sc != "offline_access" && sc != "profile" {
			scopes = append(scopes, sc)
		}
	}
	scope := strings.Join(scopes, " ")
	clientID := f.Get("client_id")
	a := s.apps[clientID]
	switch {
	case f.Get("grant_type") != "client_credentials":
		entraError(w, http.StatusBadRequest, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
		return
	case a == nil:
		entraError(w, http.StatusBadRequest, "unauthorized_client", 700016, "Application with identifier '"+clientID+"' was not found in the directory '"+Tenant+"'.")
		return
	case !strings.HasSuffix(scope, "/.default") || len(scopes) != 1:
		entraError(w, http.StatusBadRequest, "invalid_scope", 1002012, "The provided value for scope "+scope+" is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).")
		return
	}
	switch {
	case f.Has("client_secret"):
		s.grants = append(s.grants, "secret")
		if a.secret == "" || !hmac.Equal([]byte(f.Get("client_secret")), []byte(a.secret)) {
			entraError(w, http.StatusUnauthorized, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '"+clientID+"'.")
			return
		}
	case f.Has("client_assertion"):
		s.grants = append(s.grants, "assertion")
		if f.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
			entraError(w, http.StatusBadRequest, "invalid_request", 70002, "Client assertion type is not supported.")
			return
		}
		if code, msg := s.checkAssertion(f.Get("client_assertion"), a); code != 0 {
			entraError(w, http.StatusUnauthorized, "invalid_client", code, msg)
			return
		}
	default:
		entraError(w, http.StatusUnauthorized, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return
	}
	if resource := strings.TrimSuffix(scope, "/.default"); !slices.Contains(resources, resource) {
		entraError(w, http.StatusBadRequest, "invalid_resource", 500011, "The resource principal named "+resource+" was not found in the tenant named "+Tenant+". This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.")
		return
	}
	ttl := time.Hour
	if s.ttl > 0 {
		ttl = s.ttl
	}
	token := jwttest.Opaque("eyJ0eXAi.sim-")
	s.tokens[token] = issued{clientID: clientID, audience: strings.TrimSuffix(scope, "/.default"), expires: time.Now().Add(ttl)}
	writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": int(ttl / time.Second), "ext_expires_in": int(ttl / time.Second), "access_token": token})
}

// checkAssertion verifies a federated client assertion as Entra ID does;
// it returns the AADSTS code and message of what is wrong, or 0.
func (s *Server) checkAssertion(assertion string, a *app) (int, string) {
	c, err := s.issuer.Verify(assertion)
	switch {
	case errors.Is(err, jwttest.ErrSignature):
		return 5002738, "AADSTS5002738: Invalid JWT token. Signature validation failed."
	case err != nil:
		return 50027, "JWT token is invalid or malformed."
	case c.Iss != Issuer:
		return 700211, "No matching federated identity record found for presented assertion issuer '" + c.Iss + "'."
	case c.Aud != AssertionAudience:
		return 700212, "No matching federated identity record found for presented assertion audience '" + c.Aud + "'."
	case a.subject == "" || c.Sub != a.subject:
		return 700213, "No matching federated identity record found for presented assertion subject '" + c.Sub + "'."
	case c.Expired():
		return 700024, "Client assertion is not within its valid time range."
	}
	return 0, ""
}

// secret is Key Vault's GET /secrets/{name}/{version?}.
func (s *Server) secret(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] != "secrets" || r.Method != http.MethodGet || r.URL.Query().Get("api-version") == "" {
		vaultError(w, http.StatusBadRequest, "BadParameter", "", "The request URI is not valid.")
		return
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="%s/%s", resource="%s"`, s.URL, Tenant, KeyVault))
		vaultError(w, http.StatusUnauthorized, "Unauthorized", "", "AKV10000: Request is missing a Bearer or PoP token.")
		return
	}
	t, ok := s.tokens[strings.TrimPrefix(auth, "Bearer ")]
	switch {
	case !ok:
		vaultError(w, http.StatusUnauthorized, "Unauthorized", "", "AKV10032: Invalid issuer.")
		return
	case t.audience != KeyVault:
		vaultError(w, http.StatusUnauthorized, "Unauthorized", "", "AKV10022: Invalid audience. Expected "+KeyVault+", found: "+t.audience+".")
		return
	case !time.Now().Before(t.expires):
		vaultError(w, http.StatusUnauthorized, "Unauthorized", "", "AKV10020: Invalid token. The token is expired.")
		return
	case !s.apps[t.clientID].vaultRead:
		vaultError(w, http.StatusForbidden, "Forbidden", "AccessDenied", "The user, group or application 'appid="+t.clientID+"' does not have secrets get permission on this key vault.")
		return
	}
	versions := s.secrets[parts[1]]
	var v *version
	want := ""
	if len(parts) == 3 {
		want = parts[2]
	}
	for i := range versions {
		if want == "" || versions[i].id == want {
			v = &versions[i]
		}
	}
	if v == nil {
		vaultError(w, http.StatusNotFound, "SecretNotFound", "", "A secret with (name/id) "+strings.Join(parts[1:], "/")+" was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command.")
		return
	}
	if !v.enabled {
		vaultError(w, http.StatusForbidden, "Forbidden", "SecretDisabled", "Operation get is not allowed on a disabled secret.")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"value":      v.value,
		"id":         s.URL + "/secrets/" + parts[1] + "/" + v.id,
		"attributes": map[string]any{"enabled": true},
	})
}

func entraError(w http.ResponseWriter, status int, code string, aadsts int, msg string) {
	writeJSON(w, status, map[string]any{
		"error":             code,
		"error_description": fmt.Sprintf("AADSTS%d: %s Trace ID: 0000 Correlation ID: 0000 Timestamp: %s", aadsts, strings.TrimPrefix(msg, fmt.Sprintf("AADSTS%d: ", aadsts)), time.Now().UTC().Format("2006-01-02 15:04:05Z")),
		"error_codes":       []int{aadsts},
	})
}

func vaultError(w http.ResponseWriter, status int, code, inner, msg string) {
	e := map[string]any{"code": code, "message": msg}
	if inner != "" {
		e["innererror"] = map[string]any{"code": inner}
	}
	writeJSON(w, status, map[string]any{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
