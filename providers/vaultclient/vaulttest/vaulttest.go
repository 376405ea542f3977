// Package vaulttest simulates the parts of HashiCorp Vault's HTTP API that
// the Vault providers call, over real HTTP on 127.0.0.1: the token auth
// method's create (child tokens, their TTL capped by the parent's, their
// policies a subset of the parent's), the JWT auth method's login (the
// JWT's signature, issuer, bound audiences and subject, and expiry),
// sys/internal/ui/mounts, and reads of KV version 1 and 2 mounts, with
// ACL policies as path prefixes, Enterprise namespaces (X-Vault-Namespace)
// and Vault's error format ({"errors": [...]}). It can expire tokens,
// refuse, seal and redirect.
//
// A real Vault dev server would be better; the registry serves Vault only
// as a module whose go.mod replaces its sdk with a directory its zip leaves
// out, at an unreleased version, so it cannot be built here.
package vaulttest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/escfs/escfs/internal/jwttest"
)

// Issuer is the iss claim of the JWTs the simulated JWT auth method accepts.
const Issuer = jwttest.IssuerURL

// Server is a running simulation. Its methods are safe for concurrent use.
type Server struct {
	// URL is http://127.0.0.1:PORT.
	URL string
	// RootToken is a root token of the root namespace, without expiry.
	RootToken string

	issuer *jwttest.Issuer

	mu       sync.Mutex
	tokens   map[string]*token      // GUARDED_BY(mu)
	roles    map[string]Role        // GUARDED_BY(mu); "ns|mount/role"
	policies map[string][]string    // GUARDED_BY(mu); "ns|name" -> readable path prefixes
	mounts   map[string]int         // GUARDED_BY(mu); "ns|path/" -> KV version
	data     map[string][]kvVersion // GUARDED_BY(mu); "ns|mount/key" -> versions
	maxTTL   time.Duration          // GUARDED_BY(mu); 0: none
	sealed   bool                   // GUARDED_BY(mu)
	redirect string                 // GUARDED_BY(mu)
	calls    map[string]int         // GUARDED_BY(mu)
	seen     []http.Header          // GUARDED_BY(mu)
}

type token struct {
	namespace string
	policies  []string
	expires   time.Time // zero: never
}

type kvVersion struct {
	data    map[string]any
	deleted bool
}

// Role is a role of the JWT auth method.
type Role struct {
	BoundAudience string
	BoundSubject  string
	Policies      []string
	TTL           time.Duration
}

// New starts a simulation with a KV v2 mount at secret/ and a KV v1 mount
// at kv/ in the root namespace, closed when t ends.
func New(t testing.TB) *Server {
	s := &Server{
		issuer:   jwttest.New(),
		tokens:   map[string]*token{},
		roles:    map[string]Role{},
		policies: map[string][]string{},
		mounts:   map[string]int{"|secret/": 2, "|kv/": 1},
		data:     map[string][]kvVersion{},
		calls:    map[string]int{},
	}
	s.RootToken = jwttest.Opaque("hvs.root-")
	s.tokens[s.RootToken] = &token{policies: []string{"root"}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Mount adds a KV mount (version 1 or 2) at path ("team/") in namespace.
func (s *Server) Mount(namespace, path string, version int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mounts[namespace+"|"+strings.TrimSuffix(path, "/")+"/"] = version
}

// Policy defines a policy that may read paths under the given prefixes
// (API paths, such as secret/data/app/).
func (s *Server) Policy(namespace, name string, prefixes ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policies[namespace+"|"+name] = prefixes
}

// Token creates a token in namespace with policies, living ttl (0: ever).
func (s *Server) Token(namespace string, ttl time.Duration, policies ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issueLocked(namespace, ttl, policies)
}

// AddRole adds a role to the JWT auth method mounted at mount.
func (s *Server) AddRole(namespace, mount, name string, r Role) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roles[namespace+"|"+mount+"/"+name] = r
}

// Put writes a secret's new version at path (mount path and key, such as
// secret/app/db) in namespace.
func (s *Server) Put(namespace, path string, data map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[namespace+"|"+path] = append(s.data[namespace+"|"+path], kvVersion{data: data})
}

// Delete soft-deletes the latest version of a KV v2 secret.
func (s *Server) Delete(namespace, path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.data[namespace+"|"+path]
	v[len(v)-1].deleted = true
}

// SetMaxTTL caps the TTL of every token issued from now on (0: no cap).
func (s *Server) SetMaxTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxTTL = d
}

