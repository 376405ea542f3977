package awslogin_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/pulumi/esc"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/internal/kumotest"
	"github.com/escfs/escfs/providers"
	"github.com/escfs/escfs/providers/awsclient"
	"github.com/escfs/escfs/providers/awslogin"
)

// A web identity token shaped like a JWT. (kumo turns form values that parse
// as integers or booleans into JSON numbers and booleans, and then fails to
// read them as strings: test values must not look like either.)
const testToken = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOmVzY2ZzIn0.c2lnbmF0dXJl"

const testRole = "arn:aws:iam::123456789012:role/escfs-test"

// envSecret is the secret key kumotest.Env gives the default chain.
const envSecret = "kumo-test-secret"

// startKumo starts kumo behind a recorder and points the SDK at the
// recorder, with kumotest's dummy credentials in the environment.
func startKumo(t *testing.T) *kumotest.Recorder {
	t.Helper()
	rec := kumotest.NewRecorder(t, kumotest.ProxyTo(t, kumotest.Start(t)))
	kumotest.Env(t, rec.URL)
	return rec
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// output is what a test expects of the provider's value.
type output struct {
	accessKeyID     string        // "" for any
	secretAccessKey string        // "" for any
	expiresIn       time.Duration // 0: no expiration output and no expiry reported
}

// checkOutputs checks v against want and returns its credentials.
func checkOutputs(t *testing.T, v esc.Value, reported time.Time, want output) map[string]string {
	t.Helper()
	m, ok := v.Value.(map[string]esc.Value)
	if !ok {
		t.Fatalf("Open = %#v, want an object", v)
	}
	got := map[string]string{}
	for k, x := range m {
		s, ok := x.Value.(string)
		if !ok {
			t.Fatalf("%s = %#v, want a string", k, x.Value)
		}
		got[k] = s
		if secret := k == "secretAccessKey" || k == "sessionToken"; x.Secret != secret {
			t.Errorf("%s secret = %v, want %v", k, x.Secret, secret)
		}
	}
	keys := []string{"accessKeyId", "secretAccessKey", "sessionToken"}
	if want.expiresIn != 0 {
		keys = append(keys, "expiration")
	}
	if gotKeys := slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}); !slices.Equal(gotKeys, slices.Sorted(slices.Values(keys))) {
		t.Errorf("outputs %v, want %v", gotKeys, keys)
	}
	if got["accessKeyId"] == "" || got["secretAccessKey"] == "" {
		t.Errorf("empty credentials: accessKeyId %q, secretAccessKey empty %v", got["accessKeyId"], got["secretAccessKey"] == "")
	}
	if want.accessKeyID != "" && got["accessKeyId"] != want.accessKeyID {
		t.Errorf("accessKeyId = %q, want %q", got["accessKeyId"], want.accessKeyID)
	}
	if want.secretAccessKey != "" && got["secretAccessKey"] != want.secretAccessKey {
		t.Errorf("secretAccessKey is not the expected one")
	}
	if want.expiresIn == 0 {
		if !reported.IsZero() {
			t.Errorf("reported expiry %v for credentials that do not expire", reported)
		}
		return got
	}
	exp, err := time.Parse(time.RFC3339, got["expiration"])
	if err != nil {
		t.Fatalf("expiration: %v", err)
	}
	if !strings.HasSuffix(got["expiration"], "Z") {
		t.Errorf("expiration %q is not in UTC", got["expiration"])
	}
	if d := time.Until(exp); d < want.expiresIn-time.Minute || d > want.expiresIn+time.Minute {
		t.Errorf("expiration %s is %v away, want about %v", got["expiration"], d.Round(time.Second), want.expiresIn)
	}
	if !reported.Equal(exp) {
		t.Errorf("reported expiry %v, want the expiration output %v", reported, exp)
	}
	return got
}

