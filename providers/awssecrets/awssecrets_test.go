package awssecrets_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/pulumi/esc"
	"github.com/pulumi/esc/schema"

	"github.com/escfs/escfs/internal/kumotest"
	"github.com/escfs/escfs/providers"
	"github.com/escfs/escfs/providers/awssecrets"
)

// The secret values seeded into kumo; no error message may carry one.
const (
	plainValue    = "s3cr3t-plain-value"
	jsonValue     = `{"user":"app","password":"hunter2-json"}`
	firstVersion  = "rotated-first-value"
	secondVersion = "rotated-second-value"
	loginSecret   = "explicit-login-secret"
	envSecret     = "kumo-test-secret" // kumotest.Env's secret key
)

var binaryValue = []byte{0x00, 0x01, 0xfe, 0xff, 'b', 'i', 'n'}

// seeded is what seed stored in kumo.
type seeded struct {
	plainARN                   string
	firstVersionID, secondVers string
}

// seed creates the test secrets through the SDK, against the endpoint
// kumotest.Env points it at.
func seed(t *testing.T) seeded {
	t.Helper()
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sm := secretsmanager.NewFromConfig(cfg)
	var s seeded
	create := func(in *secretsmanager.CreateSecretInput) *secretsmanager.CreateSecretOutput {
		out, err := sm.CreateSecret(ctx, in)
		if err != nil {
			t.Fatalf("seed %s: %v", aws.ToString(in.Name), err)
		}
		return out
	}
	s.plainARN = aws.ToString(create(&secretsmanager.CreateSecretInput{Name: aws.String("app/plain"), SecretString: aws.String(plainValue)}).ARN)
	create(&secretsmanager.CreateSecretInput{Name: aws.String("app/json"), SecretString: aws.String(jsonValue)})
	create(&secretsmanager.CreateSecretInput{Name: aws.String("app/binary"), SecretBinary: binaryValue})
	s.firstVersionID = aws.ToString(create(&secretsmanager.CreateSecretInput{Name: aws.String("app/rotated"), SecretString: aws.String(firstVersion)}).VersionId)
	put, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("app/rotated"), SecretString: aws.String(secondVersion)})
	if err != nil {
		t.Fatalf("seed a second version: %v", err)
	}
	s.secondVers = aws.ToString(put.VersionId)
	return s
}

// secretOutputs checks that v is a plain object of secret strings and returns
// them.
func secretOutputs(t *testing.T, v esc.Value) map[string]string {
	t.Helper()
	if v.Secret {
		t.Errorf("the output object is secret; its values should be, not it")
	}
	m, ok := v.Value.(map[string]esc.Value)
	if !ok {
		t.Fatalf("output %v is not an object", v)
	}
	got := map[string]string{}
	for k, e := range m {
		s, ok := e.Value.(string)
		if !ok {
			t.Errorf("output %s = %#v, want a string", k, e.Value)
		}
		if !e.Secret {
			t.Errorf("output %s is not secret", k)
		}
		got[k] = s
	}
	return got
}