// SetSealed seals the Vault (every request answers 503) or unseals it.
func (s *Server) SetSealed(sealed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sealed = sealed
}

// SetRedirect makes every request answer 307 to location ("" stops it),
// as a standby node does.
func (s *Server) SetRedirect(location string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.redirect = location
}

// Calls returns how many requests a path prefix ("auth/token/create",
// "auth/jwt/login", "secret/") answered.
func (s *Server) Calls(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[prefix]
}

// Headers returns the headers of every request so far.
func (s *Server) Headers() []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

// Valid reports whether tok is a token the simulation issued that has not
// expired.
func (s *Server) Valid(tok string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[tok]
	return ok && (t.expires.IsZero() || time.Now().Before(t.expires))
}

// JWT returns a JWT for sub with audience aud, signed by the simulation's
// issuer, expiring after ttl.
func (s *Server) JWT(sub, aud string, ttl time.Duration) string {
	return s.issuer.Token(sub, aud, ttl)
}

// issueLocked makes a token; ttl 0 lives forever, unless maxTTL caps it.
func (s *Server) issueLocked(namespace string, ttl time.Duration, policies []string) string {
	if s.maxTTL > 0 && (ttl == 0 || ttl > s.maxTTL) {
		ttl = s.maxTTL
	}
	t := &token{namespace: namespace, policies: policies}
	if ttl > 0 {
		t.expires = time.Now().Add(ttl)
	}
	id := jwttest.Opaque("hvs.sim-")
	s.tokens[id] = t
	return id
}

// ServeHTTP answers Vault's API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = append(s.seen, r.Header.Clone())
	path := strings.TrimPrefix(r.URL.Path, "/v1/")
	for _, p := range []string{"auth/token/create", "sys/internal/ui/mounts/"} {
		if strings.HasPrefix(path, p) {
			s.calls[p]++
		}
	}
	if strings.HasSuffix(path, "/login") {
		s.calls[path]++
	}
	for m := range s.mounts {
		if _, mp, _ := strings.Cut(m, "|"); strings.HasPrefix(path, mp) {
			s.calls[mp]++
		}
	}
	switch {
	case s.redirect != "":
		http.Redirect(w, r, s.redirect+r.URL.Path, http.StatusTemporaryRedirect)
		return
	case s.sealed:
		vaultError(w, http.StatusServiceUnavailable, "Vault is sealed")
		return
	}
	ns := strings.Trim(r.Header.Get("X-Vault-Namespace"), "/")
	switch {
	case path == "auth/token/create" && (r.Method == http.MethodPost || r.Method == http.MethodPut):
		s.create(w, r, ns)
	case strings.HasPrefix(path, "auth/") && strings.HasSuffix(path, "/login") && (r.Method == http.MethodPost || r.Method == http.MethodPut):
		s.login(w, r, ns, strings.TrimSuffix(strings.TrimPrefix(path, "auth/"), "/login"))
	case strings.HasPrefix(path, "sys/internal/ui/mounts/") && r.Method == http.MethodGet:
		s.mountInfo(w, r, ns, strings.TrimPrefix(path, "sys/internal/ui/mounts/"))
	case r.Method == http.MethodGet:
		s.read(w, r, ns, path)
	default:
		vaultError(w, http.StatusMethodNotAllowed, "unsupported operation")
	}
}

