// Package cloud is the Pulumi Cloud source of environments: an eval.Source
// that lists the environments of one organization of Pulumi Cloud and opens
// them there. The service evaluates (its providers, its secrets, its access
// control); this package only asks, through pulumi/esc's own client package
// (github.com/pulumi/esc/cmd/esc/cli/client, the client of the esc CLI), and
// renders the answer with eval.NewSnapshot.
//
// Requests, per operation:
//
//	Scan     one listing of the organization, every page
//	Produce  open with the configured duration, then read the session; while
//	         watching, also the definition of the environment and of each
//	         environment it imports (transitively) that is not known yet
//	Watch    every poll interval: one listing, and the latest revision of
//	         each environment opened so far and of each environment those import
//
// The service cannot be watched, so changes are found by polling: an
// environment that appears or vanishes from the listing changes the tree,
// and a new revision of an opened (or imported) environment invalidates it
// and its importers. Environments nobody opened cost nothing but their line
// in the listing.
//
// A snapshot expires at the end of its open session (the request's start
// plus the open duration) or at an earlier expiry its values carry (see
// ValuesExpiry), so the Store renews it before then.
package cloud

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pulumi/esc"
	"github.com/pulumi/esc/cmd/esc/cli/client"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"gopkg.in/yaml.v3"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/internal/redact"
	"github.com/escfs/escfs/internal/safehttp"
)

// Defaults of Config.
const (
	DefaultOpenDuration   = time.Hour
	DefaultPoll           = 30 * time.Second
	DefaultRequestTimeout = 30 * time.Second
)

// maxDeps bounds the environments one environment's imports are followed
// to (the evaluator's default limit of expanded imports).
const maxDeps = eval.DefaultMaxImports

// maxPages bounds the pages of one listing, against a service that hands
// out continuation tokens forever.
const maxPages = 10000

// pollParallelism is how many revision requests one poll makes at once.
const pollParallelism = 8

// LoginHint is what every refusal of the credentials tells the user.
const LoginHint = "run `esc login` or set PULUMI_ACCESS_TOKEN"

// ErrAuth is wrapped by the errors of requests the service refused for
// their credentials (401, 403); its text is LoginHint.
var ErrAuth = errors.New(LoginHint)

