package pulumistacks_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escfs/escfs/internal/kumotest"
	"github.com/escfs/escfs/providers/pulumistacks"
	"github.com/escfs/escfs/providers/pulumistacks/stacktest"
)

// cloudToken is the access token the simulated Pulumi Cloud accepts.
const cloudToken = "pul-0123456789abcdef0123456789abcdef01234567"

// secretOutputs are the secret outputs of the Cloud fixtures, as those of
// secretBackend (checkSecretOutputs checks them).
var secretOutputs = map[string]any{"kubeconfig": kubeconfig, "adminPassword": "hunter2-admin", "replicas": 5}

// newCloud starts a simulated Pulumi Cloud holding acme/eks-cluster/demo
// (plain outputs and service-encrypted secretOutputs) and acme/net/prod
// (plainOutputs only), and isolates the test with PULUMI_ACCESS_TOKEN set
// and PULUMI_API naming the simulation: the Cloud the user configured.
func newCloud(t *testing.T) *stacktest.Cloud {
	t.Helper()
	isolate(t)
	t.Setenv("PULUMI_ACCESS_TOKEN", cloudToken)
	c := stacktest.NewCloud(t, cloudToken)
	t.Setenv("PULUMI_API", c.URL)
	if err := c.AddStack("acme", "eks-cluster", "demo", map[string]any{"clusterName": "demo"}, secretOutputs, ""); err != nil {
		t.Fatal(err)
	}
	if err := c.AddStack("acme", "net", "prod", plainOutputs, nil, ""); err != nil {
		t.Fatal(err)
	}
	return c
}

// checkRequests checks that every request carried the token.
func checkRequests(t *testing.T, c *stacktest.Cloud) {
	t.Helper()
	for _, r := range c.Requests() {
		if !r.Authorized {
			t.Errorf("%s %s without the access token", r.Method, r.Path)
		}
	}
}

func TestCloudPlainOutputs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		backend string // input; URL is the Cloud's
		ref     string
		setup   func(t *testing.T, c *stacktest.Cloud, home string)
	}{
		{name: "backend input and PULUMI_ACCESS_TOKEN", backend: "URL", ref: "acme/net/prod"},
		{name: "trailing slash", backend: "URL/", ref: "acme/net/prod"},
		{name: "PULUMI_BACKEND_URL", ref: "acme/net/prod", setup: func(t *testing.T, c *stacktest.Cloud, home string) {
			t.Setenv("PULUMI_BACKEND_URL", c.URL)
		}},
		{name: "pulumi login: current account, its token, its user as organization", ref: "net/prod",
			setup: func(t *testing.T, c *stacktest.Cloud, home string) {
				t.Setenv("PULUMI_ACCESS_TOKEN", "")
				writeJSON(t, filepath.Join(home, ".pulumi", "credentials.json"), map[string]any{
					"current":      c.URL,
					"accessTokens": map[string]string{c.URL: cloudToken},
					"accounts":     map[string]any{c.URL: map[string]any{"accessToken": cloudToken, "username": "acme"}},
				})
			}},
		{name: "default organization from config.json", backend: "URL", ref: "net/prod",
			setup: func(t *testing.T, c *stacktest.Cloud, home string) {
				writeJSON(t, filepath.Join(home, ".pulumi", "config.json"), map[string]any{
					"backends": map[string]any{c.URL: map[string]string{"defaultOrg": "acme"}},
				})
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCloud(t)
			home := os.Getenv("HOME") // isolate made it
			if tc.setup != nil {
				tc.setup(t, c, home)
			}
			got, files, err := open(t, &pulumistacks.Provider{}, strings.ReplaceAll(tc.backend, "URL", c.URL), tc.ref)
			if err != nil {
				t.Fatal(err)
			}
			checkPlainOutputs(t, got)
			if len(files) != 0 {
				t.Errorf("reported files %v for a Cloud stack", files)
			}
			checkRequests(t, c)
			if n, d := c.Count("export"), c.Count("batch-decrypt"); n != 1 || d != 0 {
				t.Errorf("%d exports and %d batch-decrypts, want 1 and 0", n, d)
			}
		})
	}
}

