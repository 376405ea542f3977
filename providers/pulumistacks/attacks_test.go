package pulumistacks_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/escfs/escfs/internal/kumotest"
	"github.com/escfs/escfs/internal/pulumiaccount"
	"github.com/escfs/escfs/internal/safehttp"
	"github.com/escfs/escfs/internal/testutil"
	"github.com/escfs/escfs/providers/pulumistacks"
)

func hostOf(t *testing.T, raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// TestTokenGoesOnlyToTheConfiguredCloud: a definition naming another
// Pulumi Cloud URL as its backend never receives PULUMI_ACCESS_TOKEN (nor
// a stored token of another URL); the user can allow the host; plain HTTP
// to another machine is refused before any connection.
func TestTokenGoesOnlyToTheConfiguredCloud(t *testing.T) {
	ctx := context.Background()
	t.Run("definition names another URL", func(t *testing.T) {
		newCloud(t) // PULUMI_API: the Cloud the user configured
		attacker := testutil.NewRecorder(t, nil)
		_, err := (&pulumistacks.Provider{}).Open(ctx, inputs(t, attacker.URL, "acme/net/prod"), nil)
		if !errors.Is(err, pulumiaccount.ErrNotAllowed) {
			t.Fatalf("err = %v, want ErrNotAllowed", err)
		}
		for _, want := range []string{attacker.URL, "--allow-host " + hostOf(t, attacker.URL), "ESCFS_ALLOW_HOSTS"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q: %v", want, err)
			}
		}
		if strings.Contains(err.Error(), cloudToken) {
			t.Errorf("error shows the token: %v", err)
		}
		if got := attacker.Requests(); len(got) != 0 {
			t.Fatalf("the definition's URL got %d requests", len(got))
		}
	})
	t.Run("allowed host", func(t *testing.T) {
		// The control: once the user allows the host, the token goes
		// there (so the refusal above is the check, not a broken URL).
		newCloud(t)
		attacker := testutil.NewRecorder(t, nil)
		t.Setenv(safehttp.AllowHostsEnv, "example.com, "+hostOf(t, attacker.URL))
		(&pulumistacks.Provider{}).Open(ctx, inputs(t, attacker.URL, "acme/net/prod"), nil)
		if attacker.Carrying(cloudToken) == 0 {
			t.Fatalf("an allowed host got no token: %q", attacker.Requests())
		}
	})
	t.Run("plain http to another machine", func(t *testing.T) {
		newCloud(t)
		t.Setenv(safehttp.AllowHostsEnv, "attacker.example")
		_, err := (&pulumistacks.Provider{}).Open(ctx, inputs(t, "http://attacker.example", "acme/net/prod"), nil)
		if !errors.Is(err, safehttp.ErrPlainHTTP) {
			t.Fatalf("err = %v, want ErrPlainHTTP", err)
		}
	})
}

// TestRedirectsKeepTheToken: a Cloud answering with a redirect to another
// origin (another port of the same host) is an error, and the other port
// never sees the token.
func TestRedirectsKeepTheToken(t *testing.T) {
	c := newCloud(t)
	attacker := testutil.NewRecorder(t, nil)
	redirector := testutil.NewRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, attacker.URL+r.URL.Path, http.StatusTemporaryRedirect)
	})
	_ = c
	t.Setenv("PULUMI_API", redirector.URL)
	_, err := (&pulumistacks.Provider{}).Open(context.Background(), inputs(t, "", "acme/net/prod"), nil)
	if err == nil || !strings.Contains(err.Error(), "refused a redirect to another origin") {
		t.Fatalf("err = %v, want the redirect refused", err)
	}
	if redirector.Carrying(cloudToken) == 0 {
		t.Fatal("the configured Cloud got no token: the test proves nothing")
	}
	if got := attacker.Requests(); len(got) != 0 {
		t.Fatalf("the redirect's target got %d requests: %q", len(got), got)
	}
}

// TestS3EndpointNamedByDefinition: an s3:// backend whose endpoint
// parameter names a host the user did not configure never receives the
// AWS credentials; AWS_ENDPOINT_URL_S3 and an allowed host do.
func TestS3EndpointNamedByDefinition(t *testing.T) {
	isolate(t)
	noCABundle(t)
	endpoint := kumotest.Start(t)
	kumotest.Env(t, endpoint)
	t.Setenv("AWS_SESSION_TOKEN", "session-token-of-the-user")
	const keyID = "AKIAKUMOTEST"
	attacker := testutil.NewRecorder(t, nil)
	backend := "s3://state?region=us-east-1&s3ForcePathStyle=true&endpoint=" + attacker.URL
	open := func(t *testing.T) error {
		_, err := (&pulumistacks.Provider{}).Open(context.Background(), inputs(t, backend, "eks-cluster/demo"), nil)
		return err
	}
	err := open(t)
	if err == nil || !strings.Contains(err.Error(), "refused to send your AWS credentials to "+safehttp.Origin(mustURL(t, attacker.URL))) {
		t.Fatalf("err = %v, want refused", err)
	}
	if strings.Contains(err.Error(), keyID) || strings.Contains(err.Error(), "session-token-of-the-user") {
		t.Errorf("error shows a credential: %v", err)
	}
	if got := attacker.Requests(); len(got) != 0 {
		t.Fatalf("the definition's endpoint got %d requests: %q", len(got), got)
	}
	t.Run("configured as AWS_ENDPOINT_URL_S3", func(t *testing.T) {
		t.Setenv("AWS_ENDPOINT_URL_S3", attacker.URL)
		open(t)
		if attacker.Carrying(keyID) == 0 || attacker.Carrying("session-token-of-the-user") == 0 {
			t.Fatalf("the configured endpoint got no credentials: %q", attacker.Requests())
		}
	})
	t.Run("region that names a host", func(t *testing.T) {
		// The SDK would send the signed request, session token and all,
		// to https://s3.attacker.example/ (the '#' ends the host).
		backend = "s3://state?region=attacker.example%23"
		if err := open(t); err == nil || !strings.Contains(err.Error(), `region "attacker.example#" is not an AWS region name`) {
			t.Fatalf("err = %v, want the region refused", err)
		}
	})
	t.Run("plain http to another machine", func(t *testing.T) {
		backend = "s3://state?endpoint=http://attacker.example:9000"
		t.Setenv(safehttp.AllowHostsEnv, "attacker.example")
		if err := open(t); err == nil || !errors.Is(err, safehttp.ErrPlainHTTP) {
			t.Fatalf("err = %v, want ErrPlainHTTP", err)
		}
	})
}

func mustURL(t *testing.T, raw string) *url.URL {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