// Config configures a Source.
type Config struct {
	// URL is the API URL, e.g. https://api.pulumi.com.
	URL string
	// Token is the access token. It is sent to URL and nowhere else, and
	// never appears in an error, a diagnostic or a log line.
	Token string
	// Org is the organization to serve; "" means DefaultOrg, else the
	// service's default organization for the user, else Username, else the
	// token's user.
	Org string
	// DefaultOrg is the account's configured default organization.
	DefaultOrg string
	// Username is the account's user name, if known.
	Username string
	// OpenDuration is how long an open session lasts; 0 means
	// DefaultOpenDuration.
	OpenDuration time.Duration
	// Poll is the interval between two polls for changes while watching;
	// 0 means DefaultPoll.
	Poll time.Duration
	// RequestTimeout bounds each request made without a caller's deadline
	// (listings, polls); 0 means DefaultRequestTimeout. The client retries
	// a GET that fails with 5xx or no answer three times, 1, 2 and 4
	// seconds apart, and its waits do not end with the deadline.
	RequestTimeout time.Duration
	// ConsoleDomain is the host of the Pulumi Cloud console, for the links
	// that name environments (PULUMI_CONSOLE_DOMAIN); "" means the API's
	// host with "api." replaced by "app.".
	ConsoleDomain string
	// UserAgent is sent with every request; "" means "escfs".
	UserAgent string
	// Logger receives listing and polling failures; nil means
	// slog.Default(). Values and definitions are never logged.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Source is the Pulumi Cloud source of one organization. It is safe for
// concurrent use.
type Source struct {
	client       client.Client
	apiURL       string
	console      string // console base URL, "" if unknown
	org          string
	openDuration time.Duration
	poll         time.Duration
	timeout      time.Duration
	log          *slog.Logger
	now          func() time.Time

	mu       sync.Mutex
	last     *eval.Tree             // GUARDED_BY(mu): the last listing that succeeded; nil before
	listErr  string                 // GUARDED_BY(mu): the listing failure logged last, "" when listing works
	pollErr  string                 // GUARDED_BY(mu): the poll failure logged last
	tracked  map[eval.Name]*tracked // GUARDED_BY(mu)
	watching bool                   // GUARDED_BY(mu): set by Watch
	stop     chan struct{}          // GUARDED_BY(mu): closed by Close; nil before Watch
	cancel   context.CancelFunc     // GUARDED_BY(mu): cancels the poll's requests
	done     chan struct{}          // GUARDED_BY(mu): closed when the poller ends
}

// tracked is what the source knows of one environment whose changes
// matter: one that was opened, or that an opened one imports.
type tracked struct {
	// rev is the revision last announced: every snapshot that depends on
	// the environment was opened after rev existed. A poll that finds
	// another one announces it (the Store drops those snapshots) and
	// records it here.
	rev int
	// imports are the environments the definition of revision defRev
	// imports.
	imports []eval.Name
	defRev  int
	// polled: the environment's revision is polled (it was opened, or
	// imported by an opened environment).
	polled bool
}

var _ eval.Source = (*Source)(nil)

// The ESC client makes its requests with http.DefaultClient, and offers
// no way to give it another: harden that one, before any goroutine uses
// it, so that a redirect to another origin (which would carry the token)
// is refused and no answer can make escfs hold more than
// safehttp.MaxBody.
func init() { safehttp.Harden(http.DefaultClient, 0) }

// New returns a source over the organization cfg names (or the default one,
// which may take a request to find).
func New(ctx context.Context, cfg Config) (*Source, error) {
	switch {
	case cfg.URL == "":
		return nil, errors.New("pulumi cloud: no API URL")
	case cfg.Token == "":
		return nil, fmt.Errorf("pulumi cloud %s: no access token: %w", cfg.URL, ErrAuth)
	case cfg.OpenDuration < 0:
		return nil, fmt.Errorf("open duration %s: must be positive", cfg.OpenDuration)
	case cfg.Poll < 0:
		return nil, fmt.Errorf("poll interval %s: must be positive", cfg.Poll)
	}
	s := &Source{
		apiURL:       strings.TrimSuffix(cfg.URL, "/"),
		openDuration: cmp.Or(cfg.OpenDuration, DefaultOpenDuration),
		poll:         cmp.Or(cfg.Poll, DefaultPoll),
		timeout:      cmp.Or(cfg.RequestTimeout, DefaultRequestTimeout),
		log:          cmp.Or(cfg.Logger, slog.Default()),
		now:          cfg.Now,
		tracked:      map[eval.Name]*tracked{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	ua := cmp.Or(cfg.UserAgent, "escfs")
	ua = fmt.Sprintf("%s (%s; %s)", ua, runtime.GOOS, runtime.GOARCH)
	redact.Add(cfg.Token)
	s.client = client.New(ua, s.apiURL, cfg.Token, false)
	s.console = consoleURL(s.apiURL, cfg.ConsoleDomain)

	org, err := s.resolveOrg(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := checkOrg(org); err != nil {
		return nil, err
	}
	s.org = org
	return s, nil
}

// resolveOrg picks the organization: cfg.Org, cfg.DefaultOrg, the
// service's default, the user name, the token's user.
func (s *Source) resolveOrg(ctx context.Context, cfg Config) (string, error) {
	if org := cmp.Or(cfg.Org, cfg.DefaultOrg); org != "" {
		return org, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	org, err := s.client.GetDefaultOrg(ctx)
	if err != nil {
		return "", s.requestError("find the default organization", err)
	}
	if org = cmp.Or(org, cfg.Username); org != "" {
		return org, nil
	}
	user, _, _, err := s.client.GetPulumiAccountDetails(ctx)
	if err != nil {
		return "", s.requestError("find the user of the access token", err)
	}
	return user, nil
}

// checkOrg refuses an organization name that cannot be one (and would
// change the requests' paths).
func checkOrg(org string) error {
	for _, r := range org {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("invalid Pulumi Cloud organization %q: use letters, digits, '-', '_' and '.'", org)
		}
	}
	if org == "" || org == "." || org == ".." {
		return fmt.Errorf("invalid Pulumi Cloud organization %q", org)
	}
	return nil
}

// Org returns the organization the source serves.
func (s *Source) Org() string { return s.org }

// Root names the source in messages: "Pulumi Cloud org ORG".
func (s *Source) Root() string { return "Pulumi Cloud org " + s.org }

// Path returns the link that names the environment for a user: its page in
// the Pulumi Cloud console (CONSOLE/ORG/esc/PROJECT/ENV), or, when the
// console's address cannot be inferred from the API's, its API URL.
func (s *Source) Path(name eval.Name) string {
	if s.console != "" {
		return s.console + "/" + s.org + "/esc/" + name.Project + "/" + name.Env
	}
	return s.apiURL + "/api/esc/environments/" + s.org + "/" + name.Project + "/" + name.Env
}

// consoleURL infers the console's base URL from the API's as the esc CLI
// does: the host domain if given, "api.X" becomes "app.X", localhost:8080
// becomes localhost:3000; anything else has no known console ("").
func consoleURL(apiURL, domain string) string {
	u, err := url.Parse(apiURL)
	if err != nil || u.Host == "" {
		return ""
	}
	switch {
	case domain != "":
		u.Host = domain
	case strings.HasPrefix(u.Host, "api."):
		u.Host = "app." + strings.TrimPrefix(u.Host, "api.")
	case u.Host == "localhost:8080":
		u.Host = "localhost:3000"
	default:
		return ""
	}
	u.Path, u.RawQuery, u.Fragment = "", "", ""
	return strings.TrimSuffix(u.String(), "/")
}

// List lists the organization's environments, every page, and returns the
// error of a failed request (Scan is the Store's form, which keeps the last
// listing instead).
func (s *Source) List(ctx context.Context) (*eval.Tree, error) {
	if _, ok := ctx.Deadline(); !ok {
		// A service that answers a byte at a time must not hold a
		// command (escfs --cloud ls) for ever.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	var defs []eval.Definition
	var problems eval.Diagnostics
	seen := map[string]bool{}
	token := ""
	for page := 0; ; page++ {
		if page == maxPages {
			return nil, fmt.Errorf("list environments of %s: more than %d pages", s.Root(), maxPages)
		}
		envs, next, err := s.client.ListOrganizationEnvironments(ctx, s.org, token)
		if err != nil {
			return nil, s.requestError("list the environments of "+s.Root(), err)
		}
		for _, e := range envs {
			raw := cmp.Or(e.Project, eval.DefaultProject) + "/" + e.Name
			name, err := eval.ParseName(raw)
			if err != nil {
				problems = append(problems, eval.Diagnostic{File: s.apiURL + "/api/esc/environments/" + s.org, Severity: eval.SeverityWarning,
					Message: fmt.Sprintf("environment left out: %v", err)})
				continue
			}
			if seen[name.String()] {
				continue
			}
			seen[name.String()] = true
			defs = append(defs, eval.Definition{Name: name, Path: s.Path(name)})
		}
		if next == "" {
			break
		}
		if next == token {
			return nil, fmt.Errorf("list environments of %s: the service repeated continuation token %q", s.Root(), next)
		}
		token = next
	}
	tree := eval.NewTree(s.Root(), defs, problems)
	s.mu.Lock()
	s.last = tree
	for n := range s.tracked {
		if !seen[n.String()] {
			delete(s.tracked, n) // gone: nothing to poll
		}
	}
	s.mu.Unlock()
	return tree, nil
}

// Scan lists the organization's environments. When the listing fails, it
// returns the last listing (or an empty one) with a problem saying why, so
// that a mount keeps serving; only a first listing the service refused for
// good (credentials, an unknown organization) is an error.
func (s *Source) Scan(ctx context.Context) (*eval.Tree, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	tree, err := s.List(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		if s.listErr != "" {
			s.log.Info("pulumi cloud: listing works again", "org", s.org)
			s.listErr = ""
		}
		return tree, nil
	}
	if s.last == nil && permanent(err) {
		return nil, err
	}
	if s.listErr != err.Error() {
		s.listErr = err.Error()
		s.log.Warn("pulumi cloud: listing failed; keeping the last listing", "org", s.org, "error", err.Error())
	}
	last := s.last
	if last == nil {
		last = eval.NewTree(s.Root(), nil, nil)
	}
	return eval.NewTree(s.Root(), last.Definitions(), append(slices.Clip(last.Problems), eval.Diagnostic{
		File: s.apiURL, Severity: eval.SeverityWarning, Message: "listing failed, serving the last listing: " + err.Error()})), nil
}

// Produce opens the environment for the open duration and renders what the
// service evaluated. Its errors are eval.Source's: a refusal of the
// credentials or an evaluation with errors is a snapshot with error
// diagnostics (and a *eval.DiagnosticsError); an environment the service
// does not have wraps eval.ErrNotFound; an unreachable or failing service
// (5xx, 429, no answer) is a plain error, so the Store keeps serving the
// last snapshot until it expires.
func (s *Source) Produce(ctx context.Context, _ *eval.Tree, name eval.Name, filesDir string) (*eval.Snapshot, error) {
	path := s.Path(name)
	fail := func(op string, err error) (*eval.Snapshot, error) {
		err = s.requestError(op+" "+name.Short(), err)
		switch {
		case errors.Is(err, ErrAuth):
			return eval.NewSnapshot(eval.Evaluated{Name: name, Path: path, EvaluatedAt: s.now(), Deps: s.depsOf(name),
				Diagnostics: eval.Diagnostics{{File: path, Severity: eval.SeverityError, Message: err.Error()}}}, filesDir)
		case isStatus(err, http.StatusNotFound) && op != "read the open session of":
			return nil, fmt.Errorf("%s: %w in %s", name.Short(), eval.ErrNotFound, s.Root())
		}
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		// escfs --cloud open and run pass a context without one: a
		// service that never answers must not hold them for ever.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	deps, err := s.resolve(ctx, name)
	if err != nil {
		return fail("read the definition of", err)
	}
	start := s.now()
	id, diags, err := s.client.OpenEnvironment(ctx, s.org, name.Project, name.Env, "", s.openDuration)
	if err != nil {
		return fail("open", err)
	}
	if client.DiagnosticsHaveErrors(diags) {
		return eval.NewSnapshot(eval.Evaluated{Name: name, Path: path, EvaluatedAt: start, Deps: deps,
			Diagnostics: s.diagnostics(diags, path)}, filesDir)
	}
	env, err := s.client.GetOpenEnvironmentWithProject(ctx, s.org, name.Project, name.Env, id)
	if err != nil {
		return fail("read the open session of", err)
	}
	for _, d := range traced(env) {
		if !slices.Contains(deps, d) {
			deps = append(deps, d)
		}
	}
	expires := start.Add(s.openDuration)
	if at := ValuesExpiry(env.Properties, start); !at.IsZero() && at.Before(expires) {
		expires = at
	}
	// The expressions locate values in definitions this machine does not
	// have: without them, renderings' warnings name the environment's link.
	env.Exprs = nil
	return eval.NewSnapshot(eval.Evaluated{Name: name, Path: path, Env: env, EvaluatedAt: start, ExpiresAt: expires,
		Deps: deps, Diagnostics: s.diagnostics(diags, path)}, filesDir)
}

// diagnostics converts the service's diagnostics, locating each in the
// environment it names (an import's, perhaps) or else at path.
func (s *Source) diagnostics(diags []client.EnvironmentDiagnostic, path string) eval.Diagnostics {
	var out eval.Diagnostics
	for _, d := range diags {
		dd := eval.Diagnostic{File: path, Severity: eval.SeverityWarning, Message: d.Summary}
		if d.IsError() {
			dd.Severity = eval.SeverityError
		}
		if d.Detail != "" && d.Detail != d.Summary {
			dd.Message += ": " + d.Detail
		}
		if r := d.Range; r != nil {
			if n, err := eval.ParseName(r.Environment); err == nil {
				dd.File = s.Path(n)
			}
			dd.Line, dd.Column = r.Begin.Line, r.Begin.Column
		}
		out = append(out, dd)
	}
	return out
}

// ValuesExpiry returns the earliest time after start that the values carry
// as an RFC 3339 string under a key named "expiration" (aws-login's
// output, as escfs's own) or "expiresAt" (the token provider's), at any
// depth, or the zero time if none does. Times at or before start describe
// nothing opened now (a date written into a definition) and are ignored.
func ValuesExpiry(props map[string]esc.Value, start time.Time) time.Time {
	var earliest time.Time
	var walk func(key string, v esc.Value)
	walk = func(key string, v esc.Value) {
		switch x := v.Value.(type) {
		case map[string]esc.Value:
			for k, c := range x {
				walk(k, c)
			}
		case []esc.Value:
			for _, c := range x {
				walk("", c)
			}
		case string:
			if key != "expiration" && key != "expiresAt" {
				return
			}
			t, err := time.Parse(time.RFC3339Nano, x)
			if err == nil && t.After(start) && (earliest.IsZero() || t.Before(earliest)) {
				earliest = t
			}
		}
	}
	for k, v := range props {
		walk(k, v)
	}
	return earliest
}

// traced returns the environments the values were computed in, from their
// traces: the environment itself and the imports that contributed.
func traced(env *esc.Environment) []eval.Name {
	seen := map[eval.Name]bool{}
	var walk func(v *esc.Value, depth int)
	walk = func(v *esc.Value, depth int) {
		if v == nil || depth > 256 {
			return
		}
		if n, err := eval.ParseName(v.Trace.Def.Environment); err == nil {
			seen[n] = true
		}
		walk(v.Trace.Base, depth+1)
		switch x := v.Value.(type) {
		case map[string]esc.Value:
			for _, c := range x {
				walk(&c, depth+1)
			}
		case []esc.Value:
			for i := range x {
				walk(&x[i], depth+1)
			}
		}
	}
	for _, v := range env.Properties {
		walk(&v, 0)
	}
	out := make([]eval.Name, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b eval.Name) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// resolve returns the environment and everything it imports, reading the
// definitions not known yet, and starts polling their revisions. Outside
// Watch it reads nothing and returns only the environment: nobody polls, so
// nothing is invalidated. The revision recorded for an environment is read
// before the open, so a new revision made meanwhile is found by the next
// poll (a spare renewal at worst, never a missed one).
func (s *Source) resolve(ctx context.Context, root eval.Name) ([]eval.Name, error) {
	s.mu.Lock()
	watching := s.watching
	s.mu.Unlock()
	if !watching {
		return []eval.Name{root}, nil
	}
	seen := map[eval.Name]bool{root: true}
	order := []eval.Name{root}
	for i := 0; i < len(order) && len(order) < maxDeps; i++ {
		imports, err := s.importsOf(ctx, order[i])
		switch {
		case err != nil && i == 0:
			return nil, err
		case err != nil:
			// An import this account cannot read: the service says so
			// when opening, if it matters. Its revision is polled all
			// the same.
			continue
		}
		for _, imp := range imports {
			if !seen[imp] {
				seen[imp] = true
				order = append(order, imp)
			}
		}
	}
	s.mu.Lock()
	for _, n := range order {
		if t := s.tracked[n]; t != nil && t.rev > 0 {
			t.polled = true
		}
	}
	s.mu.Unlock()
	return order, nil
}

// importsOf returns the environments name's definition imports, reading
// the definition unless its current revision's imports are known.
func (s *Source) importsOf(ctx context.Context, name eval.Name) ([]eval.Name, error) {
	s.mu.Lock()
	if t := s.tracked[name]; t != nil && t.rev > 0 && t.defRev == t.rev {
		imports := t.imports
		s.mu.Unlock()
		return imports, nil
	}
	s.mu.Unlock()
	def, _, rev, err := s.client.GetEnvironment(ctx, s.org, name.Project, name.Env, "", false)
	if err != nil {
		return nil, err
	}
	imports := parseImports(def)
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tracked[name]
	if t == nil {
		t = &tracked{}
		s.tracked[name] = t
	}
	if t.rev == 0 {
		// The first revision known: a later one is a change. A known rev
		// is left to the poller, which announces what it finds.
		t.rev = rev
	}
	t.imports, t.defRev = imports, rev
	return imports, nil
}

// depsOf returns the environment and what it is known to import, without
// a request.
func (s *Source) depsOf(name eval.Name) []eval.Name {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []eval.Name{name}
	for i := 0; i < len(out) && len(out) < maxDeps; i++ {
		if t := s.tracked[out[i]]; t != nil {
			for _, imp := range t.imports {
				if !slices.Contains(out, imp) {
					out = append(out, imp)
				}
			}
		}
	}
	return out
}

// parseImports returns the environments a definition imports: each item
// of its top-level imports list, a name or a map from a name to options,
// with any @version left off (a pinned import counts as the environment:
// a new revision of it may renew its importers for nothing, never too
// few). A definition that does not parse imports nothing here; the service
// reports it when opening.
func parseImports(def []byte) []eval.Name {
	var doc yaml.Node
	if err := yaml.Unmarshal(def, &doc); err != nil {
		return nil
	}
	var out []eval.Name
	for _, imp := range eval.ImportsOf(&doc) {
		if n, err := imp.Env(); err == nil && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// Definition returns the YAML definition of the environment's latest
// revision as the service stores it (secrets encrypted).
func (s *Source) Definition(ctx context.Context, name eval.Name) ([]byte, error) {
	def, _, _, err := s.client.GetEnvironment(ctx, s.org, name.Project, name.Env, "", false)
	if err != nil {
		return nil, s.requestError("read the definition of "+name.Short(), err)
	}
	return def, nil
}

// requestError describes a failed request op: a refusal of the
// credentials wraps ErrAuth (its text says what to do), and every error
// names the service. The client's errors carry the service's message,
// never the token.
func (s *Source) requestError(op string, err error) error {
	err = redact.Error(err)
	code, msg, ok := serviceStatus(err)
	msg = redact.String(msg)
	switch {
	case ok && (code == http.StatusUnauthorized || code == http.StatusForbidden):
		return &statusError{code: code, err: fmt.Errorf("%s: Pulumi Cloud (%s) refused the access token: %d %s: %w",
			op, s.apiURL, code, msg, ErrAuth)}
	case ok:
		return &statusError{code: code, err: fmt.Errorf("%s: Pulumi Cloud (%s): %d %s", op, s.apiURL, code, msg)}
	case err != nil && strings.Contains(err.Error(), "requires logging in"):
		// The client's own words for a 401 without a token.
		return fmt.Errorf("%s: Pulumi Cloud (%s) needs an access token: %w", op, s.apiURL, ErrAuth)
	}
	return fmt.Errorf("%s: Pulumi Cloud (%s): %w", op, s.apiURL, err)
}

// serviceStatus returns the HTTP status and message of an error answer of
// the service, in either of the forms the client decodes it to.
func serviceStatus(err error) (code int, msg string, ok bool) {
	var resp *apitype.ErrorResponse
	var envResp *client.EnvironmentErrorResponse
	switch {
	case errors.As(err, &resp):
		return resp.Code, resp.Message, true
	case errors.As(err, &envResp):
		return envResp.Code, envResp.Message, true
	}
	return 0, "", false
}

// statusError is a request error with the service's HTTP status.
type statusError struct {
	code int
	err  error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// isStatus reports whether err is the service's answer code.
func isStatus(err error, code int) bool {
	var se *statusError
	return errors.As(err, &se) && se.code == code
}

// permanent reports whether err will not go away by asking again: the
// credentials were refused, or the organization does not exist.
func permanent(err error) bool {
	return errors.Is(err, ErrAuth) || isStatus(err, http.StatusNotFound)
}