func TestCloudSecretOutputs(t *testing.T) {
	c := newCloud(t)
	p := &pulumistacks.Provider{}
	for i := 1; i <= 2; i++ {
		got, _, err := open(t, p, c.URL, "acme/eks-cluster/demo")
		if err != nil {
			t.Fatal(err)
		}
		checkSecretOutputs(t, got)
		// One batch per open, holding every ciphertext of the stack.
		if n := c.Count("batch-decrypt"); n != i {
			t.Errorf("open %d: %d batch-decrypt requests in all, want %d", i, n, i)
		}
	}
	for _, r := range c.Requests() {
		if r.Op == "batch-decrypt" && r.Ciphertexts != len(secretOutputs) {
			t.Errorf("a batch of %d ciphertexts, want %d", r.Ciphertexts, len(secretOutputs))
		}
	}
	checkRequests(t, c)
}

func TestCloudPassphraseStack(t *testing.T) {
	c := newCloud(t)
	if err := c.AddStack("acme", "eks-cluster", "pass", map[string]any{"clusterName": "demo"}, secretOutputs, passphrase); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PULUMI_CONFIG_PASSPHRASE", passphrase)
	got, _, err := open(t, &pulumistacks.Provider{}, c.URL, "acme/eks-cluster/pass")
	if err != nil {
		t.Fatal(err)
	}
	checkSecretOutputs(t, got)
	if n := c.Count("batch-decrypt"); n != 0 {
		t.Errorf("%d batch-decrypt requests for a passphrase stack", n)
	}

	// (A wrong passphrase fails as on file://, TestErrors: the same code.)
}

func TestCloudErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ref     string
		setup   func(t *testing.T, c *stacktest.Cloud) (backend string) // "" for the Cloud's URL
		timeout time.Duration                                           // of the open; 0: none
		want    []string                                                // substrings of the error
		took    time.Duration                                           // the most it may take
		exports int                                                     // export requests; -1: any
	}{
		{
			name: "missing stack", ref: "acme/eks-cluster/prod",
			want:    []string{"stack acme/eks-cluster/prod: GET ", "/api/stacks/acme/eks-cluster/prod/export: stack not found (404 Not Found: Not Found: Stack 'prod' not found)"},
			exports: 1,
		},
		{
			name: "wrong token", ref: "acme/eks-cluster/demo",
			setup: func(t *testing.T, c *stacktest.Cloud) string {
				t.Setenv("PULUMI_ACCESS_TOKEN", "pul-wrong-token-0123456789")
				return ""
			},
			want:    []string{"stack acme/eks-cluster/demo: GET ", "rejected the access token (401 Unauthorized", "run `esc login` or set PULUMI_ACCESS_TOKEN"},
			exports: 1,
		},
		{
			name: "forbidden", ref: "acme/eks-cluster/demo",
			setup: func(t *testing.T, c *stacktest.Cloud) string {
				c.Inject(stacktest.Fault{Op: "export", Status: 403})
				return ""
			},
			want:    []string{"stack acme/eks-cluster/demo: GET ", "denies the account", "(403 Forbidden", "run `esc login` or set PULUMI_ACCESS_TOKEN"},
			exports: 1,
		},
		{
			name: "decrypt forbidden", ref: "acme/eks-cluster/demo",
			setup: func(t *testing.T, c *stacktest.Cloud) string {
				c.Inject(stacktest.Fault{Op: "batch-decrypt", Status: 403})
				return ""
			},
			want:    []string{"stack acme/eks-cluster/demo: ", "is secret: decrypt through Pulumi Cloud: POST ", "/batch-decrypt: ", "(403 Forbidden", "run `esc login` or set PULUMI_ACCESS_TOKEN"},
			exports: 1,
		},
		{
			name: "not logged in", ref: "acme/eks-cluster/demo",
			setup: func(t *testing.T, c *stacktest.Cloud) string {
				t.Setenv("PULUMI_ACCESS_TOKEN", "")
				return ""
			},
			want:    []string{"stack acme/eks-cluster/demo: http://127.0.0.1:", "not logged in to Pulumi Cloud: run `esc login` (or `pulumi login`) or set PULUMI_ACCESS_TOKEN"},
			exports: 0,
		},
		{
			name: "no organization", ref: "eks-cluster/demo",
			want:    []string{"stack eks-cluster/demo: no organization: write organization/project/stack"},
			exports: 0,
		},
		{
			name: "invalid organization", ref: "../eks-cluster/demo",
			want:    []string{`stack "../eks-cluster/demo": organization: invalid name ".."`},
			exports: 0,
		},
		{
			name: "unreachable", ref: "acme/eks-cluster/demo",
			setup: func(t *testing.T, c *stacktest.Cloud) string {
				u := kumotest.ClosedURL(t)
				t.Setenv("PULUMI_API", u)
				return u
			},
			want:    []string{"stack acme/eks-cluster/demo: GET ", "is unreachable: dial tcp", "(4 attempts)"},
			took:    20 * time.Second, // 3 backoffs, on a loaded machine
			exports: 0,
		},
		{
			name: "server error", ref: "acme/eks-cluster/demo",
			setup: func(t *testing.T, c *stacktest.Cloud) string {
				c.Inject(stacktest.Fault{Status: 503})
				return ""
			},
			want:    []string{"stack acme/eks-cluster/demo: GET ", "Pulumi Cloud answered 503 Service Unavailable", "(4 attempts)"},
			took:    20 * time.Second,
			exports: 4,
		},
		{
			name: "rate limited for longer than escfs waits", ref: "acme/eks-cluster/demo",
			setup: func(t *testing.T, c *stacktest.Cloud) string {
				c.Inject(stacktest.Fault{Status: 429, RetryAfter: "3600"})
				return ""
			},
			want:    []string{"stack acme/eks-cluster/demo: GET ", "429 Too Many Requests", "asks to retry after 1h0m0s, longer than escfs waits (5s)"},
			took:    5 * time.Second, // not the hour it asks
			exports: 1,
		},
		{
			name: "slow", ref: "acme/eks-cluster/demo",
			setup: func(t *testing.T, c *stacktest.Cloud) string {
				c.Inject(stacktest.Fault{Delay: time.Minute})
				return ""
			},
			timeout: 300 * time.Millisecond,
			want:    []string{"stack acme/eks-cluster/demo: GET ", "no answer in time: context deadline exceeded"},
			took:    5 * time.Second, // not the minute it delays
			exports: -1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCloud(t)
			backend := c.URL
			if tc.setup != nil {
				if b := tc.setup(t, c); b != "" {
					backend = b
				}
			}
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			start := time.Now()
			_, err := (&pulumistacks.Provider{}).Open(ctx, inputs(t, backend, tc.ref), nil)
			took := time.Since(start)
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q", w)
				}
			}
			for _, secret := range []string{cloudToken, "pul-wrong-token", "hunter2"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error reveals %q", secret)
				}
			}
			if tc.took == 0 {
				tc.took = 5 * time.Second
			}
			if took > tc.took {
				t.Errorf("took %v, want at most %v", took, tc.took)
			}
			if n := c.Count("export"); tc.exports >= 0 && n != tc.exports {
				t.Errorf("%d export requests, want %d", n, tc.exports)
			}
		})
	}
}

