package awsparams_test

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/pulumi/esc"
	"github.com/pulumi/esc/schema"

	"github.com/escfs/escfs/internal/kumotest"
	"github.com/escfs/escfs/providers"
	"github.com/escfs/escfs/providers/awsparams"
)

// The values seeded into kumo.
const (
	stringV1    = "first-string-value"
	stringV2    = "second-string-value"
	secureValue = "hush-secure-value" // no error message may carry it
	loginSecret = "explicit-login-secret"
	envSecret   = "kumo-test-secret" // kumotest.Env's secret key
)

// seed stores the test parameters through the SDK, against the endpoint
// kumotest.Env points it at.
func seed(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	client := ssm.NewFromConfig(cfg)
	for _, p := range []struct {
		name, value string
		typ         ssmtypes.ParameterType
	}{
		{"/app/host", stringV1, ssmtypes.ParameterTypeString},
		{"/app/host", stringV2, ssmtypes.ParameterTypeString}, // version 2
		{"/app/ports", "8080,8443,9000", ssmtypes.ParameterTypeStringList},
		{"/app/one", "solo", ssmtypes.ParameterTypeStringList},
		{"/app/token", secureValue, ssmtypes.ParameterTypeSecureString},
	} {
		_, err := client.PutParameter(ctx, &ssm.PutParameterInput{
			Name: aws.String(p.name), Value: aws.String(p.value), Type: p.typ, Overwrite: aws.Bool(true),
		})
		if err != nil {
			t.Fatalf("seed %s: %v", p.name, err)
		}
	}
}

// out is an expected output value.
type out struct {
	value  any // string or []string
	secret bool
}

// outputs checks that v is a plain object and returns its values: strings,
// or []string for arrays of plain strings.
func outputs(t *testing.T, v esc.Value) map[string]out {
	t.Helper()
	if v.Secret {
		t.Errorf("the output object is secret; only SecureString values should be")
	}
	m, ok := v.Value.(map[string]esc.Value)
	if !ok {
		t.Fatalf("output %v is not an object", v)
	}
	got := map[string]out{}
	for k, e := range m {
		switch x := e.Value.(type) {
		case string:
			got[k] = out{x, e.Secret}
		case []esc.Value:
			var items []string
			for i, item := range x {
				s, ok := item.Value.(string)
				if !ok || item.Secret {
					t.Errorf("output %s[%d] = %+v, want a plain string", k, i, item)
				}
				items = append(items, s)
			}
			got[k] = out{items, e.Secret}
		default:
			t.Errorf("output %s = %#v, want a string or an array", k, e.Value)
		}
	}
	return got
}

func entry(name string, decrypt ...bool) esc.Value {
	if len(decrypt) == 0 {
		return kumotest.Obj("name", name)
	}
	return kumotest.Obj("name", name, "decrypt", esc.NewValue(decrypt[0]))
}