// TestOpenAgainstKumo reads secrets over real HTTP from kumo: string and
// binary secrets, by name and ARN, by staging label and version ID, with the
// default credential chain and with explicit login.
func TestOpenAgainstKumo(t *testing.T) {
	kumo := kumotest.Start(t)
	kumotest.Env(t, kumo)
	s := seed(t)
	rec := kumotest.NewRecorder(t, kumotest.ProxyTo(t, kumo))
	t.Setenv("AWS_ENDPOINT_URL", rec.URL)

	tests := []struct {
		name      string
		get       map[string]esc.Value
		other     []any // more inputs: region, login
		want      map[string]string
		wantKeyID string // the access key ID the calls are signed with
		wantRgn   string // the region they are signed for
	}{
		{
			name:      "string secret by name, default chain",
			get:       map[string]esc.Value{"api-key": kumotest.Obj("secretId", "app/plain")},
			want:      map[string]string{"api-key": plainValue},
			wantKeyID: "AKIAKUMOTEST",
			wantRgn:   "us-east-1",
		},
		{
			name: "string secret by ARN",
			get:  map[string]esc.Value{"api-key": kumotest.Obj("secretId", s.plainARN)},
			want: map[string]string{"api-key": plainValue},
		},
		{
			name: "JSON secret as its string",
			get:  map[string]esc.Value{"db": kumotest.Obj("secretId", "app/json")},
			want: map[string]string{"db": jsonValue},
		},
		{
			name: "binary secret base64-encoded",
			get:  map[string]esc.Value{"blob": kumotest.Obj("secretId", "app/binary")},
			want: map[string]string{"blob": base64.StdEncoding.EncodeToString(binaryValue)},
		},
		{
			name: "current version by default and by AWSCURRENT",
			get: map[string]esc.Value{
				"default": kumotest.Obj("secretId", "app/rotated"),
				"current": kumotest.Obj("secretId", "app/rotated", "versionStage", "AWSCURRENT"),
			},
			want: map[string]string{"default": secondVersion, "current": secondVersion},
		},
		{
			name: "previous version by AWSPREVIOUS",
			get:  map[string]esc.Value{"old": kumotest.Obj("secretId", "app/rotated", "versionStage", "AWSPREVIOUS")},
			want: map[string]string{"old": firstVersion},
		},
		{
			name: "versions by versionId",
			get: map[string]esc.Value{
				"first":  kumotest.Obj("secretId", "app/rotated", "versionId", s.firstVersionID),
				"second": kumotest.Obj("secretId", "app/rotated", "versionId", s.secondVers),
			},
			want: map[string]string{"first": firstVersion, "second": secondVersion},
		},
		{
			name:  "explicit login and region",
			get:   map[string]esc.Value{"api-key": kumotest.Obj("secretId", "app/plain"), "blob": kumotest.Obj("secretId", "app/binary")},
			other: []any{"region", "eu-west-2", "login", kumotest.Obj("accessKeyId", "AKIALOGIN", "secretAccessKey", esc.NewSecret(loginSecret), "sessionToken", esc.NewSecret("login-session"))},
			want: map[string]string{
				"api-key": plainValue,
				"blob":    base64.StdEncoding.EncodeToString(binaryValue),
			},
			wantKeyID: "AKIALOGIN",
			wantRgn:   "eu-west-2",
		},
		{
			name: "many entries",
			get: map[string]esc.Value{
				"a": kumotest.Obj("secretId", "app/plain"), "b": kumotest.Obj("secretId", "app/json"), "c": kumotest.Obj("secretId", "app/binary"),
				"d": kumotest.Obj("secretId", "app/rotated"), "e": kumotest.Obj("secretId", "app/rotated", "versionStage", "AWSPREVIOUS"),
				"f": kumotest.Obj("secretId", "app/plain"), "g": kumotest.Obj("secretId", "app/json"), "h": kumotest.Obj("secretId", "app/plain"),
				"i": kumotest.Obj("secretId", "app/plain"), "j": kumotest.Obj("secretId", "app/rotated", "versionId", s.firstVersionID),
			},
			want: map[string]string{
				"a": plainValue, "b": jsonValue, "c": base64.StdEncoding.EncodeToString(binaryValue),
				"d": secondVersion, "e": firstVersion, "f": plainValue, "g": jsonValue, "h": plainValue,
				"i": plainValue, "j": firstVersion,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec.Take()
			v, err := awssecrets.New().Open(context.Background(), kumotest.GetInputs(tt.get, tt.other...), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := secretOutputs(t, v); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("outputs %v, want %v", got, tt.want)
			}
			calls := rec.Take()
			if len(calls) != len(tt.get) {
				t.Errorf("%d calls, want one per entry (%d)", len(calls), len(tt.get))
			}
			for _, c := range calls {
				if c.Target != "secretsmanager.GetSecretValue" {
					t.Errorf("call %q, want secretsmanager.GetSecretValue", c.Target)
				}
				if tt.wantKeyID != "" && c.AccessKeyID != tt.wantKeyID {
					t.Errorf("call signed by %q, want %q", c.AccessKeyID, tt.wantKeyID)
				}
				if tt.wantRgn != "" && c.Region != tt.wantRgn {
					t.Errorf("call signed for region %q, want %q", c.Region, tt.wantRgn)
				}
			}
		})
	}
}

