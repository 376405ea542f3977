package vaultsecrets_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/esc"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/providers/builtin"
	"github.com/escfs/escfs/providers/vaultclient/vaulttest"
	"github.com/escfs/escfs/providers/vaultsecrets"
)

func sim(t *testing.T) *vaulttest.Server {
	s := vaulttest.New(t)
	t.Setenv("VAULT_ADDR", s.URL)
	t.Setenv("VAULT_TOKEN", "")
	s.Put("", "secret/app/db", map[string]any{"password": "v2-password", "port": json.Number("5432"), "tags": []any{"a", "b"}})
	s.Put("", "kv/legacy", map[string]any{"apikey": "v1-api-key"})
	s.Put("", "secret/app/gone", map[string]any{"x": "y"})
	s.Delete("", "secret/app/gone")
	s.Policy("", "app", "secret/data/app/", "kv/legacy")
	return s
}

func inputs(s *vaulttest.Server, token string, read map[string][2]string) map[string]esc.Value {
	r := map[string]esc.Value{}
	for out, pf := range read {
		m := map[string]esc.Value{"path": esc.NewValue(pf[0])}
		if pf[1] != "" {
			m["field"] = esc.NewValue(pf[1])
		}
		r[out] = esc.NewValue(m)
	}
	return map[string]esc.Value{
		"login": esc.NewValue(map[string]esc.Value{"address": esc.NewValue(s.URL), "token": esc.NewSecret(token)}),
		"read":  esc.NewValue(r),
	}
}

func TestRead(t *testing.T) {
	s := sim(t)
	token := s.Token("", time.Hour, "app")
	v, err := vaultsecrets.New().Open(context.Background(), inputs(s, token, map[string][2]string{
		"short":   {"secret/app/db", "password"},
		"full":    {"secret/data/app/db", "password"},
		"whole":   {"secret/app/db", ""},
		"legacy":  {"kv/legacy", "apikey"},
		"slashes": {"/secret/app/db/", "port"},
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := v.Value.(map[string]esc.Value)
	for k, want := range map[string]any{"short": "v2-password", "full": "v2-password", "legacy": "v1-api-key", "slashes": json.Number("5432")} {
		if got[k].Value != want || !got[k].Secret {
			t.Errorf("%s = %+v, want secret %v", k, got[k], want)
		}
	}
	whole := got["whole"].Value.(map[string]esc.Value)
	if whole["password"].Value != "v2-password" || !got["whole"].Secret || len(whole["tags"].Value.([]esc.Value)) != 2 {
		t.Errorf("whole = %+v", whole)
	}
	if n := s.Calls("sys/internal/ui/mounts/"); n > 2 {
		t.Errorf("%d mount lookups for 2 mounts", n)
	}
}

func TestErrors(t *testing.T) {
	s := sim(t)
	token := s.Token("", time.Hour, "app")
	for _, tc := range []struct {
		name  string
		in    map[string]esc.Value
		setup func(t *testing.T)
		want  string
	}{
		{name: "missing", in: inputs(s, token, map[string][2]string{"a": {"secret/app/nope", ""}}),
			want: "vault-secrets: read.a: read secret/data/app/nope: no secret at this path"},
		{name: "deleted", in: inputs(s, token, map[string][2]string{"a": {"secret/app/gone", ""}}),
			want: "vault-secrets: read.a: read secret/data/app/gone: the secret's version is deleted or destroyed"},
		{name: "no field", in: inputs(s, token, map[string][2]string{"a": {"secret/app/db", "user"}}),
			want: "vault-secrets: read.a: read secret/data/app/db: the secret has no such field (its fields are password, port, tags)"},
		{name: "denied", in: inputs(s, token, map[string][2]string{"a": {"secret/other", ""}}),
			want: "vault-secrets: read.a: read secret/data/other: 403: permission denied"},
		{name: "expired token", in: inputs(s, s.Token("", time.Nanosecond, "app"), map[string][2]string{"a": {"kv/legacy", ""}}),
			want: "vault-secrets: read.a: read kv/legacy: 403: permission denied"},
		{name: "traversal", in: inputs(s, token, map[string][2]string{"a": {"secret/../sys/raw", ""}}),
			want: "vault-secrets: read.a: path is not a secret path"},
		{name: "query", in: inputs(s, token, map[string][2]string{"a": {"secret/app/db?version=1", ""}}),
			want: "vault-secrets: read.a: path is not a secret path"},
		{name: "address not the user's", setup: func(t *testing.T) { t.Setenv("VAULT_ADDR", "https://vault.example.com") },
			in: inputs(s, token, map[string][2]string{"a": {"kv/legacy", ""}}), want: "escfs sends Vault credentials only to the address the user configured"},
		{name: "no read", in: map[string]esc.Value{"login": inputs(s, token, nil)["login"]}, want: "vault-secrets: read must name at least one secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup(t)
			}
			_, err := vaultsecrets.New().Open(context.Background(), tc.in, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("the error quotes the token")
			}
		})
	}
}

// TestThroughEvaluator: vault-login's JWT form (the token in a file) feeds
// vault-secrets, and the environment expires with the login's token.
func TestThroughEvaluator(t *testing.T) {
	s := sim(t)
	s.AddRole("", "k8s", "web", vaulttest.Role{BoundAudience: "vault", Policies: []string{"app"}, TTL: 15 * time.Minute})
	dir := t.TempDir()
	jwtFile := filepath.Join(dir, "sa-token")
	if err := os.WriteFile(jwtFile, []byte(s.JWT("system:serviceaccount:prod:web", "vault", time.Hour)), 0o600); err != nil {
		t.Fatal(err)
	}
	def := `values:
  vault:
    login:
      fn::open::vault-login:
        address: ` + s.URL + `
        jwt:
          mount: k8s
          role: web
          tokenFile: ` + jwtFile + `
    secrets:
      fn::open::vault-secrets:
        login: ${vault.login}
        read:
          db: {path: PATH, field: password}
  environmentVariables:
    VAULT_ADDR: ${vault.login.address}
    VAULT_TOKEN: ${vault.login.token}
    DB_PASSWORD: ${vault.secrets.db}
`
	for name, path := range map[string]string{"app": "secret/app/db", "denied": "secret/admin"} {
		if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(strings.Replace(def, "PATH", path, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tree, err := eval.ScanDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := &eval.Evaluator{Providers: builtin.Registry()}
	snap, err := e.Evaluate(context.Background(), tree, eval.Request{Name: "app"})
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]eval.Var{}
	for _, v := range snap.Vars {
		vars[v.Name] = v
	}
	if v := vars["DB_PASSWORD"]; v.Value != "v2-password" || !v.Secret {
		t.Errorf("DB_PASSWORD = %+v", v)
	}
	if v := vars["VAULT_TOKEN"]; !s.Valid(v.Value) || !v.Secret {
		t.Errorf("VAULT_TOKEN is not a valid secret token")
	}
	if d := time.Until(snap.ExpiresAt); d < 14*time.Minute || d > 15*time.Minute {
		t.Errorf("the snapshot expires in %v, want the role's 15m", d)
	}
	_, err = e.Evaluate(context.Background(), tree, eval.Request{Name: "denied"})
	var de *eval.DiagnosticsError
	if !errors.As(err, &de) {
		t.Fatalf("denied: %v, want diagnostics", err)
	}
	found := false
	for _, d := range de.Diagnostics {
		found = found || d.File == filepath.Join(dir, "denied.yaml") && d.Line > 0 && strings.Contains(d.Message, "403: permission denied")
	}
	if !found {
		t.Errorf("no located permission denied in %v", de.Diagnostics)
	}
}
