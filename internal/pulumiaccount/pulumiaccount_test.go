package pulumiaccount_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/escfs/escfs/internal/pulumiaccount"
)

// isolate gives the test an empty home and none of the CLI's variables, and
// returns the default PULUMI_HOME (HOME/.pulumi).
func isolate(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, k := range []string{pulumiaccount.BackendURLEnv, pulumiaccount.APIEnv, pulumiaccount.AccessTokenEnv,
		pulumiaccount.HomeEnv, pulumiaccount.CredentialsPathEnv} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	return filepath.Join(home, ".pulumi")
}

// writeJSON writes v as dir/name.
func writeJSON(t *testing.T, dir, name string, v any) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// loggedIn is credentials.json as `pulumi login` leaves it for two clouds,
// the self-hosted one current.
var loggedIn = map[string]any{
	"current": "https://api.example.com",
	"accessTokens": map[string]string{
		"https://api.pulumi.com":  "pul-cloud-token",
		"https://api.example.com": "pul-example-token",
		"https://legacy.example":  "pul-legacy-token",
	},
	"accounts": map[string]any{
		"https://api.pulumi.com": map[string]any{
			"accessToken": "pul-cloud-token", "username": "alice", "organizations": []string{"alice", "acme"},
			"lastValidatedAt":  "2025-01-02T03:04:05Z",
			"tokenInformation": map[string]any{"name": "laptop"},
		},
		"https://api.example.com": map[string]any{"accessToken": "pul-example-token", "username": "bob"},
	},
}

func TestCurrent(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, dir string) // dir: the default PULUMI_HOME
		url     string                         // the argument
		want    pulumiaccount.Account
		wantErr string
	}{
		{
			name:  "current login",
			setup: func(t *testing.T, dir string) { writeJSON(t, dir, "credentials.json", loggedIn) },
			want:  pulumiaccount.Account{URL: "https://api.example.com", Token: "pul-example-token", Username: "bob"},
		},
		{
			name:  "given URL, trailing slash",
			setup: func(t *testing.T, dir string) { writeJSON(t, dir, "credentials.json", loggedIn) },
			url:   "https://api.pulumi.com/",
			want:  pulumiaccount.Account{URL: "https://api.pulumi.com", Token: "pul-cloud-token", Username: "alice"},
		},
		{
			name:  "token in accessTokens only",
			setup: func(t *testing.T, dir string) { writeJSON(t, dir, "credentials.json", loggedIn) },
			url:   "https://legacy.example",
			want:  pulumiaccount.Account{URL: "https://legacy.example", Token: "pul-legacy-token"},
		},
		{
			name: "PULUMI_BACKEND_URL before credentials current",
			setup: func(t *testing.T, dir string) {
				writeJSON(t, dir, "credentials.json", loggedIn)
				t.Setenv(pulumiaccount.BackendURLEnv, "https://api.pulumi.com")
			},
			want: pulumiaccount.Account{URL: "https://api.pulumi.com", Token: "pul-cloud-token", Username: "alice"},
		},
		{
			name: "self-managed PULUMI_BACKEND_URL is skipped",
			setup: func(t *testing.T, dir string) {
				writeJSON(t, dir, "credentials.json", loggedIn)
				t.Setenv(pulumiaccount.BackendURLEnv, "file://~")
			},
			want: pulumiaccount.Account{URL: "https://api.example.com", Token: "pul-example-token", Username: "bob"},
		},
		{
			name: "self-managed current login falls back to Pulumi Cloud",
			setup: func(t *testing.T, dir string) {
				writeJSON(t, dir, "credentials.json", map[string]any{
					"current": "s3://bucket", "accessTokens": map[string]string{"https://api.pulumi.com": "pul-cloud-token", "s3://bucket": ""},
				})
			},
			want: pulumiaccount.Account{URL: "https://api.pulumi.com", Token: "pul-cloud-token"},
		},
		{
			name: "PULUMI_API when nothing is current",
			setup: func(t *testing.T, dir string) {
				t.Setenv(pulumiaccount.APIEnv, "http://127.0.0.1:8080/")
				t.Setenv(pulumiaccount.AccessTokenEnv, "pul-env-token")
			},
			want: pulumiaccount.Account{URL: "http://127.0.0.1:8080", Token: "pul-env-token"},
		},
		{
			name: "PULUMI_ACCESS_TOKEN overrides the stored token and its user name",
			setup: func(t *testing.T, dir string) {
				writeJSON(t, dir, "credentials.json", loggedIn)
				t.Setenv(pulumiaccount.AccessTokenEnv, "pul-env-token")
			},
			want: pulumiaccount.Account{URL: "https://api.example.com", Token: "pul-env-token"},
		},
		{
			name: "PULUMI_ACCESS_TOKEN equal to the stored one keeps the user name",
			setup: func(t *testing.T, dir string) {
				writeJSON(t, dir, "credentials.json", loggedIn)
				t.Setenv(pulumiaccount.AccessTokenEnv, "pul-example-token")
			},
			want: pulumiaccount.Account{URL: "https://api.example.com", Token: "pul-example-token", Username: "bob"},
		},
		{
			name: "default org from config.json",
			setup: func(t *testing.T, dir string) {
				writeJSON(t, dir, "credentials.json", loggedIn)
				writeJSON(t, dir, "config.json", map[string]any{"backends": map[string]any{
					"https://api.example.com": map[string]string{"defaultOrg": "acme"},
					"https://api.pulumi.com":  map[string]string{"defaultOrg": "other"},
				}})
			},
			want: pulumiaccount.Account{URL: "https://api.example.com", Token: "pul-example-token", Username: "bob", DefaultOrg: "acme"},
		},
		{
			name: "PULUMI_HOME",
			setup: func(t *testing.T, dir string) {
				home := filepath.Join(t.TempDir(), "ph")
				t.Setenv(pulumiaccount.HomeEnv, home)
				writeJSON(t, home, "credentials.json", loggedIn)
				writeJSON(t, dir, "credentials.json", map[string]any{"current": "https://wrong.example"})
			},
			want: pulumiaccount.Account{URL: "https://api.example.com", Token: "pul-example-token", Username: "bob"},
		},
		{
			name: "PULUMI_CREDENTIALS_PATH before PULUMI_HOME",
			setup: func(t *testing.T, dir string) {
				creds := t.TempDir()
				t.Setenv(pulumiaccount.HomeEnv, t.TempDir())
				t.Setenv(pulumiaccount.CredentialsPathEnv, creds)
				writeJSON(t, creds, "credentials.json", loggedIn)
			},
			want: pulumiaccount.Account{URL: "https://api.example.com", Token: "pul-example-token", Username: "bob"},
		},
		{
			name: "empty credentials.json is none",
			setup: func(t *testing.T, dir string) {
				os.MkdirAll(dir, 0o700)
				os.WriteFile(filepath.Join(dir, "credentials.json"), nil, 0o600)
			},
			want:    pulumiaccount.Account{URL: pulumiaccount.CloudURL},
			wantErr: "https://api.pulumi.com: not logged in to Pulumi Cloud: run `esc login` (or `pulumi login`) or set PULUMI_ACCESS_TOKEN",
		},
		{
			name:    "nothing at all",
			want:    pulumiaccount.Account{URL: pulumiaccount.CloudURL},
			wantErr: "https://api.pulumi.com: not logged in",
		},
		{
			name:    "logged in elsewhere only",
			setup:   func(t *testing.T, dir string) { writeJSON(t, dir, "credentials.json", loggedIn) },
			url:     "https://api.unknown.example",
			want:    pulumiaccount.Account{URL: "https://api.unknown.example"},
			wantErr: "https://api.unknown.example: not logged in",
		},
		{
			name: "corrupt credentials.json is named, not quoted",
			setup: func(t *testing.T, dir string) {
				os.MkdirAll(dir, 0o700)
				os.WriteFile(filepath.Join(dir, "credentials.json"), []byte(`{"accessTokens": {"x": "pul-secret-token"`), 0o600)
			},
			wantErr: "credentials.json: not valid JSON",
		},
		{
			name:    "not a cloud URL",
			url:     "file://~",
			wantErr: "file://~ is not a Pulumi Cloud URL",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := isolate(t)
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			got, err := pulumiaccount.Current(tc.url)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "pul-") {
					t.Errorf("error quotes a token: %v", err)
				}
				if strings.Contains(tc.wantErr, "not logged in") && !errors.Is(err, pulumiaccount.ErrNotLoggedIn) {
					t.Errorf("error %v is not ErrNotLoggedIn", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %#v (token %q), want %#v (token %q)", got, got.Token, tc.want, tc.want.Token)
			}
		})
	}
}