// TestServiceEndpoint checks that AWS_ENDPOINT_URL_SECRETS_MANAGER takes
// precedence over AWS_ENDPOINT_URL.
func TestServiceEndpoint(t *testing.T) {
	kumo := kumotest.Start(t)
	kumotest.Env(t, kumo)
	seed(t)
	t.Setenv("AWS_ENDPOINT_URL", kumotest.ClosedURL(t))
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", kumo)
	v, err := awssecrets.New().Open(context.Background(), kumotest.GetInputs(map[string]esc.Value{"k": kumotest.Obj("secretId", "app/plain")}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := secretOutputs(t, v); got["k"] != plainValue {
		t.Errorf("k = %q, want %q", got["k"], plainValue)
	}
}

// TestOpenErrors checks what the provider says when AWS refuses or cannot be
// reached: the entry, the operation, the AWS code and message, and never a
// secret; and that the standard retryer makes three attempts at transient
// failures, within the call bound.
func TestOpenErrors(t *testing.T) {
	kumo := kumotest.Start(t)
	kumotest.Env(t, kumo)
	seed(t)
	plainGet := map[string]esc.Value{"db": kumotest.Obj("secretId", "app/plain")}
	tests := []struct {
		name      string
		handler   http.Handler // nil: the endpoint is a closed port
		get       map[string]esc.Value
		wantErr   string // the whole message; with wantPrefix, its start
		prefix    bool
		wantCalls int
	}{
		{
			name:      "unknown secret",
			handler:   kumotest.ProxyTo(t, kumo),
			get:       map[string]esc.Value{"db": kumotest.Obj("secretId", "no/such/secret")},
			wantErr:   "aws-secrets get.db: secretsmanager:GetSecretValue: ResourceNotFoundException: Secrets Manager can't find the specified secret: no/such/secret",
			wantCalls: 1,
		},
		{
			name:      "unknown staging label",
			handler:   kumotest.ProxyTo(t, kumo),
			get:       map[string]esc.Value{"db": kumotest.Obj("secretId", "app/rotated", "versionStage", "NOSUCHSTAGE")},
			wantErr:   "aws-secrets get.db: secretsmanager:GetSecretValue: ResourceNotFoundException: Secrets Manager can't find the specified secret version.",
			wantCalls: 1,
		},
		{
			name:    "two failing entries, both named",
			handler: kumotest.ProxyTo(t, kumo),
			get: map[string]esc.Value{
				"ok":        kumotest.Obj("secretId", "app/plain"),
				"missing":   kumotest.Obj("secretId", "no/such/secret"),
				"my.secret": kumotest.Obj("secretId", "other/missing"),
			},
			wantErr: "aws-secrets get.missing: secretsmanager:GetSecretValue: ResourceNotFoundException: Secrets Manager can't find the specified secret: no/such/secret\n" +
				`aws-secrets get["my.secret"]: secretsmanager:GetSecretValue: ResourceNotFoundException: Secrets Manager can't find the specified secret: other/missing`,
			wantCalls: 3,
		},
		{
			name:      "access denied",
			handler:   kumotest.AWSError(http.StatusBadRequest, "AccessDeniedException", "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: secretsmanager:GetSecretValue"),
			get:       plainGet,
			wantErr:   "aws-secrets get.db: secretsmanager:GetSecretValue: AccessDeniedException: User: arn:aws:iam::123456789012:user/ci is not authorized to perform: secretsmanager:GetSecretValue",
			wantCalls: 1,
		},
		{
			name:      "internal errors, retried",
			handler:   kumotest.AWSError(http.StatusInternalServerError, "InternalServiceError", "An error occurred on the server side."),
			get:       plainGet,
			wantErr:   "aws-secrets get.db: secretsmanager:GetSecretValue: InternalServiceError: An error occurred on the server side. (gave up after 3 attempts)",
			wantCalls: 3,
		},
		{
			name:      "throttled, retried",
			handler:   kumotest.AWSError(http.StatusBadRequest, "ThrottlingException", "Rate exceeded"),
			get:       plainGet,
			wantErr:   "aws-secrets get.db: secretsmanager:GetSecretValue: ThrottlingException: Rate exceeded (gave up after 3 attempts)",
			wantCalls: 3,
		},
		{
			name:    "endpoint unreachable",
			get:     plainGet,
			wantErr: "aws-secrets get.db: secretsmanager:GetSecretValue: endpoint unreachable: ",
			prefix:  true,
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
			t.Setenv("AWS_ENDPOINT_URL", endpoint)
			start := time.Now()
			v, err := awssecrets.New().Open(context.Background(), kumotest.GetInputs(tt.get), nil)
			elapsed := time.Since(start)
			if err == nil {
				t.Fatalf("Open = %v, want an error", v)
			}
			msg := err.Error()
			t.Logf("error after %v: %s", elapsed.Round(time.Millisecond), msg)
			if tt.prefix && !strings.HasPrefix(msg, tt.wantErr) || !tt.prefix && msg != tt.wantErr {
				t.Errorf("error\n%s\nwant\n%s", msg, tt.wantErr)
			}
			for _, secret := range []string{plainValue, firstVersion, secondVersion, "hunter2", envSecret} {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q reveals a secret", msg)
				}
			}
			if elapsed > providers.CallTimeout {
				t.Errorf("Open took %v, more than the bound %v", elapsed, providers.CallTimeout)
			}
			if rec != nil {
				if n := len(rec.Take()); n != tt.wantCalls {
					t.Errorf("%d calls, want %d", n, tt.wantCalls)
				}
			}
		})
	}
}