// checkWorks uses creds with the SDK (sts:GetCallerIdentity) and checks
// that the request reached rec signed with them.
func checkWorks(t *testing.T, rec *kumotest.Recorder, creds map[string]string) {
	t.Helper()
	ctx := context.Background()
	cfg, err := awsclient.Load(ctx, awsclient.Options{Login: &awsclient.Login{
		AccessKeyID: creds["accessKeyId"], SecretAccessKey: creds["secretAccessKey"], SessionToken: creds["sessionToken"],
	}})
	if err != nil {
		t.Fatal(err)
	}
	rec.Take()
	out, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("GetCallerIdentity with the credentials: %v", err)
	}
	if out.Account == nil || *out.Account == "" {
		t.Errorf("GetCallerIdentity = %+v", out)
	}
	calls := rec.Take()
	if len(calls) != 1 {
		t.Fatalf("GetCallerIdentity made %d calls", len(calls))
	}
	if c := calls[0]; c.AccessKeyID != creds["accessKeyId"] || c.SecurityToken != creds["sessionToken"] {
		t.Errorf("GetCallerIdentity signed by %q with security token %v, want %q and the session token", c.AccessKeyID, c.SecurityToken != "", creds["accessKeyId"])
	}
}

// TestOpenAgainstKumo opens every STS-backed form against kumo over real
// HTTP and uses the credentials it returns.
func TestOpenAgainstKumo(t *testing.T) {
	rec := startKumo(t)

	type wantCall struct {
		action      string
		accessKeyID string // who signed it; "" for unsigned
		params      map[string]string
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) map[string]esc.Value
		calls []wantCall
		want  output
	}{
		{
			name: "oidc token value",
			setup: func(t *testing.T, dir string) map[string]esc.Value {
				return map[string]esc.Value{"oidc": obj("roleArn", testRole, "sessionName", "ci-run", "token", esc.NewSecret(testToken))}
			},
			calls: []wantCall{{action: "AssumeRoleWithWebIdentity", params: map[string]string{
				"RoleArn": testRole, "RoleSessionName": "ci-run", "WebIdentityToken": testToken, "DurationSeconds": "3600"}}},
			want: output{expiresIn: time.Hour},
		},
		{
			name: "oidc tokenFile, duration and policyArns",
			setup: func(t *testing.T, dir string) map[string]esc.Value {
				f := writeFile(t, filepath.Join(dir, "token"), testToken+"\n", 0o600)
				return map[string]esc.Value{"oidc": obj("roleArn", testRole, "sessionName", "ci-run", "tokenFile", f, "duration", "15m",
					"policyArns", []esc.Value{esc.NewValue("arn:aws:iam::aws:policy/ReadOnlyAccess"), esc.NewValue("arn:aws:iam::aws:policy/job")})}
			},
			calls: []wantCall{{action: "AssumeRoleWithWebIdentity", params: map[string]string{
				"WebIdentityToken": testToken, "DurationSeconds": "900",
				"PolicyArns.member.1.arn": "arn:aws:iam::aws:policy/ReadOnlyAccess", "PolicyArns.member.2.arn": "arn:aws:iam::aws:policy/job"}}},
			want: output{expiresIn: 15 * time.Minute},
		},
		{
			name: "oidc default tokenFile from AWS_WEB_IDENTITY_TOKEN_FILE",
			setup: func(t *testing.T, dir string) map[string]esc.Value {
				t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", writeFile(t, filepath.Join(dir, "eks-token"), testToken, 0o600))
				return map[string]esc.Value{"oidc": obj("roleArn", testRole, "sessionName", "pod", "duration", "2h")}
			},
			calls: []wantCall{{action: "AssumeRoleWithWebIdentity", params: map[string]string{"WebIdentityToken": testToken, "DurationSeconds": "7200", "RoleSessionName": "pod"}}},
			want:  output{expiresIn: 2 * time.Hour},
		},
		{
			// As in a CI job or a pod with only a projected token: no
			// credentials and no AWS_ROLE_ARN, which the SDK's own web
			// identity chain would refuse.
			name: "oidc with AWS_WEB_IDENTITY_TOKEN_FILE and nothing else",
			setup: func(t *testing.T, dir string) map[string]esc.Value {
				t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", writeFile(t, filepath.Join(dir, "ci-token"), testToken, 0o600))
				t.Setenv("AWS_ACCESS_KEY_ID", "")
				t.Setenv("AWS_SECRET_ACCESS_KEY", "")
				return map[string]esc.Value{"oidc": obj("roleArn", testRole, "sessionName", "ci")}
			},
			calls: []wantCall{{action: "AssumeRoleWithWebIdentity", params: map[string]string{"WebIdentityToken": testToken, "RoleArn": testRole}}},
			want:  output{expiresIn: time.Hour},
		},
		{
			name: "oidc without a region configured",
			setup: func(t *testing.T, dir string) map[string]esc.Value {
				t.Setenv("AWS_REGION", "")
				return map[string]esc.Value{"oidc": obj("roleArn", testRole, "sessionName", "ci-run", "token", testToken)}
			},
			calls: []wantCall{{action: "AssumeRoleWithWebIdentity", params: map[string]string{"WebIdentityToken": testToken}}},
			want:  output{expiresIn: time.Hour},
		},
		{
			name: "assumeRole with the environment's credentials",
			setup: func(t *testing.T, dir string) map[string]esc.Value {
				return map[string]esc.Value{"assumeRole": obj("roleArn", testRole)}
			},
			calls: []wantCall{{action: "AssumeRole", accessKeyID: "AKIAKUMOTEST", params: map[string]string{
				"RoleArn": testRole, "RoleSessionName": "escfs", "DurationSeconds": "3600", "ExternalId": ""}}},
			want: output{expiresIn: time.Hour},
		},
		{
			name: "assumeRole with session name, duration and external ID",
			setup: func(t *testing.T, dir string) map[string]esc.Value {
				return map[string]esc.Value{"assumeRole": obj("roleArn", testRole, "sessionName", "deploy@ci", "duration", "90m", "externalId", "ext-abc")}
			},
			calls: []wantCall{{action: "AssumeRole", accessKeyID: "AKIAKUMOTEST", params: map[string]string{
				"RoleSessionName": "deploy@ci", "DurationSeconds": "5400", "ExternalId": "ext-abc"}}},
			want: output{expiresIn: 90 * time.Minute},
		},
		{
			name: "assumeRole with a profile's credentials",
			setup: func(t *testing.T, dir string) map[string]esc.Value {
				writeFile(t, os.Getenv("AWS_SHARED_CREDENTIALS_FILE"), "[caller]\naws_access_key_id = AKIACALLER\naws_secret_access_key = caller-secret\n", 0o600)
				return map[string]esc.Value{"assumeRole": obj("roleArn", testRole, "profile", "caller")}
			},
			calls: []wantCall{{action: "AssumeRole", accessKeyID: "AKIACALLER", params: map[string]string{"RoleArn": testRole}}},
			want:  output{expiresIn: time.Hour},
		},
		{
			name: "profile with keys in the credentials file",
			setup: func(t *testing.T, dir string) map[string]esc.Value {
				writeFile(t, os.Getenv("AWS_SHARED_CREDENTIALS_FILE"), "[dev]\naws_access_key_id = AKIADEVPROFILE\naws_secret_access_key = dev-secret\n", 0o600)
				return map[string]esc.Value{"profile": esc.NewValue("dev")}
			},
			want: output{accessKeyID: "AKIADEVPROFILE", secretAccessKey: "dev-secret"},
		},
		{
			name: "profile assuming a role from a source profile",
			setup: func(t *testing.T, dir string) map[string]esc.Value {
				writeFile(t, os.Getenv("AWS_SHARED_CREDENTIALS_FILE"), "[base]\naws_access_key_id = AKIABASE\naws_secret_access_key = base-secret\n", 0o600)
				writeFile(t, os.Getenv("AWS_CONFIG_FILE"), "[profile deploy]\nrole_arn = "+testRole+"\nsource_profile = base\nrole_session_name = from-profile\n", 0o600)
				return map[string]esc.Value{"profile": esc.NewValue("deploy")}
			},
			calls: []wantCall{{action: "AssumeRole", accessKeyID: "AKIABASE", params: map[string]string{"RoleArn": testRole, "RoleSessionName": "from-profile"}}},
			want:  output{expiresIn: 15 * time.Minute}, // the SDK's default for profile roles
		},
		{
			name: "profile with a credential_process",
			setup: func(t *testing.T, dir string) map[string]esc.Value {
				exp := time.Now().Add(40 * time.Minute).UTC().Format(time.RFC3339)
				script := writeFile(t, filepath.Join(dir, "creds.sh"), fmt.Sprintf(`#!/bin/sh
echo '{"Version": 1, "AccessKeyId": "ASIAPROCESS", "SecretAccessKey": "process-secret", "SessionToken": "process-token", "Expiration": "%s"}'
`, exp), 0o755)
				writeFile(t, os.Getenv("AWS_CONFIG_FILE"), "[profile proc]\ncredential_process = "+script+"\n", 0o600)
				return map[string]esc.Value{"profile": esc.NewValue("proc")}
			},
			want: output{accessKeyID: "ASIAPROCESS", secretAccessKey: "process-secret", expiresIn: 40 * time.Minute},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inputs := tt.setup(t, t.TempDir())
			rec.Take()
			ctx, expiry := providers.WithExpiry(context.Background())
			v, err := awslogin.New().Open(ctx, inputs, nil)
			if err != nil {
				t.Fatal(err)
			}
			calls := rec.Take()
			if len(calls) != len(tt.calls) {
				t.Fatalf("%d calls to AWS, want %d: %+v", len(calls), len(tt.calls), calls)
			}
			for i, want := range tt.calls {
				c := calls[i]
				if c.Action != want.action || c.AccessKeyID != want.accessKeyID {
					t.Errorf("call %d: %s signed by %q, want %s signed by %q", i, c.Action, c.AccessKeyID, want.action, want.accessKeyID)
				}
				for k, w := range want.params {
					if got := c.Form.Get(k); got != w {
						t.Errorf("call %d: %s = %q, want %q", i, k, got, w)
					}
				}
			}
			creds := checkOutputs(t, v, expiry.Earliest(), tt.want)
			checkWorks(t, rec, creds)
		})
	}
}

