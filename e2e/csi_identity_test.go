//go:build e2e

package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/escfs/escfs/csiprovider/csitest"
)

// csiAWSApp reads the database password with the pod's own role: aws-login
// oidc without token or tokenFile takes the pod's service-account token.
const csiAWSApp = `values:
  aws:
    creds:
      fn::open::aws-login:
        oidc:
          roleArn: ` + clusterRole + `
          sessionName: csi
  secrets:
    fn::open::aws-secrets:
      region: us-east-1
      login: ${aws.creds}
      get:
        db: {secretId: app/db-password}
`

// TestCSIPodIdentityAWS: real service-account tokens from the kube-apiserver's
// TokenRequest API (kubectl create token, audience sts.amazonaws.com), handed
// over as the driver hands them, are what reaches STS's
// AssumeRoleWithWebIdentity, one service account's token for its pods; with
// 30-s sessions, the driver's rotation polls get renewed credentials 3 times
// and never an expired or nearly expired object.
func TestCSIPodIdentityAWS(t *testing.T) {
	c := StartCluster(t)
	kc := c.Kubeconfig(c.Token)
	for _, args := range [][]string{{"create", "namespace", "prod"}, {"create", "serviceaccount", "web", "-n", "prod"}, {"create", "serviceaccount", "batch", "-n", "prod"}} {
		if out, err := kubectl(t, kc, args...); err != nil {
			t.Fatalf("kubectl %v: %v\n%s", args, err, out)
		}
	}
	token := func(sa string) string {
		out, err := kubectl(t, kc, "create", "token", sa, "-n", "prod", "--audience", "sts.amazonaws.com", "--duration", "10m")
		if err != nil {
			t.Fatalf("kubectl create token %s: %v\n%s", sa, err, out)
		}
		return strings.TrimSpace(out)
	}
	webToken, batchToken := token("web"), token("batch")

	w := newAWSWorld(t) // this process talks to kumo through the front
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "")
	const lifetime = 30 * time.Second
	w.front.SetLifetime(lifetime)
	p := csitest.Start(t, map[string]string{"prod/app.yaml": csiAWSApp}, `allow:
  - {namespace: prod, serviceAccount: "*", environments: [prod/app]}
`)
	params := map[string]string{"environment": "prod/app", "objects": "- property: secrets.db\n  path: db-password\n- property: aws.creds\n  path: creds.json\n"}
	web := csitest.Pod{Namespace: "prod", ServiceAccount: "web", Tokens: map[string]string{"sts.amazonaws.com": webToken}}
	batch := csitest.Pod{Namespace: "prod", ServiceAccount: "batch", Tokens: map[string]string{"sts.amazonaws.com": batchToken}}

	for _, pod := range []csitest.Pod{web, web, batch} {
		resp, err := p.Mount(t, pod, params, nil)
		if err != nil {
			t.Fatalf("%s: %v", pod.ServiceAccount, err)
		}
		if got := string(csitest.Files(resp)["db-password"].Contents); got != dbPassword {
			t.Errorf("%s: db-password is not the secret", pod.ServiceAccount)
		}
	}
	var tokens []string
	for _, call := range w.front.Calls("AssumeRoleWithWebIdentity") {
		tokens = append(tokens, call.Token)
	}
	if len(tokens) != 2 || tokens[0] != webToken || tokens[1] != batchToken {
		t.Fatalf("STS got %d web identity tokens; want web's then batch's, once each", len(tokens))
	}

	// Rotation: the driver polls (here every second) with the versions it has.
	current := map[string]string{}
	keys := map[string]bool{}
	for end := time.Now().Add(3*lifetime*2/3 + 5*time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		at := time.Now()
		resp, err := p.Mount(t, web, params, current)
		if err != nil {
			t.Fatal(err)
		}
		var creds struct {
			AccessKeyID string `json:"accessKeyId"`
			Expiration  string `json:"expiration"`
		}
		if err := json.Unmarshal(csitest.Files(resp)["creds.json"].Contents, &creds); err != nil {
			t.Fatal(err)
		}
		exp, err := time.Parse(time.RFC3339, creds.Expiration)
		if err != nil {
			t.Fatal(err)
		}
		if left := exp.Sub(at); left < lifetime/4 {
			t.Fatalf("a Mount returned credentials with %v left of %v", left, lifetime)
		}
		keys[creds.AccessKeyID] = true
		current = csitest.Versions(resp)
	}
	if len(keys) < 4 {
		t.Errorf("%d sessions over the polls, want the first and 3 renewals", len(keys))
	}
	if n := p.Server.Evaluations(); n < 5 {
		t.Errorf("%d evaluations, want web's, batch's and web's renewals", n)
	}
}
