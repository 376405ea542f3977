package gcplogin_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/esc"

	"github.com/escfs/escfs/providers"
	"github.com/escfs/escfs/providers/gcpclient/gcptest"
	"github.com/escfs/escfs/providers/gcplogin"
)

const (
	pool    = "ci-pool"
	prov    = "github"
	account = "deploy@proj.iam.gserviceaccount.com"
)

// sim starts a simulation that knows pool/prov and lets it impersonate
// account, and points the provider at it.
func sim(t *testing.T) *gcptest.Server { return gcptestSim(t) }

func gcptestSim(tb testing.TB) *gcptest.Server {
	s := gcptest.New(tb)
	s.AddProvider(pool, prov)
	s.AllowImpersonation(account)
	for k, v := range s.Env() {
		tb.Setenv(k, v)
	}
	return s
}

// oidcInputs are the oidc form's inputs with subject as the token.
func oidcInputs(subject string) map[string]esc.Value {
	return obj(map[string]any{"project": 123456789, "oidc": map[string]any{
		"workloadPoolId": pool, "providerId": prov, "serviceAccount": account, "token": subject}}).Value.(map[string]esc.Value)
}

func obj(m map[string]any) esc.Value {
	out := map[string]esc.Value{}
	for k, v := range m {
		switch v := v.(type) {
		case map[string]any:
			out[k] = obj(v)
		case string:
			out[k] = esc.NewValue(v)
		case int:
			out[k] = esc.NewValue(json.Number(strconv.Itoa(v)))
		}
	}
	return esc.NewValue(out)
}

func oidc(s *gcptest.Server, extra map[string]any) map[string]esc.Value {
	o := map[string]any{"workloadPoolId": pool, "providerId": prov, "serviceAccount": account}
	if _, ok := extra["tokenFile"]; !ok {
		o["token"] = s.SubjectToken(pool, prov, "repo:escfs/escfs", "", 10*time.Minute)
	}
	for k, v := range extra {
		if v == nil {
			delete(o, k)
		} else {
			o[k] = v
		}
	}
	return obj(map[string]any{"project": 123456789, "oidc": o}).Value.(map[string]esc.Value)
}

func open(t *testing.T, inputs map[string]esc.Value) (map[string]esc.Value, time.Time, error) {
	t.Helper()
	ctx, exp := providers.WithExpiry(context.Background())
	v, err := gcplogin.New().Open(ctx, inputs, nil)
	if err != nil {
		return nil, time.Time{}, err
	}
	return v.Value.(map[string]esc.Value), exp.Earliest(), nil
}

// TestOIDC exchanges a subject token at STS and impersonates the service
// account: the outputs are the account's token, its expiry (reported to
// the evaluation) and the project as ESC names them.
func TestOIDC(t *testing.T) {
	s := sim(t)
	for _, tc := range []struct {
		name     string
		extra    map[string]any
		lifetime time.Duration
	}{
		{name: "default lifetime", lifetime: time.Hour},
		{name: "30m", extra: map[string]any{"tokenLifetime": "30m"}, lifetime: 30 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now()
			out, reported, err := open(t, oidc(s, tc.extra))
			if err != nil {
				t.Fatal(err)
			}
			tok := out["accessToken"]
			if !tok.Secret || !strings.HasPrefix(tok.Value.(string), "ya29.sim-") {
				t.Errorf("accessToken = %+v, want a secret service-account token", tok)
			}
			if out["tokenType"].Value != "Bearer" || out["project"].Value != json.Number("123456789") {
				t.Errorf("tokenType, project = %v, %v", out["tokenType"].Value, out["project"].Value)
			}
			exp, err := time.Parse(time.RFC3339, out["expiry"].Value.(string))
			if err != nil {
				t.Fatal(err)
			}
			if want := before.Add(tc.lifetime); exp.Before(want.Add(-2*time.Second)) || exp.After(want.Add(2*time.Second)) {
				t.Errorf("expiry %v, want about %v", exp, want)
			}
			if !reported.Equal(exp) {
				t.Errorf("reported expiry %v, want the token's %v", reported, exp)
			}
		})
	}
}

// TestTokenFile reads the subject token from tokenFile, and by default
// from $GOOGLE_OIDC_TOKEN_FILE, and reports the file to the evaluation.
func TestTokenFile(t *testing.T) {
	s := sim(t)
	file := filepath.Join(t.TempDir(), "token")
	token := s.SubjectToken(pool, prov, "system:serviceaccount:ns:app", "", time.Minute)
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := open(t, oidc(s, map[string]any{"tokenFile": file})); err != nil {
		t.Fatal(err)
	}
	t.Setenv(gcplogin.TokenFileEnv, file)
	in := oidc(s, map[string]any{"tokenFile": nil})
	delete(in["oidc"].Value.(map[string]esc.Value), "tokenFile")
	if _, _, err := open(t, in); err != nil {
		t.Fatal(err)
	}
	subjects := s.Subjects()
	if len(subjects) != 2 || subjects[0] != token || subjects[1] != token {
		t.Errorf("STS got %d subject tokens, want the file's twice", len(subjects))
	}
}

func TestAccessToken(t *testing.T) {
	out, reported, err := open(t, obj(map[string]any{"project": 42, "accessToken": map[string]any{"accessToken": "ya29.given-token"}}).Value.(map[string]esc.Value))
	if err != nil {
		t.Fatal(err)
	}
	if out["accessToken"].Value != "ya29.given-token" || !out["accessToken"].Secret || out["project"].Value != json.Number("42") {
		t.Errorf("outputs %+v", out)
	}
	if _, ok := out["expiry"]; ok || !reported.IsZero() {
		t.Errorf("a given token has expiry %v, reported %v; want none", out["expiry"], reported)
	}
}