// TestDefaultSessionName checks the session name of assumeRole in an
// evaluation: escfs- and the environment name, made acceptable to STS.
func TestDefaultSessionName(t *testing.T) {
	rec := startKumo(t)
	for env, want := range map[string]string{
		"default/aws":                  "escfs-default-aws",
		"team/prod-eu":                 "escfs-team-prod-eu",
		"<yaml>":                       "escfs--yaml-",
		"p/" + strings.Repeat("x", 80): "escfs-p-" + strings.Repeat("x", 56),
		"":                             "escfs",
	} {
		rec.Take()
		_, err := awslogin.New().Open(context.Background(), map[string]esc.Value{"assumeRole": obj("roleArn", testRole)}, execContext(t, env))
		if err != nil {
			t.Fatal(err)
		}
		calls := rec.Take()
		if len(calls) != 1 {
			t.Fatalf("%q: %d calls", env, len(calls))
		}
		if got := calls[0].Form.Get("RoleSessionName"); got != want {
			t.Errorf("environment %q: session name %q, want %q", env, got, want)
		}
	}
}

func execContext(t *testing.T, env string) esc.EnvExecContext {
	t.Helper()
	ec, err := esc.NewExecContext(map[string]esc.Value{})
	if err != nil {
		t.Fatal(err)
	}
	if env == "" {
		return ec
	}
	return ec.CopyForEnv(env)
}

