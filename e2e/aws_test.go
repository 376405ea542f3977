//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/escfs/escfs/internal/escfstest"
	"github.com/escfs/escfs/internal/filetree"
	"github.com/escfs/escfs/internal/kumotest"
	"github.com/escfs/escfs/providers/awsclient"
)

const (
	// webToken is what an OIDC issuer (EKS, a CI system) writes to
	// $AWS_WEB_IDENTITY_TOKEN_FILE: a JWT.
	webToken    = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImUyZSJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVtb3M6YXBwIn0.c2lnbmF0dXJlLW9mLXRoZS1pc3N1ZXI"
	clusterRole = "arn:aws:iam::123456789012:role/cluster-admin"
	deniedRole  = "arn:aws:iam::123456789012:role/no-trust"
	adminKey    = "AKIAKUMOTEST" // kumotest.Env's default-chain key, which seeds the emulator

	// dbPassword is shell-hostile on purpose: it must survive `source`.
	dbPassword = "pa$$w0rd 'q' `id` $(echo no)\\n"
	apiKey     = "api-key-Zq81x"
)

// awsAccess is the guide's aws-access environment: OIDC credentials from the
// token file in $AWS_WEB_IDENTITY_TOKEN_FILE, exported for AWS tools.
const awsAccess = `values:
  aws:
    region: us-east-1
    creds:
      fn::open::aws-login:
        oidc:
          duration: 1h
          roleArn: ` + clusterRole + `
          sessionName: demos-aws-access
  environmentVariables:
    AWS_ACCESS_KEY_ID: ${aws.creds.accessKeyId}
    AWS_SECRET_ACCESS_KEY: ${aws.creds.secretAccessKey}
    AWS_SESSION_TOKEN: ${aws.creds.sessionToken}
    AWS_REGION: ${aws.region}
`

// appEnv reads a secret and parameters with aws-access's credentials.
const appEnv = `imports:
  - demos/aws-access
values:
  secrets:
    fn::open::aws-secrets:
      region: ${aws.region}
      login: ${aws.creds}
      get:
        dbPassword:
          secretId: app/db-password
  params:
    fn::open::aws-parameter-store:
      region: ${aws.region}
      login: ${aws.creds}
      get:
        host:
          name: /app/db/host
        ports:
          name: /app/db/ports
        apiKey:
          name: /app/api-key
          decrypt: true
  environmentVariables:
    DB_PASSWORD: ${secrets.dbPassword}
    DB_HOST: ${params.host}
    DB_PORT: ${params.ports[0]}
    API_KEY: ${params.apiKey}
`

// awsWorld is kumo behind an AWSFront, seeded, with a token file and the
// environment an escfs process needs to reach them.
type awsWorld struct {
	front     *AWSFront
	tokenFile string
	env       []string // for escfs: endpoints, token file, and no credentials of its own
}

