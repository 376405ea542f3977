package vaultlogin_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pulumi/esc"

	"github.com/escfs/escfs/providers"
	"github.com/escfs/escfs/providers/vaultclient/vaulttest"
	"github.com/escfs/escfs/providers/vaultlogin"
)

const userToken = "hvs.the-users-own-token"

// sim starts a Vault simulation as the user's VAULT_ADDR, with the user's
// own VAULT_TOKEN and VAULT_NAMESPACE set (never to be sent).
func sim(t *testing.T) *vaulttest.Server {
	s := vaulttest.New(t)
	t.Setenv("VAULT_ADDR", s.URL)
	t.Setenv("VAULT_TOKEN", userToken)
	t.Setenv("VAULT_NAMESPACE", "users-namespace")
	t.Setenv("ESCFS_ALLOW_HOSTS", "")
	s.Policy("", "read-app", "secret/data/app/")
	s.AddRole("", "jwt", "ci", vaulttest.Role{BoundAudience: "vault", BoundSubject: "repo:acme/app", Policies: []string{"read-app"}, TTL: 20 * time.Minute})
	return s
}

func open(t *testing.T, in map[string]esc.Value) (map[string]esc.Value, time.Time, error) {
	t.Helper()
	ctx, exp := providers.WithExpiry(context.Background())
	v, err := vaultlogin.New().Open(ctx, in, nil)
	if err != nil {
		return nil, time.Time{}, err
	}
	return v.Value.(map[string]esc.Value), exp.Earliest(), nil
}

func obj(kv ...any) esc.Value {
	m := map[string]esc.Value{}
	for i := 0; i < len(kv); i += 2 {
		switch v := kv[i+1].(type) {
		case string:
			m[kv[i].(string)] = esc.NewValue(v)
		case esc.Value:
			m[kv[i].(string)] = v
		}
	}
	return esc.NewValue(m)
}

func in(address string, kv ...any) map[string]esc.Value {
	m := obj(kv...).Value.(map[string]esc.Value)
	m["address"] = esc.NewValue(address)
	return m
}

// TestChildToken: the token form makes a child token whose TTL (capped by
// the parent's) is reported, with the outputs ESC names; the user's own
// VAULT_TOKEN and VAULT_NAMESPACE are never sent.
func TestChildToken(t *testing.T) {
	s := sim(t)
	parent := s.Token("", 10*time.Minute, "read-app")
	for _, tc := range []struct {
		name string
		ttl  string
		want time.Duration
	}{
		{"ttl", "5m", 5 * time.Minute},
		{"capped by the parent", "1h", 10 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, reported, err := open(t, in(s.URL, "token", obj("token", esc.NewSecret(parent), "ttl", tc.ttl, "policies", esc.NewValue([]esc.Value{esc.NewValue("read-app")}))))
			if err != nil {
				t.Fatal(err)
			}
			tok := out["token"]
			if !tok.Secret || !s.Valid(tok.Value.(string)) || tok.Value == parent {
				t.Errorf("token is not a new, valid, secret token")
			}
			if out["address"].Value != s.URL {
				t.Errorf("address = %v", out["address"].Value)
			}
			if d := time.Until(reported); d < tc.want-5*time.Second || d > tc.want+time.Second {
				t.Errorf("reported expiry in %v, want %v", d, tc.want)
			}
		})
	}
	notTheUsers(t, s)
}

// notTheUsers fails if a request carried the user's own VAULT_TOKEN or
// VAULT_NAMESPACE.
func notTheUsers(t *testing.T, s *vaulttest.Server) {
	t.Helper()
	for _, h := range s.Headers() {
		if h.Get("X-Vault-Token") == userToken || h.Get("X-Vault-Namespace") != "" {
			t.Errorf("a request carried the user's own token or namespace")
		}
	}
}