// TestRetries checks that a call that fails twice transiently succeeds on the
// third attempt.
func TestRetries(t *testing.T) {
	kumo := kumotest.Start(t)
	kumotest.Env(t, kumo)
	seed(t)
	proxy := kumotest.ProxyTo(t, kumo)
	var mu sync.Mutex
	failures := 2
	rec := kumotest.NewRecorder(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fail := failures > 0
		failures--
		mu.Unlock()
		if fail {
			kumotest.AWSError(http.StatusServiceUnavailable, "ServiceUnavailable", "try again")(w, r)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Setenv("AWS_ENDPOINT_URL", rec.URL)
	v, err := awssecrets.New().Open(context.Background(), kumotest.GetInputs(map[string]esc.Value{"k": kumotest.Obj("secretId", "app/plain")}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := secretOutputs(t, v); got["k"] != plainValue {
		t.Errorf("k = %q, want %q", got["k"], plainValue)
	}
	if n := len(rec.Take()); n != 3 {
		t.Errorf("%d calls, want 3 (two failures, one success)", n)
	}
}

// TestInputErrors checks the validation of inputs, which fails before any
// AWS call.
func TestInputErrors(t *testing.T) {
	rec := kumotest.NewRecorder(t, kumotest.AWSError(http.StatusInternalServerError, "Unexpected", "no call was expected"))
	kumotest.Env(t, rec.URL)
	ok := map[string]esc.Value{"db": kumotest.Obj("secretId", "app/plain")}
	tests := []struct {
		name    string
		inputs  map[string]esc.Value
		noRgn   bool
		wantErr string
	}{
		{"no get", kumotest.GetInputs(nil, "region", "us-east-1"), false, `aws-secrets: input "get" is required: it maps names to the secrets to read ({secretId, versionId?, versionStage?})`},
		{"empty get", kumotest.GetInputs(map[string]esc.Value{}), false, `aws-secrets: input "get" is required: it maps names to the secrets to read ({secretId, versionId?, versionStage?})`},
		{"get not an object", map[string]esc.Value{"get": esc.NewValue("app/plain")}, false, `aws-secrets: input "get" must be an object`},
		{"entry not an object", kumotest.GetInputs(map[string]esc.Value{"db": esc.NewValue("app/plain")}), false, "aws-secrets get.db: must be an object {secretId, versionId?, versionStage?}"},
		{"no secretId", kumotest.GetInputs(map[string]esc.Value{"db": kumotest.Obj("versionStage", "AWSCURRENT")}), false, "aws-secrets get.db: secretId is required"},
		{"empty secretId", kumotest.GetInputs(map[string]esc.Value{"db": kumotest.Obj("secretId", " ")}), false, "aws-secrets get.db: secretId is required"},
		{"secretId not a string", kumotest.GetInputs(map[string]esc.Value{"db": kumotest.Obj("secretId", esc.NewValue(true))}), false, `aws-secrets get.db: input "secretId" must be a string`},
		{"unknown entry input", kumotest.GetInputs(map[string]esc.Value{"db": kumotest.Obj("secretID", "app/plain")}), false, `aws-secrets get.db: unknown input "secretID" (the inputs are secretId, versionId, versionStage)`},
		{"unknown input", kumotest.GetInputs(ok, "regoin", "us-east-1"), false, `aws-secrets: unknown input "regoin" (the inputs are region, login, get)`},
		{"region not a string", kumotest.GetInputs(ok, "region", esc.NewValue(json.Number("1"))), false, `aws-secrets: input "region" must be a string`},
		{"login without secret key", kumotest.GetInputs(ok, "login", kumotest.Obj("accessKeyId", "AKIALOGIN")), false, "aws-secrets: login: accessKeyId and secretAccessKey are required"},
		{"no region anywhere", kumotest.GetInputs(ok), true, "aws-secrets: no AWS region: set the region input, AWS_REGION, or the region of the AWS profile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.noRgn {
				t.Setenv("AWS_REGION", "")
				t.Setenv("AWS_DEFAULT_REGION", "")
			}
			v, err := awssecrets.New().Open(context.Background(), tt.inputs, nil)
			if err == nil {
				t.Fatalf("Open = %v, want an error", v)
			}
			if err.Error() != tt.wantErr {
				t.Errorf("error\n%s\nwant\n%s", err, tt.wantErr)
			}
			if n := len(rec.Take()); n != 0 {
				t.Errorf("%d AWS calls, want none", n)
			}
		})
	}
}

// TestSchema checks that the schemas compile and say what is required.
func TestSchema(t *testing.T) {
	in, out := awssecrets.New().Schema()
	for _, s := range []*schema.Schema{in, out} {
		if err := s.Compile(); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(in.Required, []string{"get"}) {
		t.Errorf("inputs require %v, want [get]", in.Required)
	}
	for _, p := range []string{"region", "login", "get"} {
		if in.Properties[p] == nil {
			t.Errorf("no input %s", p)
		}
	}
	if r := in.Properties["login"].Required; !reflect.DeepEqual(r, []string{"accessKeyId", "secretAccessKey"}) {
		t.Errorf("login requires %v", r)
	}
	entry := in.Properties["get"].AdditionalProperties
	if entry == nil || !reflect.DeepEqual(entry.Required, []string{"secretId"}) {
		t.Fatalf("get entries: %+v, want objects requiring secretId", entry)
	}
	for _, p := range []string{"secretId", "versionId", "versionStage"} {
		if entry.Properties[p] == nil || entry.Properties[p].Type != "string" {
			t.Errorf("get entries: %s is not a string input", p)
		}
	}
	if out.Type != "object" || out.AdditionalProperties == nil || out.AdditionalProperties.Type != "string" {
		t.Errorf("outputs %+v, want an object of strings", out)
	}
}
