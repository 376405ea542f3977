// Package gcptest simulates the Google Cloud APIs the Google providers
// call, over real HTTP on 127.0.0.1: the Security Token Service's token
// exchange, IAM Credentials' generateAccessToken and Secret Manager's
// versions.access. It checks what the services check (grant and token
// types, the audience naming a known pool provider, the subject token's
// issuer, audience, signature and expiry, bearer tokens, the caller's
// right to impersonate, lifetime bounds) and answers errors in Google's
// own formats. It can shorten token lifetimes, refuse and go down.
package gcptest

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/escfs/escfs/internal/jwttest"
)

// Issuer is the iss claim of the subject tokens the simulation accepts.
const Issuer = jwttest.IssuerURL

// MaxLifetime is the longest impersonation lifetime IAM grants by default.
const MaxLifetime = time.Hour

// Server is a running simulation. Its methods are safe for concurrent use.
type Server struct {
	// URL is the base URL of every simulated API.
	URL string
	// Project is the project number of the simulated project.
	Project string

	issuer *jwttest.Issuer // signs subject tokens

	mu        sync.Mutex
	providers map[string]bool      // GUARDED_BY(mu); audience -> known
	accounts  map[string]bool      // GUARDED_BY(mu); may be impersonated
	tokens    map[string]issued    // GUARDED_BY(mu); access tokens
	secrets   map[string][]version // GUARDED_BY(mu); secret -> versions (1-based)
	ttl       time.Duration        // GUARDED_BY(mu); 0: as requested
	down      bool                 // GUARDED_BY(mu)
	corrupt   bool                 // GUARDED_BY(mu)
	calls     map[string]int       // GUARDED_BY(mu); by API
	subjects  []string             // GUARDED_BY(mu); subject tokens exchanged
}

type issued struct {
	federated bool // from STS; else a service account's
	expires   time.Time
}

type version struct {
	data     string
	disabled bool
}

// New starts a simulation of project 123456789, closed when t ends.
func New(t testing.TB) *Server {
	s := &Server{
		Project:   "123456789",
		issuer:    jwttest.New(),
		providers: map[string]bool{},
		accounts:  map[string]bool{},
		tokens:    map[string]issued{},
		secrets:   map[string][]version{},
		calls:     map[string]int{},
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Env returns the variables that point the Google providers here.
func (s *Server) Env() map[string]string {
	return map[string]string{
		"CLOUDSDK_API_ENDPOINT_OVERRIDES_STS":            s.URL + "/",
		"CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS": s.URL + "/",
		"CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER":  s.URL + "/",
	}
}

// SetEnv sets Env's variables for the rest of t.
func (s *Server) SetEnv(t testing.TB) {
	for k, v := range s.Env() {
		t.Setenv(k, v)
	}
}

// Audience is the STS audience of a pool's provider, as the exchange names it.
func (s *Server) Audience(pool, provider string) string {
	return fmt.Sprintf("//iam.googleapis.com/projects/%s/locations/global/workloadIdentityPools/%s/providers/%s", s.Project, pool, provider)
}

// AddProvider makes a pool's provider known. Its subject tokens must carry
// the audience "https:" + Audience(pool, provider), IAM's default.
func (s *Server) AddProvider(pool, provider string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.providers[s.Audience(pool, provider)] = true
}

// AllowImpersonation lets federated identities impersonate a service account.
func (s *Server) AllowImpersonation(email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accounts[email] = true
}

// PutSecret adds a version holding data to a secret and returns its number.
func (s *Server) PutSecret(name, data string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets[name] = append(s.secrets[name], version{data: data})
	return len(s.secrets[name])
}

// DisableVersion disables a secret's version n.
func (s *Server) DisableVersion(name string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets[name][n-1].disabled = true
}

// AddAccessToken makes token a service account's access token until expires.
func (s *Server) AddAccessToken(token string, expires time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[token] = issued{expires: expires}
}

// SetTokenTTL makes every token issued from now on live d (0: as asked).
func (s *Server) SetTokenTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ttl = d
}

// SetDown makes every API answer 503 UNAVAILABLE (or stop doing so).
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// SetCorrupt makes Secret Manager's payloads differ from their checksums,
// as a payload corrupted in transit would.
func (s *Server) SetCorrupt(corrupt bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.corrupt = corrupt
}

// Calls returns how many requests an API ("sts", "iamcredentials",
// "secretmanager") has answered, errors included.
func (s *Server) Calls(api string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[api]
}

// Subjects returns the subject tokens exchanged so far.
func (s *Server) Subjects() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.subjects)
}