// TestOpenAgainstKumo reads parameters of all three types over real HTTP from
// kumo, with and without decryption, with the default credential chain and
// with explicit login.
func TestOpenAgainstKumo(t *testing.T) {
	kumo := kumotest.Start(t)
	kumotest.Env(t, kumo)
	seed(t)
	rec := kumotest.NewRecorder(t, kumotest.ProxyTo(t, kumo))
	t.Setenv("AWS_ENDPOINT_URL", rec.URL)

	tests := []struct {
		name        string
		get         map[string]esc.Value
		other       []any // more inputs: region, login
		want        map[string]out
		wantDecrypt map[string]bool // the WithDecryption sent for each parameter name
		wantKeyID   string          // the access key ID the calls are signed with
		wantRgn     string          // the region they are signed for
	}{
		{
			name:        "String, latest version, default chain",
			get:         map[string]esc.Value{"host": entry("/app/host")},
			want:        map[string]out{"host": {stringV2, false}},
			wantDecrypt: map[string]bool{"/app/host": true},
			wantKeyID:   "AKIAKUMOTEST",
			wantRgn:     "us-east-1",
		},
		{
			name: "StringList as an array",
			get:  map[string]esc.Value{"ports": entry("/app/ports"), "one": entry("/app/one")},
			want: map[string]out{"ports": {[]string{"8080", "8443", "9000"}, false}, "one": {[]string{"solo"}, false}},
		},
		{
			name:        "SecureString decrypted by default",
			get:         map[string]esc.Value{"token": entry("/app/token")},
			want:        map[string]out{"token": {secureValue, true}},
			wantDecrypt: map[string]bool{"/app/token": true},
		},
		{
			name:        "SecureString with decrypt: true",
			get:         map[string]esc.Value{"token": entry("/app/token", true)},
			want:        map[string]out{"token": {secureValue, true}},
			wantDecrypt: map[string]bool{"/app/token": true},
		},
		{
			name: "SecureString with decrypt: false is its ciphertext, secret",
			get:  map[string]esc.Value{"token": entry("/app/token", false)},
			// kumo's stand-in for a KMS ciphertext
			want:        map[string]out{"token": {"kms:alias/aws/ssm:" + secureValue, true}},
			wantDecrypt: map[string]bool{"/app/token": false},
		},
		{
			name: "all three types, explicit login and region",
			get: map[string]esc.Value{
				"host":  entry("/app/host"),
				"ports": entry("/app/ports"),
				"token": entry("/app/token"),
			},
			other: []any{"region", "eu-west-2", "login", kumotest.Obj("accessKeyId", "AKIALOGIN", "secretAccessKey", esc.NewSecret(loginSecret))},
			want: map[string]out{
				"host":  {stringV2, false},
				"ports": {[]string{"8080", "8443", "9000"}, false},
				"token": {secureValue, true},
			},
			wantKeyID: "AKIALOGIN",
			wantRgn:   "eu-west-2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec.Take()
			v, err := awsparams.New().Open(context.Background(), kumotest.GetInputs(tt.get, tt.other...), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := outputs(t, v); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("outputs %+v, want %+v", got, tt.want)
			}
			calls := rec.Take()
			if len(calls) != len(tt.get) {
				t.Errorf("%d calls, want one per entry (%d)", len(calls), len(tt.get))
			}
			for _, c := range calls {
				if c.Target != "AmazonSSM.GetParameter" {
					t.Errorf("call %q, want AmazonSSM.GetParameter", c.Target)
				}
				name, _ := c.Body["Name"].(string)
				if want, ok := tt.wantDecrypt[name]; ok && c.Body["WithDecryption"] != want {
					t.Errorf("%s: WithDecryption %v, want %v", name, c.Body["WithDecryption"], want)
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

// fakeSSM answers GetParameter for the names in params (selectors included)
// as SSM would, and ParameterNotFound for others. kumo knows neither version
// nor label selectors (it answers ParameterNotFound for /name:1), nor
// LabelParameterVersion, so the selector tests use it instead.
func fakeSSM(params map[string]ssmtypes.Parameter) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") != "AmazonSSM.GetParameter" {
			kumotest.AWSError(http.StatusBadRequest, "ValidationException", "unexpected "+r.Header.Get("X-Amz-Target"))(w, r)
			return
		}
		var in struct{ Name string }
		json.NewDecoder(r.Body).Decode(&in)
		p, ok := params[in.Name]
		if !ok {
			kumotest.AWSError(http.StatusBadRequest, "ParameterNotFound", "Parameter "+in.Name+" not found.")(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		json.NewEncoder(w).Encode(map[string]any{"Parameter": map[string]any{
			"Name": p.Name, "Type": p.Type, "Value": p.Value, "Version": p.Version, "Selector": p.Selector,
			"ARN": "arn:aws:ssm:us-east-1:123456789012:parameter" + aws.ToString(p.Name), "DataType": "text",
		}})
	}
}

// TestSelectors checks that :version and :label selectors reach
// ssm:GetParameter as part of the name, and their answers the outputs.
func TestSelectors(t *testing.T) {
	param := func(selector, typ, value string, version int64) ssmtypes.Parameter {
		return ssmtypes.Parameter{Name: aws.String("/app/host"), Selector: aws.String(selector), Type: ssmtypes.ParameterType(typ), Value: aws.String(value), Version: version}
	}
	rec := kumotest.NewRecorder(t, fakeSSM(map[string]ssmtypes.Parameter{
		"/app/host:1":       param(":1", "String", stringV1, 1),
		"/app/host:2":       param(":2", "String", stringV2, 2),
		"/app/host:stable":  param(":stable", "String", stringV1, 1),
		"/app/token:canary": param(":canary", "SecureString", secureValue, 3),
		"/app/ports:3":      param(":3", "StringList", "a,b", 3),
	}))
	kumotest.Env(t, rec.URL)
	v, err := awsparams.New().Open(context.Background(), kumotest.GetInputs(map[string]esc.Value{
		"v1":     entry("/app/host:1"),
		"v2":     entry("/app/host:2"),
		"stable": entry("/app/host:stable"),
		"canary": entry("/app/token:canary"),
		"ports":  entry("/app/ports:3"),
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]out{
		"v1":     {stringV1, false},
		"v2":     {stringV2, false},
		"stable": {stringV1, false},
		"canary": {secureValue, true},
		"ports":  {[]string{"a", "b"}, false},
	}
	if got := outputs(t, v); !reflect.DeepEqual(got, want) {
		t.Errorf("outputs %+v, want %+v", got, want)
	}
	if n := len(rec.Take()); n != len(want) {
		t.Errorf("%d calls, want %d", n, len(want))
	}

	_, err = awsparams.New().Open(context.Background(), kumotest.GetInputs(map[string]esc.Value{"old": entry("/app/host:unknown-label")}), nil)
	wantErr := "aws-parameter-store get.old: ssm:GetParameter: ParameterNotFound: Parameter /app/host:unknown-label not found."
	if err == nil || err.Error() != wantErr {
		t.Errorf("error %v, want %s", err, wantErr)
	}
}

// TestServiceEndpoint checks that AWS_ENDPOINT_URL_SSM takes precedence over
// AWS_ENDPOINT_URL.
func TestServiceEndpoint(t *testing.T) {
	kumo := kumotest.Start(t)
	kumotest.Env(t, kumo)
	seed(t)
	t.Setenv("AWS_ENDPOINT_URL", kumotest.ClosedURL(t))
	t.Setenv("AWS_ENDPOINT_URL_SSM", kumo)
	v, err := awsparams.New().Open(context.Background(), kumotest.GetInputs(map[string]esc.Value{"host": entry("/app/host")}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := outputs(t, v); got["host"] != (out{stringV2, false}) {
		t.Errorf("host = %+v, want %q", got["host"], stringV2)
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
	hostGet := map[string]esc.Value{"host": entry("/app/host")}
	tests := []struct {
		name      string
		handler   http.Handler // nil: the endpoint is a closed port
		get       map[string]esc.Value
		wantErr   string // the whole message; with prefix, its start
		prefix    bool
		wantCalls int
	}{
		{
			name:      "unknown parameter",
			handler:   kumotest.ProxyTo(t, kumo),
			get:       map[string]esc.Value{"db": entry("/no/such/param")},
			wantErr:   "aws-parameter-store get.db: ssm:GetParameter: ParameterNotFound: Parameter /no/such/param not found.",
			wantCalls: 1,
		},
		{
			name:    "two failing entries, both named",
			handler: kumotest.ProxyTo(t, kumo),
			get: map[string]esc.Value{
				"token":     entry("/app/token"),
				"missing":   entry("/no/such/param"),
				"my.params": entry("/other/missing"),
			},
			wantErr: "aws-parameter-store get.missing: ssm:GetParameter: ParameterNotFound: Parameter /no/such/param not found.\n" +
				`aws-parameter-store get["my.params"]: ssm:GetParameter: ParameterNotFound: Parameter /other/missing not found.`,
			wantCalls: 3,
		},
		{
			name:      "access denied",
			handler:   kumotest.AWSError(http.StatusBadRequest, "AccessDeniedException", "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: ssm:GetParameter"),
			get:       hostGet,
			wantErr:   "aws-parameter-store get.host: ssm:GetParameter: AccessDeniedException: User: arn:aws:iam::123456789012:user/ci is not authorized to perform: ssm:GetParameter",
			wantCalls: 1,
		},
		{
			name:      "internal errors, retried",
			handler:   kumotest.AWSError(http.StatusInternalServerError, "InternalServerError", "An error occurred on the server side."),
			get:       hostGet,
			wantErr:   "aws-parameter-store get.host: ssm:GetParameter: InternalServerError: An error occurred on the server side. (gave up after 3 attempts)",
			wantCalls: 3,
		},
		{
			name:      "throttled, retried",
			handler:   kumotest.AWSError(http.StatusBadRequest, "ThrottlingException", "Rate exceeded"),
			get:       hostGet,
			wantErr:   "aws-parameter-store get.host: ssm:GetParameter: ThrottlingException: Rate exceeded (gave up after 3 attempts)",
			wantCalls: 3,
		},
		{
			name:    "endpoint unreachable",
			get:     hostGet,
			wantErr: "aws-parameter-store get.host: ssm:GetParameter: endpoint unreachable: ",
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
			v, err := awsparams.New().Open(context.Background(), kumotest.GetInputs(tt.get), nil)
			elapsed := time.Since(start)
			if err == nil {
				t.Fatalf("Open = %v, want an error", v)
			}
			msg := err.Error()
			t.Logf("error after %v: %s", elapsed.Round(time.Millisecond), msg)
			if tt.prefix && !strings.HasPrefix(msg, tt.wantErr) || !tt.prefix && msg != tt.wantErr {
				t.Errorf("error\n%s\nwant\n%s", msg, tt.wantErr)
			}
			for _, secret := range []string{secureValue, envSecret} {
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
	v, err := awsparams.New().Open(context.Background(), kumotest.GetInputs(map[string]esc.Value{"token": entry("/app/token")}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := outputs(t, v); got["token"] != (out{secureValue, true}) {
		t.Errorf("token = %+v, want secret %q", got["token"], secureValue)
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
	ok := map[string]esc.Value{"host": entry("/app/host")}
	const noGet = `aws-parameter-store: input "get" is required: it maps names to the parameters to read ({name, decrypt?})`
	tests := []struct {
		name    string
		inputs  map[string]esc.Value
		noRgn   bool
		wantErr string
	}{
		{"no get", kumotest.GetInputs(nil, "region", "us-east-1"), false, noGet},
		{"empty get", kumotest.GetInputs(map[string]esc.Value{}), false, noGet},
		{"get not an object", map[string]esc.Value{"get": esc.NewValue([]esc.Value{})}, false, `aws-parameter-store: input "get" must be an object`},
		{"entry not an object", kumotest.GetInputs(map[string]esc.Value{"host": esc.NewValue("/app/host")}), false, "aws-parameter-store get.host: must be an object {name, decrypt?}"},
		{"no name", kumotest.GetInputs(map[string]esc.Value{"host": kumotest.Obj("decrypt", esc.NewValue(true))}), false, "aws-parameter-store get.host: name is required"},
		{"empty name", kumotest.GetInputs(map[string]esc.Value{"host": kumotest.Obj("name", "")}), false, "aws-parameter-store get.host: name is required"},
		{"decrypt not a boolean", kumotest.GetInputs(map[string]esc.Value{"host": kumotest.Obj("name", "/app/host", "decrypt", "yes")}), false, `aws-parameter-store get.host: input "decrypt" must be a boolean`},
		{"unknown entry input", kumotest.GetInputs(map[string]esc.Value{"host": kumotest.Obj("name", "/app/host", "withDecryption", esc.NewValue(true))}), false, `aws-parameter-store get.host: unknown input "withDecryption" (the inputs are name, decrypt)`},
		{"unknown input", kumotest.GetInputs(ok, "logins", kumotest.Obj()), false, `aws-parameter-store: unknown input "logins" (the inputs are region, login, get)`},
		{"login not an object", kumotest.GetInputs(ok, "login", "AKIA"), false, `aws-parameter-store: input "login" must be an object`},
		{"login without key ID", kumotest.GetInputs(ok, "login", kumotest.Obj("secretAccessKey", esc.NewSecret(loginSecret))), false, "aws-parameter-store: login: accessKeyId and secretAccessKey are required"},
		{"no region anywhere", kumotest.GetInputs(ok), true, "aws-parameter-store: no AWS region: set the region input, AWS_REGION, or the region of the AWS profile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.noRgn {
				t.Setenv("AWS_REGION", "")
				t.Setenv("AWS_DEFAULT_REGION", "")
			}
			v, err := awsparams.New().Open(context.Background(), tt.inputs, nil)
			if err == nil {
				t.Fatalf("Open = %v, want an error", v)
			}
			if err.Error() != tt.wantErr {
				t.Errorf("error\n%s\nwant\n%s", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), loginSecret) {
				t.Errorf("error %q reveals the secret key", err)
			}
			if n := len(rec.Take()); n != 0 {
				t.Errorf("%d AWS calls, want none", n)
			}
		})
	}
}

// TestSchema checks that the schemas compile and say what is required.
func TestSchema(t *testing.T) {
	in, outs := awsparams.New().Schema()
	for _, s := range []*schema.Schema{in, outs} {
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
	e := in.Properties["get"].AdditionalProperties
	if e == nil || !reflect.DeepEqual(e.Required, []string{"name"}) {
		t.Fatalf("get entries: %+v, want objects requiring name", e)
	}
	if e.Properties["name"] == nil || e.Properties["name"].Type != "string" {
		t.Errorf("get entries: name is not a string input")
	}
	if e.Properties["decrypt"] == nil || e.Properties["decrypt"].Type != "boolean" {
		t.Errorf("get entries: decrypt is not a boolean input")
	}
	v := outs.AdditionalProperties
	if outs.Type != "object" || v == nil || len(v.OneOf) != 2 {
		t.Fatalf("outputs %+v, want an object of strings or arrays of strings", outs)
	}
	types := []string{v.OneOf[0].Type, v.OneOf[1].Type}
	if !reflect.DeepEqual(types, []string{"string", "array"}) || v.OneOf[1].Items == nil || v.OneOf[1].Items.Type != "string" {
		t.Errorf("output values %v, want string or array of strings", types)
	}
}
