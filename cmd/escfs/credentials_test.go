package main

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/escfs/escfs/internal/filetree"
	"github.com/escfs/escfs/internal/testutil"
)

// TestAllowHost: a definition's pulumi-stacks backend on a host the user
// did not configure gets no token, and the refusal says how to allow it;
// --allow-host allows it.
func TestAllowHost(t *testing.T) {
	isolatePulumi(t)
	const token = "pul-allow-host-test-0123456789"
	t.Setenv("PULUMI_ACCESS_TOKEN", token)
	t.Setenv("PULUMI_API", "https://api.pulumi.com") // what the user configured
	t.Setenv("ESCFS_ALLOW_HOSTS", "")
	other := testutil.NewRecorder(t, func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "{}", http.StatusNotFound) })
	u, _ := url.Parse(other.URL)
	dir := filetree.Write(t, "", map[string]string{"app.yaml": `values:
  stacks:
    fn::open::pulumi-stacks:
      backend: ` + other.URL + `
      stacks:
        net: {stack: acme/net/prod}
`})
	r := escfsBounded(t, time.Minute, "--dir", dir, "open", "app")
	if r.code == 0 || !strings.Contains(r.stderr, "--allow-host "+u.Host) {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if got := other.Requests(); len(got) != 0 {
		t.Fatalf("the definition's backend got %d requests", len(got))
	}
	escfsBounded(t, time.Minute, "--allow-host", u.Host, "--dir", dir, "open", "app")
	if got := other.Requests(); len(got) == 0 || got[0].Authorization != "token "+token {
		t.Fatalf("with --allow-host, the backend got %q", got)
	}
}

// TestCredentialsNeverPrinted: escfs --cloud ls against a service that
// echoes the token in its error body prints no token.
func TestCredentialsNeverPrinted(t *testing.T) {
	isolatePulumi(t)
	const token = "pul-echoed-back-0123456789abcdef"
	echo := testutil.NewRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, "<html><pre>"+r.Header.Get("Authorization")+"</pre></html>")
	})
	t.Setenv("PULUMI_BACKEND_URL", echo.URL)
	t.Setenv("PULUMI_ACCESS_TOKEN", token)
	r := escfsBounded(t, time.Minute, "--cloud", "acme", "--request-timeout", "5s", "ls")
	if r.code == 0 || len(echo.Requests()) == 0 {
		t.Fatalf("exit %d after %d requests: the service was not asked", r.code, len(echo.Requests()))
	}
	if strings.Contains(r.stderr+r.stdout, token) || !strings.Contains(r.stderr, "[REDACTED]") {
		t.Fatalf("output:\n%s%s", r.stdout, r.stderr)
	}
}
