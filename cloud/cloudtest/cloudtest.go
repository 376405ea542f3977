// Package cloudtest is an HTTP simulation of the part of the Pulumi Cloud
// API that escfs calls, served over real HTTP on 127.0.0.1, for tests.
//
// It answers exactly the requests of pulumi/esc's client package
// (github.com/pulumi/esc/cmd/esc/cli/client) that escfs makes, with that
// package's own types (and esc.Environment for an open session):
//
//	GET  /api/user                                           the token's user
//	GET  /api/user/organizations/default                     the default organization
//	GET  /api/esc/environments/{org}?continuationToken=T     one page of the listing
//	GET  /api/esc/environments/{org}/{project}/{env}         the definition (YAML), its revision in a header
//	GET  /api/esc/environments/{org}/{project}/{env}/versions/tags/{tag}   a tag's revision ("latest")
//	POST /api/esc/environments/{org}/{project}/{env}/open?duration=D        open a session: evaluate
//	GET  /api/esc/environments/{org}/{project}/{env}/open/{id}             the session's values
//
// Opening evaluates the stored definition with the real evaluator
// (github.com/pulumi/esc/eval), imports resolved within the organization,
// fn::open calls served by the providers given in Options (by default
// Providers: escfs's token provider and TestLogin, which returns expiring
// credentials shaped like the service's aws-login). Errors are the
// service's: 401 for a wrong token, 403 for a forbidden environment, 404 for
// what does not exist (or an expired session), 400 with diagnostics for an
// evaluation with errors.
//
// Tests steer it: Put a definition (each Put is a new revision), Delete an
// environment, page the listing (PageSize), revoke the token (SetToken),
// Forbid an environment, make endpoints Fail with any status or hang up,
// Delay answers and count Requests per endpoint.
package cloudtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/pulumi/esc"
	"github.com/pulumi/esc/cmd/esc/cli/client"
	esceval "github.com/pulumi/esc/eval"
	"github.com/pulumi/esc/syntax"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"

	"github.com/escfs/escfs/providers"
	"github.com/escfs/escfs/providers/token"
)

// Endpoint is one route of the simulated API, named by its method and
// path pattern (net/http's ServeMux syntax).
type Endpoint string

// The endpoints the simulation serves.
const (
	User       Endpoint = "GET /api/user"
	DefaultOrg Endpoint = "GET /api/user/organizations/default"
	List       Endpoint = "GET /api/esc/environments/{org}"
	Definition Endpoint = "GET /api/esc/environments/{org}/{project}/{env}"
	Revision   Endpoint = "GET /api/esc/environments/{org}/{project}/{env}/versions/tags/{tag}"
	Open       Endpoint = "POST /api/esc/environments/{org}/{project}/{env}/open"
	Session    Endpoint = "GET /api/esc/environments/{org}/{project}/{env}/open/{id}"
)

// Endpoints are all the endpoints, in the order above.
var Endpoints = []Endpoint{User, DefaultOrg, List, Definition, Revision, Open, Session}

// HangUp is the status Fail takes to close the connection without an
// answer, as an unreachable or crashing service does.
const HangUp = -1

// DefaultPageSize is the size of a page of the listing unless Options say.
const DefaultPageSize = 100

// Options configure a simulation.
type Options struct {
	// Token is the access token the service accepts; "" means a random one
	// (see Server.Token).
	Token string
	// User is the token's user name; "" means "alice".
	User string
	// Orgs are the organizations the user belongs to; nil means the user's
	// own (User) and "acme".
	Orgs []string
	// DefaultOrg is what GET /api/user/organizations/default answers; ""
	// means 404, as the service answers without an opinion.
	DefaultOrg string
	// PageSize is the number of environments per page of the listing; 0
	// means DefaultPageSize.
	PageSize int
	// Providers serve fn::open::NAME when opening; nil means Providers().
	Providers map[string]esc.Provider
}

// Providers returns the default providers: "token" (escfs's token provider:
// a secret token with expiresAt) and "test-login" (TestLogin).
func Providers() map[string]esc.Provider {
	return map[string]esc.Provider{token.Name: &token.Provider{}, TestLoginName: &TestLogin{}}
}

