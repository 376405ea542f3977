package cloud_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/esc"

	"github.com/escfs/escfs/cloud"
	"github.com/escfs/escfs/cloud/cloudtest"
	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/eval/evaltest"
	"github.com/escfs/escfs/internal/testutil"
)

// loginHint is what every refusal of the credentials must say, spelled out
// here rather than taken from the package, so that a test fails if the
// package stops saying it.
const loginHint = "run `esc login` or set PULUMI_ACCESS_TOKEN"

// world is a simulation and a source over it, with the source's log.
type world struct {
	sim *cloudtest.Server
	src *cloud.Source
	log *testutil.Buffer
}

// newWorld starts a simulation holding defs (name -> definition) in org
// acme and a source over it configured by cfg (URL, Token, Org and Logger
// filled in unless set).
func newWorld(t *testing.T, defs map[string]string, cfg cloud.Config) *world {
	t.Helper()
	w := &world{sim: cloudtest.Start(t, cloudtest.Options{}), log: &testutil.Buffer{}}
	for name, def := range defs {
		w.sim.Put("acme", name, def)
	}
	if cfg.URL == "" {
		cfg.URL = w.sim.URL
	}
	if cfg.Token == "" {
		cfg.Token = w.sim.Token()
	}
	if cfg.Org == "" {
		cfg.Org = "acme"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(w.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	src, err := cloud.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	w.src = src
	return w
}

// creds is a definition whose credentials (test-login) live ttl.
func creds(ttl string) string {
	return `values:
  aws:
    login:
      fn::open::test-login:
        ttl: ` + ttl + `
  environmentVariables:
    AWS_ACCESS_KEY_ID: ${aws.login.accessKeyId}
    AWS_SECRET_ACCESS_KEY: ${aws.login.secretAccessKey}
    AWS_SESSION_TOKEN: ${aws.login.sessionToken}
`
}

// vars returns the snapshot's variables by name.
func vars(s *eval.Snapshot) map[string]string {
	out := map[string]string{}
	for _, v := range s.Vars {
		out[v.Name] = v.Value
	}
	return out
}

func TestListPaginates(t *testing.T) {
	defs := map[string]string{}
	for _, n := range []string{"prod", "dev", "infra/net", "infra/k8s", "app/api"} {
		defs[n] = "values: {x: 1}\n"
	}
	w := newWorld(t, defs, cloud.Config{})
	w.sim.PageSize(2)
	tree, err := w.src.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range tree.Definitions() {
		got = append(got, d.Name.Short()+" "+d.Path)
	}
	want := []string{
		"app/api " + w.sim.URL + "/api/esc/environments/acme/app/api",
		"dev " + w.sim.URL + "/api/esc/environments/acme/default/dev",
		"infra/k8s " + w.sim.URL + "/api/esc/environments/acme/infra/k8s",
		"infra/net " + w.sim.URL + "/api/esc/environments/acme/infra/net",
		"prod " + w.sim.URL + "/api/esc/environments/acme/default/prod",
	}
	if !slices.Equal(got, want) {
		t.Errorf("listing:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := w.sim.Requests(cloudtest.List); n != 3 {
		t.Errorf("%d list requests for 5 environments in pages of 2, want 3", n)
	}
	if tree.Root != "Pulumi Cloud org acme" {
		t.Errorf("root %q", tree.Root)
	}
	for _, ep := range []cloudtest.Endpoint{cloudtest.Open, cloudtest.Session, cloudtest.Definition, cloudtest.Revision} {
		if n := w.sim.Requests(ep); n != 0 {
			t.Errorf("listing made %d requests to %s", n, ep)
		}
	}
}

func TestPathIsTheConsolePage(t *testing.T) {
	sim := cloudtest.Start(t, cloudtest.Options{})
	for _, c := range []struct{ api, domain, want string }{
		{"https://api.pulumi.com", "", "https://app.pulumi.com/acme/esc/infra/k8s"},
		{"https://api.example.com/", "", "https://app.example.com/acme/esc/infra/k8s"},
		{"https://pulumi.internal", "console.internal", "https://console.internal/acme/esc/infra/k8s"},
		{"http://localhost:8080", "", "http://localhost:3000/acme/esc/infra/k8s"},
		{sim.URL, "", sim.URL + "/api/esc/environments/acme/infra/k8s"},
	} {
		src, err := cloud.New(context.Background(), cloud.Config{URL: c.api, Token: "t", Org: "acme", ConsoleDomain: c.domain})
		if err != nil {
			t.Fatal(err)
		}
		if got := src.Path(evaltest.Name(t, "infra/k8s")); got != c.want {
			t.Errorf("API %s, console domain %q: path %s, want %s", c.api, c.domain, got, c.want)
		}
	}
}

func TestOrgResolution(t *testing.T) {
	for _, c := range []struct {
		name       string
		cfg        cloud.Config
		serviceOrg string
		want       string
		requests   int // to the user endpoints
	}{
		{"flag", cloud.Config{Org: "flagorg", DefaultOrg: "cfgorg", Username: "bob"}, "svcorg", "flagorg", 0},
		{"config default", cloud.Config{DefaultOrg: "cfgorg", Username: "bob"}, "svcorg", "cfgorg", 0},
		{"service default", cloud.Config{Username: "bob"}, "svcorg", "svcorg", 1},
		{"user name", cloud.Config{Username: "bob"}, "", "bob", 1},
		{"token's user", cloud.Config{}, "", "alice", 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			sim := cloudtest.Start(t, cloudtest.Options{DefaultOrg: c.serviceOrg})
			c.cfg.URL, c.cfg.Token = sim.URL, sim.Token()
			src, err := cloud.New(context.Background(), c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if src.Org() != c.want {
				t.Errorf("org %q, want %q", src.Org(), c.want)
			}
			if n := sim.Requests(cloudtest.DefaultOrg) + sim.Requests(cloudtest.User); n != c.requests {
				t.Errorf("%d requests to find the organization, want %d", n, c.requests)
			}
		})
	}
	if _, err := cloud.New(context.Background(), cloud.Config{URL: "https://api.pulumi.com", Token: "t", Org: "../x"}); err == nil {
		t.Error("an organization named ../x was accepted")
	}
}

func TestProduceRendersTheSession(t *testing.T) {
	w := newWorld(t, map[string]string{
		"infra/base": "values:\n  region: us-west-2\n  environmentVariables:\n    AWS_REGION: ${region}\n",
		"infra/aws":  "imports: [infra/base]\n" + creds("10m"),
		"app":        "values:\n  files:\n    CONFIG: 'port: 8080'\n  environmentVariables:\n    PASSWORD: {fn::secret: hunter2}\n",
	}, cloud.Config{OpenDuration: 2 * time.Hour})
	ctx := context.Background()

	before := time.Now()
	snap, err := w.src.Produce(ctx, nil, evaltest.Name(t, "infra/aws"), "/mnt/infra/aws/files")
	if err != nil {
		t.Fatal(err)
	}
	v := vars(snap)
	if !strings.HasPrefix(v["AWS_ACCESS_KEY_ID"], "ASIATEST") || v["AWS_SECRET_ACCESS_KEY"] == "" || v["AWS_REGION"] != "us-west-2" {
		t.Errorf("variables %v", v)
	}
	// The credentials' expiration (10m) comes before the session's end (2h).
	if d := snap.ExpiresAt.Sub(before); d < 9*time.Minute || d > 11*time.Minute {
		t.Errorf("expires in %s, want the credentials' 10m", d)
	}
	if snap.Path != w.sim.URL+"/api/esc/environments/acme/infra/aws" {
		t.Errorf("path %s", snap.Path)
	}
	if !slices.Contains(snap.Deps, evaltest.Name(t, "infra/base")) || !slices.Contains(snap.Deps, evaltest.Name(t, "infra/aws")) {
		t.Errorf("deps %v: want infra/aws and the import infra/base (from the values' traces)", snap.Deps)
	}
	if d := w.sim.OpenDurations(); len(d) != 1 || d[0] != 2*time.Hour {
		t.Errorf("open durations asked %v, want [2h]", d)
	}
	if !slices.Contains(snap.Secrets, v["AWS_SECRET_ACCESS_KEY"]) {
		t.Error("the secret access key is not known as a secret (redaction)")
	}

	// Without an expiring value, the session's end.
	before = time.Now()
	snap, err = w.src.Produce(ctx, nil, evaltest.Name(t, "app"), "/mnt/app/files")
	if err != nil {
		t.Fatal(err)
	}
	if d := snap.ExpiresAt.Sub(before); d < 2*time.Hour || d > 2*time.Hour+time.Second {
		t.Errorf("expires in %s, want the session's 2h", d)
	}
	if v := vars(snap); v["PASSWORD"] != "hunter2" || v["CONFIG"] != "/mnt/app/files/CONFIG" {
		t.Errorf("variables %v", v)
	}
	if f, ok := snap.File("CONFIG"); !ok || string(f.Content) != "port: 8080" {
		t.Errorf("file CONFIG %q", f.Content)
	}
	if !strings.Contains(string(snap.Env), "export ESCFS_EXPIRES_AT=") {
		t.Errorf("env does not export the expiry:\n%s", snap.Env)
	}
	if w.sim.Requests(cloudtest.Open) != 2 || w.sim.Requests(cloudtest.Session) != 2 || w.sim.Requests(cloudtest.Definition) != 0 {
		t.Errorf("requests %v: want 2 opens and 2 session reads, no definition outside Watch", w.sim.Counts())
	}
}

func TestProduceErrors(t *testing.T) {
	defs := map[string]string{
		"ok":     "values: {x: 1}\n",
		"broken": "values:\n  x: 1\n  y: ${nope}\n",
	}
	cases := []struct {
		name  string
		env   string
		setup func(sim *cloudtest.Server)
		check func(t *testing.T, snap *eval.Snapshot, err error)
	}{
		{"revoked token", "ok", func(sim *cloudtest.Server) { sim.SetToken("pul-rotated") }, wantAuth},
		{"forbidden", "ok", func(sim *cloudtest.Server) { sim.Forbid("acme", "ok", true) }, wantAuth},
		{"not found", "gone", func(*cloudtest.Server) {}, func(t *testing.T, snap *eval.Snapshot, err error) {
			if !errors.Is(err, eval.ErrNotFound) || snap != nil {
				t.Errorf("snapshot %v, error %v: want eval.ErrNotFound", snap, err)
			}
		}},
		{"service unavailable", "ok", func(sim *cloudtest.Server) { sim.Fail(http.StatusServiceUnavailable, cloudtest.Open) }, wantPlain("503")},
		{"rate limited", "ok", func(sim *cloudtest.Server) { sim.Fail(http.StatusTooManyRequests) }, wantPlain("rate-limit")},
		{"unreachable", "ok", func(sim *cloudtest.Server) { sim.Fail(cloudtest.HangUp, cloudtest.Open) }, wantPlain("EOF")},
		{"session expired before it was read", "ok", func(sim *cloudtest.Server) { sim.Fail(http.StatusNotFound, cloudtest.Session) }, wantPlain("404")},
		{"evaluation errors", "broken", func(*cloudtest.Server) {}, func(t *testing.T, snap *eval.Snapshot, err error) {
			var de *eval.DiagnosticsError
			if !errors.As(err, &de) || snap == nil || len(snap.Diagnostics) == 0 {
				t.Fatalf("snapshot %v, error %v: want diagnostics", snap, err)
			}
			d := snap.Diagnostics[0]
			if !strings.HasSuffix(d.File, "/acme/default/broken") || d.Line != 3 || !strings.Contains(d.Message, "nope") {
				t.Errorf("diagnostic %s: want the link of broken, line 3, naming nope", d)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, defs, cloud.Config{})
			token := w.sim.Token()
			c.setup(w.sim)
			snap, err := w.src.Produce(context.Background(), nil, evaltest.Name(t, c.env), "/f")
			c.check(t, snap, err)
			if err != nil && strings.Contains(err.Error(), token) {
				t.Errorf("the error holds the token: %v", err)
			}
		})
	}
}

// wantAuth checks a refusal of the credentials: a snapshot with one error
// diagnostic that says what to do, and never the token.
func wantAuth(t *testing.T, snap *eval.Snapshot, err error) {
	t.Helper()
	var de *eval.DiagnosticsError
	if !errors.As(err, &de) || snap == nil || len(snap.Diagnostics) != 1 {
		t.Fatalf("snapshot %v, error %v: want one diagnostic", snap, err)
	}
	if msg := snap.Diagnostics[0].Message; !strings.Contains(msg, loginHint) {
		t.Errorf("diagnostic %q does not say %q", msg, loginHint)
	}
	if !snap.Opened {
		t.Error("an auth failure is not retried (Opened is false)")
	}
}

// wantPlain checks a transient failure: a plain error (not diagnostics,
// not not-found) that says what happened.
func wantPlain(what string) func(t *testing.T, snap *eval.Snapshot, err error) {
	return func(t *testing.T, snap *eval.Snapshot, err error) {
		t.Helper()
		var de *eval.DiagnosticsError
		switch {
		case err == nil || snap != nil:
			t.Fatalf("snapshot %v, error %v: want a plain error", snap, err)
		case errors.As(err, &de), errors.Is(err, eval.ErrNotFound), errors.Is(err, cloud.ErrAuth):
			t.Errorf("error %v: want a plain error", err)
		case !strings.Contains(err.Error(), what):
			t.Errorf("error %v: want it to say %q", err, what)
		}
	}
}

func TestScanKeepsTheLastListing(t *testing.T) {
	w := newWorld(t, map[string]string{"a": "values: {x: 1}\n", "b": "values: {x: 1}\n"}, cloud.Config{})
	ctx := context.Background()
	if _, err := w.src.Scan(ctx); err != nil {
		t.Fatal(err)
	}
	w.sim.Fail(http.StatusTooManyRequests, cloudtest.List)
	tree, err := w.src.Scan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(tree.Definitions()); n != 2 || len(tree.Problems) != 1 || !strings.Contains(tree.Problems[0].Message, "rate-limit") {
		t.Errorf("listing during a failure: %d environments, problems %v; want the last 2 and the failure", n, tree.Problems)
	}
	if _, err := w.src.List(ctx); err == nil {
		t.Error("List hides the failure")
	}
	w.sim.Heal()
	w.sim.Delete("acme", "b")
	tree, err = w.src.Scan(ctx)
	if err != nil || len(tree.Definitions()) != 1 || len(tree.Problems) != 0 {
		t.Errorf("listing after the failure: %v, %v", tree.Definitions(), err)
	}
	if strings.Count(w.log.String(), "listing failed") != 1 || !strings.Contains(w.log.String(), "listing works again") {
		t.Errorf("log:\n%s", w.log)
	}
}

func TestFirstScanRefusedIsAnError(t *testing.T) {
	w := newWorld(t, map[string]string{"a": "values: {x: 1}\n"}, cloud.Config{Token: "pul-not-the-token"})
	_, err := w.src.Scan(context.Background())
	if !errors.Is(err, cloud.ErrAuth) || !strings.Contains(err.Error(), loginHint) || strings.Contains(err.Error(), "pul-not-the-token") {
		t.Errorf("first scan with a wrong token: %v; want the hint, never the token", err)
	}
	// An organization that does not exist is as final.
	w2 := newWorld(t, nil, cloud.Config{Org: "nosuchorg"})
	if _, err := w2.src.Scan(context.Background()); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("first scan of an unknown organization: %v", err)
	}
	// A transient failure is an empty listing with a problem: the mount
	// comes up and fills when the service answers.
	w3 := newWorld(t, map[string]string{"a": "values: {x: 1}\n"}, cloud.Config{})
	w3.sim.Fail(http.StatusTooManyRequests)
	tree, err := w3.src.Scan(context.Background())
	if err != nil || len(tree.Definitions()) != 0 || len(tree.Problems) != 1 {
		t.Errorf("first scan while rate limited: %v, %v", tree, err)
	}
}

// TestWatchPollsOnlyOpened: polls ask for the revisions of the opened
// environments and their imports, and nothing else; a new revision of
// one is announced with its name.
func TestWatchPollsOnlyOpened(t *testing.T) {
	w := newWorld(t, map[string]string{
		"infra/base": "values: {region: us-west-2}\n",
		"infra/aws":  "imports: [infra/base]\nvalues: {x: 1}\n",
		"idle":       "values: {x: 1}\n",
		"idle2":      "values: {x: 1}\n",
	}, cloud.Config{Poll: 50 * time.Millisecond})
	changes := make(chan []eval.Name, 100)
	if err := w.src.Watch(func(u eval.Update) { changes <- u.Names }); err != nil {
		t.Fatal(err)
	}
	waitPolls := func(n int) [][]eval.Name {
		t.Helper()
		var got [][]eval.Name
		for len(got) < n {
			select {
			case c := <-changes:
				got = append(got, c)
			case <-time.After(5 * time.Second):
				t.Fatalf("no poll within 5s")
			}
		}
		return got
	}
	waitPolls(3)
	if n := w.sim.Requests(cloudtest.Revision); n != 0 {
		t.Fatalf("%d revision requests before anything was opened", n)
	}
	if _, err := w.src.Produce(context.Background(), nil, evaltest.Name(t, "infra/aws"), "/f"); err != nil {
		t.Fatal(err)
	}
	if n := w.sim.Requests(cloudtest.Definition); n != 2 {
		t.Errorf("%d definition requests for an environment and its import, want 2", n)
	}
	waitPolls(2) // a poll may have started before the open
	w.sim.ResetCounts()
	for _, c := range waitPolls(4) {
		if len(c) != 0 {
			t.Errorf("changes %v without a new revision", c)
		}
	}
	// 2 a poll (infra/aws and infra/base); a poll may straddle the count's
	// start or end.
	if n := w.sim.Requests(cloudtest.Revision); n < 6 || n > 10 {
		t.Errorf("%d revision requests in 4 polls, want 2 a poll (infra/aws and infra/base)", n)
	}
	w.sim.Bump("acme", "idle")
	w.sim.Bump("acme", "infra/base")
	var seen []eval.Name
	for _, c := range waitPolls(3) {
		seen = append(seen, c...)
	}
	if !slices.Equal(seen, []eval.Name{evaltest.Name(t, "infra/base")}) {
		t.Errorf("announced %v after new revisions of infra/base and idle, want infra/base once", seen)
	}
	// The next open knows the definitions: no request but open and session.
	w.sim.ResetCounts()
	if _, err := w.src.Produce(context.Background(), nil, evaltest.Name(t, "infra/aws"), "/f"); err != nil {
		t.Fatal(err)
	}
	if n := w.sim.Requests(cloudtest.Definition); n != 1 {
		t.Errorf("%d definition requests on reopening after infra/base changed, want 1 (its new revision's imports)", n)
	}
}

func TestValuesExpiry(t *testing.T) {
	start := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) esc.Value { return esc.NewValue(start.Add(d).Format(time.RFC3339Nano)) }
	obj := func(m map[string]esc.Value) esc.Value { return esc.NewValue(m) }
	for _, c := range []struct {
		name  string
		props map[string]esc.Value
		want  time.Duration // 0: none
	}{
		{"none", map[string]esc.Value{"x": esc.NewValue("y")}, 0},
		{"aws-login expiration", map[string]esc.Value{"aws": obj(map[string]esc.Value{"login": obj(map[string]esc.Value{"expiration": at(time.Hour)})})}, time.Hour},
		{"token expiresAt", map[string]esc.Value{"t": obj(map[string]esc.Value{"expiresAt": at(10 * time.Minute)})}, 10 * time.Minute},
		{"earliest wins", map[string]esc.Value{"a": obj(map[string]esc.Value{"expiration": at(time.Hour)}), "b": obj(map[string]esc.Value{"expiresAt": at(time.Minute)})}, time.Minute},
		{"in a list", map[string]esc.Value{"l": esc.NewValue([]esc.Value{obj(map[string]esc.Value{"expiration": at(time.Second)})})}, time.Second},
		{"past ignored", map[string]esc.Value{"a": obj(map[string]esc.Value{"expiration": at(-time.Hour)})}, 0},
		{"other key ignored", map[string]esc.Value{"a": obj(map[string]esc.Value{"issuedAt": at(time.Minute)})}, 0},
		{"not a time", map[string]esc.Value{"expiration": esc.NewValue("soon")}, 0},
		{"RFC 3339 without fraction", map[string]esc.Value{"expiration": esc.NewValue("2030-01-01T12:30:00Z")}, 30 * time.Minute},
	} {
		got := cloud.ValuesExpiry(c.props, start)
		if (c.want == 0) != got.IsZero() || (c.want != 0 && !got.Equal(start.Add(c.want))) {
			t.Errorf("%s: %v, want start+%s", c.name, got, c.want)
		}
	}
}