// SubjectToken returns a subject token for a pool's provider, signed by
// the simulation's issuer, for sub, expiring after ttl. aud "" means the
// provider's default audience.
func (s *Server) SubjectToken(pool, provider, sub, aud string, ttl time.Duration) string {
	if aud == "" {
		aud = "https:" + s.Audience(pool, provider)
	}
	return s.issuer.Token(sub, aud, ttl)
}

var (
	impersonatePath = regexp.MustCompile(`^/v1/projects/-/serviceAccounts/([^/:]+):generateAccessToken$`)
	accessPath      = regexp.MustCompile(`^/v1/projects/([^/]+)/secrets/([^/]+)/versions/([^/:]+):access$`)
)

// ServeHTTP answers the three APIs.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	api := "secretmanager"
	switch {
	case r.URL.Path == "/v1/token":
		api = "sts"
	case impersonatePath.MatchString(r.URL.Path):
		api = "iamcredentials"
	}
	s.calls[api]++
	if s.down {
		apiError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "The service is currently unavailable.")
		return
	}
	switch api {
	case "sts":
		s.exchange(w, r)
	case "iamcredentials":
		s.impersonate(w, r, impersonatePath.FindStringSubmatch(r.URL.Path)[1])
	default:
		m := accessPath.FindStringSubmatch(r.URL.Path)
		if m == nil || r.Method != http.MethodGet {
			apiError(w, http.StatusNotFound, "NOT_FOUND", "Requested entity was not found.")
			return
		}
		s.access(w, r, m[1], m[2], m[3])
	}
}

// exchange is STS's POST /v1/token (RFC 8693 token exchange).
func (s *Server) exchange(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		oauthError(w, "invalid_request", "Expected a POST with a form body.")
		return
	}
	f := r.PostForm
	switch {
	case f.Get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange":
		oauthError(w, "unsupported_grant_type", "Invalid value for \"grant_type\".")
		return
	case f.Get("requested_token_type") != "urn:ietf:params:oauth:token-type:access_token":
		oauthError(w, "invalid_request", "Invalid value for \"requested_token_type\".")
		return
	case f.Get("subject_token_type") != "urn:ietf:params:oauth:token-type:jwt" && f.Get("subject_token_type") != "urn:ietf:params:oauth:token-type:id_token":
		oauthError(w, "invalid_request", "Invalid value for \"subject_token_type\".")
		return
	case !s.providers[f.Get("audience")]:
		oauthError(w, "invalid_target", "The target service indicated by the \"audience\" parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it doesn't exist.")
		return
	case !slices.Contains(strings.Fields(f.Get("scope")), "https://www.googleapis.com/auth/cloud-platform"):
		oauthError(w, "invalid_scope", "The scope must include https://www.googleapis.com/auth/cloud-platform.")
		return
	}
	if msg := s.checkSubject(f.Get("subject_token"), "https:"+f.Get("audience")); msg != "" {
		oauthError(w, "invalid_grant", msg)
		return
	}
	s.subjects = append(s.subjects, f.Get("subject_token"))
	ttl := time.Hour
	if s.ttl > 0 {
		ttl = s.ttl
	}
	token := jwttest.Opaque("sts.")
	s.tokens[token] = issued{federated: true, expires: time.Now().Add(ttl)}
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token":      token,
		"issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
		"token_type":        "Bearer",
		"expires_in":        int(ttl / time.Second),
	})
}

// checkSubject verifies a subject token as STS verifies an OIDC provider's
// token; it returns what is wrong, or "".
func (s *Server) checkSubject(token, audience string) string {
	c, err := s.issuer.Verify(token)
	switch {
	case errors.Is(err, jwttest.ErrSignature):
		return "Invalid ID Token signature."
	case err != nil:
		return "Unable to parse the ID Token."
	case c.Iss != Issuer:
		return "The issuer in ID Token " + c.Iss + " does not match the expected ones."
	case c.Aud != audience:
		return "The audience in ID Token [" + c.Aud + "] does not match the expected audience."
	case c.Expired():
		return "ID Token issued at " + strconv.FormatInt(c.Exp, 10) + " is stale to sign-in."
	}
	return ""
}