// Server is a running simulation. Its methods are safe for concurrent use.
type Server struct {
	// URL is the API's base URL, http://127.0.0.1:PORT, as PULUMI_BACKEND_URL.
	URL string

	srv       *httptest.Server
	providers *providers.Registry
	user      string

	mu          sync.Mutex
	token       string                     // GUARDED_BY(mu)
	orgs        []string                   // GUARDED_BY(mu)
	defaultOrg  string                     // GUARDED_BY(mu)
	pageSize    int                        // GUARDED_BY(mu)
	envs        map[string]*environment    // GUARDED_BY(mu): by ORG/PROJECT/ENV
	sessions    map[string]*session        // GUARDED_BY(mu): by id
	forbidden   map[string]bool            // GUARDED_BY(mu): ORG/PROJECT/ENV answering 403
	faults      map[Endpoint]int           // GUARDED_BY(mu): status to answer; "" key for all endpoints
	delays      map[Endpoint]time.Duration // GUARDED_BY(mu); "" key for all endpoints
	counts      map[Endpoint]int           // GUARDED_BY(mu)
	durations   []time.Duration            // GUARDED_BY(mu): the duration of every open, in order
	authHeaders map[string]bool            // GUARDED_BY(mu): every Authorization header seen
}

// environment is one stored environment and its revisions.
type environment struct {
	org, project, name string
	revisions          [][]byte // revisions[i] is revision i+1
	modified           time.Time
}

// session is one open environment.
type session struct {
	key     string // ORG/PROJECT/ENV
	expires time.Time
	body    []byte // the esc.Environment, JSON
}

// Start starts a simulation on 127.0.0.1; it stops when the test ends.
func Start(tb interface {
	Helper()
	Cleanup(func())
}, opts Options) *Server {
	tb.Helper()
	s := New(opts)
	tb.Cleanup(s.Close)
	return s
}

// New starts a simulation on 127.0.0.1; Close stops it.
func New(opts Options) *Server {
	if opts.Token == "" {
		opts.Token = "pul-" + randomHex(20)
	}
	if opts.User == "" {
		opts.User = "alice"
	}
	if opts.Orgs == nil {
		opts.Orgs = []string{opts.User, "acme"}
	}
	if opts.PageSize <= 0 {
		opts.PageSize = DefaultPageSize
	}
	if opts.Providers == nil {
		opts.Providers = Providers()
	}
	s := &Server{
		providers: providers.NewRegistry(opts.Providers), user: opts.User,
		token: opts.Token, orgs: slices.Clone(opts.Orgs), defaultOrg: opts.DefaultOrg, pageSize: opts.PageSize,
		envs: map[string]*environment{}, sessions: map[string]*session{}, forbidden: map[string]bool{},
		faults: map[Endpoint]int{}, delays: map[Endpoint]time.Duration{}, counts: map[Endpoint]int{},
		authHeaders: map[string]bool{},
	}
	mux := http.NewServeMux()
	handlers := map[Endpoint]func(http.ResponseWriter, *http.Request){
		User: s.serveUser, DefaultOrg: s.serveDefaultOrg, List: s.serveList, Definition: s.serveDefinition,
		Revision: s.serveRevision, Open: s.serveOpen, Session: s.serveSession,
	}
	for _, ep := range Endpoints {
		mux.HandleFunc(string(ep), s.wrap(ep, handlers[ep]))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("Not Found: %s %s is not simulated", r.Method, r.URL.Path))
	})
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	return s
}

// Close stops the server; requests then fail as to an unreachable service.
func (s *Server) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// Token returns the access token the service accepts now.
func (s *Server) Token() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token
}

// SetToken changes the token the service accepts: the old one is refused
// with 401 from now on, as after a revocation.
func (s *Server) SetToken(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = tok
}

// PageSize sets the number of environments per page of the listing.
func (s *Server) PageSize(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pageSize = max(n, 1)
}