// stsError is an STS error answer.
func stsError(status int, code, message string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>x</RequestId></ErrorResponse>`, code, message)
	}
}

// TestOpenErrors checks what the STS-backed forms say when AWS refuses or
// cannot be reached: the form, the operation, the AWS code and message, and
// never a secret.
func TestOpenErrors(t *testing.T) {
	oidc := map[string]esc.Value{"oidc": obj("roleArn", testRole, "sessionName", "ci", "token", esc.NewSecret(testToken))}
	assumeRole := map[string]esc.Value{"assumeRole": obj("roleArn", testRole)}
	tests := []struct {
		name      string
		handler   http.HandlerFunc // nil: the endpoint is a closed port
		inputs    map[string]esc.Value
		wantErr   string // the whole message, or its prefix if wantCalls is 0
		wantCalls int
	}{
		{
			name:      "oidc access denied",
			handler:   stsError(http.StatusForbidden, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity"),
			inputs:    oidc,
			wantErr:   "aws-login oidc: sts:AssumeRoleWithWebIdentity: AccessDenied: Not authorized to perform sts:AssumeRoleWithWebIdentity",
			wantCalls: 1,
		},
		{
			name:      "oidc expired token",
			handler:   stsError(http.StatusBadRequest, "ExpiredTokenException", "Token expired: current date/time 1764270000 must be before the expiration date/time 1764266400"),
			inputs:    oidc,
			wantErr:   "aws-login oidc: sts:AssumeRoleWithWebIdentity: ExpiredTokenException: Token expired: current date/time 1764270000 must be before the expiration date/time 1764266400",
			wantCalls: 1,
		},
		{
			name:      "oidc invalid token",
			handler:   stsError(http.StatusBadRequest, "InvalidIdentityToken", "Couldn't retrieve verification key from your identity provider"),
			inputs:    oidc,
			wantErr:   "aws-login oidc: sts:AssumeRoleWithWebIdentity: InvalidIdentityToken: Couldn't retrieve verification key from your identity provider",
			wantCalls: 1,
		},
		{
			name:      "assumeRole access denied",
			handler:   stsError(http.StatusForbidden, "AccessDenied", "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: sts:AssumeRole"),
			inputs:    assumeRole,
			wantErr:   "aws-login assumeRole: sts:AssumeRole: AccessDenied: User: arn:aws:iam::123456789012:user/ci is not authorized to perform: sts:AssumeRole",
			wantCalls: 1,
		},
		{
			name:    "oidc endpoint unreachable",
			inputs:  oidc,
			wantErr: "aws-login oidc: sts:AssumeRoleWithWebIdentity: endpoint unreachable: ",
		},
		{
			name:    "assumeRole endpoint unreachable",
			inputs:  assumeRole,
			wantErr: "aws-login assumeRole: sts:AssumeRole: endpoint unreachable: ",
		},
		{
			name:    "profile role endpoint unreachable",
			inputs:  map[string]esc.Value{"profile": esc.NewValue("deploy")},
			wantErr: `aws-login profile: credentials of profile "deploy": `,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			endpoint := kumotest.ClosedURL(t)
			var rec *kumotest.Recorder
			if tt.handler != nil {
				rec = kumotest.NewRecorder(t, tt.handler)
				endpoint = rec.URL
			}
			kumotest.Env(t, endpoint)
			writeFile(t, os.Getenv("AWS_SHARED_CREDENTIALS_FILE"), "[base]\naws_access_key_id = AKIABASE\naws_secret_access_key = base-secret\n", 0o600)
			writeFile(t, os.Getenv("AWS_CONFIG_FILE"), "[profile deploy]\nrole_arn = "+testRole+"\nsource_profile = base\n", 0o600)

			start := time.Now()
			v, err := awslogin.New().Open(context.Background(), tt.inputs, nil)
			elapsed := time.Since(start)
			if err == nil {
				t.Fatalf("Open = %v, want an error", v)
			}
			msg := err.Error()
			t.Logf("error after %v: %s", elapsed.Round(time.Millisecond), msg)
			if tt.wantCalls == 0 && !strings.HasPrefix(msg, tt.wantErr) || tt.wantCalls != 0 && msg != tt.wantErr {
				t.Errorf("error %q, want %q", msg, tt.wantErr)
			}
			for _, secret := range []string{testToken, envSecret, "base-secret"} {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q reveals a secret", msg)
				}
			}
			if elapsed > providers.CallTimeout {
				t.Errorf("Open took %v, more than the bound %v", elapsed, providers.CallTimeout)
			}
			if rec != nil {
				if n := len(rec.Take()); n != tt.wantCalls {
					t.Errorf("%d calls to STS, want %d", n, tt.wantCalls)
				}
			}
		})
	}
}

// TestRetries checks that a call that fails transiently is retried.
func TestRetries(t *testing.T) {
	proxy := kumotest.ProxyTo(t, kumotest.Start(t))
	var mu sync.Mutex
	failures := 2
	rec := kumotest.NewRecorder(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fail := failures > 0
		failures--
		mu.Unlock()
		if fail {
			stsError(http.StatusServiceUnavailable, "ServiceUnavailable", "try again")(w, r)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	kumotest.Env(t, rec.URL)
	ctx, expiry := providers.WithExpiry(context.Background())
	v, err := awslogin.New().Open(ctx, map[string]esc.Value{"oidc": obj("roleArn", testRole, "sessionName", "ci", "token", testToken)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkOutputs(t, v, expiry.Earliest(), output{expiresIn: time.Hour})
	if n := len(rec.Take()); n != 3 {
		t.Errorf("%d calls, want 3 (two failures, one success)", n)
	}
}

// TestThroughEvaluatorAgainstKumo evaluates definitions that log in with
// oidc and assumeRole, as users write them.
func TestThroughEvaluatorAgainstKumo(t *testing.T) {
	rec := startKumo(t)
	dir := t.TempDir()
	tokenFile := writeFile(t, filepath.Join(t.TempDir(), "token"), testToken, 0o600)
	writeFile(t, filepath.Join(dir, "aws.yaml"), `values:
  creds:
    fn::open::aws-login:
      oidc:
        roleArn: `+testRole+`
        sessionName: ci
        duration: 20m
        tokenFile: `+tokenFile+`
  deploy:
    fn::open::aws-login:
      assumeRole:
        roleArn: arn:aws:iam::123456789012:role/deploy
  environmentVariables:
    AWS_ACCESS_KEY_ID: ${creds.accessKeyId}
    AWS_SECRET_ACCESS_KEY: ${creds.secretAccessKey}
    AWS_SESSION_TOKEN: ${creds.sessionToken}
    AWS_CREDENTIAL_EXPIRATION: ${creds.expiration}
    DEPLOY_KEY_EXPIRATION: ${deploy.expiration}
`, 0o644)
	writeFile(t, filepath.Join(dir, "twoforms.yaml"), `values:
  creds:
    fn::open::aws-login:
      profile: dev
      assumeRole:
        roleArn: `+testRole+`
`, 0o644)
	writeFile(t, filepath.Join(dir, "norole.yaml"), `values:
  creds:
    fn::open::aws-login:
      oidc:
        sessionName: ci
        token: `+testToken+`
`, 0o644)
	writeFile(t, filepath.Join(dir, "notoken.yaml"), `values:
  creds:
    fn::open::aws-login:
      oidc:
        roleArn: `+testRole+`
        sessionName: ci
        tokenFile: `+filepath.Join(dir, "missing-token")+`
`, 0o644)
	tree, err := eval.ScanDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := &eval.Evaluator{Providers: providers.NewRegistry(map[string]esc.Provider{awslogin.Name: awslogin.New()})}

	before := time.Now()
	snap, err := e.Evaluate(context.Background(), tree, eval.Request{Name: "aws"})
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]eval.Var{}
	for _, v := range snap.Vars {
		vars[v.Name] = v
	}
	exp, err := time.Parse(time.RFC3339, vars["AWS_CREDENTIAL_EXPIRATION"].Value)
	if err != nil {
		t.Fatalf("AWS_CREDENTIAL_EXPIRATION: %v", err)
	}
	if !snap.ExpiresAt.Equal(exp) {
		t.Errorf("ExpiresAt = %v, want the oidc expiration %v, the earlier", snap.ExpiresAt, exp)
	}
	if d := exp.Sub(before); d < 19*time.Minute || d > 21*time.Minute {
		t.Errorf("expiration %v after the evaluation, want about 20m", d)
	}
	if deploy, err := time.Parse(time.RFC3339, vars["DEPLOY_KEY_EXPIRATION"].Value); err != nil || !deploy.After(exp) {
		t.Errorf("DEPLOY_KEY_EXPIRATION = %q, want a time after %v", vars["DEPLOY_KEY_EXPIRATION"].Value, exp)
	}
	for name, secret := range map[string]bool{"AWS_ACCESS_KEY_ID": false, "AWS_SECRET_ACCESS_KEY": true, "AWS_SESSION_TOKEN": true, "AWS_CREDENTIAL_EXPIRATION": false} {
		if v, ok := vars[name]; !ok || v.Secret != secret || v.Value == "" {
			t.Errorf("%s = %+v, want a value, secret %v", name, v, secret)
		}
	}
	if !slices.Contains(snap.Secrets, vars["AWS_SECRET_ACCESS_KEY"].Value) {
		t.Errorf("the secret key is not among the snapshot's secrets")
	}
	if !slices.Contains(snap.Watched, tokenFile) {
		t.Errorf("Watched = %v, want the token file %s", snap.Watched, tokenFile)
	}
	if want := "export " + eval.ExpiresAtVar + "='" + exp.UTC().Format(time.RFC3339) + "'\n"; !strings.Contains(string(snap.Env), want) {
		t.Errorf("Env lacks %q:\n%s", want, snap.Env)
	}
	var sessions []string
	for _, c := range rec.Take() {
		if c.Action == "AssumeRole" {
			sessions = append(sessions, c.Form.Get("RoleSessionName"))
		}
	}
	if !slices.Equal(sessions, []string{"escfs-default-aws"}) {
		t.Errorf("AssumeRole session names %q, want escfs-default-aws", sessions)
	}

	for env, want := range map[string]string{
		"twoforms": "aws-login: only one login form may be given, not assumeRole and profile",
		"norole":   "roleArn",
		"notoken":  "aws-login oidc: read token file: open " + filepath.Join(dir, "missing-token") + ": no such file or directory",
	} {
		snap, err := e.Evaluate(context.Background(), tree, eval.Request{Name: env})
		var de *eval.DiagnosticsError
		if !errors.As(err, &de) || snap == nil {
			t.Fatalf("%s: Evaluate = %v, %v; want diagnostics", env, snap, err)
		}
		if d := de.Diagnostics[0]; !strings.Contains(d.Message, want) || d.File != filepath.Join(dir, env+".yaml") || d.Line == 0 {
			t.Errorf("%s: diagnostic %v, want one located in the file saying %q", env, d, want)
		}
	}
}

// TestInputErrors checks the inputs that are refused before any call to AWS.
func TestInputErrors(t *testing.T) {
	rec := kumotest.NewRecorder(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no call expected", http.StatusTeapot)
	}))
	kumotest.Env(t, rec.URL)
	dir := t.TempDir()
	emptyFile := writeFile(t, filepath.Join(dir, "empty"), "", 0o600)
	blankFile := writeFile(t, filepath.Join(dir, "blank"), " \n\t\n", 0o600)
	bigFile := writeFile(t, filepath.Join(dir, "big"), strings.Repeat("x", 1<<20+1), 0o600)
	missing := filepath.Join(dir, "missing")
	oidc := func(kv ...any) map[string]esc.Value {
		return map[string]esc.Value{"oidc": obj(append([]any{"roleArn", testRole, "sessionName", "ci"}, kv...)...)}
	}
	static := obj("accessKeyId", "A", "secretAccessKey", "S")
	tests := []struct {
		name    string
		inputs  map[string]esc.Value
		env     map[string]string
		wantErr string
		watched string // the file reported to the evaluation
	}{
		{name: "no form", inputs: map[string]esc.Value{}, wantErr: "aws-login: one login form is required (static, oidc, assumeRole, profile)"},
		{name: "only null forms", inputs: map[string]esc.Value{"oidc": {}, "profile": {}}, wantErr: "aws-login: one login form is required (static, oidc, assumeRole, profile)"},
		{name: "two forms", inputs: map[string]esc.Value{"static": static, "oidc": obj("roleArn", testRole)}, wantErr: "aws-login: only one login form may be given, not static and oidc"},
		{name: "three forms", inputs: map[string]esc.Value{"profile": esc.NewValue("p"), "static": static, "assumeRole": obj("roleArn", testRole)}, wantErr: "aws-login: only one login form may be given, not static and assumeRole and profile"},
		{name: "a form and a null one", inputs: map[string]esc.Value{"static": static, "oidc": {}}, wantErr: ""},
		{name: "unknown form", inputs: map[string]esc.Value{"odic": obj("roleArn", testRole)}, wantErr: `aws-login: unknown input "odic": the login forms are static, oidc, assumeRole, profile`},
		{name: "oidc not an object", inputs: map[string]esc.Value{"oidc": esc.NewValue(testRole)}, wantErr: `aws-login oidc: input "oidc" must be an object`},
		{name: "oidc unknown input", inputs: oidc("token", testToken, "subjectAttributes", []esc.Value{}), wantErr: `aws-login oidc: unknown input "subjectAttributes" (oidc takes roleArn, sessionName, duration, policyArns, token, tokenFile)`},
		{name: "oidc missing roleArn", inputs: map[string]esc.Value{"oidc": obj("sessionName", "ci", "token", testToken)}, wantErr: "aws-login oidc: roleArn is required"},
		{name: "oidc empty roleArn", inputs: map[string]esc.Value{"oidc": obj("roleArn", "", "sessionName", "ci", "token", testToken)}, wantErr: "aws-login oidc: roleArn is required"},
		{name: "oidc missing sessionName", inputs: map[string]esc.Value{"oidc": obj("roleArn", testRole, "token", testToken)}, wantErr: "aws-login oidc: sessionName is required"},
		{name: "oidc bad duration", inputs: oidc("token", testToken, "duration", "an hour"), wantErr: `aws-login oidc: duration "an hour" is not a duration such as 1h or 15m`},
		{name: "oidc short duration", inputs: oidc("token", testToken, "duration", "5m"), wantErr: "aws-login oidc: duration 5m is outside what STS accepts (15m0s to 12h0m0s)"},
		{name: "oidc long duration", inputs: oidc("token", testToken, "duration", "13h"), wantErr: "aws-login oidc: duration 13h is outside what STS accepts (15m0s to 12h0m0s)"},
		{name: "oidc fractional duration", inputs: oidc("token", testToken, "duration", "1h0.5s"), wantErr: "aws-login oidc: duration 1h0.5s is not a whole number of seconds"},
		{name: "oidc policyArns not an array", inputs: oidc("token", testToken, "policyArns", "arn:aws:iam::aws:policy/ReadOnlyAccess"), wantErr: `aws-login oidc: input "policyArns" must be an array of strings`},
		{name: "oidc policyArns item not a string", inputs: oidc("token", testToken, "policyArns", []esc.Value{esc.NewValue(true)}), wantErr: `aws-login oidc: input "policyArns": item 0 must be a non-empty string`},
		{name: "oidc token and tokenFile", inputs: oidc("token", testToken, "tokenFile", emptyFile), wantErr: "aws-login oidc: give token or tokenFile, not both"},
		{name: "oidc blank token", inputs: oidc("token", " \n"), env: map[string]string{"AWS_WEB_IDENTITY_TOKEN_FILE": ""}, wantErr: "aws-login oidc: token is blank"},
		{name: "oidc no token", inputs: oidc(), env: map[string]string{"AWS_WEB_IDENTITY_TOKEN_FILE": ""}, wantErr: "aws-login oidc: no token: set token or tokenFile, or AWS_WEB_IDENTITY_TOKEN_FILE"},
		{name: "oidc missing token file", inputs: oidc("tokenFile", missing), wantErr: "aws-login oidc: read token file: open " + missing + ": no such file or directory", watched: missing},
		{name: "oidc missing default token file", inputs: oidc(), env: map[string]string{"AWS_WEB_IDENTITY_TOKEN_FILE": missing}, wantErr: "aws-login oidc: read token file: open " + missing + ": no such file or directory", watched: missing},
		{name: "oidc empty token file", inputs: oidc("tokenFile", emptyFile), wantErr: "aws-login oidc: token file " + emptyFile + " is empty", watched: emptyFile},
		{name: "oidc blank token file", inputs: oidc("tokenFile", blankFile), wantErr: "aws-login oidc: token file " + blankFile + " is empty", watched: blankFile},
		{name: "oidc token file is a directory", inputs: oidc("tokenFile", dir), wantErr: "aws-login oidc: read token file: read " + dir + ": is a directory", watched: dir},
		{name: "oidc token file too large", inputs: oidc("tokenFile", bigFile), wantErr: "aws-login oidc: read token file: " + bigFile + " is larger than 1048576 bytes", watched: bigFile},
		{name: "assumeRole missing roleArn", inputs: map[string]esc.Value{"assumeRole": obj("sessionName", "s")}, wantErr: "aws-login assumeRole: roleArn is required"},
		{name: "assumeRole unknown input", inputs: map[string]esc.Value{"assumeRole": obj("roleArn", testRole, "role", "x")}, wantErr: `aws-login assumeRole: unknown input "role" (assumeRole takes roleArn, sessionName, duration, externalId, profile)`},
		{name: "assumeRole bad duration", inputs: map[string]esc.Value{"assumeRole": obj("roleArn", testRole, "duration", "3600")}, wantErr: `aws-login assumeRole: duration "3600" is not a duration such as 1h or 15m`},
		{name: "assumeRole unknown profile", inputs: map[string]esc.Value{"assumeRole": obj("roleArn", testRole, "profile", "nope")}, wantErr: "aws-login assumeRole: load AWS configuration: failed to get shared config profile, nope"},
		{name: "profile not a string", inputs: map[string]esc.Value{"profile": obj("name", "dev")}, wantErr: `aws-login profile: input "profile" must be a string`},
		{name: "profile empty", inputs: map[string]esc.Value{"profile": esc.NewValue("")}, wantErr: "aws-login profile: the profile name is empty"},
		{name: "profile unknown", inputs: map[string]esc.Value{"profile": esc.NewValue("nope")}, wantErr: "aws-login profile: load AWS configuration: failed to get shared config profile, nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			ctx, files := providers.WithFiles(context.Background())
			v, err := awslogin.New().Open(ctx, tt.inputs, nil)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("Open = %v, %v; want error %q", v, err, tt.wantErr)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("error reveals the token")
			}
			if calls := rec.Take(); len(calls) != 0 {
				t.Errorf("%d calls to AWS, want none", len(calls))
			}
			// A token file is reported even when it cannot be read: it may
			// appear or be fixed, and then the environment is evaluated again.
			if got := files.Paths(); tt.watched == "" && len(got) != 0 || tt.watched != "" && !slices.Equal(got, []string{tt.watched}) {
				t.Errorf("reported files %v, want %q", got, tt.watched)
			}
		})
	}
}