func TestDefaultBackend(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{name: "nothing", want: pulumiaccount.CloudURL},
		{name: "PULUMI_API", setup: func(t *testing.T, dir string) { t.Setenv(pulumiaccount.APIEnv, "https://api.example.com/") }, want: "https://api.example.com"},
		{name: "current login", setup: func(t *testing.T, dir string) {
			writeJSON(t, dir, "credentials.json", map[string]any{"current": "file:///srv/state"})
			t.Setenv(pulumiaccount.APIEnv, "https://api.example.com")
		}, want: "file:///srv/state"},
		{name: "PULUMI_BACKEND_URL of any kind", setup: func(t *testing.T, dir string) {
			writeJSON(t, dir, "credentials.json", loggedIn)
			t.Setenv(pulumiaccount.BackendURLEnv, "s3://bucket/prefix?region=eu-west-1")
		}, want: "s3://bucket/prefix?region=eu-west-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := isolate(t)
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			got, err := pulumiaccount.DefaultBackend()
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestFormatNeverShowsToken formats an Account, alone and inside other
// values, with every verb a log line or an error might use.
func TestFormatNeverShowsToken(t *testing.T) {
	a := pulumiaccount.Account{URL: "https://api.pulumi.com", Token: "pul-0123456789abcdef", Username: "alice", DefaultOrg: "acme"}
	type holder struct {
		Account pulumiaccount.Account
		Ptr     *pulumiaccount.Account
	}
	js, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	outs := []string{a.String(), string(js)}
	for _, v := range []any{a, &a, holder{a, &a}, []pulumiaccount.Account{a}, map[string]pulumiaccount.Account{"x": a}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%T %d"} {
			outs = append(outs, fmt.Sprintf(verb, v))
		}
	}
	outs = append(outs, fmt.Sprint(a), fmt.Sprintln(a), fmt.Errorf("open: %w: %v", errors.New("x"), a).Error())
	for _, s := range outs {
		if strings.Contains(s, "pul-0123456789abcdef") || strings.Contains(s, "7075") /* hex of "pu" */ {
			t.Errorf("formatted account shows the token: %s", s)
		}
	}
	if want := "alice@https://api.pulumi.com (org acme)"; a.String() != want {
		t.Errorf("String() = %q, want %q", a.String(), want)
	}
	if got := fmt.Sprintf("%q", a); got != `"alice@https://api.pulumi.com (org acme)"` {
		t.Errorf("%%q = %s", got)
	}
}