// Put stores definition as the next revision of the environment name
// ("env" for project "default", or "project/env") of org, creating it, and
// returns the new revision number.
func (s *Server) Put(org, name, definition string) int {
	project, env := splitName(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(org, project, env)
	e, ok := s.envs[k]
	if !ok {
		e = &environment{org: org, project: project, name: env}
		s.envs[k] = e
	}
	e.revisions = append(e.revisions, []byte(definition))
	e.modified = time.Now()
	return len(e.revisions)
}

// Bump stores the environment's current definition again as a new revision
// and returns its number.
func (s *Server) Bump(org, name string) int {
	project, env := splitName(name)
	s.mu.Lock()
	e, ok := s.envs[key(org, project, env)]
	s.mu.Unlock()
	if !ok {
		panic("cloudtest: Bump of an environment that does not exist: " + org + "/" + name)
	}
	return s.Put(org, name, string(e.revisions[len(e.revisions)-1]))
}

// Delete removes the environment.
func (s *Server) Delete(org, name string) {
	project, env := splitName(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.envs, key(org, project, env))
}

// Forbid makes every request about the environment answer 403 (forbidden
// true) or serves it again (false).
func (s *Server) Forbid(org, name string, forbidden bool) {
	project, env := splitName(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forbidden[key(org, project, env)] = forbidden
}

// Fail makes the endpoints (all of them if none is given) answer status
// (HangUp: close the connection) until Heal. Requests are still counted.
func (s *Server) Fail(status int, eps ...Endpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(eps) == 0 {
		eps = []Endpoint{""}
	}
	for _, ep := range eps {
		s.faults[ep] = status
	}
}

// Delay makes the endpoints (all of them if none is given) answer d late,
// or, with d = 0, on time again.
func (s *Server) Delay(d time.Duration, eps ...Endpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(eps) == 0 {
		eps = []Endpoint{""}
	}
	for _, ep := range eps {
		s.delays[ep] = d
	}
}

// Heal ends every Fail and Delay.
func (s *Server) Heal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.faults)
	clear(s.delays)
}

// Requests returns how many requests the endpoint received (failed ones
// and the client's retries included).
func (s *Server) Requests(ep Endpoint) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[ep]
}

// Counts returns the number of requests per endpoint so far.
func (s *Server) Counts() map[Endpoint]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[Endpoint]int, len(s.counts))
	for ep, n := range s.counts {
		out[ep] = n
	}
	return out
}

// ResetCounts sets every request count to zero.
func (s *Server) ResetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.counts)
}

// OpenDurations returns the duration each open asked for, in order.
func (s *Server) OpenDurations() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.durations)
}

// AuthHeaders returns every distinct Authorization header received.
func (s *Server) AuthHeaders() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for h := range s.authHeaders {
		out = append(out, h)
	}
	slices.Sort(out)
	return out
}

// wrap counts a request, applies delays and faults, and checks the token
// before handing it to h.
func (s *Server) wrap(ep Endpoint, h func(http.ResponseWriter, *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.counts[ep]++
		s.authHeaders[r.Header.Get("Authorization")] = true
		delay, ok := s.delays[ep]
		if !ok {
			delay = s.delays[""]
		}
		status, failing := s.faults[ep]
		if !failing {
			status, failing = s.faults[""]
		}
		tok := s.token
		s.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		switch {
		case failing && status == HangUp:
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		case failing:
			writeError(w, status, http.StatusText(status))
			return
		}
		// The service's answer to a missing or wrong token.
		if r.Header.Get("Authorization") != "token "+tok {
			writeError(w, http.StatusUnauthorized, "Unauthorized: No credentials provided or are invalid.")
			return
		}
		h(w, r)
	}
}

