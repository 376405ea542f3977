package providers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pulumi/esc"
	"github.com/pulumi/esc/schema"

	"github.com/escfs/escfs/providers"
	"github.com/escfs/escfs/providers/awslogin"
	"github.com/escfs/escfs/providers/builtin"
)

// fake is a provider told apart by its tag.
type fake struct{ tag string }

func (fake) Schema() (*schema.Schema, *schema.Schema) {
	return schema.Always().Schema(), schema.Always().Schema()
}

func (f fake) Open(context.Context, map[string]esc.Value, esc.EnvExecContext) (esc.Value, error) {
	return esc.NewValue(f.tag), nil
}

func TestRegistry(t *testing.T) {
	in := map[string]esc.Provider{"zeta": fake{"z"}, "alpha": fake{"a"}, "mid-dle": fake{"m"}}
	r := providers.NewRegistry(in)
	in["late"] = fake{"late"} // the registry holds its own copy
	delete(in, "alpha")

	if got, want := r.Names(), []string{"alpha", "mid-dle", "zeta"}; !slices.Equal(got, want) {
		t.Errorf("Names() = %q, want %q", got, want)
	}
	tests := []struct {
		name    string
		tag     string
		wantErr string
	}{
		{name: "alpha", tag: "a"},
		{name: "zeta", tag: "z"},
		{name: "mid-dle", tag: "m"},
		{name: "late", wantErr: `unknown provider "late" (escfs knows: alpha, mid-dle, zeta)`},
		{name: "", wantErr: `unknown provider "" (escfs knows: alpha, mid-dle, zeta)`},
		{name: "Alpha", wantErr: `unknown provider "Alpha"`},
	}
	for _, tt := range tests {
		p, err := r.LoadProvider(context.Background(), tt.name)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr && !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Errorf("LoadProvider(%q) = %v, %v; want error %q", tt.name, p, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("LoadProvider(%q): %v", tt.name, err)
			continue
		}
		v, _ := p.Open(context.Background(), nil, nil)
		if v.Value != tt.tag {
			t.Errorf("LoadProvider(%q) returned provider %v, want %s", tt.name, v.Value, tt.tag)
		}
	}
}

func TestEmptyRegistry(t *testing.T) {
	r := providers.NewRegistry(nil)
	if len(r.Names()) != 0 {
		t.Errorf("Names() = %q", r.Names())
	}
	if _, err := r.LoadProvider(context.Background(), "aws-login"); err == nil || !strings.Contains(err.Error(), `unknown provider "aws-login"`) {
		t.Errorf("LoadProvider on an empty registry: %v", err)
	}
}

func TestLoadRotator(t *testing.T) {
	r := builtin.Registry()
	rot, err := r.LoadRotator(context.Background(), "aws-iam")
	if err == nil || rot != nil || !strings.Contains(err.Error(), `unknown rotator "aws-iam"`) || !strings.Contains(err.Error(), "does not rotate") {
		t.Errorf("LoadRotator = %v, %v; want an error saying escfs does not rotate", rot, err)
	}
}

func TestBuiltinRegistry(t *testing.T) {
	r := builtin.Registry()
	if !slices.Contains(r.Names(), awslogin.Name) {
		t.Errorf("builtin registry %q lacks %s", r.Names(), awslogin.Name)
	}
	p, err := r.LoadProvider(context.Background(), "aws-login")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.(providers.Scrubbed).Provider.(awslogin.Provider); !ok {
		t.Errorf("aws-login is %T", p)
	}
	_, err = r.LoadProvider(context.Background(), "no-such-provider")
	if err == nil || !strings.Contains(err.Error(), "escfs knows: "+strings.Join(r.Names(), ", ")) {
		t.Errorf("unknown provider error %v does not name the known ones", err)
	}
}

func TestInputs(t *testing.T) {
	in := map[string]esc.Value{
		"s": esc.NewValue("x"), "n": {}, "num": esc.NewValue(json.Number("1")),
		"o": esc.NewValue(map[string]esc.Value{"k": esc.NewValue("v")}),
	}
	tests := []struct {
		key    string
		str    string
		strErr bool
		objLen int
		objNil bool
		objErr bool
	}{
		{key: "s", str: "x", objErr: true},
		{key: "n", objNil: true},
		{key: "absent", objNil: true},
		{key: "num", strErr: true, objErr: true},
		{key: "o", strErr: true, objLen: 1},
	}
	for _, tt := range tests {
		s, err := providers.String(in, tt.key)
		if (err != nil) != tt.strErr || s != tt.str {
			t.Errorf("String(%q) = %q, %v", tt.key, s, err)
		}
		if err != nil && !strings.Contains(err.Error(), `input "`+tt.key+`" must be a string`) {
			t.Errorf("String(%q) error %q", tt.key, err)
		}
		o, err := providers.Object(in, tt.key)
		if (err != nil) != tt.objErr || (o == nil) != (tt.objNil || tt.objErr) || len(o) != tt.objLen {
			t.Errorf("Object(%q) = %v, %v", tt.key, o, err)
		}
		if err != nil && !strings.Contains(err.Error(), `input "`+tt.key+`" must be an object`) {
			t.Errorf("Object(%q) error %q", tt.key, err)
		}
	}
}

// TestScrubbed checks that no secret input (marked, or beneath a marked
// value) survives in a provider's error, that plain inputs do, and that
// the error still wraps the provider's.
func TestScrubbed(t *testing.T) {
	base := errors.New("base")
	p := providers.Scrubbed{Provider: quoting{base}}
	inputs := map[string]esc.Value{
		"plain":  esc.NewValue("visible-name"),
		"secret": esc.NewSecret("top-secret-name"),
		"nested": esc.NewSecret(map[string]esc.Value{"inner": esc.NewValue("nested-secret"), "list": esc.NewValue([]esc.Value{esc.NewValue("listed-secret")})}),
		"short":  esc.NewSecret("ab"),
	}
	_, err := p.Open(context.Background(), inputs, nil)
	msg := err.Error()
	for _, s := range []string{"top-secret-name", "nested-secret", "listed-secret"} {
		if strings.Contains(msg, s) {
			t.Errorf("the error shows %q: %s", s, msg)
		}
	}
	if !strings.Contains(msg, "visible-name") || !strings.Contains(msg, providers.SecretMark) {
		t.Errorf("the error %q lost its plain input or its marks", msg)
	}
	if !errors.Is(err, base) {
		t.Errorf("the scrubbed error does not wrap the provider's")
	}
}

// quoting fails with every string of its inputs in the message.
type quoting struct{ base error }

func (quoting) Schema() (*schema.Schema, *schema.Schema) { return nil, nil }

func (q quoting) Open(_ context.Context, inputs map[string]esc.Value, _ esc.EnvExecContext) (esc.Value, error) {
	b, _ := json.Marshal(inputs)
	return esc.Value{}, fmt.Errorf("failed on %s: %w", b, q.base)
}