// impersonate is IAM Credentials' generateAccessToken.
func (s *Server) impersonate(w http.ResponseWriter, r *http.Request, account string) {
	if r.Method != http.MethodPost {
		apiError(w, http.StatusNotFound, "NOT_FOUND", "Requested entity was not found.")
		return
	}
	t, ok := s.bearer(r)
	if !ok || !t.federated {
		unauthenticated(w)
		return
	}
	if !s.accounts[account] {
		apiError(w, http.StatusForbidden, "PERMISSION_DENIED", "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).")
		return
	}
	var body struct {
		Scope    []string `json:"scope"`
		Lifetime string   `json:"lifetime"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.Scope) == 0 {
		apiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Scope required.")
		return
	}
	lifetime := time.Hour
	if body.Lifetime != "" {
		n, err := strconv.Atoi(strings.TrimSuffix(body.Lifetime, "s"))
		if err != nil || !strings.HasSuffix(body.Lifetime, "s") || n < 1 {
			apiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Invalid value at 'lifetime' (type.googleapis.com/google.protobuf.Duration), Field 'lifetime', Illegal duration format.")
			return
		}
		lifetime = time.Duration(n) * time.Second
	}
	if lifetime > MaxLifetime {
		apiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", fmt.Sprintf("The lifetime requested (%ds) exceeds the maximum allowed (3600s).", int(lifetime/time.Second)))
		return
	}
	if s.ttl > 0 {
		lifetime = s.ttl
	}
	token := jwttest.Opaque("ya29.sim-")
	expires := time.Now().Add(lifetime).Truncate(time.Second)
	s.tokens[token] = issued{expires: expires}
	writeJSON(w, http.StatusOK, map[string]any{"accessToken": token, "expireTime": expires.UTC().Format(time.RFC3339)})
}

// access is Secret Manager's versions.access.
func (s *Server) access(w http.ResponseWriter, r *http.Request, project, secret, ver string) {
	t, ok := s.bearer(r)
	if !ok || t.federated {
		unauthenticated(w)
		return
	}
	resource := fmt.Sprintf("projects/%s/secrets/%s", project, secret)
	versions := s.secrets[secret]
	if project != s.Project {
		apiError(w, http.StatusForbidden, "PERMISSION_DENIED", "Permission 'secretmanager.versions.access' denied for resource '"+resource+"/versions/"+ver+"' (or it may not exist).")
		return
	}
	if len(versions) == 0 {
		apiError(w, http.StatusNotFound, "NOT_FOUND", "Secret ["+resource+"] not found or has no versions.")
		return
	}
	n := len(versions)
	if ver != "latest" {
		var err error
		if n, err = strconv.Atoi(ver); err != nil || n < 1 || n > len(versions) {
			apiError(w, http.StatusNotFound, "NOT_FOUND", "Secret Version ["+resource+"/versions/"+ver+"] not found.")
			return
		}
	}
	v := versions[n-1]
	name := fmt.Sprintf("%s/versions/%d", resource, n)
	if v.disabled {
		apiError(w, http.StatusBadRequest, "FAILED_PRECONDITION", "Secret Version ["+name+"] is in DISABLED state.")
		return
	}
	data := v.data
	if s.corrupt {
		data += "\x00"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"name": name,
		"payload": map[string]any{
			"data":       base64.StdEncoding.EncodeToString([]byte(data)),
			"dataCrc32c": strconv.FormatUint(uint64(crc32.Checksum([]byte(v.data), crc32.MakeTable(crc32.Castagnoli))), 10),
		},
	})
}

// bearer returns the unexpired token the request carries.
func (s *Server) bearer(r *http.Request) (issued, bool) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	t, known := s.tokens[token]
	return t, ok && known && time.Now().Before(t.expires)
}

func unauthenticated(w http.ResponseWriter) {
	apiError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.")
}

func apiError(w http.ResponseWriter, code int, status, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]any{"code": code, "message": msg, "status": status}})
}

func oauthError(w http.ResponseWriter, code, desc string) {
	writeJSON(w, http.StatusBadRequest, map[string]any{"error": code, "error_description": desc})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