func (s *Server) serveUser(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	orgs := slices.Clone(s.orgs)
	s.mu.Unlock()
	type org struct {
		Name        string `json:"name"`
		GitHubLogin string `json:"githubLogin"`
	}
	resp := struct {
		ID            string `json:"id"`
		GitHubLogin   string `json:"githubLogin"`
		Name          string `json:"name"`
		Organizations []org  `json:"organizations"`
	}{ID: "user-" + s.user, GitHubLogin: s.user, Name: s.user}
	for _, o := range orgs {
		resp.Organizations = append(resp.Organizations, org{Name: o, GitHubLogin: o})
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) serveDefaultOrg(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	org := s.defaultOrg
	s.mu.Unlock()
	if org == "" {
		writeError(w, http.StatusNotFound, "Not Found: no default organization")
		return
	}
	writeJSON(w, http.StatusOK, client.GetDefaultOrganizationResponse{Organization: org})
}

func (s *Server) serveList(w http.ResponseWriter, r *http.Request) {
	org := r.PathValue("org")
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(s.orgs, org) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("Not Found: organization '%s' not found", org))
		return
	}
	var all []client.OrgEnvironment
	for _, e := range s.envs {
		if e.org == org {
			all = append(all, client.OrgEnvironment{Organization: org, Project: e.project, Name: e.name})
		}
	}
	slices.SortFunc(all, func(a, b client.OrgEnvironment) int {
		return strings.Compare(a.Project+"/"+a.Name, b.Project+"/"+b.Name)
	})
	// The continuation token is opaque to clients; here it is the index of
	// the page's first environment.
	start := 0
	if t := r.URL.Query().Get("continuationToken"); t != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(t, "page-"))
		if err != nil || n < 0 || n > len(all) {
			writeError(w, http.StatusBadRequest, "Bad Request: invalid continuation token")
			return
		}
		start = n
	}
	end := min(start+s.pageSize, len(all))
	resp := client.ListEnvironmentsResponse{Environments: all[start:end]}
	if end < len(all) {
		resp.NextToken = "page-" + strconv.Itoa(end)
	}
	writeJSON(w, http.StatusOK, resp)
}

// lookup finds the environment a request is about, answering 404 or 403
// itself when there is none to serve.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request) (*environment, bool) {
	org, project, env := r.PathValue("org"), r.PathValue("project"), r.PathValue("env")
	k := key(org, project, env)
	s.mu.Lock()
	e, ok := s.envs[k]
	forbidden := s.forbidden[k]
	s.mu.Unlock()
	switch {
	case forbidden:
		writeError(w, http.StatusForbidden, "Forbidden: you do not have permission to access this environment")
		return nil, false
	case !ok:
		writeError(w, http.StatusNotFound, fmt.Sprintf("Not Found: environment '%s/%s' not found", project, env))
		return nil, false
	}
	return e, true
}

func (s *Server) serveDefinition(w http.ResponseWriter, r *http.Request) {
	e, ok := s.lookup(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	rev := len(e.revisions)
	def := e.revisions[rev-1]
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-yaml")
	w.Header().Set("ETag", fmt.Sprintf("%q", strconv.Itoa(rev)))
	w.Header().Set("Pulumi-ESC-Revision", strconv.Itoa(rev))
	w.WriteHeader(http.StatusOK)
	w.Write(def) //nolint:errcheck // the client went away
}

func (s *Server) serveRevision(w http.ResponseWriter, r *http.Request) {
	e, ok := s.lookup(w, r)
	if !ok {
		return
	}
	if tag := r.PathValue("tag"); tag != "latest" {
		writeError(w, http.StatusNotFound, fmt.Sprintf("Not Found: tag '%s' not found", tag))
		return
	}
	s.mu.Lock()
	resp := client.EnvironmentRevisionTag{Name: "latest", Revision: len(e.revisions), Modified: e.modified, EditorLogin: s.user}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) serveOpen(w http.ResponseWriter, r *http.Request) {
	e, ok := s.lookup(w, r)
	if !ok {
		return
	}
	duration := 2 * time.Hour // the service's default
	if d := r.URL.Query().Get("duration"); d != "" {
		var err error
		if duration, err = time.ParseDuration(d); err != nil || duration <= 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("Bad Request: invalid duration %q", d))
			return
		}
	}
	s.mu.Lock()
	s.durations = append(s.durations, duration)
	def := e.revisions[len(e.revisions)-1]
	s.mu.Unlock()

	env, diags := s.evaluate(r.Context(), e.org, e.project+"/"+e.name, def)
	if client.DiagnosticsHaveErrors(diags) {
		writeJSON(w, http.StatusBadRequest, client.EnvironmentErrorResponse{Code: http.StatusBadRequest,
			Message: "Bad Request: the environment has errors", Diagnostics: diags})
		return
	}
	body, err := json.Marshal(env)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "Internal Server Error: "+err.Error())
		return
	}
	id := randomHex(16)
	s.mu.Lock()
	s.sessions[id] = &session{key: key(e.org, e.project, e.name), expires: time.Now().Add(duration), body: body}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, client.OpenEnvironmentResponse{ID: id, Diagnostics: diags})
}