// caller returns the request's token, if valid in namespace ns.
func (s *Server) caller(r *http.Request, ns string) (*token, bool) {
	t, ok := s.tokens[r.Header.Get("X-Vault-Token")]
	if !ok || t.namespace != ns || (!t.expires.IsZero() && !time.Now().Before(t.expires)) {
		return nil, false
	}
	return t, true
}

// may reports whether t's policies let it read path.
func (s *Server) may(t *token, ns, path string) bool {
	for _, p := range t.policies {
		if p == "root" {
			return true
		}
		for _, prefix := range s.policies[ns+"|"+p] {
			if strings.HasPrefix(path, prefix) || path+"/" == prefix {
				return true
			}
		}
	}
	return false
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, ns string) {
	parent, ok := s.caller(r, ns)
	if !ok {
		vaultError(w, http.StatusForbidden, "permission denied")
		return
	}
	var body struct {
		TTL         string   `json:"ttl"`
		MaxTTL      string   `json:"explicit_max_ttl"`
		Policies    []string `json:"policies"`
		DisplayName string   `json:"display_name"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		vaultError(w, http.StatusBadRequest, "failed to parse JSON input: "+err.Error())
		return
	}
	policies := body.Policies
	if policies == nil {
		policies = parent.policies
	}
	if !slices.Contains(parent.policies, "root") {
		for _, p := range policies {
			if !slices.Contains(parent.policies, p) {
				vaultError(w, http.StatusBadRequest, "child policies must be subset of parent")
				return
			}
		}
	}
	ttl, err := parseTTL(body.TTL)
	if err != nil {
		vaultError(w, http.StatusBadRequest, "error parsing ttl: "+err.Error())
		return
	}
	maxTTL, err := parseTTL(body.MaxTTL)
	if err != nil {
		vaultError(w, http.StatusBadRequest, "error parsing explicit_max_ttl: "+err.Error())
		return
	}
	if ttl == 0 {
		ttl = 768 * time.Hour // the system default
	}
	if maxTTL > 0 && ttl > maxTTL {
		ttl = maxTTL
	}
	if !parent.expires.IsZero() {
		if left := time.Until(parent.expires).Truncate(time.Second); ttl > left {
			ttl = left // a child never outlives its parent
		}
	}
	s.answerAuth(w, ns, ttl, policies)
}

func (s *Server) answerAuth(w http.ResponseWriter, ns string, ttl time.Duration, policies []string) {
	id := s.issueLocked(ns, ttl, policies)
	lease := 0
	if t := s.tokens[id]; !t.expires.IsZero() {
		lease = int(time.Until(t.expires).Round(time.Second) / time.Second)
	}
	writeJSON(w, http.StatusOK, map[string]any{"auth": map[string]any{
		"client_token": id, "accessor": jwttest.Opaque(""), "policies": policies,
		"lease_duration": lease, "renewable": true,
	}})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request, ns, mount string) {
	var body struct {
		Role string `json:"role"`
		JWT  string `json:"jwt"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		vaultError(w, http.StatusBadRequest, "failed to parse JSON input")
		return
	}
	role, ok := s.roles[ns+"|"+mount+"/"+body.Role]
	if !ok {
		vaultError(w, http.StatusBadRequest, fmt.Sprintf("role %q could not be found", body.Role))
		return
	}
	c, err := s.issuer.Verify(body.JWT)
	switch {
	case errors.Is(err, jwttest.ErrSignature):
		vaultError(w, http.StatusBadRequest, "error validating token: failed to verify id token signature")
		return
	case err != nil:
		vaultError(w, http.StatusBadRequest, "error validating token: invalid JWT: token contains an invalid number of segments")
		return
	}
	switch {
	case c.Iss != Issuer:
		vaultError(w, http.StatusBadRequest, "error validating token: invalid issuer (iss) claim")
		return
	case c.Expired():
		vaultError(w, http.StatusBadRequest, "error validating token: token is expired (exp)")
		return
	case role.BoundAudience != "" && c.Aud != role.BoundAudience:
		vaultError(w, http.StatusBadRequest, "error validating token: invalid audience (aud) claim: audience claim does not match any expected audience")
		return
	case role.BoundSubject != "" && c.Sub != role.BoundSubject:
		vaultError(w, http.StatusBadRequest, "error validating claims: sub claim does not match bound subject")
		return
	}
	s.answerAuth(w, ns, role.TTL, role.Policies)
}