// TestErrors checks that every refusal is an error naming the call, the
// service's code and message, and never the subject token.
func TestErrors(t *testing.T) {
	s := sim(t)
	stale := s.SubjectToken(pool, prov, "x", "", -time.Minute)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T)
		in    map[string]esc.Value
		want  string
	}{
		{name: "unknown provider", in: oidc(s, map[string]any{"providerId": "gitlab"}),
			want: `gcp-login: oidc: sts token exchange: invalid_target: The target service indicated by the "audience" parameters is invalid.`},
		{name: "wrong audience", in: oidc(s, map[string]any{"token": s.SubjectToken(pool, prov, "x", "https://elsewhere", time.Minute)}),
			want: "gcp-login: oidc: sts token exchange: invalid_grant: The audience in ID Token [https://elsewhere] does not match the expected audience."},
		{name: "stale subject token", in: oidc(s, map[string]any{"token": stale}),
			want: "gcp-login: oidc: sts token exchange: invalid_grant: ID Token issued at"},
		{name: "forged subject token", in: oidc(s, map[string]any{"token": stale[:len(stale)-4] + "AAAA"}),
			want: "gcp-login: oidc: sts token exchange: invalid_grant: Invalid ID Token signature."},
		{name: "account not allowed", in: oidc(s, map[string]any{"serviceAccount": "other@proj.iam.gserviceaccount.com"}),
			want: "gcp-login: oidc: iamcredentials generateAccessToken: PERMISSION_DENIED: Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist)."},
		{name: "lifetime over IAM's", in: oidc(s, map[string]any{"tokenLifetime": "2h"}),
			want: "gcp-login: oidc: iamcredentials generateAccessToken: INVALID_ARGUMENT: The lifetime requested (7200s) exceeds the maximum allowed (3600s)."},
		{name: "down", setup: func(t *testing.T) { s.SetDown(true); t.Cleanup(func() { s.SetDown(false) }) }, in: oidc(s, nil),
			want: "gcp-login: oidc: sts token exchange: UNAVAILABLE: The service is currently unavailable."},
		{name: "unreachable", setup: func(t *testing.T) { t.Setenv("CLOUDSDK_API_ENDPOINT_OVERRIDES_STS", "http://127.0.0.1:1/") }, in: oidc(s, nil),
			want: "gcp-login: oidc: sts token exchange: endpoint unreachable"},
		{name: "plain http elsewhere", setup: func(t *testing.T) { t.Setenv("CLOUDSDK_API_ENDPOINT_OVERRIDES_STS", "http://sts.example.com/") }, in: oidc(s, nil),
			want: "CLOUDSDK_API_ENDPOINT_OVERRIDES_STS: http://sts.example.com/: plain http://"},
		{name: "no project", in: map[string]esc.Value{"accessToken": obj(map[string]any{"accessToken": "t"})},
			want: "gcp-login: project (the project number) is required"},
		{name: "project not a number", in: obj(map[string]any{"project": "my-project", "accessToken": map[string]any{"accessToken": "t"}}).Value.(map[string]esc.Value),
			want: "gcp-login: project is not a project number"},
		{name: "no form", in: obj(map[string]any{"project": 1}).Value.(map[string]esc.Value),
			want: "gcp-login: one login form is required (accessToken, oidc)"},
		{name: "both forms", in: func() map[string]esc.Value {
			in := oidc(s, nil)
			in["accessToken"] = obj(map[string]any{"accessToken": "t"})
			return in
		}(), want: "gcp-login: give accessToken or oidc, not both"},
		{name: "unknown input", in: oidc(s, map[string]any{"audience": "x"}),
			want: `gcp-login: oidc: unknown input "audience"`},
		{name: "bad pool id", in: oidc(s, map[string]any{"workloadPoolId": "Pool/../x"}),
			want: "gcp-login: oidc: workloadPoolId is not a valid ID"},
		{name: "bad account", in: oidc(s, map[string]any{"serviceAccount": "a/b:generate@x"}),
			want: "gcp-login: oidc: serviceAccount is not a valid service account email"},
		{name: "short lifetime", in: oidc(s, map[string]any{"tokenLifetime": "10s"}),
			want: "gcp-login: oidc: tokenLifetime is outside what IAM grants (1m0s to 12h0m0s)"},
		{name: "bad region", in: oidc(s, map[string]any{"region": "evil.example#"}),
			want: "gcp-login: oidc: region is not a Google Cloud region name"},
		{name: "no token", setup: func(t *testing.T) { t.Setenv(gcplogin.TokenFileEnv, "") }, in: func() map[string]esc.Value {
			in := oidc(s, nil)
			delete(in["oidc"].Value.(map[string]esc.Value), "token")
			return in
		}(), want: "gcp-login: oidc: no token: set token or tokenFile, or GOOGLE_OIDC_TOKEN_FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup(t)
			}
			_, _, err := open(t, tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want an error containing %q", err, tc.want)
			}
			o, _ := tc.in["oidc"].Value.(map[string]esc.Value)
			if tok, _ := o["token"].Value.(string); tok != "" && strings.Contains(err.Error(), tok) {
				t.Errorf("the error quotes the subject token")
			}
		})
	}
}