func (s *Server) serveSession(w http.ResponseWriter, r *http.Request) {
	e, ok := s.lookup(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	ss, ok := s.sessions[r.PathValue("id")]
	live := ok && ss.key == key(e.org, e.project, e.name) && time.Now().Before(ss.expires)
	s.mu.Unlock()
	if !live {
		writeError(w, http.StatusNotFound, "Not Found: open session not found or expired")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(ss.body) //nolint:errcheck // the client went away
}

// evaluate evaluates a definition of org with the real evaluator, as the
// service does when an environment is opened.
func (s *Server) evaluate(ctx context.Context, org, name string, def []byte) (*esc.Environment, []client.EnvironmentDiagnostic) {
	decl, diags, err := esceval.LoadYAMLBytes(name, def)
	if err != nil {
		return nil, []client.EnvironmentDiagnostic{{Summary: err.Error(), Severity: client.DiagError}}
	}
	out := convert(diags)
	if diags.HasErrors() {
		return nil, out
	}
	execCtx, err := esc.NewExecContext(map[string]esc.Value{
		"pulumi": esc.NewValue(map[string]esc.Value{
			"user":         esc.NewValue(map[string]esc.Value{"login": esc.NewValue(s.user)}),
			"organization": esc.NewValue(map[string]esc.Value{"login": esc.NewValue(org)}),
		}),
	})
	if err != nil {
		return nil, []client.EnvironmentDiagnostic{{Summary: err.Error(), Severity: client.DiagError}}
	}
	env, evalDiags := esceval.EvalEnvironment(ctx, name, decl, noDecrypter{}, s.providers, loader{s: s, org: org}, execCtx)
	return env, append(out, convert(evalDiags)...)
}

// loader loads imported definitions from the organization's environments.
type loader struct {
	s   *Server
	org string
}

// LoadEnvironment returns the latest revision of "env" (project default),
// "project/env", or "project/env@REVISION".
func (l loader) LoadEnvironment(_ context.Context, name string) ([]byte, esceval.Decrypter, error) {
	base, version, _ := strings.Cut(name, "@")
	project, env := splitName(base)
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	k := key(l.org, project, env)
	e, ok := l.s.envs[k]
	if !ok || l.s.forbidden[k] {
		return nil, nil, fmt.Errorf("environment %q not found", name)
	}
	rev := len(e.revisions)
	if version != "" && version != "latest" {
		n, err := strconv.Atoi(version)
		if err != nil || n < 1 || n > rev {
			return nil, nil, fmt.Errorf("environment %q: no revision %s", base, version)
		}
		rev = n
	}
	return e.revisions[rev-1], noDecrypter{}, nil
}

// noDecrypter refuses ciphertexts: definitions in the simulation hold
// their secrets in plain text (fn::secret: VALUE).
type noDecrypter struct{}

func (noDecrypter) Decrypt(context.Context, []byte) ([]byte, error) {
	return nil, errors.New("the simulation holds no encryption key")
}

// convert turns the evaluator's diagnostics into the service's.
func convert(diags syntax.Diagnostics) []client.EnvironmentDiagnostic {
	var out []client.EnvironmentDiagnostic
	for _, d := range diags {
		if d == nil {
			continue
		}
		cd := client.EnvironmentDiagnostic{Summary: d.Summary, Detail: d.Detail, Severity: client.DiagError}
		if d.Severity == hcl.DiagWarning {
			cd.Severity = client.DiagWarning
		}
		if d.Subject != nil {
			cd.Range = &esc.Range{Environment: d.Subject.Filename,
				Begin: esc.Pos{Line: d.Subject.Start.Line, Column: d.Subject.Start.Column, Byte: d.Subject.Start.Byte},
				End:   esc.Pos{Line: d.Subject.End.Line, Column: d.Subject.End.Column, Byte: d.Subject.End.Byte}}
		}
		out = append(out, cd)
	}
	return out
}

// splitName splits "env" (project default) or "project/env".
func splitName(name string) (project, env string) {
	if p, e, ok := strings.Cut(name, "/"); ok {
		return p, e
	}
	return client.DefaultProject, name
}

func key(org, project, env string) string { return org + "/" + project + "/" + env }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the client went away
}

// writeError answers as the service does: an apitype.ErrorResponse.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, apitype.ErrorResponse{Code: status, Message: msg})
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