func newAWSWorld(t *testing.T) *awsWorld {
	t.Helper()
	kumo := kumotest.Start(t)
	front := StartAWSFront(t, kumo, adminKey)
	kumotest.Env(t, front.URL) // this test process: the administrator key

	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := secretsmanager.NewFromConfig(cfg).CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String("app/db-password"), SecretString: aws.String(dbPassword)}); err != nil {
		t.Fatalf("seed secret: %v", err)
	}
	for name, p := range map[string]struct {
		value string
		typ   ssmtypes.ParameterType
	}{
		"/app/db/host":  {"db.internal", ssmtypes.ParameterTypeString},
		"/app/db/ports": {"5432,6432", ssmtypes.ParameterTypeStringList},
		"/app/api-key":  {apiKey, ssmtypes.ParameterTypeSecureString},
	} {
		if _, err := ssm.NewFromConfig(cfg).PutParameter(ctx, &ssm.PutParameterInput{
			Name: aws.String(name), Value: aws.String(p.value), Type: p.typ}); err != nil {
			t.Fatalf("seed %s: %v", name, err)
		}
	}

	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(webToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &awsWorld{
		front:     front,
		tokenFile: tokenFile,
		// escfs gets no credentials of its own: every AWS call must be
		// signed with what aws-login returned (or be the unsigned
		// AssumeRoleWithWebIdentity).
		env: escfstest.EnvWith("AWS_WEB_IDENTITY_TOKEN_FILE="+tokenFile, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"),
	}
}

// sourced runs `source MNT/<env>/env` in bash and returns the named
// variables as the shell then has them.
func sourced(t *testing.T, e *escfstest.Escfs, env string, names ...string) map[string]string {
	t.Helper()
	script := fmt.Sprintf(`set -e; source "$MNT/%s/env"; for v in %s; do printf '%%s=%%s\0' "$v" "${!v-}"; done`, env, strings.Join(names, " "))
	out, err := e.Shell(t, script)
	if err != nil {
		t.Fatalf("source %s/env: %v\n%s", env, err, out)
	}
	vars := map[string]string{}
	for _, kv := range strings.Split(strings.TrimSuffix(out, "\x00"), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	return vars
}

// useCredentials calls STS and Secrets Manager through the front with the
// credentials in vars (as sourced) and returns the secret's value.
func useCredentials(t *testing.T, vars map[string]string) (string, error) {
	t.Helper()
	ctx := context.Background()
	cfg, err := awsclient.Load(ctx, awsclient.Options{Region: vars["AWS_REGION"], Login: &awsclient.Login{
		AccessKeyID: vars["AWS_ACCESS_KEY_ID"], SecretAccessKey: vars["AWS_SECRET_ACCESS_KEY"], SessionToken: vars["AWS_SESSION_TOKEN"]}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil {
		return "", err
	}
	out, err := secretsmanager.NewFromConfig(cfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db-password")})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.SecretString), nil
}

// TestAWSThroughTheMount: aws-login's OIDC credentials (token file, as on
// EKS) feed aws-secrets, aws-parameter-store and environmentVariables; a
// shell that sources the mounted env file gets credentials that work.
func TestAWSThroughTheMount(t *testing.T) {
	w := newAWSWorld(t)
	dir := t.TempDir()
	filetree.WriteByRename(t, dir, map[string]string{"demos/aws-access.yaml": awsAccess, "app.yaml": appEnv})
	e := escfstest.Mount(t, dir, w.env)

	vars := sourced(t, e, "app", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
		"DB_PASSWORD", "DB_HOST", "DB_PORT", "API_KEY", "ESCFS_EXPIRES_AT")
	for name, want := range map[string]string{"DB_PASSWORD": dbPassword, "DB_HOST": "db.internal", "DB_PORT": "5432", "API_KEY": apiKey, "AWS_REGION": "us-east-1"} {
		if vars[name] != want {
			t.Errorf("after source: %s = %q, want %q", name, vars[name], want)
		}
	}
	key := vars["AWS_ACCESS_KEY_ID"]
	expires, issued := w.front.Issued(key)
	if !issued || !strings.HasPrefix(key, "ASIA") {
		t.Fatalf("AWS_ACCESS_KEY_ID %q was not issued by STS", key)
	}
	if got := vars["ESCFS_EXPIRES_AT"]; got != expires.UTC().Format(time.RFC3339) {
		t.Errorf("ESCFS_EXPIRES_AT = %q, want STS's expiration %s", got, expires.UTC().Format(time.RFC3339))
	}
	if d := time.Until(expires); d < 55*time.Minute || d > time.Hour+time.Minute {
		t.Errorf("credentials expire in %v, want the 1h asked for", d)
	}

	// One AssumeRoleWithWebIdentity, unsigned, with the file's token, for
	// the role asked; the reads signed with its credentials.
	assumes := w.front.Calls("AssumeRoleWithWebIdentity")
	if len(assumes) != 1 || assumes[0].Token != webToken || assumes[0].RoleArn != clusterRole || assumes[0].AccessKeyID != "" {
		t.Errorf("AssumeRoleWithWebIdentity calls %+v, want one, unsigned, with the token file's token for %s", assumes, clusterRole)
	}
	for _, op := range []string{"secretsmanager.GetSecretValue", "AmazonSSM.GetParameter"} {
		calls := w.front.Calls(op)
		if len(calls) == 0 {
			t.Errorf("no %s call", op)
		}
		for _, c := range calls {
			if c.AccessKeyID != key || c.Refused != "" {
				t.Errorf("%s signed by %q (refused %q), want aws-login's %s", op, c.AccessKeyID, c.Refused, key)
			}
		}
	}

	// The sourced credentials work with the SDK; made-up ones do not.
	if got, err := useCredentials(t, vars); err != nil || got != dbPassword {
		t.Errorf("SDK with the sourced credentials: %q, %v", got, err)
	}
	forged := map[string]string{"AWS_ACCESS_KEY_ID": "ASIAFORGED", "AWS_SECRET_ACCESS_KEY": "x", "AWS_SESSION_TOKEN": "y", "AWS_REGION": "us-east-1"}
	if _, err := useCredentials(t, forged); awsclient.ErrorCode(err) != "UnrecognizedClientException" {
		t.Errorf("SDK with forged credentials: %v, want UnrecognizedClientException", err)
	}

	// The imported environment serves the same credentials, and values.json
	// carries the expiration output.
	access := sourced(t, e, "demos/aws-access", "AWS_ACCESS_KEY_ID")
	if access["AWS_ACCESS_KEY_ID"] == "" {
		t.Error("demos/aws-access/env has no AWS_ACCESS_KEY_ID")
	}
	values := string(e.MustRead(t, "app/values.json"))
	if !strings.Contains(values, `"expiration": "`+expires.UTC().Format(time.RFC3339)+`"`) {
		t.Errorf("values.json lacks the expiration output:\n%s", values)
	}
	st := e.Status(t, "app")
	if st.State != "ok" || st.ExpiresAt == nil || !st.ExpiresAt.Equal(expires) {
		t.Errorf("status %+v, want ok expiring at %v", st, expires)
	}

	noSecrets(t, "the escfs log", e.Log(), dbPassword, apiKey, webToken, vars["AWS_SECRET_ACCESS_KEY"], vars["AWS_SESSION_TOKEN"])
}

// noSecrets fails the test if text (what, such as "the escfs log") holds any
// of secrets; the message says where, never which value.
func noSecrets(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for i, s := range secrets {
		if s == "" {
			t.Fatalf("noSecrets: secret %d is empty", i)
		}
		if at := strings.Index(text, s); at >= 0 {
			t.Errorf("%s reveals secret %d at byte %d", what, i, at)
		}
	}
}

// TestAWSRenewal: STS credentials that live 6 s are renewed by the mount
// before they expire; every read gets credentials still valid, and the old
// ones stop working when STS says.
func TestAWSRenewal(t *testing.T) {
	w := newAWSWorld(t)
	const lifetime = 6 * time.Second
	w.front.SetLifetime(lifetime)
	dir := t.TempDir()
	filetree.WriteByRename(t, dir, map[string]string{"demos/aws-access.yaml": awsAccess, "app.yaml": appEnv})
	e := escfstest.Mount(t, dir, w.env)

	names := []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "ESCFS_EXPIRES_AT", "DB_PASSWORD"}
	first := sourced(t, e, "app", names...)
	firstExpiry, err := time.Parse(time.RFC3339, first["ESCFS_EXPIRES_AT"])
	if err != nil {
		t.Fatalf("ESCFS_EXPIRES_AT %q: %v", first["ESCFS_EXPIRES_AT"], err)
	}
	st := e.Status(t, "app")
	if st.RefreshAt == nil || st.ExpiresAt == nil || st.ExpiresAt.Sub(*st.RefreshAt) < time.Second || !st.RefreshAt.Before(*st.ExpiresAt) {
		t.Fatalf("status %+v: want a refreshAt a third of the lifetime before expiresAt", st)
	}

	// Read through two lifetimes: every read's credentials are unexpired
	// when read, and they change.
	keys := map[string]bool{}
	var last map[string]string
	for end := firstExpiry.Add(lifetime); time.Now().Before(end); time.Sleep(300 * time.Millisecond) {
		readAt := time.Now().Truncate(time.Second)
		vars := sourced(t, e, "app", names...)
		exp, err := time.Parse(time.RFC3339, vars["ESCFS_EXPIRES_AT"])
		if err != nil {
			t.Fatalf("ESCFS_EXPIRES_AT %q: %v", vars["ESCFS_EXPIRES_AT"], err)
		}
		if !exp.After(readAt) {
			t.Fatalf("a read at %v got credentials that expired at %v", readAt, exp)
		}
		if vars["DB_PASSWORD"] != dbPassword {
			t.Fatalf("DB_PASSWORD lost in a renewal: %q", vars["DB_PASSWORD"])
		}
		keys[vars["AWS_ACCESS_KEY_ID"]] = true
		last = vars
	}
	if len(keys) < 2 {
		t.Fatalf("credentials never renewed over two lifetimes: %v", keys)
	}
	if n := len(w.front.Calls("AssumeRoleWithWebIdentity")); n < 2 {
		t.Errorf("%d AssumeRoleWithWebIdentity calls, want a renewal", n)
	}
	// The renewal re-read the secret with the new credentials.
	if calls := w.front.Calls("secretsmanager.GetSecretValue"); len(calls) < 2 || calls[len(calls)-1].AccessKeyID == first["AWS_ACCESS_KEY_ID"] {
		t.Errorf("GetSecretValue calls %+v: want the renewal's signed with new credentials", calls)
	}

	// STS's word holds: the first credentials have expired, the latest work.
	if _, err := useCredentials(t, first); awsclient.ErrorCode(err) != "ExpiredTokenException" {
		t.Errorf("first credentials after their expiry: %v, want ExpiredTokenException", err)
	}
	if got, err := useCredentials(t, last); err != nil || got != dbPassword {
		t.Errorf("latest credentials: %q, %v", got, err)
	}
	if st := e.Status(t, "app"); st.State != "ok" || st.LastError != "" {
		t.Errorf("status after renewals: %+v", st)
	}
}

// TestAWSErrors: an unknown secret, a denied role, a malformed or empty
// token file and an unreachable endpoint each give one clear diagnostic,
// located in the definition, in status and in escfs check; reads of that
// environment fail with EIO and every other environment works.
func TestAWSErrors(t *testing.T) {
	w := newAWSWorld(t)
	w.front.Deny(deniedRole)
	files := t.TempDir()
	malformed := filepath.Join(files, "malformed-token")
	empty := filepath.Join(files, "empty-token")
	if err := os.WriteFile(malformed, []byte("this is not a JWT\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	oidc := func(role, tokenFile string) string {
		s := "values:\n  creds:\n    fn::open::aws-login:\n      oidc:\n        roleArn: " + role + "\n        sessionName: e2e\n"
		if tokenFile != "" {
			s += "        tokenFile: " + tokenFile + "\n"
		}
		return s + "  environmentVariables:\n    AWS_ACCESS_KEY_ID: ${creds.accessKeyId}\n"
	}
	dir := t.TempDir()
	filetree.WriteByRename(t, dir, map[string]string{
		"plain.yaml":            "values:\n  environmentVariables:\n    A: alpha\n",
		"demos/aws-access.yaml": awsAccess,
		"app.yaml":              appEnv,
		"unknown-secret.yaml": `imports:
  - demos/aws-access
values:
  secrets:
    fn::open::aws-secrets:
      login: ${aws.creds}
      get:
        db:
          secretId: no/such/secret
`,
		"denied-role.yaml":     oidc(deniedRole, ""),
		"malformed-token.yaml": oidc(clusterRole, malformed),
		"empty-token.yaml":     oidc(clusterRole, empty),
	})
	want := map[string]string{
		"unknown-secret":  "aws-secrets get.db: secretsmanager:GetSecretValue: ResourceNotFoundException: Secrets Manager can't find the specified secret",
		"denied-role":     "aws-login oidc: sts:AssumeRoleWithWebIdentity: AccessDenied: Not authorized to perform sts:AssumeRoleWithWebIdentity on " + deniedRole,
		"malformed-token": "aws-login oidc: sts:AssumeRoleWithWebIdentity: InvalidIdentityToken: The web identity token that was passed could not be parsed as a JWT",
		"empty-token":     "token file " + empty + " is empty",
	}
	healthy := []string{"plain", "demos/aws-access", "app"}
	secrets := []string{dbPassword, apiKey, webToken, "this is not a JWT"}

	e := escfstest.Mount(t, dir, w.env)
	checkBroken(t, e, dir, want, healthy, secrets)
	stdout, stderr, code := escfstest.Run(t, 2*time.Minute, escfstest.Options{Env: w.env}, "--dir", dir, "check").Parts()
	checkReport(t, dir, stdout, stderr, code, want, healthy, secrets)

	// An unreachable endpoint: every AWS environment says so, the plain one
	// still works, and so does the mount.
	down := escfstest.EnvEdit(w.env, "AWS_ENDPOINT_URL="+kumotest.ClosedURL(t), "AWS_ENDPOINT_URL_STS="+kumotest.ClosedURL(t))
	unreachable := map[string]string{"demos/aws-access": "aws-login oidc: sts:AssumeRoleWithWebIdentity: endpoint unreachable: "}
	e = escfstest.Mount(t, dir, down)
	checkBroken(t, e, dir, unreachable, []string{"plain"}, secrets)
	stdout, stderr, code = escfstest.Run(t, 2*time.Minute, escfstest.Options{Env: down}, "--dir", dir, "check", "plain", "demos/aws-access").Parts()
	checkReport(t, dir, stdout, stderr, code, unreachable, []string{"plain"}, secrets)
}

// defPath returns the definition file of env in dir.
func defPath(dir, env string) string { return filepath.Join(dir, filepath.FromSlash(env)+".yaml") }

// checkBroken checks, through the mount, that each environment in broken
// fails with the diagnostic given and that the healthy ones read.
func checkBroken(t *testing.T, e *escfstest.Escfs, dir string, broken map[string]string, healthy, secrets []string) {
	t.Helper()
	for env, msg := range broken {
		if _, err := e.Read(env + "/env"); !errors.Is(err, syscall.EIO) {
			t.Errorf("read %s/env: %v, want EIO", env, err)
		}
		st := e.Status(t, env)
		if st.State != "error" {
			t.Errorf("%s: state %q, want error", env, st.State)
		}
		found := false
		for _, d := range st.Diagnostics {
			if strings.Contains(d.Message, msg) {
				found = true
				if d.File != defPath(dir, env) || d.Line == 0 || d.Column == 0 {
					t.Errorf("%s: diagnostic at %s:%d:%d, want a line and column in %s", env, d.File, d.Line, d.Column, defPath(dir, env))
				}
			}
			noSecrets(t, env+": a diagnostic", d.Message, secrets...)
		}
		if !found {
			t.Errorf("%s: status diagnostics %+v lack %q", env, st.Diagnostics, msg)
		}
	}
	for _, env := range healthy {
		if _, err := e.Read(env + "/env"); err != nil {
			t.Errorf("healthy %s/env: %v", env, err)
		}
		if st := e.Status(t, env); st.State != "ok" {
			t.Errorf("healthy %s: %+v", env, st)
		}
	}
}

// checkReport checks what escfs check said: FILE:LINE:COL: message for each
// broken environment, FAIL for it and ok for the healthy ones, exit 1.
func checkReport(t *testing.T, dir, stdout, stderr string, code int, broken map[string]string, healthy, secrets []string) {
	t.Helper()
	if code != 1 {
		t.Errorf("escfs check exit %d, want 1", code)
	}
	for env, msg := range broken {
		if !strings.Contains(stdout, defPath(dir, env)+":") || !strings.Contains(stdout, msg) {
			t.Errorf("escfs check output lacks %s: ...%s:\n%s", defPath(dir, env), msg, stdout)
		}
		for _, line := range strings.Split(stdout, "\n") {
			if strings.Contains(line, msg) && !strings.HasPrefix(line, defPath(dir, env)+":") {
				t.Errorf("check line %q does not start with FILE:LINE:COL", line)
			}
		}
		if !strings.Contains(stderr, "FAIL "+env+" (") {
			t.Errorf("escfs check does not fail %s:\n%s", env, stderr)
		}
	}
	for _, env := range healthy {
		// warnings (a secret dotenv cannot hold, say) still pass
		if !strings.Contains(stderr, "ok  "+env+"\n") && !strings.Contains(stderr, "ok  "+env+" (") {
			t.Errorf("escfs check does not pass %s:\n%s", env, stderr)
		}
	}
	noSecrets(t, "escfs check", stdout+stderr, secrets...)
}

// TestAWSRenewalRefused: when STS stops granting the role, the mount keeps
// serving the credentials it has until they expire, says "stale" and why in
// status, then fails reads with EIO rather than hand out expired ones; once
// the role is granted again the environment recovers by itself.
func TestAWSRenewalRefused(t *testing.T) {
	w := newAWSWorld(t)
	const lifetime = 6 * time.Second
	w.front.SetLifetime(lifetime)
	dir := t.TempDir()
	filetree.WriteByRename(t, dir, map[string]string{"demos/aws-access.yaml": awsAccess})
	e := escfstest.Mount(t, dir, w.env)

	first := sourced(t, e, "demos/aws-access", "AWS_ACCESS_KEY_ID", "ESCFS_EXPIRES_AT")
	expiry, err := time.Parse(time.RFC3339, first["ESCFS_EXPIRES_AT"])
	if err != nil {
		t.Fatal(err)
	}
	w.front.Deny(clusterRole)

	// Before expiry: stale, the old credentials still served.
	escfstest.Eventually(t, lifetime, func() string {
		st := e.Status(t, "demos/aws-access")
		if st.State != "stale" || !strings.Contains(st.LastError, "AccessDenied") {
			return fmt.Sprintf("status %+v, want stale with AccessDenied", st)
		}
		return ""
	})
	if time.Now().Before(expiry) {
		if got := sourced(t, e, "demos/aws-access", "AWS_ACCESS_KEY_ID"); got["AWS_ACCESS_KEY_ID"] != first["AWS_ACCESS_KEY_ID"] {
			t.Errorf("while stale: AWS_ACCESS_KEY_ID %q, want the unexpired %q", got["AWS_ACCESS_KEY_ID"], first["AWS_ACCESS_KEY_ID"])
		}
	}

	// After expiry: EIO and an error that says why.
	time.Sleep(time.Until(expiry) + 100*time.Millisecond)
	if _, err := e.Read("demos/aws-access/env"); !errors.Is(err, syscall.EIO) {
		t.Errorf("read after expiry with renewals refused: %v, want EIO", err)
	}
	if st := e.Status(t, "demos/aws-access"); st.State != "error" || !strings.Contains(st.Error, "AccessDenied") {
		t.Errorf("status after expiry: %+v, want error naming AccessDenied", st)
	}

	// Granted again: the next retry (backoff at most a minute, but the
	// read itself re-evaluates) brings fresh credentials.
	w.front.Allow(clusterRole)
	escfstest.Eventually(t, 30*time.Second, func() string {
		b, err := e.Read("demos/aws-access/env")
		if err != nil {
			return "still failing: " + err.Error()
		}
		if strings.Contains(string(b), first["AWS_ACCESS_KEY_ID"]) {
			return "still the first credentials"
		}
		return ""
	})
	if st := e.Status(t, "demos/aws-access"); st.State != "ok" {
		t.Errorf("status after recovery: %+v", st)
	}
}
