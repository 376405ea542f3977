//go:build e2e

package e2e

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// kubectl runs the real kubectl with kubeconfig (written to a file) and
// returns its combined output.
func kubectl(t *testing.T, kubeconfig string, args ...string) (string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("kubectl", append([]string{"--kubeconfig", path, "--request-timeout=10s"}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir()) // no ~/.kube cache shared between runs
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestClusterKubectl(t *testing.T) {
	c := StartCluster(t)

	// "default" comes from the bootstrap controller, "kube-system" from the
	// system namespaces controller; either may lag /readyz by a few seconds.
	var out string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		var err error
		out, err = kubectl(t, c.Kubeconfig(c.Token), "get", "namespaces", "-o", "name")
		if err == nil && strings.Contains(out, "namespace/default\n") && strings.Contains(out, "namespace/kube-system\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubectl get namespaces: %v\n%s", err, out)
		}
	}
	t.Logf("kubectl get namespaces:\n%s", out)

	// A wrong token is refused: the token file is really consulted. kubectl
	// words a 401 as "You must be logged in to the server"; the API's own
	// answer says Unauthorized.
	out, err := kubectl(t, c.Kubeconfig("not-"+c.Token), "get", "namespaces")
	if err == nil || !strings.Contains(out, "You must be logged in to the server") {
		t.Fatalf("kubectl with a wrong token: err=%v, want a refusal, got:\n%s", err, out)
	}
	// No token at all is system:anonymous, whom RBAC refuses.
	for token, want := range map[string]int{c.Token: http.StatusOK, "not-" + c.Token: http.StatusUnauthorized, "": http.StatusForbidden} {
		req, _ := http.NewRequest("GET", c.Server+"/api/v1/namespaces/default", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET namespaces/default with token %q: %s, want %d:\n%s", token, resp.Status, want, body)
		}
		if reason := http.StatusText(want); want != http.StatusOK && !strings.Contains(string(body), `"reason":"`+reason+`"`) {
			t.Errorf("%d body lacks reason %s:\n%s", want, reason, body)
		}
	}
}