// TestCloudRetries checks that transient failures are retried with a
// growing backoff that honours Retry-After, and then succeed.
func TestCloudRetries(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults []stacktest.Fault
		op     string          // whose requests are checked
		gaps   []time.Duration // the least time between consecutive requests of op
	}{
		{
			name:   "server errors",
			faults: []stacktest.Fault{{Op: "export", Status: 503, Times: 1}, {Op: "export", Status: 502, Times: 1}},
			op:     "export",
			gaps:   []time.Duration{250 * time.Millisecond, 500 * time.Millisecond},
		},
		{
			name:   "rate limited with Retry-After",
			faults: []stacktest.Fault{{Op: "export", Status: 429, RetryAfter: "2", Times: 1}},
			op:     "export",
			gaps:   []time.Duration{2 * time.Second},
		},
		{
			name:   "batch-decrypt unavailable",
			faults: []stacktest.Fault{{Op: "batch-decrypt", Status: 500, Times: 1}},
			op:     "batch-decrypt",
			gaps:   []time.Duration{250 * time.Millisecond},
		},
		{
			name:   "slow but in time",
			faults: []stacktest.Fault{{Delay: 300 * time.Millisecond, Times: 1}},
			op:     "export",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCloud(t)
			for _, f := range tc.faults {
				c.Inject(f)
			}
			got, _, err := open(t, &pulumistacks.Provider{}, c.URL, "acme/eks-cluster/demo")
			if err != nil {
				t.Fatal(err)
			}
			checkSecretOutputs(t, got)
			var at []time.Time
			for _, r := range c.Requests() {
				if r.Op == tc.op {
					at = append(at, r.At)
				}
			}
			if len(at) != len(tc.gaps)+1 {
				t.Fatalf("%d %s requests, want %d", len(at), tc.op, len(tc.gaps)+1)
			}
			for i, gap := range tc.gaps {
				if d := at[i+1].Sub(at[i]); d < gap {
					t.Errorf("retry %d after %v, want at least %v", i+1, d, gap)
				}
			}
		})
	}
}

// cloudDefinition is the guide's environment on the Cloud's acme organization.
var cloudDefinition = strings.ReplaceAll(guideDefinition, "stack: eks-cluster/demo", "stack: acme/eks-cluster/demo")

func TestCloudEvaluateGuideEnvironment(t *testing.T) {
	c := newCloud(t)
	snap, err := evaluate(t, strings.ReplaceAll(cloudDefinition, "BACKEND", c.URL))
	if err != nil {
		t.Fatal(err)
	}
	checkGuideSnapshot(t, snap)
	if len(snap.Watched) != 0 {
		t.Errorf("watched %v, want nothing", snap.Watched)
	}
	if n := c.Count("batch-decrypt"); n != 1 {
		t.Errorf("%d batch-decrypt requests, want 1", n)
	}
	checkRequests(t, c)
}

func TestCloudEvaluateDiagnostics(t *testing.T) {
	for _, tc := range []struct {
		name  string
		def   string
		setup func(t *testing.T, c *stacktest.Cloud)
		want  []string // substrings of one error diagnostic
	}{
		{
			name: "missing output",
			def:  strings.ReplaceAll(cloudDefinition, "${stacks.eks-cluster.clusterName}", "${stacks.eks-cluster.nope}"),
			want: []string{`unknown property "nope"`},
		},
		{
			name: "missing stack",
			def:  strings.ReplaceAll(cloudDefinition, "acme/eks-cluster/demo", "acme/eks-cluster/prod"),
			want: []string{"pulumi-stacks: stack acme/eks-cluster/prod: GET ", "stack not found (404"},
		},
		{
			name:  "wrong token",
			def:   cloudDefinition,
			setup: func(t *testing.T, c *stacktest.Cloud) { t.Setenv("PULUMI_ACCESS_TOKEN", "pul-wrong-token-0123456789") },
			want:  []string{"pulumi-stacks: stack acme/eks-cluster/demo: GET ", "(401 Unauthorized", "run `esc login` or set PULUMI_ACCESS_TOKEN"},
		},
		{
			name:  "decrypt unavailable",
			def:   cloudDefinition,
			setup: func(t *testing.T, c *stacktest.Cloud) { c.Inject(stacktest.Fault{Op: "batch-decrypt", Status: 500}) },
			want:  []string{"pulumi-stacks: stack acme/eks-cluster/demo: ", "decrypt through Pulumi Cloud", "500 Internal Server Error", "(4 attempts)"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCloud(t)
			if tc.setup != nil {
				tc.setup(t, c)
			}
			snap, err := evaluate(t, strings.ReplaceAll(tc.def, "BACKEND", c.URL))
			checkDiagnostic(t, snap, err, tc.want, cloudToken, "pul-wrong-token", "hunter2", "kube-secret-token")
		})
	}
}

// writeJSON writes v as JSON to file, making its directory.
func writeJSON(t *testing.T, file string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, file, string(b))
}