// mountOf returns the mount of path in ns and its KV version.
func (s *Server) mountOf(ns, path string) (string, int) {
	best, version := "", 0
	for m, v := range s.mounts {
		mns, mp, _ := strings.Cut(m, "|")
		if mns == ns && strings.HasPrefix(path+"/", mp) && len(mp) > len(best) {
			best, version = mp, v
		}
	}
	return best, version
}

func (s *Server) mountInfo(w http.ResponseWriter, r *http.Request, ns, path string) {
	t, ok := s.caller(r, ns)
	mount, version := s.mountOf(ns, path)
	if !ok || mount == "" || !s.may(t, ns, strings.TrimSuffix(mount, "/")) && !s.may(t, ns, mount) && !s.anyUnder(t, ns, mount) {
		vaultError(w, http.StatusForbidden, "preflight capability check returned 403, please ensure client's policies grant access to path \""+path+"/\"")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{
		"path": mount, "type": "kv", "options": map[string]any{"version": fmt.Sprint(version)},
	}})
}

// anyUnder reports whether t may read anything under mount.
func (s *Server) anyUnder(t *token, ns, mount string) bool {
	if slices.Contains(t.policies, "root") {
		return true
	}
	for _, p := range t.policies {
		for _, prefix := range s.policies[ns+"|"+p] {
			if strings.HasPrefix(prefix, mount) {
				return true
			}
		}
	}
	return false
}

func (s *Server) read(w http.ResponseWriter, r *http.Request, ns, path string) {
	t, ok := s.caller(r, ns)
	if !ok || !s.may(t, ns, path) {
		vaultError(w, http.StatusForbidden, "permission denied")
		return
	}
	mount, version := s.mountOf(ns, path)
	if mount == "" {
		vaultError(w, http.StatusNotFound, "no handler for route \""+path+"\". route entry not found.")
		return
	}
	key := strings.TrimPrefix(path, mount)
	if version == 1 {
		vs := s.data[ns+"|"+mount+key]
		if len(vs) == 0 {
			writeJSON(w, http.StatusNotFound, map[string]any{"errors": []string{}})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": vs[len(vs)-1].data, "lease_duration": 2764800})
		return
	}
	rest, ok := strings.CutPrefix(key, "data/")
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]any{"errors": []string{}, "warnings": []string{"Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the Vault CLI, use 'vault kv get' for this operation."}})
		return
	}
	vs := s.data[ns+"|"+mount+rest]
	if len(vs) == 0 {
		writeJSON(w, http.StatusNotFound, map[string]any{"errors": []string{}})
		return
	}
	v := vs[len(vs)-1]
	meta := map[string]any{"version": len(vs), "destroyed": false, "deletion_time": ""}
	if v.deleted {
		meta["deletion_time"] = time.Now().UTC().Format(time.RFC3339)
		writeJSON(w, http.StatusNotFound, map[string]any{"data": map[string]any{"data": nil, "metadata": meta}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"data": v.data, "metadata": meta}})
}

// parseTTL reads a TTL: a Go duration or a number of seconds; "" is 0.
func parseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	var n int64
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil {
		return 0, fmt.Errorf("time: invalid duration %q", s)
	}
	return time.Duration(n) * time.Second, nil
}

func vaultError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"errors": []string{msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
