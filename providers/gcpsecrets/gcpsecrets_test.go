package gcpsecrets_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/esc"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/providers/builtin"
	"github.com/escfs/escfs/providers/gcpclient/gcptest"
	"github.com/escfs/escfs/providers/gcpsecrets"
)

const token = "ya29.static-test-token"

func sim(t *testing.T) *gcptest.Server {
	s := gcptest.New(t)
	s.SetEnv(t)
	s.AddAccessToken(token, time.Now().Add(time.Hour))
	return s
}

func inputs(login string, access map[string][2]string) map[string]esc.Value {
	a := map[string]esc.Value{}
	for out, nv := range access {
		m := map[string]esc.Value{"name": esc.NewValue(nv[0])}
		if nv[1] != "" {
			m["version"] = esc.NewValue(nv[1])
		}
		a[out] = esc.NewValue(m)
	}
	return map[string]esc.Value{
		"login": esc.NewValue(map[string]esc.Value{
			"accessToken": esc.NewSecret(login),
			"project":     esc.NewValue(json.Number("123456789")),
		}),
		"access": esc.NewValue(a),
	}
}

func TestAccess(t *testing.T) {
	s := sim(t)
	s.PutSecret("api-key", "first")
	s.PutSecret("api-key", "second")
	s.PutSecret("db", "p@ss\nword ünïcode")
	v, err := gcpsecrets.New().Open(context.Background(), inputs(token, map[string][2]string{
		"latest":   {"api-key", ""},
		"pinned":   {"api-key", "1"},
		"explicit": {"api-key", "latest"},
		"db":       {"db", ""},
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := v.Value.(map[string]esc.Value)
	for k, want := range map[string]string{"latest": "second", "pinned": "first", "explicit": "second", "db": "p@ss\nword ünïcode"} {
		if got[k].Value != want || !got[k].Secret {
			t.Errorf("%s = %+v, want secret %q", k, got[k], want)
		}
	}
	if n := s.Calls("secretmanager"); n != 4 {
		t.Errorf("%d calls, want 4", n)
	}
}

func TestErrors(t *testing.T) {
	s := sim(t)
	s.PutSecret("db", "x")
	s.DisableVersion("db", 1)
	s.PutSecret("ok", "x")
	for _, tc := range []struct {
		name  string
		in    map[string]esc.Value
		setup func(t *testing.T)
		want  string
	}{
		{name: "missing", in: inputs(token, map[string][2]string{"a": {"nope", ""}}),
			want: "gcp-secrets: access.a: secretmanager access projects/123456789/secrets/nope/versions/latest: NOT_FOUND: Secret [projects/123456789/secrets/nope] not found or has no versions."},
		{name: "disabled", in: inputs(token, map[string][2]string{"a": {"db", "1"}}),
			want: "gcp-secrets: access.a: secretmanager access projects/123456789/secrets/db/versions/1: FAILED_PRECONDITION: Secret Version [projects/123456789/secrets/db/versions/1] is in DISABLED state."},
		{name: "bad token", in: inputs("ya29.not-a-token", map[string][2]string{"a": {"ok", ""}}),
			want: "UNAUTHENTICATED: Request had invalid authentication credentials."},
		{name: "down", setup: func(t *testing.T) { s.SetDown(true); t.Cleanup(func() { s.SetDown(false) }) },
			in: inputs(token, map[string][2]string{"a": {"ok", ""}}), want: "UNAVAILABLE: The service is currently unavailable."},
		{name: "corrupted", setup: func(t *testing.T) { s.SetCorrupt(true); t.Cleanup(func() { s.SetCorrupt(false) }) },
			in: inputs(token, map[string][2]string{"a": {"ok", ""}}), want: "the payload does not match its CRC32C checksum"},
		{name: "unreachable", setup: func(t *testing.T) { t.Setenv("CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER", "http://127.0.0.1:1") },
			in: inputs(token, map[string][2]string{"a": {"ok", ""}}), want: "endpoint unreachable"},
		{name: "path in a name", in: inputs(token, map[string][2]string{"a": {"../../x", ""}}),
			want: "gcp-secrets: access.a: name is not a secret ID"},
		{name: "path in a version", in: inputs(token, map[string][2]string{"a": {"ok", "1/../../x"}}),
			want: "gcp-secrets: access.a: version is not a version number, alias or latest"},
		{name: "no access", in: map[string]esc.Value{"login": inputs(token, nil)["login"]},
			want: "gcp-secrets: access must name at least one secret"},
		{name: "no login", in: map[string]esc.Value{"access": inputs(token, map[string][2]string{"a": {"ok", ""}})["access"]},
			want: "gcp-secrets: login (a gcp-login output) is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup(t)
			}
			_, err := gcpsecrets.New().Open(context.Background(), tc.in, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("the error quotes the access token")
			}
		})
	}
}

// TestThroughEvaluator evaluates a definition that logs in with workload
// identity federation (the subject token in a file) and reads secrets
// with the login, and definitions whose reads fail, with located
// diagnostics.
func TestThroughEvaluator(t *testing.T) {
	s := sim(t)
	s.AddProvider("pool", "k8s")
	s.AllowImpersonation("app@proj.iam.gserviceaccount.com")
	s.PutSecret("db-password", "hunter2-from-gsm")
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "sa-token")
	if err := os.WriteFile(tokenFile, []byte(s.SubjectToken("pool", "k8s", "system:serviceaccount:app:web", "", time.Hour)), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	login := `  gcp:
    login:
      fn::open::gcp-login:
        project: 123456789
        oidc:
          workloadPoolId: pool
          providerId: k8s
          serviceAccount: app@proj.iam.gserviceaccount.com
          tokenFile: ` + tokenFile + "\n"
	write("app", "values:\n"+login+`    secrets:
      fn::open::gcp-secrets:
        login: ${gcp.login}
        access:
          db:
            name: db-password
  environmentVariables:
    DB_PASSWORD: ${gcp.secrets.db}
    CLOUDSDK_AUTH_ACCESS_TOKEN: ${gcp.login.accessToken}
    GOOGLE_CLOUD_PROJECT: ${gcp.login.project}
`)
	write("missing", "values:\n"+login+`    secrets:
      fn::open::gcp-secrets:
        login: ${gcp.login}
        access:
          db:
            name: no-such-secret
`)
	tree, err := eval.ScanDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := &eval.Evaluator{Providers: builtin.Registry()}
	ctx := context.Background()
	snap, err := e.Evaluate(ctx, tree, eval.Request{Name: "app"})
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]eval.Var{}
	for _, v := range snap.Vars {
		vars[v.Name] = v
	}
	if v := vars["DB_PASSWORD"]; v.Value != "hunter2-from-gsm" || !v.Secret {
		t.Errorf("DB_PASSWORD = %+v", v)
	}
	if v := vars["CLOUDSDK_AUTH_ACCESS_TOKEN"]; !strings.HasPrefix(v.Value, "ya29.sim-") || !v.Secret {
		t.Errorf("CLOUDSDK_AUTH_ACCESS_TOKEN = secret %v, prefix %.9q", v.Secret, v.Value)
	}
	if v := vars["GOOGLE_CLOUD_PROJECT"]; v.Value != "123456789" {
		t.Errorf("GOOGLE_CLOUD_PROJECT = %q", v.Value)
	}
	if !slices.Contains(snap.Secrets, "hunter2-from-gsm") {
		t.Errorf("the secret is not among the snapshot's secrets")
	}
	if d := time.Until(snap.ExpiresAt); d < 59*time.Minute || d > time.Hour+time.Second {
		t.Errorf("the snapshot expires in %v, want the token's hour", d)
	}

	_, err = e.Evaluate(ctx, tree, eval.Request{Name: "missing"})
	var de *eval.DiagnosticsError
	if !errors.As(err, &de) {
		t.Fatalf("missing: Evaluate = %v, want diagnostics", err)
	}
	found := false
	for _, d := range de.Diagnostics {
		if d.File == filepath.Join(dir, "missing.yaml") && d.Line > 0 && strings.Contains(d.Message, "NOT_FOUND: Secret [projects/123456789/secrets/no-such-secret] not found") {
			found = true
		}
	}
	if !found {
		t.Errorf("no located NOT_FOUND diagnostic in %v", de.Diagnostics)
	}
}