// TestJWT logs in with the JWT auth method, from token and tokenFile.
func TestJWT(t *testing.T) {
	s := sim(t)
	jwt := s.JWT("repo:acme/app", "vault", time.Hour)
	file := filepath.Join(t.TempDir(), "jwt")
	if err := os.WriteFile(file, []byte(jwt+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, form := range map[string]esc.Value{
		"token":     obj("role", "ci", "token", esc.NewSecret(jwt)),
		"tokenFile": obj("role", "ci", "tokenFile", file, "mount", "jwt"),
	} {
		t.Run(name, func(t *testing.T) {
			out, reported, err := open(t, in(s.URL, "jwt", form))
			if err != nil {
				t.Fatal(err)
			}
			if !s.Valid(out["token"].Value.(string)) {
				t.Errorf("the token is not valid")
			}
			if d := time.Until(reported); d < 19*time.Minute || d > 20*time.Minute {
				t.Errorf("reported expiry in %v, want the role's 20m", d)
			}
		})
	}
	notTheUsers(t, s)
}

// TestNamespace sends the namespace input, and only it.
func TestNamespace(t *testing.T) {
	s := sim(t)
	parent := s.Token("team-a", time.Hour)
	out, _, err := open(t, in(s.URL, "namespace", "team-a", "token", obj("token", esc.NewSecret(parent))))
	if err != nil {
		t.Fatal(err)
	}
	if out["namespace"].Value != "team-a" {
		t.Errorf("namespace = %v", out["namespace"].Value)
	}
	h := s.Headers()
	if got := h[len(h)-1].Get("X-Vault-Namespace"); got != "team-a" {
		t.Errorf("X-Vault-Namespace = %q", got)
	}
}

// TestAddressRefused: a definition's address that is not the user's Vault
// gets nothing: no JWT, no token, not a request.
func TestAddressRefused(t *testing.T) {
	s := sim(t)
	var hits atomic.Int64
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(attacker.Close)
	jwt := s.JWT("repo:acme/app", "vault", time.Hour)
	for _, address := range []string{attacker.URL, strings.Replace(s.URL, "127.0.0.1", "localhost", 1), "http://vault.example.com:8200"} {
		_, _, err := open(t, in(address, "jwt", obj("role", "ci", "token", esc.NewSecret(jwt))))
		if err == nil {
			t.Errorf("%s: logged in", address)
			continue
		}
		if strings.Contains(err.Error(), jwt) {
			t.Errorf("the error quotes the JWT")
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the attacker's address got %d requests", n)
	}
	// Allowed by the user, it is used.
	t.Setenv("ESCFS_ALLOW_HOSTS", strings.TrimPrefix(attacker.URL, "http://"))
	open(t, in(attacker.URL, "jwt", obj("role", "ci", "token", esc.NewSecret(jwt))))
	if hits.Load() == 0 {
		t.Errorf("an allowed host got no request")
	}
}

// TestRedirectNotFollowed: a 307 to another host (a standby's answer, or
// an attacker's) is an error, and the other host gets nothing.
func TestRedirectNotFollowed(t *testing.T) {
	s := sim(t)
	var hits atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(other.Close)
	s.SetRedirect(other.URL)
	_, _, err := open(t, in(s.URL, "token", obj("token", esc.NewSecret(s.Token("", time.Hour)))))
	if err == nil || !strings.Contains(err.Error(), "Vault answered with a redirect to another address, which escfs does not follow") {
		t.Errorf("Open = %v, want the redirect refused", err)
	}
	if hits.Load() != 0 {
		t.Errorf("the redirect was followed")
	}
}

func TestErrors(t *testing.T) {
	s := sim(t)
	jwt := func(sub, aud string, ttl time.Duration) esc.Value { return esc.NewSecret(s.JWT(sub, aud, ttl)) }
	for _, tc := range []struct {
		name  string
		in    map[string]esc.Value
		setup func(t *testing.T)
		want  string
	}{
		{name: "unknown role", in: in(s.URL, "jwt", obj("role", "nope", "token", jwt("repo:acme/app", "vault", time.Hour))),
			want: `vault-login: jwt: auth/jwt/login: 400: role "nope" could not be found`},
		{name: "wrong audience", in: in(s.URL, "jwt", obj("role", "ci", "token", jwt("repo:acme/app", "other", time.Hour))),
			want: "vault-login: jwt: auth/jwt/login: 400: error validating token: invalid audience (aud) claim"},
		{name: "forged jwt", in: in(s.URL, "jwt", obj("role", "ci", "token", esc.NewSecret(func() string { j := s.JWT("repo:acme/app", "vault", time.Hour); return j[:len(j)-4] + "AAAA" }()))),
			want: "400: error validating token: failed to verify id token signature"},
		{name: "expired jwt", in: in(s.URL, "jwt", obj("role", "ci", "token", jwt("repo:acme/app", "vault", -time.Minute))),
			want: "400: error validating token: token is expired (exp)"},
		{name: "bad parent", in: in(s.URL, "token", obj("token", esc.NewSecret("hvs.not-a-token"))),
			want: "vault-login: token: auth/token/create: 403: permission denied"},
		{name: "policies beyond the parent's", in: in(s.URL, "token", obj("token", esc.NewSecret(s.Token("", time.Hour, "read-app")), "policies", esc.NewValue([]esc.Value{esc.NewValue("admin")}))),
			want: "400: child policies must be subset of parent"},
		{name: "sealed", setup: func(t *testing.T) { s.SetSealed(true); t.Cleanup(func() { s.SetSealed(false) }) },
			in: in(s.URL, "token", obj("token", esc.NewSecret(s.RootToken))), want: "503: Vault is sealed"},
		{name: "unreachable", setup: func(t *testing.T) { t.Setenv("VAULT_ADDR", "http://127.0.0.1:1") },
			in: in("http://127.0.0.1:1", "token", obj("token", esc.NewSecret(s.RootToken))), want: "endpoint unreachable"},
		{name: "both forms", in: in(s.URL, "token", obj("token", "x"), "jwt", obj("role", "ci")), want: "vault-login: give exactly one of token or jwt"},
		{name: "mount traversal", in: in(s.URL, "jwt", obj("role", "ci", "mount", "../sys", "token", "x")), want: "vault-login: jwt: mount is not a mount path"},
		{name: "bad ttl", in: in(s.URL, "token", obj("token", "x", "ttl", "soon")), want: "vault-login: token: ttl is not a duration"},
		{name: "no address", in: map[string]esc.Value{"token": obj("token", "x")}, want: "vault-login: address is required"},
		{name: "no jwt", in: in(s.URL, "jwt", obj("role", "ci")), want: "vault-login: jwt: no token: set token or tokenFile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup(t)
			}
			_, _, err := open(t, tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), s.RootToken) || strings.Contains(err.Error(), "eyJ") {
				t.Errorf("the error quotes a token")
			}
		})
	}
}
