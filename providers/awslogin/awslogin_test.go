package awslogin_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pulumi/esc"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/providers"
	"github.com/escfs/escfs/providers/awslogin"
	"github.com/escfs/escfs/providers/builtin"
)

func obj(kv ...any) esc.Value {
	m := map[string]esc.Value{}
	for i := 0; i < len(kv); i += 2 {
		v, ok := kv[i+1].(esc.Value)
		if !ok {
			v = esc.Value{Value: kv[i+1]}
		}
		m[kv[i].(string)] = v
	}
	return esc.NewValue(m)
}

func TestOpenStatic(t *testing.T) {
	type out struct {
		value  string
		secret bool
	}
	tests := []struct {
		name    string
		inputs  map[string]esc.Value
		want    map[string]out
		wantErr string
	}{
		{
			name:   "with session token",
			inputs: map[string]esc.Value{"static": obj("accessKeyId", "AKIAEXAMPLE", "secretAccessKey", "s3cr3t", "sessionToken", "tok")},
			want:   map[string]out{"accessKeyId": {"AKIAEXAMPLE", false}, "secretAccessKey": {"s3cr3t", true}, "sessionToken": {"tok", true}},
		},
		{
			name:   "without session token",
			inputs: map[string]esc.Value{"static": obj("accessKeyId", "AKIAEXAMPLE", "secretAccessKey", "s3cr3t")},
			want:   map[string]out{"accessKeyId": {"AKIAEXAMPLE", false}, "secretAccessKey": {"s3cr3t", true}, "sessionToken": {"", true}},
		},
		{
			name:   "null session token",
			inputs: map[string]esc.Value{"static": obj("accessKeyId", "A", "secretAccessKey", "S", "sessionToken", nil)},
			want:   map[string]out{"accessKeyId": {"A", false}, "secretAccessKey": {"S", true}, "sessionToken": {"", true}},
		},
		{
			name:   "secret inputs",
			inputs: map[string]esc.Value{"static": obj("accessKeyId", "A", "secretAccessKey", esc.NewSecret("S"))},
			want:   map[string]out{"accessKeyId": {"A", false}, "secretAccessKey": {"S", true}, "sessionToken": {"", true}},
		},
		{name: "token not a string", inputs: map[string]esc.Value{"static": obj("accessKeyId", "A", "secretAccessKey", "S", "sessionToken", true)}, wantErr: `input "sessionToken" must be a string`},
		{name: "unknown static input", inputs: map[string]esc.Value{"static": obj("accessKeyId", "A", "secretAccessKey", "S", "region", "eu-west-1")}, wantErr: `aws-login static: unknown input "region" (static takes accessKeyId, secretAccessKey, sessionToken)`},
		{name: "static not an object", inputs: map[string]esc.Value{"static": esc.NewValue("AKIA")}, wantErr: `aws-login static: input "static" must be an object`},
		{name: "no access key", inputs: map[string]esc.Value{"static": obj("secretAccessKey", "S")}, wantErr: "aws-login static: accessKeyId and secretAccessKey are required"},
		{name: "no secret key", inputs: map[string]esc.Value{"static": obj("accessKeyId", "A")}, wantErr: "accessKeyId and secretAccessKey are required"},
		{name: "empty secret key", inputs: map[string]esc.Value{"static": obj("accessKeyId", "A", "secretAccessKey", "")}, wantErr: "accessKeyId and secretAccessKey are required"},
		{name: "access key not a string", inputs: map[string]esc.Value{"static": obj("accessKeyId", json.Number("5"), "secretAccessKey", "S")}, wantErr: `input "accessKeyId" must be a string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, expiry := providers.WithExpiry(context.Background())
			v, err := awslogin.New().Open(ctx, tt.inputs, nil)
			if !expiry.Earliest().IsZero() {
				t.Errorf("static credentials reported an expiry: %v", expiry.Earliest())
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Open = %v, %v; want error containing %q", v, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			m, ok := v.Value.(map[string]esc.Value)
			if !ok {
				t.Fatalf("Open = %#v, want an object", v)
			}
			if len(m) != len(tt.want) {
				t.Errorf("outputs %v, want %v", m, tt.want)
			}
			for k, w := range tt.want {
				if got := m[k]; got.Value != w.value || got.Secret != w.secret {
					t.Errorf("%s = %q secret %v, want %q secret %v", k, got.Value, got.Secret, w.value, w.secret)
				}
			}
		})
	}
}

func TestSchema(t *testing.T) {
	in, out := awslogin.New().Schema()
	if err := in.Compile(); err != nil {
		t.Fatalf("inputs: %v", err)
	}
	if err := out.Compile(); err != nil {
		t.Fatalf("outputs: %v", err)
	}
	if len(in.Required) != 0 {
		t.Errorf("inputs require %v; each form is optional and Open checks that one is given", in.Required)
	}
	wantForms := map[string]struct{ required, optional []string }{
		"static":     {[]string{"accessKeyId", "secretAccessKey"}, []string{"sessionToken"}},
		"oidc":       {[]string{"roleArn", "sessionName"}, []string{"duration", "policyArns", "token", "tokenFile"}},
		"assumeRole": {[]string{"roleArn"}, []string{"sessionName", "duration", "externalId", "profile"}},
	}
	for form, want := range wantForms {
		s := in.Properties[form]
		if s == nil {
			t.Errorf("no %s input", form)
			continue
		}
		if !slices.Equal(slices.Sorted(slices.Values(s.Required)), slices.Sorted(slices.Values(want.required))) {
			t.Errorf("%s requires %v, want %v", form, s.Required, want.required)
		}
		for _, k := range append(want.required, want.optional...) {
			if s.Properties[k] == nil {
				t.Errorf("%s lacks %s", form, k)
			}
		}
		if len(s.Properties) != len(want.required)+len(want.optional) {
			t.Errorf("%s has %d properties, want %d", form, len(s.Properties), len(want.required)+len(want.optional))
		}
	}
	if p := in.Properties["profile"]; p == nil || p.Type != "string" {
		t.Errorf("profile input = %+v, want a string", p)
	}
	if a := in.Properties["oidc"].Properties["policyArns"]; a == nil || a.Type != "array" || a.Items == nil || a.Items.Type != "string" {
		t.Errorf("policyArns = %+v, want an array of strings", a)
	}
	if !slices.Equal(slices.Sorted(slices.Values(out.Required)), []string{"accessKeyId", "secretAccessKey", "sessionToken"}) {
		t.Errorf("outputs require %v", out.Required)
	}
	if out.Properties["expiration"] == nil || slices.Contains(out.Required, "expiration") {
		t.Errorf("expiration should be an optional output")
	}
}

// TestThroughEvaluator opens the provider from an environment definition, as
// users do, and checks what reaches the renderings.
func TestThroughEvaluator(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("aws.yaml", `values:
  aws:
    login:
      fn::open::aws-login:
        static:
          accessKeyId: AKIAEXAMPLE
          secretAccessKey:
            fn::secret: wJalr'XUtn
          sessionToken: tok$(id)
  environmentVariables:
    AWS_ACCESS_KEY_ID: ${aws.login.accessKeyId}
    AWS_SECRET_ACCESS_KEY: ${aws.login.secretAccessKey}
    AWS_SESSION_TOKEN: ${aws.login.sessionToken}
`)
	write("nokey.yaml", `values:
  creds:
    fn::open::aws-login:
      static:
        secretAccessKey: x
`)
	write("noform.yaml", `values:
  creds:
    fn::open::aws-login: {}
`)
	tree, err := eval.ScanDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := &eval.Evaluator{Providers: builtin.Registry()}

	snap, err := e.Evaluate(context.Background(), tree, eval.Request{Name: "aws"})
	if err != nil {
		t.Fatal(err)
	}
	wantEnv := "export AWS_ACCESS_KEY_ID='AKIAEXAMPLE'\nexport AWS_SECRET_ACCESS_KEY='wJalr'\\''XUtn'\nexport AWS_SESSION_TOKEN='tok$(id)'\n"
	if string(snap.Env) != wantEnv {
		t.Errorf("Env =\n%s\nwant\n%s", snap.Env, wantEnv)
	}
	if want := []string{"wJalr'XUtn", "tok$(id)"}; !slices.Equal(snap.Secrets, want) {
		t.Errorf("Secrets = %q, want %q", snap.Secrets, want)
	}
	for _, v := range snap.Vars {
		if v.Secret != (v.Name != "AWS_ACCESS_KEY_ID") {
			t.Errorf("%s secret = %v", v.Name, v.Secret)
		}
	}

	for env, msg := range map[string]string{"nokey": "accessKeyId", "noform": "static"} {
		snap, err := e.Evaluate(context.Background(), tree, eval.Request{Name: env})
		var de *eval.DiagnosticsError
		if !errors.As(err, &de) || snap == nil {
			t.Fatalf("%s: Evaluate = %v, %v; want diagnostics", env, snap, err)
		}
		if d := de.Diagnostics[0]; !strings.Contains(d.Message, msg) || d.File != filepath.Join(dir, env+".yaml") || d.Line == 0 {
			t.Errorf("%s: diagnostic %v, want one located in the file naming %s", env, d, msg)
		}
	}
}
